"""Security figures of the benchmark suite: spans per server CPU-second over OTLP/gRPC on three
servers, interleaved run by run so drift hits all alike:

- `plain`: no API keys, no TLS (the loopback quick start);
- `keys`: an ingest key required, sent by the load generator as `authorization: Bearer`;
- `tls`: the same key, and TLS on every port (a certificate from a CA made here with openssl);
- `redact`: no key, no TLS, and four redaction rules (two by attribute key, a card-number and a
  bearer-token pattern over every string value), as a careful operator would configure.

The key check's cost is `keys` against `plain`; TLS's is `tls` against `keys`; redaction's is
`redact` against `plain`.
"""

import ssl
import statistics
import subprocess
import sys

VARIANTS = ("plain", "keys", "tls", "redact")

REDACTION_RULES = """
[[redaction.rules]]
attributes = ["*.password", "http.request.header.authorization"]
action = "drop"

[[redaction.rules]]
attributes = ["enduser.id"]
action = "hash"

[[redaction.rules]]
pattern = '\\b\\d{4}(?:[ -]?\\d{4}){3}\\b'
action = "mask"

[[redaction.rules]]
pattern = '(?i)bearer\\s+[A-Za-z0-9._~+/-]+=*'
action = "mask"
"""


def make_pki(work):
    """A CA and a server certificate for 127.0.0.1 (openssl); returns (ca, cert, key) paths."""
    pki = work / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (pki / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = pki / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=skewer bench CA", "-keyout", ca_key, "-out", ca], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=skewer", "-keyout", key, "-out", csr], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "2", "-extfile", ext, "-out", cert], **quiet)
    return ca, cert, key


def create_key(binary, data_dir):
    """An all-tenants ingest+query key in `data_dir` (query: the suite reads /metrics)."""
    out = subprocess.run([binary, "keys", "create", "--data-dir", str(data_dir), "--tenant", "*",
                          "--scope", "ingest,query", "--name", "bench"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def security_figures(binary, work, args, server_class, loadgen_fn):
    ca, cert, key_file = make_pki(work)
    context = ssl.create_default_context(cafile=str(ca))
    figures = {variant: [] for variant in VARIANTS}
    for run in range(args.runs):
        for variant in VARIANTS:
            data = work / f"security-{variant}-{run}"
            server_extra, load_extra, api_key = [], ["--seed", "42"], None
            if variant != "plain":
                data.mkdir(parents=True, exist_ok=True)
                api_key = create_key(binary, data)
                load_extra += ["--header", f"authorization: Bearer {api_key}"]
            if variant == "redact":
                rules = work / "redaction.toml"
                rules.write_text(REDACTION_RULES)
                server_extra += ["--config", str(rules)]
            if variant == "tls":
                server_extra += ["--tls-cert-file", str(cert), "--tls-key-file", str(key_file)]
                load_extra += ["--tls-ca-file", str(ca)]
            server = server_class(binary, data, server_extra, api_key=api_key,
                                  tls_context=context if variant == "tls" else None).start()
            try:
                result = loadgen_fn(binary, server, "traces", "grpc", args.seconds, load_extra)
                figure = result["records_acked"] / max(result["server_cpu_seconds"], 1e-9)
                figures[variant].append(figure)
                print(f"  security {variant} run {run + 1}: {figure:,.0f} spans per server CPU-second "
                      f"({result['records_acked']:,} acked, {result['server_cpu_seconds']:.1f} CPU-s)",
                      file=sys.stderr)
            finally:
                server.stop()
    return figures


def security_rows(f):
    s = f.get("security")
    if not s:
        return []

    def text(variant):
        values = s[variant]
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"

    def ratio(variant, base):
        pairs = [a / b for a, b in zip(s[variant], s[base])]
        return f"×{statistics.median(pairs):.3f} (pairs ×{min(pairs):.3f}–×{max(pairs):.3f})"

    runs = len(s["plain"])
    return [
        (f"spans per server CPU-second, OTLP/gRPC, no keys, no TLS ({runs} runs)", "", text("plain")),
        ("same with an API key checked on every export", "≥ ×0.98 of no keys",
         f"{text('keys')}; {ratio('keys', 'plain')}"),
        ("same over TLS (key checked too)", "reported", f"{text('tls')}; {ratio('tls', 'keys')} of keys alone"),
        ("no keys, no TLS, four redaction rules", "reported", f"{text('redact')}; {ratio('redact', 'plain')}"),
    ]
