//! The decoded-size estimate against the heap decoding really takes, measured with a counting
//! allocator on ordinary exports (what SDKs send) and adversarial ones (tiny encodings of many
//! empty elements). The estimate must never fall short of the real peak, and for ordinary
//! exports must not overstate it by much (an overstated estimate refuses load for nothing).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
use prost::Message;
use skewer_ingest::decoded_size::decoding_cost;
use skewer_ingest::payload::{DecodeOptions, PayloadFormat, decode_export};
use skewer_storage::model::Signal;

/// Counts the bytes this thread has allocated and not freed, and their peak.
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: same layout, as the caller promised.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as a new block, then the old one freed: growing a large `Vec` holds both
        // for a moment when it cannot grow in place.
        track(new_size as isize);
        track(-(layout.size() as isize));
        // SAFETY: as the caller promised.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Peak heap (above what was live before) of decoding and converting `body`.
fn measured_peak_bytes(signal: Signal, format: PayloadFormat, body: &[u8]) -> usize {
    let options = DecodeOptions {
        correlation_keys: Arc::from(vec!["request.id".to_owned()]),
        redactor: None,
        record_limits: None,
        active_series: None,
        series: Arc::default(),
    };
    // As the receivers hold it (not counted: it is the body, not its decoding).
    let body = bytes::Bytes::copy_from_slice(body);
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let decoded = decode_export(signal, format, &body, &options);
    let peak = PEAK.with(Cell::get);
    drop(decoded);
    usize::try_from(peak - before).unwrap_or(0)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            text("service.name", service),
            text("service.version", "1.4.2"),
            text("host.name", "ip-10-0-3-17"),
            text("deployment.environment", "production"),
        ],
        ..Default::default()
    })
}

/// 400 spans as an instrumented HTTP service sends them: ten attributes, one event in four.
fn ordinary_spans() -> ExportTraceServiceRequest {
    let spans = (0..400u32)
        .map(|i| Span {
            trace_id: (i / 8).to_be_bytes().repeat(4),
            span_id: i.to_be_bytes().repeat(2),
            parent_span_id: if i % 8 == 0 {
                Vec::new()
            } else {
                (i - 1).to_be_bytes().repeat(2)
            },
            name: format!("GET /api/orders/{{id}} {}", i % 7),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i) * 1_000,
            end_time_unix_nano: 1_700_000_000_000_500_000 + u64::from(i) * 1_000,
            attributes: vec![
                text("http.request.method", "GET"),
                text("url.path", &format!("/api/orders/{}", 100_000 + i)),
                text("http.route", "/api/orders/{id}"),
                text("server.address", "orders.internal"),
                text("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                text("network.protocol.version", "1.1"),
                text("client.address", "10.0.7.21"),
                text("request.id", &format!("req-{:08x}", i * 7919)),
                KeyValue {
                    key: "http.response.status_code".to_owned(),
                    value: Some(AnyValue {
                        value: Some(Value::IntValue(200)),
                    }),
                    ..Default::default()
                },
                KeyValue {
                    key: "server.port".to_owned(),
                    value: Some(AnyValue {
                        value: Some(Value::IntValue(8080)),
                    }),
                    ..Default::default()
                },
            ],
            events: if i % 4 == 0 {
                vec![Event {
                    time_unix_nano: 1_700_000_000_000_100_000,
                    name: "cache miss".to_owned(),
                    attributes: vec![text("cache.key", "orders:123")],
                    dropped_attributes_count: 0,
                }]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("orders"),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// 400 log lines: a sentence of body, six attributes, trace context.
fn ordinary_logs() -> ExportLogsServiceRequest {
    let log_records = (0..400u32)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
            observed_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
            severity_number: 9,
            severity_text: "INFO".to_owned(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(format!(
                    "order {} reserved 3 items in warehouse eu-west-1 after 12 ms",
                    100_000 + i
                ))),
            }),
            attributes: vec![
                text("request.id", &format!("req-{:08x}", i * 7919)),
                text("code.function", "reserve_items"),
                text("code.filepath", "src/orders/reserve.rs"),
                text("thread.name", "tokio-runtime-worker"),
                text("order.id", &format!("{}", 100_000 + i)),
                text("customer.tier", "gold"),
            ],
            trace_id: (i / 4).to_be_bytes().repeat(4),
            span_id: i.to_be_bytes().repeat(2),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("orders"),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// 40 metrics of 10 points each: gauges and histograms with three attributes.
fn ordinary_metrics() -> ExportMetricsServiceRequest {
    let attributes = |i: u32| {
        vec![
            text("http.route", &format!("/api/route/{i}")),
            text("http.request.method", "GET"),
            text("http.response.status_code", "200"),
        ]
    };
    let metrics = (0..40u32)
        .map(|m| Metric {
            name: format!("http.server.metric_{m}"),
            unit: "ms".to_owned(),
            data: Some(if m % 2 == 0 {
                Data::Gauge(Gauge {
                    data_points: (0..10)
                        .map(|i| NumberDataPoint {
                            attributes: attributes(i),
                            time_unix_nano: 1_700_000_000_000_000_000,
                            value: Some(number_data_point::Value::AsDouble(f64::from(i))),
                            ..Default::default()
                        })
                        .collect(),
                })
            } else {
                Data::Histogram(Histogram {
                    data_points: (0..10)
                        .map(|i| HistogramDataPoint {
                            attributes: attributes(i),
                            time_unix_nano: 1_700_000_000_000_000_000,
                            count: 10,
                            sum: Some(55.0),
                            bucket_counts: vec![1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0],
                            explicit_bounds: vec![
                                5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                            ],
                            ..Default::default()
                        })
                        .collect(),
                    aggregation_temporality: 2,
                })
            }),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("orders"),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One valid span followed by `count` empty attributes (`4a 00` each): the amplification the
/// hostile-client tests found (two bytes each, a whole `KeyValue` decoded).
fn empty_attributes_protobuf(count: usize) -> Vec<u8> {
    let mut request = ordinary_spans();
    request.resource_spans[0].scope_spans[0].spans.truncate(1);
    let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
    let mut span_bytes = span.encode_to_vec();
    span_bytes.extend(std::iter::repeat_n([0x4a, 0x00], count).flatten());
    let mut scope_spans = vec![0x12];
    prost::encoding::encode_varint(span_bytes.len() as u64, &mut scope_spans);
    scope_spans.extend_from_slice(&span_bytes);
    let mut resource_spans = vec![0x12];
    prost::encoding::encode_varint(scope_spans.len() as u64, &mut resource_spans);
    resource_spans.extend_from_slice(&scope_spans);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(resource_spans.len() as u64, &mut body);
    body.extend_from_slice(&resource_spans);
    body
}

/// `count` empty spans in JSON (`{}` each).
fn empty_spans_json(count: usize) -> Vec<u8> {
    let spans = vec!["{}"; count].join(",");
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#).into_bytes()
}

fn json<M: serde::Serialize>(message: &M) -> Vec<u8> {
    serde_json::to_vec(message).unwrap()
}

struct Case {
    name: &'static str,
    signal: Signal,
    format: PayloadFormat,
    body: Vec<u8>,
    /// Whether this is what SDKs send (held to a tight overstatement bound).
    ordinary: bool,
}

fn cases() -> Vec<Case> {
    let case = |name, signal, format, body, ordinary| Case {
        name,
        signal,
        format,
        body,
        ordinary,
    };
    use PayloadFormat::{Json, Protobuf};
    vec![
        case(
            "spans",
            Signal::Traces,
            Protobuf,
            ordinary_spans().encode_to_vec(),
            true,
        ),
        case("spans", Signal::Traces, Json, json(&ordinary_spans()), true),
        case(
            "logs",
            Signal::Logs,
            Protobuf,
            ordinary_logs().encode_to_vec(),
            true,
        ),
        case("logs", Signal::Logs, Json, json(&ordinary_logs()), true),
        case(
            "metrics",
            Signal::Metrics,
            Protobuf,
            ordinary_metrics().encode_to_vec(),
            true,
        ),
        case(
            "metrics",
            Signal::Metrics,
            Json,
            json(&ordinary_metrics()),
            true,
        ),
        case(
            "200k empty attributes",
            Signal::Traces,
            Protobuf,
            empty_attributes_protobuf(200_000),
            false,
        ),
        case(
            "100k empty spans",
            Signal::Traces,
            Json,
            empty_spans_json(100_000),
            false,
        ),
    ]
}

#[test]
fn the_estimate_covers_the_real_peak_and_overstates_ordinary_exports_little() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in cases() {
        let estimate = decoding_cost(case.signal, case.format, &case.body)
            .unwrap()
            .bytes;
        let measured = measured_peak_bytes(case.signal, case.format, &case.body);
        let ratio = estimate as f64 / measured as f64;
        let name = format!("{} {}", case.name, case.format.name());
        report.push(format!(
            "{name:<28} {:>9} B body, {:>10} B measured ({:.1}× body), {:>10} B estimated ({ratio:.2}× measured)",
            case.body.len(),
            measured,
            measured as f64 / case.body.len() as f64,
            estimate,
        ));
        if estimate < measured {
            failures.push(format!(
                "{name}: estimate {estimate} below the measured {measured}"
            ));
        }
        // The estimate also covers the blocks a growing `Vec` leaves behind (which the
        // allocator may keep until the decode ends), which a live-bytes count does not see.
        if case.ordinary && ratio > 2.25 {
            failures.push(format!(
                "{name}: estimate {estimate} overstates the measured {measured}"
            ));
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
}
