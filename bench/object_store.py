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
  the same ids again (warm: footers and filters cached, pages fetched again);
- with PostgreSQL, two nodes of a shared deployment (`--role ingest` and `--role query` on one
  bucket and database): the query node's RSS idle and its peak while the ingest node takes
  the load and the query node answers searches, the catalog's transactions per second idle
  and per flush under load (PostgreSQL's own `xact_commit` count), the ingest node's spans
  per CPU-second, and how long after the last acknowledgement the query node answers for it;
  then logs: the ingest node's records per CPU-second with its partitions uploaded, how long
  until the query node counts every acknowledged record, and a search on the query node
  (cached, first after a restart) against the same search on the ingest node.

moto is a Python server sharing the two cores, so the latencies bound what a real store on
its own machine would give from above.
"""

import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
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

    def commits(self, database):
        """Transactions committed in `database` so far (PostgreSQL's statistics, which lag a
        second or so)."""
        out = subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/psql", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "postgres", "-tAc",
                              f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'"],
                             check=True, capture_output=True, text=True)
        return int(out.stdout.strip())

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


def empty_bucket(endpoint, bucket):
    """Deletes every object of `bucket`: moto keeps them all in memory, and a few million
    spans' worth of finished runs slowed its answers to the reads measured later. Signed
    requests (boto3, which moto depends on): moto refuses unsigned deletes."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


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
                if variant == "s3+pg" or (variant == "s3" and run < args.runs - 1):
                    empty_bucket(endpoint, f"bench-pg-{run}" if variant == "s3+pg" else f"bench-{run}")
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
        if postgres:
            figures["nodes"] = shared_nodes_figures(binary, work, args, server_class, loadgen_fn,
                                                    postgres, endpoint)
    finally:
        moto.kill()
        moto.wait()
        if postgres:
            postgres.stop()
    return figures


def shared_nodes_figures(binary, work, args, server_class, loadgen_fn, postgres, endpoint):
    from run import cpu_seconds, metric, rss_mib

    postgres.create_database("bench_nodes")
    config = bucket_config(work, endpoint, "bench-nodes")
    config.write_text(config.read_text() + f'\n[catalog]\nurl = "{postgres.url("bench_nodes")}"\n')
    ingest = server_class(binary, work / "node-ingest",
                          ["--config", str(config), "--role", "ingest", "--flush-interval-seconds", "5"]).start()
    query = server_class(binary, work / "node-query", ["--config", str(config), "--role", "query"]).start()
    nodes = {}
    try:
        idle_seconds = 5 if args.smoke else 30
        before = postgres.commits("bench_nodes")
        time.sleep(idle_seconds)
        nodes["catalog_tx_per_second_idle"] = (postgres.commits("bench_nodes") - before) / idle_seconds
        nodes["query_rss_idle_mib"] = rss_mib(query.proc.pid)

        peak = {"rss": 0.0, "queries": 0}
        done = threading.Event()

        def query_while_loaded():
            while not done.is_set():
                peak["rss"] = max(peak["rss"], rss_mib(query.proc.pid))
                try:
                    _, body = query.get("/api/services")
                    for service in json.loads(body)["data"][:3]:
                        query.get(f"/api/traces?service={service}&limit=20&lookback=1h")
                        peak["queries"] += 1
                except (OSError, ValueError, KeyError, TypeError):
                    pass  # nothing flushed and refreshed yet
                time.sleep(0.2)

        poller = threading.Thread(target=query_while_loaded)
        poller.start()
        before, load_started = postgres.commits("bench_nodes"), time.time()
        flushes_before = metric(ingest, 'skewer_flushes_total{signal="traces"}')
        query_cpu = cpu_seconds(query.proc.pid)
        try:
            result = loadgen_fn(binary, ingest, "traces", "grpc", args.seconds, ["--seed", "43"],
                                ids_out=work / "ids-nodes.txt")
        finally:
            acked_at = time.time()
            done.set()
            poller.join()
        flushes = metric(ingest, 'skewer_flushes_total{signal="traces"}') - flushes_before
        time.sleep(1)
        # Net of the background (refreshes, key polls) measured idle.
        background = nodes["catalog_tx_per_second_idle"] * (time.time() - load_started)
        nodes["catalog_tx_per_flush"] = (postgres.commits("bench_nodes") - before - background) / max(flushes, 1)
        nodes["flushes"] = flushes
        nodes["query_rss_peak_mib"] = peak["rss"]
        nodes["queries_answered"] = peak["queries"]
        nodes["query_cpu_seconds"] = cpu_seconds(query.proc.pid) - query_cpu
        nodes["ingest_spans_per_cpu_second"] = result["records_acked"] / max(result["server_cpu_seconds"], 1e-9)
        last = [line.strip() for line in (work / "ids-nodes.txt").read_text().splitlines() if line.strip()][-1]
        while True:
            try:
                if query.get(f"/api/traces/{last}")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() - acked_at > 120:
                raise RuntimeError("the query node never answered for the last trace")
            time.sleep(0.1)
        nodes["visible_after_seconds"] = time.time() - acked_at
        nodes.update(shared_log_figures(binary, args, ingest, query, loadgen_fn))
    finally:
        query.stop()
        ingest.stop()
    print(f"  shared nodes: {nodes}", file=sys.stderr)
    return nodes


def shared_log_figures(binary, args, ingest, query, loadgen_fn):
    """Logs taken by the ingest node (its partitions uploaded after each commit) and read by
    the query node from its cache: the ingest node's records per CPU-second with the uploads
    on, how long after the last acknowledgement the query node counts every record, and a
    search's latency on the query node (cached, and the first time after a restart, replicas
    downloaded) against the same search on the ingest node."""
    from run import cpu_seconds, metric

    figures = {}
    result = loadgen_fn(binary, ingest, "logs", "grpc", args.seconds, ["--seed", "44"])
    acked_at = time.time()
    figures["log_records_per_cpu_second"] = result["records_acked"] / max(result["server_cpu_seconds"], 1e-9)
    start_ns = int((time.time() - 7200) * 1e9)
    count = urllib.parse.quote('sum(count_over_time({service_name=~".+"}[3h]))')
    while True:
        try:
            _, body = query.get(f"/loki/api/v1/query?query={count}")
            found = json.loads(body)["data"]["result"]
            if found and int(float(found[0]["value"][1])) >= result["records_acked"]:
                break
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if time.time() - acked_at > 120:
            raise RuntimeError("the query node never counted every acknowledged log record")
        time.sleep(0.25)
    figures["log_visible_after_seconds"] = time.time() - acked_at
    # A search for a rare word over what the query node has read already (warm), and the
    # same search on the other nodes' replicas after a restart emptied the cache (cold).
    search = urllib.parse.quote('{service_name=~".+"} |= "timeout"')
    path = f"/loki/api/v1/query_range?query={search}&start={start_ns}&limit=100"
    def median_ms(node):
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            node.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
        return statistics.median(latencies)

    figures["log_search_warm_ms"] = median_ms(query)
    # The same search where the partitions were written: the cost of the search itself.
    figures["log_search_ingest_ms"] = median_ms(ingest)
    query.stop()
    query.start()
    cpu_before = cpu_seconds(query.proc.pid)
    started = time.perf_counter()
    query.get(path)
    figures["log_search_cold_ms"] = (time.perf_counter() - started) * 1000
    figures["log_cache_downloaded_mib"] = metric(query, "skewer_log_cache_downloaded_bytes_total") / 2**20
    figures["log_search_cold_cpu_seconds"] = cpu_seconds(query.proc.pid) - cpu_before
    print(f"  shared logs: {figures}", file=sys.stderr)
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
    nodes = s.get("nodes")
    node_rows = [
        ("two nodes on one bucket and database: the ingest node's spans per CPU-second", "within 10% of local",
         f"{nodes['ingest_spans_per_cpu_second']:,.0f}"),
        ("query node RSS, idle / peak while answering searches under that load, MiB", "reported",
         f"{nodes['query_rss_idle_mib']:.0f} / {nodes['query_rss_peak_mib']:.0f} "
         f"({nodes['queries_answered']} searches, {nodes['query_cpu_seconds']:.1f} CPU-s)"),
        ("catalog database transactions (PostgreSQL's count: a statement's prepare and execute count one each): "
         "per second idle (two nodes) / per span flush under load, net of the idle rate", "reported",
         f"{nodes['catalog_tx_per_second_idle']:.1f} / {nodes['catalog_tx_per_flush']:.1f} "
         f"({nodes['flushes']:.0f} flushes)"),
        ("last acknowledged span answered by the query node after, seconds", "flush + refresh interval (10)",
         f"{nodes['visible_after_seconds']:.1f}"),
        *([
            ("logs: the ingest node's records per CPU-second, its partitions uploaded after each commit",
             "reported", f"{nodes['log_records_per_cpu_second']:,.0f}"),
            ("every acknowledged log record counted by the query node after, seconds",
             "commit + upload round + refresh (≤ 5 + 5 + 5)", f"{nodes['log_visible_after_seconds']:.1f}"),
            ("a log search (line filter over every record) on the query node, p50 ms: cached / first after a "
             "restart (downloads) / the same on the ingest node that wrote the partitions",
             "cached ≈ ingest node", f"{nodes['log_search_warm_ms']:.1f} / {nodes['log_search_cold_ms']:.0f} "
             f"({nodes['log_cache_downloaded_mib']:.0f} MiB downloaded) / {nodes['log_search_ingest_ms']:.1f}"),
        ] if "log_records_per_cpu_second" in nodes else []),
    ] if nodes else []
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
        *node_rows,
    ]
