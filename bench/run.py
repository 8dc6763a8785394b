#!/usr/bin/env python3
"""skewer's benchmark suite: starts `skewer serve` with a fresh data dir, drives it with
`skewer loadgen`, measures server CPU (utime+stime from /proc), memory, bytes on disk and query
latency, and prints the table of docs/benchmarks.md.

    python3 bench/run.py                       # full suite, release binary (built if missing)
    python3 bench/run.py --smoke --binary target/debug/skewer   # seconds; CI keeps it from rotting

Only the standard library. Loopback only; every wait has a deadline.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from logql import QUIET_ENV, logql_figures, logql_rows
from search_under_load import search_under_load_figures, search_under_load_rows
from promql import promql_figures
from object_store import object_store_figures, object_store_rows
from security import security_figures, security_rows

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def http_get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


class Server:
    """`skewer serve` on loopback ports. `api_key` is sent with the suite's own requests (a
    server with keys); `tls_context` (an `ssl.SSLContext` trusting the server's CA) makes them
    https."""

    def __init__(self, binary, data_dir, extra=(), api_key=None, tls_context=None, env=None):
        self.binary, self.data_dir, self.extra = binary, Path(data_dir), list(extra)
        self.env = dict(env or {})
        self.grpc, self.otlp_http, self.http = free_port(), free_port(), free_port()
        self.proc = None
        self.api_key, self.tls_context = api_key, tls_context

    def get(self, path, timeout=30):
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        request = urllib.request.Request(self.api(path), headers=headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.tls_context) as response:
            return response.status, response.read()

    def start(self):
        log = open(self.data_dir.with_suffix(".log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", str(self.data_dir),
             "--otlp-grpc-addr", f"127.0.0.1:{self.grpc}",
             "--otlp-http-addr", f"127.0.0.1:{self.otlp_http}",
             "--http-addr", f"127.0.0.1:{self.http}", *self.extra],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "SKEWER_LOG": "warn", **self.env})
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if self.get("/readyz", 1)[0] == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"skewer exited early; see {self.data_dir.with_suffix('.log')}")
            time.sleep(0.05)
        raise SystemExit("skewer not ready in 120 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path):
        scheme = "https" if self.tls_context else "http"
        return f"{scheme}://127.0.0.1:{self.http}{path}"


def metric(server, name):
    _, body = server.get("/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def loadgen(binary, server, signal_name, transport, seconds, extra=(), ids_out=None):
    summary = Path(tempfile.mktemp(suffix=".json"))
    args = [binary, "loadgen", "--signal", signal_name, "--transport", transport,
            "--otlp-grpc-addr", f"127.0.0.1:{server.grpc}",
            "--otlp-http-addr", f"127.0.0.1:{server.otlp_http}",
            "--duration", str(seconds), "--summary-json", str(summary), *extra]
    if ids_out:
        args += ["--trace-ids-out", str(ids_out)]
    started = time.time()
    cpu_before = cpu_seconds(server.proc.pid)
    gen = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds + 300)
    # The work behind an acknowledgement is not done until the records are in files: count
    # the server's CPU until it has flushed everything it buffered during the run.
    drain_started = time.time()
    while metric(server, f'skewer_buffered_records{{signal="{signal_name}"}}') > 0:
        if time.time() - drain_started > 300:
            raise RuntimeError(f"{signal_name} still buffered 300 s after the load ended")
        time.sleep(0.25)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    wall = time.time() - started
    if gen.returncode != 0 or not summary.exists():
        tail = gen.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"loadgen {signal_name}/{transport} failed ({gen.returncode}): {' | '.join(tail)}")
    result = json.loads(summary.read_text())
    summary.unlink()
    result["server_cpu_seconds"] = cpu
    result["wall_seconds"] = wall
    return result


def throughput(binary, work, signal_name, transport, seconds, runs, extra=(), generator=None):
    """Records acknowledged per server CPU-second: median and spread over fresh servers.
    `generator` is the binary whose `loadgen` drives the server (default: the server's)."""
    figures = []
    for run in range(runs):
        data = work / f"{signal_name}-{transport}-{run}"
        server = Server(binary, data).start()
        try:
            result = loadgen(generator or binary, server, signal_name, transport, seconds, extra)
            figures.append(result["records_acked"] / max(result["server_cpu_seconds"], 1e-9))
            # How long a flush (a log commit) held its buffer, on average, under this load.
            flushes = metric(server, f'skewer_flushes_total{{signal="{signal_name}"}}')
            flush_ms = 1000 * metric(server, f'skewer_flush_seconds_total{{signal="{signal_name}"}}') / max(flushes, 1)
            print(f"  {signal_name}/{transport} run {run + 1}: {figures[-1]:,.0f} records per server CPU-second "
                  f"({result['records_acked']:,} acked, {result['retryable_answers']} retryable answers, "
                  f"{result['server_cpu_seconds']:.1f} CPU-s; {flushes:.0f} flushes of {flush_ms:,.0f} ms on average)",
                  file=sys.stderr)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"  {signal_name}/{transport} run {run + 1} failed: {err}", file=sys.stderr)
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
    if not figures:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(figures), min(figures), max(figures)


def summarize(figures):
    figures = [x for x in figures if x == x]
    if not figures:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(figures), min(figures), max(figures)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] if values else float("nan")


def timed_queries(server, paths):
    latencies, misses = [], 0
    for path in paths:
        started = time.perf_counter()
        try:
            status, _ = http_get(server.api(path))
        except urllib.error.HTTPError as err:
            status = err.code
        latencies.append((time.perf_counter() - started) * 1000)
        misses += status != 200
    return latencies, misses


def drop_page_cache():
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(ROOT / "target/release/skewer"))
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes (CI)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--stored-spans", type=int, default=10_000_000,
                        help="spans stored before the trace-by-id latency test")
    parser.add_argument("--stored-logs", type=int, default=10_000_000,
                        help="log records stored before the correlation-id latency test")
    parser.add_argument("--spread-hours", type=int, default=60,
                        help="hourly partitions the stored spans are spread over (trace-by-id test)")
    parser.add_argument("--startup-files", type=int, default=10_000,
                        help="data files written before timing a restart (0 skips)")
    parser.add_argument("--steady-seconds", type=int, default=0,
                        help="seconds of steady load at 20k spans/s before counting files per hour "
                        "after compaction (the issue's figure uses 3600; 0 skips)")
    parser.add_argument("--compaction-ab", action="store_true",
                        help="measure ingest throughput with compaction busy against compaction off")
    parser.add_argument("--generator", help="the binary whose `loadgen` fills the store (default: --binary); "
                        "lets an older server be measured under the same load")
    parser.add_argument("--only-promql", action="store_true",
                        help="only the PromQL figures (remote write in, Prometheus API out)")
    parser.add_argument("--only-logql", action="store_true",
                        help="only the LogQL figures (OTLP logs in, Loki API out)")
    parser.add_argument("--logql-records", type=int, default=1_000_000,
                        help="log records spread over the last hour before timing LogQL queries")
    parser.add_argument("--only-object-store", action="store_true",
                        help="only the object-storage figures: span ingest with files local and in an S3 "
                             "bucket (moto's server), trace by id from the bucket")
    parser.add_argument("--only-security", action="store_true",
                        help="only the security figures: span ingest with no keys, with keys, with keys and TLS")
    parser.add_argument("--only-search-under-load", action="store_true",
                        help="log search latency while logs are ingested (A/B with --baseline; "
                             "--runs alternating runs of --seconds each)")
    parser.add_argument("--only-metric-bytes", action="store_true",
                        help="only bytes on disk per metric point, random and steady values, for --binary "
                             "and --baseline in the same run")
    parser.add_argument("--only-storage-v2", action="store_true",
                        help="only the start-time, compaction and spread trace-by-id figures")
    parser.add_argument("--json", help="write the figures as JSON here")
    parser.add_argument("--baseline", help="another skewer binary: its throughput is measured in the same run, "
                        "interleaved, and shown as a ratio")
    parser.add_argument("--only-throughput", action="store_true", help="skip storage, query and memory figures")
    parser.add_argument("--retries", type=int, default=100,
                        help="throughput loads resend an export refused as overloaded up to this many times, "
                             "100 ms apart, as OTLP exporters back off (0: send the next export at once, "
                             "the figures before 2026-12-06, which also counted the server reading and "
                             "discarding the refused bodies)")
    parser.add_argument("--skip-throughput", action="store_true", help="only storage, query and memory figures")
    parser.add_argument("--throughput-figures", help="comma-separated throughput figures to take (default all: "
                        + ", ".join(key for key, _, _ in THROUGHPUT) + ")")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.stored_spans, args.stored_logs = 1, 2, 20_000, 20_000
        args.spread_hours, args.startup_files = 3, 200
        # Short flush intervals, so waiting for the buffers to drain takes seconds, not 30 s.
        os.environ.setdefault("SKEWER_FLUSH_INTERVAL_SECONDS", "1")
        os.environ.setdefault("SKEWER_LOG_COMMIT_INTERVAL_SECONDS", "1")
    binary = args.binary
    if not Path(binary).exists():
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="skewer-bench-"))
    figures = {}
    try:
        run_suite(binary, work, args, figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(figures, args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


THROUGHPUT = [
    ("spans_grpc", "traces", "grpc"),
    ("spans_http_json", "traces", "http-json"),
    ("logs_http_json", "logs", "http-json"),
    ("logs_grpc", "logs", "grpc"),
    ("metrics_grpc", "metrics", "grpc"),
]


def run_promql(binary, work, args, f):
    data = work / "promql"
    server = Server(binary, data).start()
    try:
        f["promql"] = promql_figures(server, args, cpu_seconds, percentile, timed_queries, metric)
    finally:
        server.stop()


def run_logql(binary, work, args, f):
    generator = args.generator or binary
    if args.baseline:
        # The same load and queries against the baseline binary first.
        server = Server(args.baseline, work / "logql-baseline", env=QUIET_ENV).start()
        try:
            f["logql_baseline"] = logql_figures(server, args, loadgen, generator, percentile,
                                                timed_queries, work, dir_bytes, metric, cpu_seconds)
        finally:
            server.stop()
    server = Server(binary, work / "logql", env=QUIET_ENV).start()
    try:
        f["logql"] = logql_figures(server, args, loadgen, generator, percentile, timed_queries, work,
                                   dir_bytes, metric, cpu_seconds)
    finally:
        server.stop()


def promql_rows(f):
    if "promql" not in f:
        return []
    p = f["promql"]

    def q(x):
        failed = f", {x['failures']} failed" if x["failures"] else ""
        return f"{x['p99']:.1f} (p50 {x['p50']:.1f}; {x['queries']} queries{failed})"
    return [
        (f"remote write samples per server CPU-second ({p['samples_written']:,} samples)", "≥ 250k", "≥ 500k",
         f"{p['remote_write_per_cpu_second']:,.0f}"),
        ("`query_range` of one series over 24 h at 10 s (step 60 s), p99 ms", "≤ 20", "", q(p["range_24h"])),
        (f"`sum by (service) (rate(x[5m]))` over {p['counters']:,} series and 1 h (step 60 s), p99 ms", "≤ 100", "",
         q(p["sum_rate_1000"])),
        (f"`/api/v1/series` with a selector over {p['many_series']:,} series, p99 ms", "≤ 50", "", q(p["series_100k"])),
    ]


def run_suite(binary, work, args, f):
    if args.only_promql:
        run_promql(binary, work, args, f)
        return
    if args.only_logql:
        run_logql(binary, work, args, f)
        return
    if args.only_security:
        f["security"] = security_figures(binary, work, args, Server, loadgen)
        return
    if args.only_object_store:
        f["object_store"] = object_store_figures(binary, work, args, Server, loadgen, free_port)
        return
    if args.only_metric_bytes:
        f["metric_bytes"] = metric_bytes_figures(binary, args.baseline, work, args)
        return
    if args.only_search_under_load:
        f["search_under_load"] = search_under_load_figures(binary, args.baseline, work, args, Server,
                                                           loadgen, http_get, percentile)
        return
    n, secs = args.runs, args.seconds
    if args.startup_files:
        f["startup"] = startup_figures(binary, args.baseline, work, args)
    if args.steady_seconds:
        f["steady"] = steady_hour_figures(binary, work, args)
    if args.compaction_ab:
        f["compaction_ab"] = compaction_ab_figures(binary, work, args)
    if args.only_storage_v2:
        return
    print(f"machine: {os.cpu_count()} cores; {n} run(s) of {secs:.0f} s per throughput figure; "
          f"refused exports resent {args.retries} times, 100 ms apart", file=sys.stderr)
    retry_extra = ["--retries", str(args.retries)]
    for key, signal_name, transport in THROUGHPUT:
        if args.skip_throughput or (args.throughput_figures and key not in args.throughput_figures.split(",")):
            f[key] = (float("nan"),) * 3
            continue
        if args.baseline:
            # Interleave candidate and baseline runs so drift on the machine hits both alike.
            runs = {"candidate": [], "baseline": []}
            for _ in range(n):
                for label, path in (("candidate", binary), ("baseline", args.baseline)):
                    print(f" {label}:", file=sys.stderr)
                    # One generator for both servers, so only the servers differ.
                    runs[label].append(throughput(path, work, signal_name, transport, secs, 1,
                                                  retry_extra, generator=binary)[0])
            f[key] = tuple(summarize(runs["candidate"]))
            f["baseline_" + key] = tuple(summarize(runs["baseline"]))
        else:
            f[key] = throughput(binary, work, signal_name, transport, secs, n, retry_extra)
    if args.only_throughput:
        return
    run_promql(binary, work, args, f)
    run_logql(binary, work, args, f)

    # Storage, query latency, memory and freshness on one long-lived server. Its log days are
    # quiet (small segments merged) 30 s after their last record, and the suite waits for
    # that before it stops the loading server, so the queries and the bytes are of logs at rest.
    gen_binary = args.generator or binary
    data = work / "store"
    server = Server(binary, data, env=QUIET_ENV).start()
    try:
        time.sleep(1)
        f["rss_idle_mib"] = rss_mib(server.proc.pid)
        ids_file = work / "ids.txt"
        spans_per_second = 20_000
        sustained = min(secs, 30)
        rss_peak = [0.0]

        # Sustained open-loop load: RSS per 1k spans/s, and ack -> queryable with a marker trace.
        gen = subprocess.Popen([gen_binary, "loadgen", "--signal", "traces", "--transport", "grpc",
                                "--otlp-grpc-addr", f"127.0.0.1:{server.grpc}",
                                "--rate", str(spans_per_second), "--duration", str(sustained),
                                "--concurrency", "16", "--seed", "7"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        freshness = []
        deadline = time.time() + sustained + 60
        while gen.poll() is None and time.time() < deadline:
            rss_peak[0] = max(rss_peak[0], rss_mib(server.proc.pid))
            freshness.append(marker_freshness(server))
            time.sleep(0.5)
        gen.wait(60)
        f["rss_per_1k_spans_per_s_mib"] = (rss_peak[0] - f["rss_idle_mib"]) / (spans_per_second / 1000)
        f["ack_to_queryable_ms"] = (percentile(freshness, 0.5), max(freshness) if freshness else float("nan"))

        # Fill the store, then measure trace-by-id over everything stored.
        spans_before = metric(server, 'skewer_ingest_records_accepted_total{signal="traces"}')
        remaining = max(10_000, args.stored_spans - spans_before)
        if remaining:
            # Retries like a real exporter, so every id written was stored; a pool larger than a
            # flush keeps replayed content from flattering compression.
            loadgen(gen_binary, server, "traces", "grpc", 3600, ["--count", str(int(remaining)), "--seed", "11",
                                                               "--pool-size", "512", "--retries", "100",
                                                               "--spread-hours", str(args.spread_hours),
                                                               "--spread-seconds", "3600"],
                    ids_out=ids_file)
        correlation_file = work / "correlation_ids.txt"
        # The stored logs are a day of traffic arriving in time order (a backfill of 24 hours),
        # so a search of the last day finds a day of records, as it would in production.
        loadgen(gen_binary, server, "logs", "grpc", 3600, ["--count", str(args.stored_logs), "--seed", "12",
                                                       "--pool-size", "512", "--retries", "100",
                                                       "--backfill-hours", "24",
                                                       "--correlation-ids-out", str(correlation_file)])
        loadgen(gen_binary, server, "metrics", "grpc", min(secs, 10), ["--seed", "13", "--series", "1000",
                                                                  "--pool-size", "256", "--retries", "100"])
        stored_spans = metric(server, 'skewer_ingest_records_accepted_total{signal="traces"}')
        stored_logs = metric(server, 'skewer_ingest_records_accepted_total{signal="logs"}')
        stored_points = metric(server, 'skewer_ingest_records_accepted_total{signal="metrics"}')
        log_protobuf_bytes = metric(server, 'skewer_ingest_received_bytes_total{signal="logs"}')
        correlation_ids = [line.strip() for line in correlation_file.read_text().splitlines() if line.strip()]
        random.Random(6).shuffle(correlation_ids)
        f["compaction_settle_seconds"] = wait_for_compaction(server, "traces")
        f["log_merge_settle_seconds"] = wait_for_log_merges(server, first_within=45 if args.smoke else 120,
                                                            quiet_seconds=10 if args.smoke else 45)
    finally:
        server.stop()
    hours = files_per_hour(data, "traces")
    f["span_partitions"] = len(hours)
    f["span_files"] = sum(hours.values())

    f["stored_spans"], f["stored_logs"], f["stored_points"] = stored_spans, stored_logs, stored_points

    server = Server(binary, data).start()
    try:
        ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()] if ids_file.exists() else []
        random.Random(5).shuffle(ids)
        queries = 100 if args.smoke else 1000
        paths = [f"/api/traces/{i}" for i in ids[:queries]]
        f["page_cache_dropped"] = drop_page_cache()
        cold, cold_misses = timed_queries(server, paths)
        warm, warm_misses = timed_queries(server, paths)
        f["trace_by_id_ms"] = {"cold_p50": percentile(cold, 0.5), "cold_p99": percentile(cold, 0.99),
                               "warm_p50": percentile(warm, 0.5), "warm_p99": percentile(warm, 0.99),
                               "queries": len(paths), "misses": warm_misses + cold_misses}
        # What trace lookups hold in memory: the parsed footers cached (the trace-id filters
        # stay on disk, one 32-byte block read per file and lookup).
        f["footer_cache_bytes"] = metric(server, "skewer_footer_cache_bytes")
        sample = correlation_ids[:queries]
        timed_queries(server, [f"/api/logs?correlation_id={c}" for c in sample])
        logs_warm, log_misses = timed_queries(server, [f"/api/logs?correlation_id={c}" for c in sample])
        f["logs_by_correlation_ms"] = {"warm_p50": percentile(logs_warm, 0.5), "warm_p99": percentile(logs_warm, 0.99),
                                       "queries": len(sample), "misses": log_misses}
        f["logs_by_word_ms"] = word_search_figures(server, args)
        f["jaeger_ms"] = jaeger_query_figures(server, args)
        f["stitch_ms"] = stitch_figures(server, args)
    finally:
        server.stop()

    # Bytes at rest, after the query phase: by then the log index has merged its segments and
    # dropped the files the merges replaced (right after ingest both are still on disk).
    objects = data / "objects" / "tenants" / "default"
    f["bytes_per_span"] = dir_bytes(objects / "traces") / max(stored_spans, 1)
    f["bytes_per_point"] = dir_bytes(objects / "metrics") / max(stored_points, 1)
    f["log_bytes_ratio"] = dir_bytes(data / "logs") / max(log_protobuf_bytes, 1)

    if args.baseline:
        # The same searches by the baseline binary over the same stored data (after the bytes
        # at rest are measured: it may merge or checkpoint).
        server = Server(args.baseline, data).start()
        try:
            f["baseline_logs_by_word_ms"] = word_search_figures(server, args)
        finally:
            server.stop()



def word_search_figures(server, args):
    """Native search: one body word over the last 24 hours (the whole backfill of stored logs),
    the newest 100 hits (words of the generator's vocabulary, each in a few percent of the
    records)."""
    now_ns = time.time_ns()
    day = f"&start={now_ns - 86_400 * 10**9}&end={now_ns}&limit=100"
    words = ["timeout", "declined", "exhausted", "retrying", "upstream"]
    paths = [f"/api/logs?q={words[i % len(words)]}{day}" for i in range(20 if args.smoke else 100)]
    timed_queries(server, paths[:len(words)])
    latencies, misses = timed_queries(server, paths)
    # Records the words found: none means the server could not read the data (a binary older
    # than the data's format sets such partitions aside and answers as if they were empty).
    try:
        found = sum(json.loads(server.get(path)[1])["count"] for path in paths[:len(words)])
    except (urllib.error.URLError, ValueError, KeyError):
        found = None
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "queries": len(paths), "misses": misses, "found": found}


def baseline_word_search_text(f):
    """The baseline's word search beside the candidate's: its latencies only when every query
    was answered (a baseline older than the stored data's format fails them, and the time of a
    failure says nothing)."""
    base = f.get("baseline_logs_by_word_ms")
    if base is None:
        return ""
    if base["misses"]:
        return f"; baseline failed {base['misses']} of {base['queries']} (cannot read this data)"
    if base.get("found") == 0:
        return "; baseline found nothing (cannot read this data)"
    return f"; baseline {base['p99']:.1f} (p50 {base['p50']:.1f})"


def post_big_trace(server, spans=10_000):
    """Posts one trace of `spans` spans (a root and its children over two services, in
    exports of 1,000 spans) over OTLP/HTTP JSON; returns its id once it is flushed."""
    trace_id = "%032x" % random.getrandbits(128)
    now = time.time_ns() - 60 * 10**9
    for chunk in range(0, spans, 1000):
        items = []
        for i in range(chunk, min(chunk + 1000, spans)):
            item = {"traceId": trace_id, "spanId": "%016x" % (i + 1), "name": f"step {i % 50}",
                    "kind": 2 if i == 0 else 3, "startTimeUnixNano": str(now + i * 1000),
                    "endTimeUnixNano": str(now + i * 1000 + 500_000),
                    "attributes": [{"key": "step", "value": {"intValue": str(i)}}]}
            if i:
                item["parentSpanId"] = "%016x" % 1
            items.append(item)
        service = "big-frontend" if chunk == 0 else "big-worker"
        body = json.dumps({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": items}]}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{server.otlp_http}/v1/traces", data=body,
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()
    deadline = time.time() + 120
    while metric(server, 'skewer_buffered_records{signal="traces"}') > 0 and time.time() < deadline:
        time.sleep(0.25)
    return trace_id


def post_request(server, logs=50):
    """Posts one request across three services (frontend -> checkout -> payment, payment's
    clock 250 ms ahead) with `logs` log lines carrying its trace id or only its correlation id,
    over OTLP/HTTP JSON; returns (trace id, correlation id) once both are committed."""
    trace_id = "%032x" % random.getrandbits(128)
    correlation = "bench-req-%016x" % random.getrandbits(64)
    now = time.time_ns() - 60 * 10**9
    ms = 1_000_000
    chain = [("frontend", 0, 300, None, 2), ("frontend", 10, 290, 1, 3), ("checkout", 20, 280, 2, 2),
             ("checkout", 30, 270, 3, 3), ("payment", 290, 510, 4, 2)]

    def post(path, body):
        request = urllib.request.Request(f"http://127.0.0.1:{server.otlp_http}{path}",
                                         data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()

    def resource(service):
        return {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                               {"key": "host.name", "value": {"stringValue": service + "-host"}}]}
    for service in ("frontend", "checkout", "payment"):
        spans = [{"traceId": trace_id, "spanId": "%016x" % (i + 1), "name": f"{service} step {i}",
                  "kind": kind, "startTimeUnixNano": str(now + start * ms), "endTimeUnixNano": str(now + end * ms),
                  **({"parentSpanId": "%016x" % parent} if parent else {})}
                 for i, (owner, start, end, parent, kind) in enumerate(chain) if owner == service]
        post("/v1/traces", {"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"spans": spans}]}]})
        lines = [{"timeUnixNano": str(now + (i * 5 + (250 if service == "payment" else 0)) * ms),
                  "severityNumber": 9, "body": {"stringValue": f"{service} line {i}"},
                  "attributes": [{"key": "request.id", "value": {"stringValue": correlation}}],
                  **({"traceId": trace_id} if i % 2 == 0 else {})}
                 for i in range(logs // 3 + (1 if service != "payment" else 0))]
        post("/v1/logs", {"resourceLogs": [{"resource": resource(service), "scopeLogs": [{"logRecords": lines}]}]})
    deadline = time.time() + 120
    while (metric(server, 'skewer_buffered_records{signal="traces"}') > 0
           or metric(server, 'skewer_buffered_records{signal="logs"}') > 0) and time.time() < deadline:
        time.sleep(0.25)
    return trace_id, correlation


def stitch_figures(server, args):
    """`/api/stitch/{id}` for one three-service request with 50 log lines, by trace id and by
    correlation id, over everything stored."""
    trace_id, correlation = post_request(server)
    queries = 20 if args.smoke else 200
    figures = {}
    for name, path in [("by_trace_id", f"/api/stitch/{trace_id}"), ("by_correlation_id", f"/api/stitch/{correlation}")]:
        timed_queries(server, [path] * 3)
        latencies, misses = timed_queries(server, [path] * queries)
        figures[name] = {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                         "queries": len(latencies), "failures": misses}
    _, body = http_get(server.api(f"/api/stitch/{trace_id}"))
    answer = json.loads(body)
    figures["logs"] = len(answer["logs"])
    figures["services"] = len(answer["services"])
    figures["flagged"] = answer["skew"]["spans_flagged"]
    return figures


def jaeger_query_figures(server, args):
    """The Jaeger query API over everything stored: listings, searches in the last hour of the
    load (the stored spans span --spread-hours up to now), summaries and dependencies."""
    repeats = 5 if args.smoke else 50
    end_us = int(time.time() * 1e6)
    start_us = end_us - 3600 * 1_000_000
    services = json.loads(http_get(server.api("/api/services"))[1])["data"]
    service = services[0] if services else "frontend"
    rng = random.Random(8)
    iso = lambda us: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us / 1e6)) + "Z"
    window = f"start={start_us}&end={end_us}"
    v3_window = f"query.startTimeMin={iso(start_us)}&query.startTimeMax={iso(end_us)}"
    big_trace = post_big_trace(server)
    suites = {
        "services": ["/api/services"] * repeats,
        "operations": [f"/api/operations?service={service}"] * repeats,
        "search_service": [f"/api/traces?service={service}&{window}&limit=20"] * max(repeats // 5, 3),
        "search_service_tag": [f"/api/traces?service={service}&{window}&limit=20&tag=http.response.status_code:500"]
                              * max(repeats // 5, 3),
        "search_needle_tag": [f"/api/traces?service={service}&{window}&limit=20&tag=user.id:user-{rng.randrange(100_000)}"
                              for _ in range(max(repeats // 5, 3))],
        "summaries_20": [f"/api/v3/trace-summaries?query.serviceName={service}&{v3_window}&query.searchDepth=20"]
                        * max(repeats // 5, 3),
        "dependencies_24h": [f"/api/dependencies?endTs={end_us // 1000}&lookback=86400000"] * repeats,
        "trace_10k_spans": [f"/api/traces/{big_trace}"] * max(repeats // 5, 3),
        # The result list of the service whose trace has 10,000 spans: its summary, not its spans.
        "summaries_10k_spans": [f"/api/v3/trace-summaries?query.serviceName=big-frontend&{v3_window}"
                                "&query.searchDepth=20"] * max(repeats // 5, 3),
    }
    figures = {"service": service}
    for name, paths in suites.items():
        timed_queries(server, paths[:1])  # warm
        latencies, failures = timed_queries(server, paths)
        figures[name] = {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                         "queries": len(paths), "failures": failures}
    print(f"  jaeger queries: {figures}", file=sys.stderr)
    return figures


def files_per_hour(data, signal_name, tenant="default"):
    """Live files per hourly partition, from the table's newest manifest."""
    manifests = sorted((data / "objects" / "tenants" / tenant / signal_name / "_manifest").glob("*.json"))
    if not manifests:
        return {}
    counts = {}
    for entry in json.loads(manifests[-1].read_text())["files"]:
        counts[entry["partition_hour"]] = counts.get(entry["partition_hour"], 0) + 1
    return counts


def wait_for_compaction(server, signal_name, quiet_seconds=20, limit_seconds=1800):
    """Waits until compaction has nothing left to do (no merge for `quiet_seconds`)."""
    started = time.time()
    series = f'skewer_compaction_merges_total{{signal="{signal_name}"}}'
    last, last_change = metric(server, series), time.time()
    while time.time() - last_change < quiet_seconds and time.time() - started < limit_seconds:
        time.sleep(2)
        now = metric(server, series)
        if now != last:
            last, last_change = now, time.time()
    return time.time() - started


def wait_for_log_merges(server, first_within=120, limit_seconds=1800, quiet_seconds=45):
    """Waits until the quiet log partitions are merged: a merge counted after the call (none
    within `first_within` s: nothing to merge, or a server that does not merge them; days that
    went quiet during the load may have been merged before), then neither another one nor a
    change of the logs directory for `quiet_seconds` (longer than a partition takes to go
    quiet, 30 s, and the 5 s between checks; a merge counts when it ends, and the directory
    grows while it runs)."""
    started = time.time()
    series = 'skewer_compaction_merges_total{signal="logs"}'
    logs = server.data_dir / "logs"
    before = metric(server, series)
    while metric(server, series) <= before and time.time() - started < first_within:
        time.sleep(1)
    last, last_change = (metric(server, series), dir_bytes(logs)), time.time()
    while time.time() - last_change < quiet_seconds and time.time() - started < limit_seconds:
        time.sleep(2)
        now = (metric(server, series), dir_bytes(logs))
        if now != last:
            last, last_change = now, time.time()
    return time.time() - started


def time_to_ready(binary, data, extra=()):
    """Seconds from spawning `serve` on `data` to /readyz answering 200 (polled every 10 ms)."""
    server = Server(binary, data, extra)
    log = open(data.with_suffix(".log"), "ab")
    started = time.perf_counter()
    server.proc = subprocess.Popen(
        [binary, "serve", "--data-dir", str(data), "--otlp-grpc-addr", f"127.0.0.1:{server.grpc}",
         "--otlp-http-addr", f"127.0.0.1:{server.otlp_http}", "--http-addr", f"127.0.0.1:{server.http}", *extra],
        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "SKEWER_LOG": "warn"})
    try:
        while time.perf_counter() - started < 300:
            try:
                if http_get(server.api("/readyz"), 1)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if server.proc.poll() is not None:
                return float("nan")
            time.sleep(0.01)
        return float("nan")
    finally:
        server.stop()


def count_parquet(path):
    return sum(1 for _ in Path(path).rglob("*.parquet"))


def startup_figures(binary, baseline, work, args):
    """Start time with many data files: manifests read at start, not every footer."""
    data = work / "startup"
    keep = ["--compaction-enabled", "false", "--flush-interval-seconds", "1", "--retention-traces", "0"]
    server = Server(binary, data, keep).start()
    hours = 30 if args.smoke else 200
    gen = subprocess.Popen([binary, "loadgen", "--signal", "traces", "--transport", "grpc",
                            "--otlp-grpc-addr", f"127.0.0.1:{server.grpc}", "--rate", "20000",
                            "--batch-size", "50", "--pool-size", str(hours * 4), "--spread-hours", str(hours),
                            "--duration", "900", "--seed", "21", "--retries", "100"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while gen.poll() is None and metric(server, 'skewer_storage_files{signal="traces"}') < args.startup_files:
            time.sleep(0.5)
    finally:
        gen.terminate()
        gen.wait(60)
    while metric(server, 'skewer_buffered_records{signal="traces"}') > 0:
        time.sleep(0.25)
    server.stop()
    files = count_parquet(data / "objects")
    runs = 1 if args.smoke else 3
    candidate = [time_to_ready(binary, data, keep) for _ in range(runs)]
    result = {"files": files, "seconds": statistics.median(candidate)}
    if baseline:
        result["baseline_seconds"] = statistics.median([time_to_ready(baseline, data) for _ in range(runs)])
        # A restart after the baseline ran: the candidate again, so the order does not favour it.
        result["seconds_after_baseline"] = time_to_ready(binary, data, keep)
    print(f"  start with {files:,} data files: {result}", file=sys.stderr)
    shutil.rmtree(data, ignore_errors=True)
    return result


def steady_hour_figures(binary, work, args):
    """An hour (or --steady-seconds) of steady load with 30 s flushes, then files per hour."""
    data = work / "steady"
    config = work / "steady.toml"
    config.write_text("[compaction]\nsettle_minutes = 1\ninterval_seconds = 10\n")
    server = Server(binary, data, ["--config", str(config)]).start()
    try:
        loadgen(binary, server, "traces", "grpc", args.steady_seconds + 60,
                ["--rate", "20000", "--concurrency", "16", "--seed", "31"])
        # Let the last hour end and settle, then let compaction finish.
        settle_until = (int(time.time() // 3600) + 1) * 3600 + 90
        if not args.smoke:
            while time.time() < settle_until:
                time.sleep(5)
        waited = wait_for_compaction(server, "traces", quiet_seconds=30)
        counts = files_per_hour(data, "traces")
        merges = metric(server, 'skewer_compaction_merges_total{signal="traces"}')
        spans = metric(server, 'skewer_ingest_records_accepted_total{signal="traces"}')
    finally:
        server.stop()
    result = {"spans": spans, "hours": len(counts), "max_files_per_hour": max(counts.values(), default=0),
              "files_per_hour": counts, "merges": merges, "compaction_wait_seconds": waited}
    print(f"  steady load: {result}", file=sys.stderr)
    shutil.rmtree(data, ignore_errors=True)
    return result


def compaction_ab_figures(binary, work, args):
    """Closed-loop ingest with a compaction backlog being merged, against compaction off."""
    backlog = 200_000 if args.smoke else 4_000_000
    seconds = 3 if args.smoke else 20
    results = {}
    for mode in ("off", "on", "off2", "on2"):
        data = work / f"compaction-{mode}"
        prefill = Server(binary, data, ["--compaction-enabled", "false", "--flush-interval-seconds", "1"]).start()
        try:
            loadgen(binary, prefill, "traces", "grpc", 3600,
                    ["--count", str(backlog), "--batch-size", "64", "--spread-hours", "8", "--seed", "41",
                     "--retries", "100"])
        finally:
            prefill.stop()
        enabled = "true" if mode.startswith("on") else "false"
        server = Server(binary, data, ["--compaction-enabled", enabled, "--compaction-interval-seconds", "1"]).start()
        try:
            result = loadgen(binary, server, "traces", "grpc", seconds, ["--seed", "42"])
            merges = metric(server, 'skewer_compaction_merges_total{signal="traces"}')
        finally:
            server.stop()
        results.setdefault(mode.rstrip("2"), []).append({
            "spans_per_second": result["records_acked"] / result["wall_seconds"],
            "spans_per_cpu_second": result["records_acked"] / max(result["server_cpu_seconds"], 1e-9),
            "merges_during_run": merges})
        shutil.rmtree(data, ignore_errors=True)
    summary = {mode: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for mode, runs in results.items()}
    print(f"  compaction A/B: {summary}", file=sys.stderr)
    return summary

def marker_freshness(server):
    """Posts a one-span trace and polls until it can be read back; milliseconds."""
    trace_id = "%032x" % random.getrandbits(128)
    body = json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "marker"}}]},
                       "scopeSpans": [{"spans": [{"traceId": trace_id, "spanId": "%016x" % random.getrandbits(64),
                                                  "name": "marker", "startTimeUnixNano": str(time.time_ns()),
                                                  "endTimeUnixNano": str(time.time_ns())}]}]}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.otlp_http}/v1/traces", data=body,
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    acked = time.perf_counter()
    deadline = acked + 30
    while time.perf_counter() < deadline:
        try:
            if http_get(server.api(f"/api/traces/{trace_id}"))[0] == 200:
                return (time.perf_counter() - acked) * 1000
        except urllib.error.HTTPError:
            pass
        time.sleep(0.01)
    return float("inf")


def storage_v2_rows(f):
    """Rows of the storage v2 figures that were taken."""
    rows = []
    if "startup" in f:
        st = f["startup"]
        text = f"{st['seconds']:.2f} s"
        if "baseline_seconds" in st:
            text += f" (baseline {st['baseline_seconds']:.2f} s; again after it {st['seconds_after_baseline']:.2f} s)"
        rows.append((f"start to ready with {st['files']:,} data files", "≤ 1 s", "", text))
    if "steady" in f:
        sd = f["steady"]
        rows.append((f"live files per tenant, signal and hour after {sd['spans']:,.0f} spans of steady load "
                     f"(20k spans/s, 30 s flushes) and compaction ({sd['hours']} hours, {sd['merges']:.0f} merges)",
                     "≤ 2", "", f"{sd['max_files_per_hour']}"))
    if "compaction_ab" in f:
        ab = f["compaction_ab"]
        on, off = ab["on"], ab["off"]
        rows.append(("ingest spans/s (closed loop, wall) with a compaction backlog being merged / compaction off",
                     "≥ 0.9×", "",
                     f"{on['spans_per_second']:,.0f} / {off['spans_per_second']:,.0f} (×{on['spans_per_second'] / off['spans_per_second']:.2f}; "
                     f"per CPU-s {on['spans_per_cpu_second']:,.0f} / {off['spans_per_cpu_second']:,.0f}; "
                     f"{on['merges_during_run']:.0f} merges during the run)"))
    if "span_partitions" in f and "trace_by_id_ms" in f:
        t = f["trace_by_id_ms"]
        per_million = f["footer_cache_bytes"] / max(f["stored_spans"] / 1e6, 1e-9) / 1024
        rows.append((f"trace by id over {f['stored_spans']:,.0f} spans in {f['span_partitions']} hourly partitions "
                     f"({f['span_files']} files), p99 warm / cold ms; memory held for lookups",
                     "≤ 20 / 100", "",
                     f"{t['warm_p99']:.1f} / {t['cold_p99']:.1f}; footers {f['footer_cache_bytes'] / 2**20:.1f} MiB "
                     f"({per_million:.0f} KiB per million spans), trace-id filters on disk"))
    return rows


def metric_bytes_figures(binary, baseline, work, args):
    """Bytes on disk per metric point after the suite's metric load (1,000 series, 10 s,
    seed 13), with random and with steady values, for each binary on a fresh data directory."""
    figures = {}
    binaries = [("binary", binary)] + ([("baseline", baseline)] if baseline else [])
    for label, path in binaries:
        for values in ("random", "steady"):
            data = work / f"metric-bytes-{label}-{values}"
            server = Server(path, data).start()
            try:
                loadgen(path, server, "metrics", "grpc", min(args.seconds, 10),
                        ["--seed", "13", "--series", "1000", "--pool-size", "256", "--retries", "100",
                         "--metric-values", values])
                points = metric(server, 'skewer_ingest_records_accepted_total{signal="metrics"}')
            finally:
                server.stop()
            stored = dir_bytes(data / "objects" / "tenants" / "default" / "metrics")
            figures[f"{label}_{values}"] = stored / max(points, 1)
            print(f"  {label} {values}: {stored:,} bytes / {points:,.0f} points = "
                  f"{figures[f'{label}_{values}']:.2f}", file=sys.stderr)
    return figures


def metric_bytes_rows(f):
    m = f["metric_bytes"]
    rows = []
    for values in ("random", "steady"):
        row = [f"bytes on disk per metric point, {values} values", "≤ 1.3", f"{m[f'binary_{values}']:.2f}"]
        if f"baseline_{values}" in m:
            row.append(f"{m[f'baseline_{values}']:.2f} (×{m[f'binary_{values}'] / m[f'baseline_{values}']:.2f})")
        rows.append(row)
    return rows


def print_table(f, args):
    if args.only_metric_bytes:
        print("| measure | bar | measured | baseline |")
        print("|---|---|---|---|")
        for row in metric_bytes_rows(f):
            print("| " + " | ".join(row + [""] * (4 - len(row))) + " |")
        return
    three_columns = ((args.only_logql, logql_rows), (args.only_security, security_rows),
                     (args.only_object_store, object_store_rows))
    if args.only_search_under_load:
        print("| measure | measured |")
        print("|---|---|")
        for row in search_under_load_rows(f):
            print(f"| {row[0]} | {row[3]} |")
        return
    for only, rows in three_columns:
        if only:
            print("| measure | bar | measured |")
            print("|---|---|---|")
            for row in rows(f):
                print("| " + " | ".join(row) + " |")
            return
    if args.only_promql:
        print("| measure | first bar | moonshot | measured |")
        print("|---|---|---|---|")
        for row in promql_rows(f):
            print("| " + " | ".join(row) + " |")
        return
    if args.only_storage_v2:
        print("| measure | bar | | measured |")
        print("|---|---|---|---|")
        for row in storage_v2_rows(f):
            print("| " + " | ".join(row) + " |")
        return

    def rate(key):
        median, low, high = f[key]
        text = f"{median:,.0f} ({low:,.0f}–{high:,.0f})"
        if "baseline_" + key in f:
            base = f["baseline_" + key][0]
            text += f"; baseline {base:,.0f}, ×{median / base:.2f}"
        return text
    if args.only_throughput:
        print("| measure | first bar | moonshot | measured |")
        print("|---|---|---|---|")
        bars = {"spans_grpc": ("≥ 60k", "≥ 100k"), "spans_http_json": ("≥ 28k", "≥ 56k"),
                "logs_http_json": ("≥ 27k", "≥ 54k"), "logs_grpc": ("≥ 20k", "≥ 35k"),
                "metrics_grpc": ("≥ 250k", "≥ 500k")}
        for key, signal_name, transport in THROUGHPUT:
            print(f"| {signal_name} per server CPU-second, {transport} | {bars[key][0]} | {bars[key][1]} | {rate(key)} |")
        return
    t = f["trace_by_id_ms"]
    l = f["logs_by_correlation_ms"]
    rows = [
        ("spans per server CPU-second, OTLP/gRPC, durable", "≥ 60k", "≥ 100k", rate("spans_grpc")),
        ("spans per server CPU-second, OTLP/HTTP JSON, durable", "≥ 28k", "≥ 56k", rate("spans_http_json")),
        ("log records per server CPU-second, OTLP/HTTP JSON, full text + correlation id indexed", "≥ 27k", "≥ 54k", rate("logs_http_json")),
        ("log records per server CPU-second, OTLP/gRPC, same indexes", "≥ 20k", "≥ 35k", rate("logs_grpc")),
        ("metric data points per server CPU-second, OTLP/gRPC", "≥ 250k", "≥ 500k", rate("metrics_grpc")),
        (f"bytes on disk per span after flush, trace-id index included ({f['stored_spans']:,.0f} spans)", "≤ 50", "≤ 40", f"{f['bytes_per_span']:.1f}"),
        (f"bytes on disk per metric point ({f['stored_points']:,.0f} points)", "≤ 1.3", "≤ 0.8", f"{f['bytes_per_point']:.2f}"),
        (f"stored log bytes / OTLP protobuf bytes ({f['stored_logs']:,.0f} records)", "≤ 0.4", "≤ 0.25", f"{f['log_bytes_ratio']:.2f}"),
        (f"trace by id over {f['stored_spans']:,.0f} spans, p99 warm / cold ms ({t['queries']} ids, {t['misses']} misses; cache dropped: {f['page_cache_dropped']})",
         "≤ 50 / 250", "≤ 20 / 150", f"{t['warm_p99']:.1f} / {t['cold_p99']:.1f} (p50 {t['warm_p50']:.1f} / {t['cold_p50']:.1f})"),
        (f"logs by correlation id over {f['stored_logs']:,.0f} records, p99 warm ms ({l['queries']} ids, {l['misses']} misses)",
         "≤ 30", "≤ 10", f"{l['warm_p99']:.1f} (p50 {l['warm_p50']:.1f})"),
        (f"`/api/logs?q=<word>`, newest 100 over 24 h of {f['stored_logs']:,.0f} records, p99 ms "
         f"({f['logs_by_word_ms']['queries']} queries, {f['logs_by_word_ms']['misses']} failed)",
         "≤ 100", "", f"{f['logs_by_word_ms']['p99']:.1f} (p50 {f['logs_by_word_ms']['p50']:.1f})"
         + baseline_word_search_text(f)),
        ("RSS idle MiB; RSS MiB per 1k spans/s sustained (20k spans/s)", "≤ 100; ≤ 10", "≤ 60; ≤ 5",
         f"{f['rss_idle_mib']:.0f}; {f['rss_per_1k_spans_per_s_mib']:.1f}"),
        ("ack → queryable, marker trace, ms (median / max)", "≤ 10 s", "≤ 2 s",
         f"{f['ack_to_queryable_ms'][0]:.1f} / {f['ack_to_queryable_ms'][1]:.1f}"),
    ]
    if "jaeger_ms" in f:
        j = f["jaeger_ms"]
        def q(name):
            x = j[name]
            failed = f", {x['failures']} failed" if x["failures"] else ""
            return f"{x['p99']:.1f} (p50 {x['p50']:.1f}; {x['queries']} queries{failed})"
        spans = f"{f['stored_spans']:,.0f} spans"
        rows += [
            (f"Jaeger `services`, p99 ms ({spans})", "≤ 5", "", q("services")),
            (f"Jaeger `operations` of {j['service']}, p99 ms", "≤ 5", "", q("operations")),
            (f"search {j['service']}, last hour, 20 traces, p99 ms", "≤ 200", "≤ 50", q("search_service")),
            (f"search {j['service']} + tag http.response.status_code:500, last hour, p99 ms", "≤ 200", "≤ 50",
             q("search_service_tag")),
            (f"search {j['service']} + tag user.id (one user's traces), last hour, p99 ms", "≤ 200", "≤ 50",
             q("search_needle_tag")),
            ("api_v3 trace summaries, 20 results, p99 ms", "≤ 50", "", q("summaries_20")),
            ("dependencies over 24 h, p99 ms", "≤ 50", "", q("dependencies_24h")),
            ("one trace of 10,000 spans by id (Jaeger JSON), p99 ms", "report", "", q("trace_10k_spans")),
            ("api_v3 trace summaries listing that 10,000-span trace, p99 ms", "report", "", q("summaries_10k_spans")),
        ]
    if "stitch_ms" in f:
        st = f["stitch_ms"]
        def sq(x):
            failed = f", {x['failures']} failed" if x["failures"] else ""
            return f"{x['p99']:.1f} (p50 {x['p50']:.1f}; {x['queries']} queries{failed})"
        over = f"{f['stored_spans']:,.0f} spans and {f['stored_logs']:,.0f} log records"
        rows += [
            (f"`/api/stitch/{{trace id}}`, 3 services, {st['logs']} log lines, {st['flagged']} span flagged, over {over}, p99 ms",
             "≤ 50", "", sq(st["by_trace_id"])),
            (f"`/api/stitch/{{correlation id}}`, the same request, p99 ms", "≤ 50", "", sq(st["by_correlation_id"])),
        ]
    rows += storage_v2_rows(f)
    rows += promql_rows(f)
    rows += [(measure, bar, "", value) for measure, bar, value in logql_rows(f)]
    print("| measure | first bar | moonshot | measured |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    mode = "smoke" if args.smoke else "full"
    print(f"\n{mode} run: throughput is the median of {args.runs} run(s) of {args.seconds:.0f} s with the range in brackets; the generator shares the {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
