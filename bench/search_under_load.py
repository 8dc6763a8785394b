"""Log search latency while logs are being ingested.

A closed-loop log load (`loadgen --signal logs --transport grpc`, backing off on refusals as
OTLP exporters do) runs against a fresh server; meanwhile one client asks
`GET /api/logs?q=payment&limit=100` (the newest 100 records holding a word) back to back. The
figures are that search's p50, p99 and worst latency over the load, with the records the
server acknowledged meanwhile. With a baseline binary the same is measured on it, the two runs
alternating, both driven by the candidate's load generator.
"""

import threading
import time
import urllib.error

SEARCH_PATH = "/api/logs?q=payment&limit=100"


def one_run(binary, generator, work, label, seconds, server_class, loadgen_fn, http_get):
    server = server_class(binary, work / f"search-under-load-{label}").start()
    latencies, failures = [], [0]
    stop = threading.Event()

    def search():
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status, _ = http_get(server.api(SEARCH_PATH), timeout=60)
            except (urllib.error.URLError, OSError):
                status = None
            latencies.append((time.perf_counter() - started) * 1000)
            failures[0] += status != 200

    searcher = threading.Thread(target=search, daemon=True)
    try:
        searcher.start()
        result = loadgen_fn(generator, server, "logs", "grpc", seconds, ["--retries", "100"])
    finally:
        stop.set()
        searcher.join(120)
        server.stop()
    return latencies, failures[0], result["records_acked"]


def search_under_load_figures(binary, baseline, work, args, server_class, loadgen_fn, http_get,
                              percentile):
    """{label: {p50, p99, max, searches, failures, records_acked}} for the candidate and the
    baseline (if any), over `args.runs` alternating runs of `args.seconds` each."""
    seconds = 3 if args.smoke else args.seconds
    runs = 1 if args.smoke else args.runs
    binaries = [("candidate", binary)] + ([("baseline", baseline)] if baseline else [])
    gathered = {label: ([], 0, 0) for label, _ in binaries}
    for run in range(runs):
        for label, path in binaries:
            latencies, failed, acked = one_run(path, binary, work, f"{label}-{run}", seconds,
                                               server_class, loadgen_fn, http_get)
            before = gathered[label]
            gathered[label] = (before[0] + latencies, before[1] + failed, before[2] + acked)
    return {
        label: {
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies, default=float("nan")),
            "searches": len(latencies),
            "failures": failed,
            "records_acked": acked,
        }
        for label, (latencies, failed, acked) in gathered.items()
    }


def search_under_load_rows(f):
    if "search_under_load" not in f:
        return []
    rows = []
    for label, x in f["search_under_load"].items():
        failed = f", {x['failures']} failed" if x["failures"] else ""
        rows.append((f"log search (`q=payment`, newest 100) during log ingest, {label}: p99 ms "
                     f"({x['searches']} searches, {x['records_acked']:,} records acked{failed})",
                     "", "", f"{x['p99']:.0f} (p50 {x['p50']:.0f}, max {x['max']:.0f})"))
    return rows
