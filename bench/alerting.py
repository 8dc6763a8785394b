#!/usr/bin/env python3
"""Alerting figures: what 1,000 rules evaluated every 15 s cost, and how soon a firing alert
reaches a healthy webhook receiver.

    python3 bench/alerting.py --binary target/release/skewer [--rules 1000] [--seconds 120]

The corpus: 1,000 counters in 20 services (an hour at 10 s, remote write, as the PromQL
figures use) and `skewer loadgen` logs. The rules: 90% PromQL (`rate` sums per service,
ratios, `histogram_quantile` over the span metrics), 10% LogQL (`count_over_time` per
service), in groups of 50, every 15 s. The server's CPU (utime + stime from /proc) is
sampled over the same idle window with the rules and, after a restart on the same data
without them, as the baseline; the difference is the rules' cost. The latency: a rule on a
gauge written once; the receiver notes when the notification arrives, against the alert's
`startsAt` (the evaluation that fired it), with `group_wait = 0s`.

Only the standard library. Loopback only; every wait has a deadline.
"""

import argparse
import calendar
import json
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql import remote_write, STEP_MS  # noqa: E402
from run import Server, cpu_seconds, loadgen  # noqa: E402

GROUP_SIZE = 50


def write_corpus(server, now_ms):
    url = f"http://127.0.0.1:{server.otlp_http}/api/v1/write"
    end = now_ms - now_ms % STEP_MS
    hour = range(360, -1, -1)
    for first in range(0, 1000, 50):
        batch = []
        for i in range(first, first + 50):
            labels = {"__name__": "bench_requests_total", "service": f"svc-{i % 20}",
                      "instance": f"i-{i}", "code": "500" if i % 10 == 0 else "200"}
            batch.append((labels, [(end - k * STEP_MS, float((360 - k) * (i % 7 + 1))) for k in hour]))
        remote_write(url, batch)


def rule(n):
    service = f"svc-{n % 20}"
    kind = n % 10
    if kind == 9:
        return ("logql", f"Logs{n}",
                f'sum by (service_name) (count_over_time({{service_name="{service}"}} |= "error" [5m])) > {n}')
    if kind == 8:
        return ("promql", f"Latency{n}",
                'histogram_quantile(0.99, sum by (le, job) '
                f'(rate(traces_span_metrics_duration_seconds_bucket{{job="{service}"}}[5m]))) > 0.5')
    if kind == 7:
        return ("promql", f"Errors{n}",
                f'sum(rate(bench_requests_total{{service="{service}",code="500"}}[5m])) '
                f'/ sum(rate(bench_requests_total{{service="{service}"}}[5m])) > 0.5')
    return ("promql", f"Rate{n}", f'sum by (service) (rate(bench_requests_total{{service="{service}"}}[5m])) > {n % 50}')


def rules_file(path, count):
    lines = ["groups:"]
    for first in range(0, count, GROUP_SIZE):
        members = [rule(n) for n in range(first, min(first + GROUP_SIZE, count))]
        for language in ("promql", "logql"):
            chosen = [m for m in members if m[0] == language]
            if not chosen:
                continue
            lines += [f"  - name: bench-{first}-{language}", "    interval: 15s",
                      f"    query_language: {language}", "    rules:"]
            for _, name, expr in chosen:
                lines += [f"      - alert: {name}", f"        expr: {json.dumps(expr)}"]
    lines += ["  - name: trigger", "    interval: 1s", "    rules:",
              "      - alert: Trigger", "        expr: bench_trigger > 0"]
    path.write_text("\n".join(lines) + "\n")


class Receiver(BaseHTTPRequestHandler):
    arrivals = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.arrivals.append((time.time(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def config_file(path, rules, receiver_port):
    text = ""
    if rules:
        text += f'[alerting]\nrule_files = ["{rules}"]\ngroup_wait = "0s"\n\n'
        text += f'[[alerting.receivers]]\nname = "bench"\nurl = "http://127.0.0.1:{receiver_port}/hook"\n'
    path.write_text(text)


def idle_cpu(server, seconds):
    before = cpu_seconds(server.proc.pid)
    time.sleep(seconds)
    return (cpu_seconds(server.proc.pid) - before) / seconds


def evaluation_times(server):
    _, body = server.get("/api/rules")
    groups = json.loads(body)["groups"]
    return sorted(g["evaluationTime"] for g in groups if g["name"] != "trigger"), groups


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/skewer")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120, help="CPU sampling window, each side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skewer-alerting-"))
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        data = work / "data"
        rules = work / "rules.yml"
        rules_file(rules, args.rules)
        with_rules, without = work / "with.toml", work / "without.toml"
        config_file(with_rules, rules, receiver.server_address[1])
        config_file(without, None, 0)

        server = Server(args.binary, data, ["--config", str(without)]).start()
        write_corpus(server, int(time.time() * 1000))
        loadgen(args.binary, server, "logs", "grpc", 10)
        loadgen(args.binary, server, "traces", "grpc", 10)
        time.sleep(20)  # span metrics written, buffers settle
        baseline = idle_cpu(server, args.seconds)
        server.stop()

        server = Server(args.binary, data, ["--config", str(with_rules)]).start()
        time.sleep(20)  # every group evaluated at least once
        loaded = idle_cpu(server, args.seconds)
        times, groups = evaluation_times(server)
        errors = [r["lastError"] for g in groups for r in g["rules"] if r["health"] == "err"]

        remote_write(f"http://127.0.0.1:{server.otlp_http}/api/v1/write",
                     [({"__name__": "bench_trigger"}, [(int(time.time() * 1000), 1.0)])])
        deadline = time.time() + 30
        latency = None
        while time.time() < deadline and latency is None:
            for arrived, message in list(Receiver.arrivals):
                for alert in message["alerts"]:
                    if alert["labels"]["alertname"] == "Trigger":
                        started = calendar.timegm(time.strptime(alert["startsAt"][:19], "%Y-%m-%dT%H:%M:%S"))
                        started += float("0" + alert["startsAt"][19:-1])
                        latency = arrived - started
            time.sleep(0.05)
        server.stop()
    finally:
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    rules_per_group = GROUP_SIZE
    figures = {
        "rules": args.rules,
        "interval_seconds": 15,
        "baseline_cores": baseline,
        "with_rules_cores": loaded,
        "rules_cost_share_of_one_core": loaded - baseline,
        "group_evaluation_seconds_p50": times[len(times) // 2] if times else None,
        "group_evaluation_seconds_max": times[-1] if times else None,
        "rules_per_group": rules_per_group,
        "rules_failing": len(errors),
        "first_error": errors[0] if errors else None,
        "notification_latency_seconds": latency,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
