"""Object-storage figures of the benchmark suite, with moto's S3 server (PyPI `moto[server]`)
on a loopback port as the bucket:

- spans per server CPU-second over OTLP/gRPC with files in the data directory (`local`) and in
  the bucket (`s3`), interleaved run by run so drift hits both alike (the server's CPU only:
  moto's is not counted, as a real store's would not be);
- trace by id after a restart on an empty data directory, every file read from the bucket:
  the first read of each id (cold: footers, trace-id filters and pages fetched over HTTP) and
  the same ids again (warm: footers and filters cached, pages fetched again).

moto is a Python server sharing the two cores, so the latencies bound what a real store on
its own machine would give from above.
"""

import random
import statistics
import subprocess
import sys
import time
import urllib.request


def start_moto(work, port):
    log = open(work / "moto.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1).read()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's S3 server not ready in 30 s (pip install 'moto[server]')")


def bucket_config(work, endpoint, bucket):
    """A config file naming `bucket` on moto (created now)."""
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
    urllib.request.urlopen(request, timeout=10).read()
    path = work / f"{bucket}.toml"
    path.write_text(f'[storage]\nurl = "s3://{bucket}/bench"\nendpoint = "{endpoint}"\n'
                    'path_style = true\naccess_key_id = "bench"\nsecret_access_key = "bench"\n')
    return path


def timed(server, paths):
    latencies = []
    for path in paths:
        started = time.perf_counter()
        status, _ = server.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{path}: {status}")
    return latencies


def object_store_figures(binary, work, args, server_class, loadgen_fn, free_port):
    moto, endpoint = start_moto(work, free_port())
    figures = {"local": [], "s3": []}
    try:
        for run in range(args.runs):
            for variant in ("local", "s3"):
                data = work / f"objects-{variant}-{run}"
                extra = []
                if variant == "s3":
                    extra = ["--config", str(bucket_config(work, endpoint, f"bench-{run}"))]
                server = server_class(binary, data, extra).start()
                try:
                    result = loadgen_fn(binary, server, "traces", "grpc", args.seconds, ["--seed", "42"],
                                        ids_out=work / f"ids-{variant}-{run}.txt")
                    figure = result["records_acked"] / max(result["server_cpu_seconds"], 1e-9)
                    figures[variant].append(figure)
                    print(f"  object storage {variant} run {run + 1}: {figure:,.0f} spans per server "
                          f"CPU-second ({result['records_acked']:,} acked, "
                          f"{result['server_cpu_seconds']:.1f} CPU-s)", file=sys.stderr)
                finally:
                    server.stop()
        # Trace by id from the bucket alone: a new node on an empty data directory.
        last = args.runs - 1
        ids = [line.strip() for line in (work / f"ids-s3-{last}.txt").read_text().splitlines() if line.strip()]
        sample = random.Random(5).sample(ids, min(len(ids), 20 if args.smoke else 300))
        reader = server_class(binary, work / "objects-reader",
                              ["--config", str(work / f"bench-{last}.toml")]).start()
        try:
            paths = [f"/api/traces/{trace_id}" for trace_id in sample]
            figures["trace_by_id_cold"] = timed(reader, paths)
            figures["trace_by_id_warm"] = timed(reader, paths)
        finally:
            reader.stop()
    finally:
        moto.kill()
        moto.wait()
    return figures


def object_store_rows(f):
    s = f.get("object_store")
    if not s:
        return []

    def text(variant):
        values = s[variant]
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"

    def latency(name):
        values = sorted(s[name])
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return f"{p99:.1f} (p50 {statistics.median(values):.1f}; {len(values)} ids)"

    pairs = [a / b for a, b in zip(s["s3"], s["local"])]
    runs = len(s["local"])
    return [
        (f"spans per server CPU-second, OTLP/gRPC, files in the data directory ({runs} runs)", "",
         text("local")),
        ("same with files in an S3 bucket (moto on loopback)", "within 10% of local",
         f"{text('s3')}; ×{statistics.median(pairs):.3f} (pairs ×{min(pairs):.3f}–×{max(pairs):.3f})"),
        ("trace by id from the bucket, a new node on an empty data directory, first read, p99 ms", "reported",
         latency("trace_by_id_cold")),
        ("the same ids again (footers and trace-id filters cached), p99 ms", "reported",
         latency("trace_by_id_warm")),
    ]
