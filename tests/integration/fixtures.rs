//! OTLP requests for the tests: spans with every field, logs with trace context and
//! correlation ids, metrics of all five kinds with exemplars.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// A base time for every record a test sends: the start of the hour two hours ago, so data
/// is recent (inside any retention) and every test's records share one hour.
pub fn t0() -> u64 {
    static T0: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        const HOUR: u64 = 3_600_000_000_000;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64;
        (now / HOUR - 2) * HOUR
    });
    *T0
}

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

pub fn string(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

/// One attribute of every type.
pub fn typed_attributes() -> Vec<KeyValue> {
    vec![
        string("http.request.method", "GET"),
        kv("http.response.status_code", Value::IntValue(503)),
        kv("sample.ratio", Value::DoubleValue(0.25)),
        kv("cache.hit", Value::BoolValue(false)),
        kv("payload", Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
        kv(
            "tags",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::StringValue("a".into())),
                    },
                    AnyValue {
                        value: Some(Value::IntValue(2)),
                    },
                ],
            }),
        ),
        kv(
            "nested",
            Value::KvlistValue(KeyValueList {
                values: vec![string("inner", "x")],
            }),
        ),
    ]
}

pub fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            string("service.name", service),
            string("host.name", "host-1"),
        ],
        ..Resource::default()
    })
}

pub fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "skewer-tests".into(),
        version: "1.2.3".into(),
        ..InstrumentationScope::default()
    })
}

/// A trace id derived from `n` (never all zeros).
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(n: u64) -> Vec<u8> {
    (n + 1).to_be_bytes().to_vec()
}

/// A two-span trace: a server root and a client child with an event and a link.
pub fn trace_request(n: u64, service: &str) -> ExportTraceServiceRequest {
    trace_request_at(n, service, t0())
}

/// [`trace_request`] with its times counted from `base` instead of [`t0`].
pub fn trace_request_at(n: u64, service: &str, base: u64) -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: trace_id(n),
        span_id: span_id(n * 10),
        name: "GET /checkout".into(),
        kind: 2,
        start_time_unix_nano: base + n * 1_000_000,
        end_time_unix_nano: base + n * 1_000_000 + 250_000_000,
        attributes: typed_attributes(),
        trace_state: "vendor=1".into(),
        flags: 1,
        status: Some(Status {
            message: "upstream failed".into(),
            code: 2,
        }),
        ..Span::default()
    };
    let child = Span {
        trace_id: trace_id(n),
        span_id: span_id(n * 10 + 1),
        parent_span_id: span_id(n * 10),
        name: "SELECT orders".into(),
        kind: 3,
        start_time_unix_nano: base + n * 1_000_000 + 10_000_000,
        end_time_unix_nano: base + n * 1_000_000 + 60_000_000,
        attributes: vec![string("db.system", "postgresql")],
        events: vec![Event {
            time_unix_nano: base + n * 1_000_000 + 20_000_000,
            name: "retry".into(),
            attributes: vec![kv("attempt", Value::IntValue(2))],
            dropped_attributes_count: 1,
        }],
        links: vec![Link {
            trace_id: trace_id(n + 1_000_000),
            span_id: span_id(7),
            ..Link::default()
        }],
        dropped_events_count: 3,
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![root, child],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// Log records: one tied to trace `n`, one carrying only a correlation id.
pub fn logs_request(n: u64, service: &str, correlation_id: &str) -> ExportLogsServiceRequest {
    logs_request_at(n, service, correlation_id, t0())
}

/// [`logs_request`] with its times counted from `base` instead of [`t0`].
pub fn logs_request_at(
    n: u64,
    service: &str,
    correlation_id: &str,
    base: u64,
) -> ExportLogsServiceRequest {
    let traced = LogRecord {
        time_unix_nano: base + n * 1_000_000 + 30_000_000,
        observed_time_unix_nano: base + n * 1_000_000 + 31_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(format!(
                "payment declined for order {n} by upstream gateway"
            ))),
        }),
        attributes: vec![
            string("order.id", &format!("order-{n}")),
            kv("retry.count", Value::IntValue(3)),
        ],
        trace_id: trace_id(n),
        span_id: span_id(n * 10 + 1),
        flags: 1,
        ..LogRecord::default()
    };
    let correlated = LogRecord {
        time_unix_nano: base + n * 1_000_000 + 40_000_000,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue("inventory reserved".into())),
        }),
        attributes: vec![string("request.id", correlation_id)],
        ..LogRecord::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: vec![traced, correlated],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn number(start: u64, time: u64, value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![string("route", "/checkout")],
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(value),
        exemplars: vec![Exemplar {
            time_unix_nano: time,
            trace_id: trace_id(1),
            span_id: span_id(10),
            value: Some(exemplar::Value::AsDouble(0.5)),
            filtered_attributes: vec![string("user", "u1")],
        }],
        ..NumberDataPoint::default()
    }
}

/// One metric of each of the five kinds, `prefix`ed, at time `t0() + offset`.
pub fn metrics_request(prefix: &str, offset: u64) -> ExportMetricsServiceRequest {
    metrics_request_at(prefix, t0(), t0() + offset)
}

/// [`metrics_request`] with cumulative series started at `start` and points at `time`.
pub fn metrics_request_at(prefix: &str, start: u64, time: u64) -> ExportMetricsServiceRequest {
    let metric = |name: &str, data| Metric {
        name: format!("{prefix}{name}"),
        description: format!("{name} description"),
        unit: "1".into(),
        data: Some(data),
        ..Metric::default()
    };
    let metrics = vec![
        metric(
            "gauge",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(
                    start,
                    time,
                    number_data_point::Value::AsDouble(21.5),
                )],
            }),
        ),
        metric(
            "requests",
            metric::Data::Sum(Sum {
                data_points: vec![number(start, time, number_data_point::Value::AsInt(42))],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "latency",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![string("route", "/checkout")],
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: 6,
                    sum: Some(1.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 0.5],
                    min: Some(0.01),
                    max: Some(0.9),
                    ..HistogramDataPoint::default()
                }],
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "sizes",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: 7,
                    sum: Some(70.0),
                    scale: 3,
                    zero_count: 1,
                    zero_threshold: 0.001,
                    positive: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![1, 2, 3],
                    }),
                    negative: Some(Buckets {
                        offset: 1,
                        bucket_counts: vec![0],
                    }),
                    ..ExponentialHistogramDataPoint::default()
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "rpc",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: 10,
                    sum: 5.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 0.4,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 0.9,
                        },
                    ],
                    ..SummaryDataPoint::default()
                }],
            }),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("metrics-svc"),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Prometheus remote write series with `labels` and `(value, timestamp ms)` samples.
pub fn remote_write_series(
    labels: &[(&str, &str)],
    samples: &[(f64, i64)],
) -> skewer_ingest::remote_write::proto::TimeSeries {
    use skewer_ingest::remote_write::proto::{Label, Sample, TimeSeries};
    TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        ..TimeSeries::default()
    }
}

/// A snappy-compressed Prometheus remote write request of one series with `labels` (the
/// `__name__` among them) and one sample of 1 at [`t0`].
pub fn remote_write_body(labels: &[(&str, &str)]) -> Vec<u8> {
    use prost::Message;
    use skewer_ingest::remote_write::proto::WriteRequest;
    let at = i64::try_from(t0() / 1_000_000).unwrap();
    let request = WriteRequest {
        timeseries: vec![remote_write_series(labels, &[(1.0, at)])],
        ..WriteRequest::default()
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}
