#!/usr/bin/env python3
"""End-to-end test: the official OpenTelemetry Python SDK exports to a real `skewer serve`.

Usage: python3 tests/python/sdk_export_test.py PATH/TO/skewer

Traces, logs and metrics go through the SDK's own OTLP exporters, over OTLP/gRPC and
OTLP/HTTP (protobuf), plain and gzip-compressed, cumulative and delta, default tenant and
`X-Scope-OrgID` tenants. Everything is then read back from the query API field by field:
first from memory, then after a graceful SIGTERM and a restart on the same data dir, from
Parquet and the log index. Needs the packages of requirements.txt next to this file.

Exits 0 when every check holds; otherwise 1 with the failed check and the server log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

# Hermetic: no OTEL_* configuration from the caller's environment, and no proxy for loopback
# (requests and gRPC both honour *_proxy variables). Set before the SDK is imported.
for _name in list(os.environ):
    if _name.startswith("OTEL_"):
        del os.environ[_name]
for _name in ("no_proxy", "NO_PROXY"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))

from opentelemetry import trace  # noqa: E402
from opentelemetry._logs import SeverityNumber  # noqa: E402
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: E402
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: E402
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: E402
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: E402
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: E402
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: E402
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.sdk.version import __version__ as SDK_VERSION  # noqa: E402
from opentelemetry.trace import Link, SpanKind, Status, StatusCode  # noqa: E402

import grpc  # noqa: E402  (a dependency of the gRPC exporter)

SCOPE_NAME = "skewer-sdk-test"
SCOPE_VERSION = "0.1.0"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 10
EXPORT_TIMEOUT_S = 10
METRIC_INTERVAL_MS = 200

# A run token keeps names unique if the same data dir were ever reused.
RUN = uuid.uuid4().hex[:10]


class Failure(Exception):
    """A failed check."""


def check(condition: bool, message: str, detail: Any = None) -> None:
    if not condition:
        if detail is not None:
            text = detail if isinstance(detail, str) else json.dumps(detail, indent=1)
            if len(text) > 6000:
                text = text[:6000] + "\n... (truncated)"
            message = f"{message}\n--- got:\n{text}"
        raise Failure(message)


def check_eq(actual: Any, expected: Any, what: str, detail: Any = None) -> None:
    check(
        actual == expected,
        f"{what}: expected {json.dumps(expected)}, got {json.dumps(actual)}",
        detail,
    )


# ---------------------------------------------------------------------------------------------
# The server under test.


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held together while chosen, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, tenant: str | None = None) -> tuple[int, Any]:
    """GET a URL; returns (status, parsed JSON or raw text). Never follows a proxy."""
    request = urllib.request.Request(url)
    if tenant is not None:
        request.add_header("X-Scope-OrgID", tenant)
    try:
        with _OPENER.open(request, timeout=HTTP_TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class Server:
    """`skewer serve` on free loopback ports with a data dir that outlives restarts."""

    def __init__(self, binary: str, work_dir: str) -> None:
        self.binary = binary
        self.work_dir = work_dir
        self.data_dir = os.path.join(work_dir, "data")
        self.proc: subprocess.Popen | None = None
        self.log_paths: list[str] = []
        self.grpc_port = self.otlp_http_port = self.http_port = 0

    def start(self) -> None:
        self.grpc_port, self.otlp_http_port, self.http_port = free_ports(3)
        log_path = os.path.join(self.work_dir, f"server-{len(self.log_paths)}.log")
        self.log_paths.append(log_path)
        # Only our own settings: no SKEWER_* from outside, no ./skewer.toml (cwd is ours).
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWER_")}
        env["SKEWER_LOG"] = "info"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary, "serve",
                    "--data-dir", self.data_dir,
                    "--otlp-grpc-addr", f"127.0.0.1:{self.grpc_port}",
                    "--otlp-http-addr", f"127.0.0.1:{self.otlp_http_port}",
                    "--http-addr", f"127.0.0.1:{self.http_port}",
                ],
                cwd=self.work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while True:
            code = self.proc.poll()
            check(code is None, f"skewer exited during startup with code {code}")
            try:
                status, _ = http_get(self.api("/readyz"))
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as err:
                last = repr(err)
            check(time.monotonic() < deadline, f"skewer not ready within {READY_TIMEOUT_S} s (last: {last})")
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, then wait (bounded) for the exit code."""
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise Failure(f"skewer did not exit within {STOP_TIMEOUT_S} s of SIGTERM")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str, tenant: str | None = None, expect: int = 200) -> Any:
        status, body = http_get(self.api(path), tenant)
        check_eq(status, expect, f"GET {path} (tenant {tenant or 'default'}) status", body)
        return body

    def log(self) -> str:
        parts = []
        for path in self.log_paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f"===== {path}\n{f.read()}")
            except OSError as err:
                parts.append(f"===== {path}: {err}")
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Export through the SDK.


@dataclass(frozen=True)
class Variant:
    """One way of exporting: transport, compression, metric temporality, tenant."""

    name: str
    transport: str  # "grpc" | "http"
    gzip: bool
    delta: bool
    tenant: str | None

    @property
    def service(self) -> str:
        return f"sdk-test-{self.name}"


VARIANTS = [
    Variant("grpc", "grpc", gzip=False, delta=False, tenant=None),
    Variant("http", "http", gzip=False, delta=False, tenant=None),
    Variant("grpc-gzip", "grpc", gzip=True, delta=True, tenant="sdk-grpc"),
    Variant("http-gzip", "http", gzip=True, delta=True, tenant="sdk-http"),
]


class ExportRecorder:
    """Wraps an exporter's `export` to record every result: the SDK only logs failures."""

    def __init__(self) -> None:
        self.results: list[tuple[str, str]] = []

    def wrap(self, signal_name: str, exporter: Any) -> Any:
        inner = exporter.export

        def export(*args: Any, **kwargs: Any) -> Any:
            result = inner(*args, **kwargs)
            self.results.append((signal_name, getattr(result, "name", str(result))))
            return result

        exporter.export = export
        return exporter

    def check(self, variant: Variant) -> None:
        for signal_name in ("traces", "logs", "metrics"):
            outcomes = [r for s, r in self.results if s == signal_name]
            check(outcomes, f"[{variant.name}] the SDK never exported {signal_name}")
            check(
                all(r == "SUCCESS" for r in outcomes),
                f"[{variant.name}] {signal_name} exports did not all succeed: {outcomes}",
            )


class SdkLogCapture(logging.Handler):
    """Collects the SDK's and exporters' own warnings and errors (failed exports, retries)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name} {record.levelname}: {record.getMessage()}")


@dataclass
class Sent:
    """What one variant sent, to check against what skewer returns."""

    variant: Variant
    trace_id: str = ""
    parent: Any = None
    child: Any = None
    link_trace_id: str = ""
    link_span_id: str = ""
    request_id: str = ""
    log_time: int = 0
    map_log_time: int = 0
    resource_attributes: dict[str, Any] = field(default_factory=dict)


def exporters(variant: Variant, server: Server) -> tuple[Any, Any, Any]:
    headers = {"x-scope-orgid": variant.tenant} if variant.tenant else None
    temporality = (
        {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
        if variant.delta
        else None
    )
    if variant.transport == "grpc":
        endpoint = f"127.0.0.1:{server.grpc_port}"
        common = dict(
            endpoint=endpoint,
            insecure=True,
            timeout=EXPORT_TIMEOUT_S,
            headers=headers,
            compression=grpc.Compression.Gzip if variant.gzip else grpc.Compression.NoCompression,
        )
        return (
            GrpcSpanExporter(**common),
            GrpcLogExporter(**common),
            GrpcMetricExporter(**common, preferred_temporality=temporality),
        )
    base = f"http://127.0.0.1:{server.otlp_http_port}"
    common = dict(
        timeout=EXPORT_TIMEOUT_S,
        headers=headers,
        compression=HttpCompression.Gzip if variant.gzip else HttpCompression.NoCompression,
    )
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces", **common),
        HttpLogExporter(endpoint=f"{base}/v1/logs", **common),
        HttpMetricExporter(endpoint=f"{base}/v1/metrics", **common, preferred_temporality=temporality),
    )


def export_with_sdk(variant: Variant, server: Server, sdk_log: SdkLogCapture) -> Sent:
    sent = Sent(variant)
    sdk_log.messages.clear()
    recorder = ExportRecorder()
    span_exporter, log_exporter, metric_exporter = exporters(variant, server)
    recorder.wrap("traces", span_exporter)
    recorder.wrap("logs", log_exporter)
    recorder.wrap("metrics", metric_exporter)

    resource = Resource.create(
        {
            "service.name": variant.service,
            "service.version": "1.2.3",
            "deployment.environment.name": "ci",
            "sdk_test.transport": variant.name,
        }
    )
    sent.resource_attributes = dict(resource.attributes)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=100))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, schedule_delay_millis=100))
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=METRIC_INTERVAL_MS)
        ],
        views=[
            View(instrument_name="sdk_test.payload.size", aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    providers = [("traces", tracer_provider), ("logs", logger_provider), ("metrics", meter_provider)]
    try:
        tracer = tracer_provider.get_tracer(SCOPE_NAME, SCOPE_VERSION)
        otel_logger = logger_provider.get_logger(SCOPE_NAME, SCOPE_VERSION)
        meter = meter_provider.get_meter(SCOPE_NAME, SCOPE_VERSION)

        requests = meter.create_counter("sdk_test.requests", unit="1", description="requests handled")
        latency = meter.create_histogram(
            "sdk_test.latency",
            unit="s",
            description="request latency",
            explicit_bucket_boundaries_advisory=[0.1, 0.5, 1.0],
        )
        inflight = meter.create_up_down_counter("sdk_test.inflight", unit="{request}")
        sizes = meter.create_histogram("sdk_test.payload.size", unit="By")

        def temperature(_options: CallbackOptions):
            yield Observation(21.5, {"room": "server"})

        meter.create_observable_gauge("sdk_test.temperature", callbacks=[temperature], unit="Cel")

        # A span in another trace, to link to.
        upstream = tracer.start_span("scheduled job", context=trace.set_span_in_context(trace.INVALID_SPAN))
        upstream.end()
        sent.link_trace_id = trace.format_trace_id(upstream.get_span_context().trace_id)
        sent.link_span_id = trace.format_span_id(upstream.get_span_context().span_id)

        sent.request_id = f"req-{variant.name}-{RUN}"
        metric_attributes = {"route": "/checkout", "http.response.status_code": 503}
        with tracer.start_as_current_span(
            "GET /checkout",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.response.status_code": 503,
                "sample.ratio": 0.25,
                "cache.hit": False,
                "enduser.roles": ["admin", "ops"],
            },
        ) as parent:
            with tracer.start_as_current_span(
                "charge card",
                kind=SpanKind.CLIENT,
                links=[Link(upstream.get_span_context(), {"link.reason": "batch"})],
            ) as child:
                child.set_attribute("retry.count", 3)
                child.set_attribute("peer.service", "card-gateway")
                child.add_event("retry", {"attempt": 2, "backoff.ms": 12.5})
                child.record_exception(ValueError("card declined"))
                child.set_status(Status(StatusCode.ERROR, "upstream failed"))

                sent.log_time = time.time_ns()
                otel_logger.emit(
                    timestamp=sent.log_time,
                    severity_number=SeverityNumber.ERROR,
                    severity_text="ERROR",
                    body=f"payment declined by upstream gateway ({variant.name})",
                    attributes={
                        "request.id": sent.request_id,
                        "retry.count": 3,
                        "amount": 12.5,
                        "card.present": True,
                    },
                )

                # Recorded inside the sampled child span: the SDK attaches exemplars.
                requests.add(3, metric_attributes)
                requests.add(4, metric_attributes)
                for value in (0.05, 0.3, 0.3, 0.7, 2.0):
                    latency.record(value, metric_attributes)
                inflight.add(5, {"queue": "default"})
                inflight.add(-2, {"queue": "default"})
                for value in (1, 2, 4, 100, 0):
                    sizes.record(value)

        # A structured (map) body, outside any span: no trace or span id.
        sent.map_log_time = max(time.time_ns(), sent.log_time + 1)
        otel_logger.emit(
            timestamp=sent.map_log_time,
            severity_number=SeverityNumber.INFO,
            body={"event": "checkout.summary", "items": 2, "tags": ["a", "b"]},
        )

        sent.parent, sent.child = parent, child
        sent.trace_id = trace.format_trace_id(parent.get_span_context().trace_id)
        for name, provider in providers:
            check(provider.force_flush(EXPORT_TIMEOUT_S * 1000) is not False, f"[{variant.name}] {name} force_flush failed")
    finally:
        for _name, provider in providers:
            provider.shutdown()
    recorder.check(variant)
    check(not sdk_log.messages, f"[{variant.name}] the SDK logged problems while exporting", "\n".join(sdk_log.messages))
    return sent


# ---------------------------------------------------------------------------------------------
# Read back through the query API.


def tag(tags: list[dict], key: str, where: str) -> dict:
    for t in tags:
        if t.get("key") == key:
            return t
    raise Failure(f"{where}: tag {key!r} missing; tags: {json.dumps(tags)}")


def check_trace(server: Server, sent: Sent, phase: str) -> None:
    v = sent.variant
    where = f"[{v.name} {phase}] trace {sent.trace_id}"
    body = server.get(f"/api/traces/{sent.trace_id}", v.tenant)
    check(isinstance(body.get("data"), list) and len(body["data"]) == 1, f"{where}: one trace in data", body)
    data = body["data"][0]
    check_eq(data["traceID"], sent.trace_id, f"{where}: traceID")
    spans = data["spans"]
    check_eq(len(spans), 2, f"{where}: span count", body)
    by_id = {s["spanID"]: s for s in spans}
    parent_id = trace.format_span_id(sent.parent.get_span_context().span_id)
    child_id = trace.format_span_id(sent.child.get_span_context().span_id)
    check(parent_id in by_id and child_id in by_id, f"{where}: parent {parent_id} and child {child_id} present", body)

    root = by_id[parent_id]
    check_eq(root["operationName"], "GET /checkout", f"{where}: parent operationName")
    check_eq(root["references"], [], f"{where}: parent references")
    check_eq(root["startTime"], sent.parent.start_time // 1000, f"{where}: parent startTime (µs)")
    check_eq(root["duration"], (sent.parent.end_time - sent.parent.start_time) // 1000, f"{where}: parent duration (µs)")
    # No check of Jaeger `flags`: the Python SDK puts only CONTEXT_HAS_IS_REMOTE (0x100) in
    # OTLP Span.flags, not the W3C sampled bit, so 0 is right for it.
    tags = root["tags"]
    w = f"{where} parent"
    check_eq(tag(tags, "http.request.method", w), {"key": "http.request.method", "type": "string", "value": "GET"}, f"{w}: string tag")
    check_eq(tag(tags, "http.response.status_code", w), {"key": "http.response.status_code", "type": "int64", "value": 503}, f"{w}: int tag")
    check_eq(tag(tags, "sample.ratio", w), {"key": "sample.ratio", "type": "float64", "value": 0.25}, f"{w}: float tag")
    check_eq(tag(tags, "cache.hit", w), {"key": "cache.hit", "type": "bool", "value": False}, f"{w}: bool tag")
    check_eq(tag(tags, "enduser.roles", w), {"key": "enduser.roles", "type": "string", "value": '["admin","ops"]'}, f"{w}: list-of-str tag")
    check_eq(tag(tags, "span.kind", w)["value"], "server", f"{w}: span.kind")
    check_eq(tag(tags, "otel.scope.name", w)["value"], SCOPE_NAME, f"{w}: otel.scope.name")
    check_eq(tag(tags, "otel.scope.version", w)["value"], SCOPE_VERSION, f"{w}: otel.scope.version")
    check(all(t["key"] != "error" for t in tags), f"{w}: no error tag on an unset status", tags)

    child = by_id[child_id]
    w = f"{where} child"
    check_eq(child["operationName"], "charge card", f"{w}: operationName")
    check_eq(
        child["references"],
        [
            {"refType": "CHILD_OF", "traceID": sent.trace_id, "spanID": parent_id},
            {"refType": "FOLLOWS_FROM", "traceID": sent.link_trace_id, "spanID": sent.link_span_id},
        ],
        f"{w}: references (parent, then link)",
    )
    check_eq(child["startTime"], sent.child.start_time // 1000, f"{w}: startTime (µs)")
    check_eq(child["duration"], (sent.child.end_time - sent.child.start_time) // 1000, f"{w}: duration (µs)")
    tags = child["tags"]
    check_eq(tag(tags, "retry.count", w), {"key": "retry.count", "type": "int64", "value": 3}, f"{w}: int tag")
    check_eq(tag(tags, "peer.service", w)["value"], "card-gateway", f"{w}: string tag")
    check_eq(tag(tags, "span.kind", w)["value"], "client", f"{w}: span.kind")
    check_eq(tag(tags, "error", w), {"key": "error", "type": "bool", "value": True}, f"{w}: error tag")
    check_eq(tag(tags, "otel.status_code", w)["value"], "ERROR", f"{w}: otel.status_code")
    check_eq(tag(tags, "otel.status_description", w)["value"], "upstream failed", f"{w}: otel.status_description")

    events = sent.child.events
    check_eq(len(child["logs"]), len(events), f"{w}: one Jaeger log per span event", child["logs"])
    retry = child["logs"][0]
    check_eq(retry["timestamp"], events[0].timestamp // 1000, f"{w}: event timestamp (µs)")
    check_eq(tag(retry["fields"], "event", w)["value"], "retry", f"{w}: event name")
    check_eq(tag(retry["fields"], "attempt", w), {"key": "attempt", "type": "int64", "value": 2}, f"{w}: event int field")
    check_eq(tag(retry["fields"], "backoff.ms", w), {"key": "backoff.ms", "type": "float64", "value": 12.5}, f"{w}: event float field")
    exception = child["logs"][1]
    check_eq(tag(exception["fields"], "event", w)["value"], "exception", f"{w}: record_exception event")
    check_eq(tag(exception["fields"], "exception.type", w)["value"], "ValueError", f"{w}: exception.type")
    check_eq(tag(exception["fields"], "exception.message", w)["value"], "card declined", f"{w}: exception.message")

    check_eq(root["processID"], child["processID"], f"{where}: both spans share one process")
    process = data["processes"].get(root["processID"])
    check(process is not None, f"{where}: process {root['processID']} listed", data["processes"])
    check_eq(process["serviceName"], v.service, f"{where}: process serviceName")
    for key, value in sent.resource_attributes.items():
        if key != "service.name":
            check_eq(tag(process["tags"], key, f"{where} process")["value"], value, f"{where}: process tag {key}")
    check_eq(tag(process["tags"], "telemetry.sdk.language", where)["value"], "python", f"{where}: telemetry.sdk.language")


def check_logs(server: Server, sent: Sent, phase: str) -> None:
    v = sent.variant
    where = f"[{v.name} {phase}] logs"
    child_span_id = trace.format_span_id(sent.child.get_span_context().span_id)

    body = server.get(f"/api/logs?trace_id={sent.trace_id}", v.tenant)
    check_eq(body.get("count"), 1, f"{where}: records with trace_id={sent.trace_id}", body)
    record = body["records"][0]
    check_eq(
        record["body"],
        {"type": "string", "value": f"payment declined by upstream gateway ({v.name})"},
        f"{where}: body",
    )
    check_eq(record["trace_id"], sent.trace_id, f"{where}: trace_id")
    check_eq(record["span_id"], child_span_id, f"{where}: span_id (the child span)")
    # The W3C trace flags of the span: sampled, and "random" (0x02) in recent SDKs.
    check_eq(record["flags"], int(sent.child.get_span_context().trace_flags), f"{where}: flags (trace flags)")
    check_eq(record["severity_number"], 17, f"{where}: severity_number")
    check_eq(record["severity_text"], "ERROR", f"{where}: severity_text")
    check_eq(record["time_unix_nano"], str(sent.log_time), f"{where}: time_unix_nano")
    check(
        int(record["observed_time_unix_nano"]) > 0,
        f"{where}: observed_time_unix_nano set by the SDK",
        record,
    )
    check_eq(record["correlation_id"], sent.request_id, f"{where}: correlation_id from request.id")
    check_eq(record["service_name"], v.service, f"{where}: service_name")
    check_eq(record["scope"]["name"], SCOPE_NAME, f"{where}: scope name")
    check_eq(record["scope"]["version"], SCOPE_VERSION, f"{where}: scope version")
    check_eq(
        record["attributes"],
        [
            {"key": "request.id", "value": {"type": "string", "value": sent.request_id}},
            {"key": "retry.count", "value": {"type": "int", "value": 3}},
            {"key": "amount", "value": {"type": "double", "value": 12.5}},
            {"key": "card.present", "value": {"type": "bool", "value": True}},
        ],
        f"{where}: typed attributes",
    )

    by_corr = server.get(f"/api/logs?correlation_id={urllib.parse.quote(sent.request_id)}", v.tenant)
    check_eq(by_corr.get("count"), 1, f"{where}: records with correlation_id={sent.request_id}", by_corr)
    check_eq(by_corr["records"][0]["span_id"], child_span_id, f"{where}: correlation_id hit is the record")

    by_span = server.get(f"/api/logs?span_id={child_span_id}", v.tenant)
    check_eq(by_span.get("count"), 1, f"{where}: records with span_id={child_span_id}", by_span)

    service = urllib.parse.quote(v.service)
    by_service = server.get(f"/api/logs?service={service}", v.tenant)
    check_eq(by_service.get("count"), 2, f"{where}: records of service {v.service}", by_service)
    newest = by_service["records"][0]
    check_eq(newest["time_unix_nano"], str(sent.map_log_time), f"{where}: newest first", by_service)
    check_eq(
        newest["body"],
        {
            "type": "map",
            "value": [
                {"key": "event", "value": {"type": "string", "value": "checkout.summary"}},
                {"key": "items", "value": {"type": "int", "value": 2}},
                {
                    "key": "tags",
                    "value": {
                        "type": "array",
                        "value": [{"type": "string", "value": "a"}, {"type": "string", "value": "b"}],
                    },
                },
            ],
        },
        f"{where}: map body",
    )
    check_eq(newest["trace_id"], None, f"{where}: no trace id outside a span")
    check_eq(newest["span_id"], None, f"{where}: no span id outside a span")
    check_eq(newest["severity_number"], 9, f"{where}: INFO severity_number")

    by_text = server.get(f"/api/logs?q=declined%20gateway&service={service}", v.tenant)
    check_eq(by_text.get("count"), 1, f"{where}: full-text q='declined gateway'", by_text)
    check_eq(by_text["records"][0]["span_id"], child_span_id, f"{where}: full-text hit is the record")


def metric_series(server: Server, sent: Sent, name: str, where: str) -> dict:
    body = server.get(f"/api/metrics/points?name={urllib.parse.quote(name)}", sent.variant.tenant)
    mine = [s for s in body.get("series", []) if s.get("service_name") == sent.variant.service]
    check_eq(len(mine), 1, f"{where}: series of {name} for service {sent.variant.service}", body)
    series = mine[0]
    check_eq(series["name"], name, f"{where}: {name} name")
    check_eq(series["scope"]["name"], SCOPE_NAME, f"{where}: {name} scope name")
    check(series["points"], f"{where}: {name} has points", series)
    return series


def check_metrics(server: Server, sent: Sent, phase: str) -> None:
    v = sent.variant
    where = f"[{v.name} {phase}] metrics"
    temporality = "delta" if v.delta else "cumulative"
    route_attributes = [
        {"key": "route", "value": {"type": "string", "value": "/checkout"}},
        {"key": "http.response.status_code", "value": {"type": "int", "value": 503}},
    ]

    # Counter: 3 + 4, integers, monotonic sum, exemplars pointing at the child span.
    s = metric_series(server, sent, "sdk_test.requests", where)
    w = f"{where} sdk_test.requests"
    check_eq(s["kind"], "sum", f"{w}: kind", s)
    check_eq(s["temporality"], temporality, f"{w}: temporality", s)
    check_eq(s["is_monotonic"], True, f"{w}: is_monotonic")
    check_eq(s["unit"], "1", f"{w}: unit")
    check_eq(s["description"], "requests handled", f"{w}: description")
    check_eq(s["attributes"], route_attributes, f"{w}: typed attributes")
    for p in s["points"]:
        check_eq(p["value"]["kind"], "number", f"{w}: point value kind", p)
        check_eq(p["value"]["value"]["type"], "int", f"{w}: integer counter stays int", p)
    values = [p["value"]["value"]["value"] for p in s["points"]]
    total = sum(values) if v.delta else values[-1]
    check_eq(total, 7, f"{w}: total ({temporality} points {values})", s)
    if not v.delta:
        check(values == sorted(values), f"{w}: cumulative points never decrease: {values}", s)
        check(len({p["start_time_unix_nano"] for p in s["points"]}) == 1, f"{w}: one cumulative start time", s)
    child_span_id = trace.format_span_id(sent.child.get_span_context().span_id)
    exemplars = [e for p in s["points"] for e in p["exemplars"]]
    check(
        any(e.get("trace_id") == sent.trace_id and e.get("span_id") == child_span_id for e in exemplars),
        f"{w}: an exemplar links to trace {sent.trace_id} span {child_span_id}",
        s,
    )

    # Explicit-bucket histogram with advisory bounds [0.1, 0.5, 1.0].
    s = metric_series(server, sent, "sdk_test.latency", where)
    w = f"{where} sdk_test.latency"
    check_eq(s["kind"], "histogram", f"{w}: kind", s)
    check_eq(s["temporality"], temporality, f"{w}: temporality", s)
    check_eq(s["unit"], "s", f"{w}: unit")
    points = [p["value"] for p in s["points"]]
    for p in points:
        check_eq(p["kind"], "histogram", f"{w}: point value kind", p)
        check_eq(p["explicit_bounds"], [0.1, 0.5, 1.0], f"{w}: explicit_bounds", p)
        check_eq(len(p["bucket_counts"]), 4, f"{w}: bucket count per point", p)
        check_eq(sum(p["bucket_counts"]), p["count"], f"{w}: buckets add up to count", p)
    if v.delta:
        buckets = [sum(p["bucket_counts"][i] for p in points) for i in range(4)]
        count = sum(p["count"] for p in points)
        total_sum = sum(p["sum"] for p in points)
        low, high = min(p["min"] for p in points), max(p["max"] for p in points)
    else:
        last = points[-1]
        buckets, count, total_sum, low, high = last["bucket_counts"], last["count"], last["sum"], last["min"], last["max"]
    check_eq(buckets, [1, 2, 1, 1], f"{w}: bucket_counts", s)
    check_eq(count, 5, f"{w}: count", s)
    check(abs(total_sum - 3.35) < 1e-9, f"{w}: sum 3.35, got {total_sum}", s)
    check_eq((low, high), (0.05, 2.0), f"{w}: (min, max)", s)

    # Up-down counter: cumulative in both modes, not monotonic, 5 - 2.
    s = metric_series(server, sent, "sdk_test.inflight", where)
    w = f"{where} sdk_test.inflight"
    check_eq(s["kind"], "sum", f"{w}: kind", s)
    check_eq(s["temporality"], "cumulative", f"{w}: temporality", s)
    check_eq(s["is_monotonic"], False, f"{w}: is_monotonic")
    check_eq(s["points"][-1]["value"], {"kind": "number", "value": {"type": "int", "value": 3}}, f"{w}: last value", s)

    # Observable gauge: a double from a callback, on every collection.
    s = metric_series(server, sent, "sdk_test.temperature", where)
    w = f"{where} sdk_test.temperature"
    check_eq(s["kind"], "gauge", f"{w}: kind", s)
    check_eq(s["unit"], "Cel", f"{w}: unit")
    check_eq(s["attributes"], [{"key": "room", "value": {"type": "string", "value": "server"}}], f"{w}: attributes")
    for p in s["points"]:
        check_eq(p["value"], {"kind": "number", "value": {"type": "double", "value": 21.5}}, f"{w}: value", s)

    # Exponential histogram (by View): 1, 2, 4, 100 and one zero.
    s = metric_series(server, sent, "sdk_test.payload.size", where)
    w = f"{where} sdk_test.payload.size"
    check_eq(s["kind"], "exponential_histogram", f"{w}: kind", s)
    check_eq(s["temporality"], temporality, f"{w}: temporality", s)
    points = [p["value"] for p in s["points"]]
    for p in points:
        check_eq(p["kind"], "exponential_histogram", f"{w}: point value kind", p)
        in_buckets = sum(p["positive"]["bucket_counts"]) + sum(p["negative"]["bucket_counts"]) + p["zero_count"]
        check_eq(in_buckets, p["count"], f"{w}: buckets + zero_count add up to count", p)
    chosen = points if v.delta else points[-1:]
    check_eq(sum(p["count"] for p in chosen), 5, f"{w}: count", s)
    check_eq(sum(p["zero_count"] for p in chosen), 1, f"{w}: zero_count", s)
    check_eq(sum(p["sum"] for p in chosen), 107.0, f"{w}: sum", s)
    check_eq(max(p["max"] for p in chosen), 100.0, f"{w}: max", s)


def check_tenants(server: Server, sents: list[Sent], phase: str) -> None:
    """Data sent with X-Scope-OrgID is only visible to that tenant."""
    for sent in sents:
        if sent.variant.tenant:
            where = f"[{sent.variant.name} {phase}] tenant isolation"
            status, body = http_get(server.api(f"/api/traces/{sent.trace_id}"))
            check_eq(status, 404, f"{where}: the default tenant does not see trace {sent.trace_id}", body)
            status, body = http_get(server.api(f"/api/logs?trace_id={sent.trace_id}"))
            check_eq((status, body.get("count") if isinstance(body, dict) else body), (200, 0), f"{where}: nor its logs", body)


def check_everything(server: Server, sents: list[Sent], phase: str) -> None:
    for sent in sents:
        check_trace(server, sent, phase)
        check_logs(server, sent, phase)
        check_metrics(server, sent, phase)
    check_tenants(server, sents, phase)


def parquet_files(data_dir: str) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(data_dir):
        found.extend(os.path.join(root, f) for f in files if f.endswith(".parquet"))
    return found


# ---------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} PATH/TO/skewer", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"FAIL: {binary} is not an executable file (build it with `cargo build`)", file=sys.stderr)
        return 2

    started = time.monotonic()
    work_dir = tempfile.mkdtemp(prefix="skewer-sdk-test-")
    server = Server(binary, work_dir)
    sdk_log = SdkLogCapture()
    logging.getLogger("opentelemetry").addHandler(sdk_log)
    ok = False
    try:
        server.start()
        sents = []
        for variant in VARIANTS:
            sents.append(export_with_sdk(variant, server, sdk_log))
            print(f"exported with the SDK over {variant.name}: trace {sents[-1].trace_id}")

        check_everything(server, sents, "from memory")
        print("read back from memory: ok")

        code = server.terminate()
        check_eq(code, 0, "exit code after SIGTERM")
        files = parquet_files(server.data_dir)
        for tenant in ["default"] + [v.tenant for v in VARIANTS if v.tenant]:
            for signal_dir in ("traces", "metrics"):
                prefix = os.path.join(server.data_dir, "objects", "tenants", tenant, signal_dir) + os.sep
                check(
                    any(f.startswith(prefix) for f in files),
                    f"no Parquet file under {prefix} after a graceful shutdown",
                    "\n".join(files) or "(no Parquet files at all)",
                )

        server.start()
        check_everything(server, sents, "after restart")
        print("read back after SIGTERM and restart: ok")
        code = server.terminate()
        check_eq(code, 0, "exit code after the second SIGTERM")
        ok = True
    except Failure as failure:
        print(f"\nFAIL: {failure}", file=sys.stderr)
    except Exception:  # noqa: BLE001 - any crash of the test is a failure with context
        print("\nFAIL: unexpected error in the test:", file=sys.stderr)
        traceback.print_exc()
    finally:
        server.kill()
        logging.getLogger("opentelemetry").removeHandler(sdk_log)

    elapsed = time.monotonic() - started
    if ok:
        shutil.rmtree(work_dir, ignore_errors=True)
        print(f"PASS: OpenTelemetry Python SDK {SDK_VERSION} -> skewer over {len(VARIANTS)} exporter setups ({elapsed:.1f} s)")
        return 0
    print(f"\n--- skewer server log (work dir kept: {work_dir})\n{server.log()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
