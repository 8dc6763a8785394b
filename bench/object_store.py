"""Object-storage figures of the benchmark suite, with moto's S3 server (PyPI `moto[server]`)
on a loopback port as the bucket:

- spans per server CPU-second over OTLP/gRPC with files in the data directory (`local`) and in
  the bucket (`s3`), interleaved run by run so drift hits both alike (the server's CPU only:
  moto's is not counted, as a real store's would not be);
- the same with the manifests in PostgreSQL too (`s3+pg`, Debian's PostgreSQL started here as
  the `postgres` user when the suite runs as root; left out otherwise): a flush's catalog cost
  is one conditional UPDATE, a query's none (manifests are held in memory);
- trace by id after a restart on an empty data directory, every file read from the bucket:
  the first read of each id (cold: footers, trace-id filters and pages fetched over HTTP) and
  the same ids again (warm: footers and filters cached, pages fetched again).

moto is a Python server sharing the two cores, so the latencies bound what a real store on
its own machine would give from above.
"""

import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request


class Postgres:
    """A throwaway PostgreSQL cluster (Debian's binaries, run as `postgres`)."""

    def __init__(self, work, port):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin, self.data, self.port = bins[-1], work / "pg", port
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        os.chmod(work, 0o755)
        shutil.chown(self.data, "postgres", "postgres")
        self.as_postgres([f"{self.bin}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8"])
        self.as_postgres([f"{self.bin}/pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o",
                          f"-p {port} -k {self.data} -c listen_addresses=127.0.0.1", "start"])

    @staticmethod
    def available():
        return os.geteuid() == 0 and bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))

    def as_postgres(self, command):
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        self.as_postgres([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "-c", f"CREATE DATABASE {name}"])

    def stop(self):
        self.as_postgres([f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"])


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
    postgres = Postgres(work, free_port()) if Postgres.available() else None
    variants = ("local", "s3", "s3+pg") if postgres else ("local", "s3")
    figures = {variant: [] for variant in variants}
    try:
        for run in range(args.runs):
            for variant in variants:
                data = work / f"objects-{variant}-{run}"
                extra = []
                if variant == "s3":
                    extra = ["--config", str(bucket_config(work, endpoint, f"bench-{run}"))]
                if variant == "s3+pg":
                    config = bucket_config(work, endpoint, f"bench-pg-{run}")
                    postgres.create_database(f"bench_{run}")
                    config.write_text(config.read_text() + f'\n[catalog]\nurl = "{postgres.url(f"bench_{run}")}"\n')
                    extra = ["--config", str(config)]
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
        if postgres:
            postgres.stop()
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

    def ratio(variant):
        pairs = [a / b for a, b in zip(s[variant], s["local"])]
        return f"×{statistics.median(pairs):.3f} (pairs ×{min(pairs):.3f}–×{max(pairs):.3f})"

    runs = len(s["local"])
    with_pg = [("same with the manifests in PostgreSQL too", "within 10% of local",
                f"{text('s3+pg')}; {ratio('s3+pg')}")] if s.get("s3+pg") else []
    return [
        (f"spans per server CPU-second, OTLP/gRPC, files in the data directory ({runs} runs)", "",
         text("local")),
        ("same with files in an S3 bucket (moto on loopback)", "within 10% of local",
         f"{text('s3')}; {ratio('s3')}"),
        *with_pg,
        ("trace by id from the bucket, a new node on an empty data directory, first read, p99 ms", "reported",
         latency("trace_by_id_cold")),
        ("the same ids again (footers and trace-id filters cached), p99 ms", "reported",
         latency("trace_by_id_warm")),
    ]
