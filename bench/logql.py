"""LogQL figures of the benchmark suite: an hour of log records (the load generator's, every
record with a fresh request id, spread evenly over the last hour) sent over OTLP/gRPC, then
the Loki API timed:

- `sum by (service_name) (count_over_time({service_name=~".+"}[1m]))` over the hour (step 60 s);
- the newest 100 lines of one service (Grafana's logs panel);
- the newest 100 lines of every service holding a word (a line filter);
- the newest 100 lines with a given trace id (`| trace_id="…"`, answered by the index);
- `labels` and `label/service_name/values` over the hour.
"""

import json
import time
import urllib.request
from urllib.parse import quote


def load_hour(server, args, loadgen_fn, binary, work):
    """Sends an hour of log records over OTLP/gRPC; returns the load generator's summary (with
    the server CPU it took until everything was committed) and the file of trace ids."""
    records = 20_000 if args.smoke else args.logql_records
    ids_file = work / f"logql_trace_ids_{server.http}.txt"
    result = loadgen_fn(binary, server, "logs", "grpc", 3600,
                        ["--count", str(records), "--seed", "21", "--pool-size", "512", "--retries", "100",
                         "--spread-seconds", "3600"], ids_out=ids_file)
    return result, ids_file


# What the servers of the LogQL hour run with: a partition is quiet (its writer closed, its
# small segments merged) after 30 s without records instead of 300, checked every 5 s, so
# the suite need not wait five minutes for the bytes at rest, and the index settles (tantivy's
# own merges end) before. Older binaries ignore the first.
QUIET_ENV = {"SKEWER_LOG_WRITER_IDLE_SECONDS": "30", "SKEWER_RETENTION_CHECK_INTERVAL_SECONDS": "5"}


def settled_size(path, dir_bytes, seconds=5, limit=120):
    """The size of `path` once it has not changed for `seconds` (at most `limit` s)."""
    last, stable_since, deadline = -1, time.time(), time.time() + limit
    while time.time() < deadline:
        size = dir_bytes(path)
        if size != last:
            last, stable_since = size, time.time()
        elif time.time() - stable_since >= seconds:
            break
        time.sleep(0.5)
    return last


def storage_figures(server, result, dir_bytes, metric, cpu_seconds):
    """Records per server CPU-second of the load, and stored bytes over OTLP protobuf bytes
    once the index has settled (merges done: its size unchanged for 5 s, at most 120 s), then
    at rest: once the quiet partition's segments have been merged (a server that does not
    merge quiet partitions reports none after 45 s), with the server CPU that merge took."""
    logs = server.data_dir / "logs"
    merges = 'skewer_compaction_merges_total{signal="logs"}'
    settled = settled_size(logs, dir_bytes)
    cpu_before = cpu_seconds(server.proc.pid)
    if metric(server, merges):
        # The quiet merge came before the index held still: that size is not the settled one.
        settled = None
    received = metric(server, 'skewer_ingest_received_bytes_total{signal="logs"}')
    deadline = time.time() + 90
    while time.time() < deadline and not metric(server, merges):
        time.sleep(0.5)
    merged = None
    if metric(server, merges):
        merged = {"bytes_ratio": settled_size(logs, dir_bytes) / max(received, 1),
                  "cpu_seconds": cpu_seconds(server.proc.pid) - cpu_before}
    return {
        "records_acked": result["records_acked"],
        "records_per_cpu_second": result["records_acked"] / max(result["server_cpu_seconds"], 1e-9),
        "bytes_ratio": settled / max(received, 1) if settled is not None else None,
        "at_rest": merged,
    }


def logql_figures(server, args, loadgen_fn, binary, percentile, timed_queries, work, dir_bytes, metric,
                  cpu_seconds):
    """The hour's load, its storage figures once the index has settled and at rest, then the
    queries (on the index at rest, so merges still running after the load do not time them)."""
    result, ids_file = load_hour(server, args, loadgen_fn, binary, work)
    storage = storage_figures(server, result, dir_bytes, metric, cpu_seconds)
    records = result["records_acked"]
    end = time.time()
    start = end - 3600
    queries = 10 if args.smoke else 50
    trace_ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()] \
        if ids_file.exists() else []

    def get(path):
        with urllib.request.urlopen(server.api(path), timeout=120) as response:
            return json.loads(response.read())

    def timed(paths):
        timed_queries(server, paths[:3])
        latencies, misses = timed_queries(server, paths)
        return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                "queries": len(latencies), "failures": misses}

    window = f"&start={start:.3f}&end={end:.3f}"
    services = get(f"/loki/api/v1/label/service_name/values?{window[1:]}")["data"]
    service = services[0] if services else "unknown_service"
    by_service_text = 'sum by (service_name) (count_over_time({service_name=~".+"}[1m]))'
    counted = get(f"/loki/api/v1/query_range?query={quote(by_service_text)}{window}&step=60")
    counted_lines = sum(float(v[1]) for s in counted["data"]["result"] for v in s["values"])
    def range_query(query, extra=""):
        return f"/loki/api/v1/query_range?query={quote(query)}{window}{extra}"

    of_service = '{service_name="%s"}' % service
    with_word = '{service_name=~".+"} |= "timeout"'
    return {
        "records": records,
        "services": len(services),
        # Windows of a minute every minute: each line counted once if the store holds them all.
        "lines_counted": counted_lines,
        "count_by_service_1h": timed([range_query(by_service_text, "&step=60")] * queries),
        "newest_100_of_service": timed([range_query(of_service, "&limit=100")] * queries),
        "newest_100_with_word": timed([range_query(with_word, "&limit=100")] * queries),
        "by_trace_id": timed([range_query('{service_name=~".+"} | trace_id="%s"' % t) for t in trace_ids[:queries]])
        if trace_ids else None,
        "labels": timed([f"/loki/api/v1/labels?{window[1:]}"] * queries),
        "service_values": timed([f"/loki/api/v1/label/service_name/values?{window[1:]}"] * queries),
        "storage": storage,
    }


def logql_rows(f):
    if "logql" not in f:
        return []
    p = f["logql"]
    base = f.get("logql_baseline")

    def q(x, key=None):
        if x is None:
            return "not measured"
        failed = f", {x['failures']} failed" if x["failures"] else ""
        text = f"{x['p99']:.1f} (p50 {x['p50']:.1f}; {x['queries']} queries{failed})"
        b = base.get(key) if base and key else None
        if b:
            b_failed = f", {b['failures']} failed" if b["failures"] else ""
            text += f"; baseline {b['p99']:.1f} (p50 {b['p50']:.1f}{b_failed})"
        return text
    n = f"{p['records']:,}"
    return [
        (f"`sum by (service_name) (count_over_time(…[1m]))` over 1 h of {n} records (step 60 s), p99 ms",
         "≤ 500", q(p["count_by_service_1h"], "count_by_service_1h")),
        (f"newest 100 lines of one service over 1 h of {n} records, p99 ms", "", q(p["newest_100_of_service"], "newest_100_of_service")),
        (f"newest 100 lines with `|= \"timeout\"` over 1 h of {n} records, p99 ms", "",
         q(p["newest_100_with_word"], "newest_100_with_word")),
        (f"lines of one trace id (`| trace_id=\"…\"`) over 1 h of {n} records, p99 ms", "", q(p["by_trace_id"], "by_trace_id")),
        ("`/loki/api/v1/labels` over 1 h, p99 ms", "", q(p["labels"], "labels")),
        ("`/loki/api/v1/label/service_name/values` over 1 h, p99 ms", "", q(p["service_values"], "service_values")),
        (f"lines counted by the range query (of {n} acknowledged)", "all", f"{p['lines_counted']:,.0f}"),
    ] + storage_rows(f)


def storage_rows(f):
    p = f["logql"]["storage"]
    base = f.get("logql_baseline", {}).get("storage")

    def versus(key, fmt):
        if p[key] is None:
            return "n/a (merged before it settled)"
        text = fmt.format(p[key])
        if base and base[key] is not None:
            text += f"; baseline {fmt.format(base[key])}, ×{p[key] / base[key]:.2f}"
        return text
    return [
        ("log records per server CPU-second, OTLP/gRPC, until committed (this load)", "≥ 35k",
         versus("records_per_cpu_second", "{:,.0f}")),
        ("stored log bytes / OTLP protobuf bytes, index settled", "≤ 0.4", versus("bytes_ratio", "{:.3f}")),
        ("stored log bytes / OTLP protobuf bytes at rest (the quiet hour's small segments merged)",
         "≤ 0.4", at_rest(p, base)),
    ]


def at_rest(p, base):
    """The bytes at rest and the CPU their merge took, against the baseline's."""
    def text(s):
        rest = s.get("at_rest")
        if not rest:
            return "not merged"
        return f"{rest['bytes_ratio']:.3f} (merge {rest['cpu_seconds']:.1f} CPU-s)"
    return text(p) + (f"; baseline {text(base)}" if base else "")
