"""PromQL figures of the benchmark suite: series written with Prometheus remote write (the
protobuf and snappy framing done here, standard library only), then the Prometheus API timed.

- one gauge over 24 h at 10 s, read back with `query_range` (step 60 s);
- 1,000 counters over 1 h at 10 s in 20 services, `sum by (service) (rate(x[5m]))` over the
  hour (step 60 s);
- 100,000 series of one metric (one sample each), `/api/v1/series` with a selector;
- samples written per server CPU-second over remote write.
"""

import struct
import time
import urllib.request
from urllib.parse import quote

STEP_MS = 10_000


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire_type, payload):
    return varint(number << 3 | wire_type) + payload


def length_delimited(number, data):
    return field(number, 2, varint(len(data)) + data)


def time_series(labels, samples):
    """A `prometheus.TimeSeries`: labels sorted by name, samples as (ms, value)."""
    out = bytearray()
    for name, value in sorted(labels.items()):
        out += length_delimited(1, length_delimited(1, name.encode()) + length_delimited(2, value.encode()))
    for timestamp, value in samples:
        sample = field(1, 1, struct.pack("<d", value)) + field(2, 0, varint(timestamp & (2**64 - 1)))
        out += length_delimited(2, sample)
    return bytes(out)


def snappy_literal(data):
    """Snappy block format holding `data` as literals only (valid, uncompressed)."""
    out = bytearray(varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def remote_write(url, series):
    """POSTs `series` ([(labels, samples)]) as one remote write request."""
    body = b"".join(length_delimited(1, time_series(labels, samples)) for labels, samples in series)
    request = urllib.request.Request(url, data=snappy_literal(body), method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    for attempt in range(100):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if response.status == 204:
                    return
        except urllib.error.HTTPError as err:
            if err.code not in (429, 503):
                raise
        time.sleep(0.2 * (attempt + 1))
    raise SystemExit("remote write kept being refused")


def write_data(server, now_ms, scale, cpu_seconds):
    """Writes the three data sets; returns (samples written, server CPU seconds spent)."""
    url = f"http://127.0.0.1:{server.otlp_http}/api/v1/write"
    end = now_ms - now_ms % STEP_MS
    written = 0
    cpu_before = cpu_seconds(server.proc.pid)
    day = [(end - i * STEP_MS, 50.0 + (i * 7919 % 100) / 10) for i in range(8640 // scale, -1, -1)]
    remote_write(url, [({"__name__": "bench_temperature_celsius", "room": "lab"}, day)])
    written += len(day)
    hour = range(360 // scale, -1, -1)
    counters = 1000 // scale
    for first in range(0, counters, 50):
        batch = []
        for i in range(first, min(first + 50, counters)):
            labels = {"__name__": "bench_requests_total", "service": f"svc-{i % 20}", "instance": f"i-{i}"}
            batch.append((labels, [(end - k * STEP_MS, float((360 - k) * (i % 7 + 1))) for k in hour]))
        remote_write(url, batch)
        written += sum(len(s) for _, s in batch)
    many = 100_000 // scale
    for first in range(0, many, 5000):
        batch = [({"__name__": "bench_up", "instance": f"host-{i:06d}", "zone": f"z{i % 10}"}, [(end, 1.0)])
                 for i in range(first, min(first + 5000, many))]
        remote_write(url, batch)
        written += len(batch)
    return written, cpu_seconds(server.proc.pid) - cpu_before, end


def promql_figures(server, args, cpu_seconds, percentile, timed_queries, metric):
    scale = 20 if args.smoke else 1
    now_ms = int(time.time() * 1000)
    written, cpu, end = write_data(server, now_ms, scale, cpu_seconds)
    deadline = time.time() + 300
    while metric(server, 'skewer_buffered_records{signal="metrics"}') > 0 and time.time() < deadline:
        time.sleep(0.5)
    end_s = end / 1000
    queries = 20 if args.smoke else 200

    def timed(path):
        timed_queries(server, [path] * 3)
        latencies, misses = timed_queries(server, [path] * queries)
        return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                "queries": len(latencies), "failures": misses}

    q = quote
    selector = 'bench_up{zone="z3",instance=~"host-0001.*"}'
    return {
        "samples_written": written,
        "remote_write_per_cpu_second": written / max(cpu, 1e-9),
        "range_24h": timed(f"/api/v1/query_range?query={q('bench_temperature_celsius')}"
                           f"&start={end_s - 86400}&end={end_s}&step=60"),
        "sum_rate_1000": timed(f"/api/v1/query_range?query={q('sum by (service) (rate(bench_requests_total[5m]))')}"
                               f"&start={end_s - 3600}&end={end_s}&step=60"),
        "series_100k": timed(f"/api/v1/series?match[]={q(selector)}"
                             f"&start={end_s - 60}&end={end_s}"),
        "counters": 1000 // scale,
        "many_series": 100_000 // scale,
    }
