//! Span metrics (rate, errors, duration per operation), kept at ingest as the OpenTelemetry
//! Collector's `spanmetrics` connector keeps them: every span made durable adds one call and
//! its duration to the series of its tenant, service, span name, kind and status; every
//! interval the totals go back into the metric store as ordinary OTLP metrics (cumulative,
//! started when the process started), so trace conditions are PromQL over them:
//!
//! - `traces.span.metrics.calls` (a monotonic sum: `traces_span_metrics_calls_total`),
//! - `traces.span.metrics.duration` (a histogram in seconds:
//!   `traces_span_metrics_duration_seconds_bucket`, `_sum`, `_count`; the latest error span,
//!   else the slowest, as exemplar),
//!
//! with the resource's `service.name` (Prometheus's `job`) and the attributes `span.name`,
//! `span.kind` (`SPAN_KIND_SERVER`…) and `status.code` (`STATUS_CODE_ERROR`…). A tenant's
//! series past `max_series_per_tenant` are counted in one overflow series (no service) whose
//! only attribute is `otel.metric.overflow = true`, as the connector does; a series that
//! counted nothing for 10 minutes is dropped. Counters live in memory: a restart starts them
//! again from zero (a counter reset, which `rate` handles). The calls carry the interval's
//! best example too (value 1), so error-ratio alerts name a trace.

use std::collections::HashMap;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;
use skewer_storage::model::{Span, SpanKind, StatusCode, TenantId};

/// The calls metric.
pub const CALLS_METRIC: &str = "traces.span.metrics.calls";
/// The duration metric.
pub const DURATION_METRIC: &str = "traces.span.metrics.duration";
/// The scope the metrics are reported under.
const SCOPE: &str = "skewer.span_metrics";

/// Bucket bounds of the duration histogram, seconds (the connector's defaults).
pub const DURATION_BOUNDS_SECONDS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];
const NUM_BUCKETS: usize = DURATION_BOUNDS_SECONDS.len() + 1;

/// `[span_metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Whether span metrics are kept.
    pub enabled: bool,
    /// How often they are written to the metric store.
    pub interval_seconds: u64,
    /// Series one tenant may have; spans of further series go to an overflow series.
    pub max_series_per_tenant: usize,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 15,
            max_series_per_tenant: 5_000,
        }
    }
}

/// What identifies a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    service: String,
    /// Span name, OTLP kind and status names; `None` for the overflow series.
    operation: Option<(String, &'static str, &'static str)>,
}

/// An example span of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Example {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    time_unix_nano: u64,
    seconds: f64,
    error: bool,
}

impl Example {
    /// Whether `self` makes a better exemplar than `other`: an error over a success, then
    /// the slower.
    fn better_than(&self, other: &Example) -> bool {
        (self.error, self.seconds) > (other.error, other.seconds)
    }
}

/// Calls and durations of one series.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    calls: u64,
    seconds_sum: f64,
    buckets: [u64; NUM_BUCKETS],
    example: Option<Example>,
    /// The earliest span start counted first (Unix ns): a new series is written with a zero
    /// point there, so `rate` and `increase` see its first calls.
    born_unix_nano: u64,
    /// Whether the series was written (with its zero point) already.
    written: bool,
    /// Calls when last written, and since when unchanged (Unix ns): a series idle for
    /// [`SERIES_EXPIRY_NANOS`] is dropped.
    written_calls: u64,
    idle_since_unix_nano: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            calls: 0,
            seconds_sum: 0.0,
            buckets: [0; NUM_BUCKETS],
            example: None,
            born_unix_nano: u64::MAX,
            written: false,
            written_calls: 0,
            idle_since_unix_nano: 0,
        }
    }
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.calls += other.calls;
        self.seconds_sum += other.seconds_sum;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        if let Some(example) = other.example
            && self.example.is_none_or(|kept| example.better_than(&kept))
        {
            // The best of the interval (cleared at each write, so examples stay recent).
            self.example = Some(example);
        }
        self.born_unix_nano = self.born_unix_nano.min(other.born_unix_nano);
    }

    fn observe(&mut self, span: &Span) {
        let nanos = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        let seconds = nanos as f64 / 1e9;
        self.calls += 1;
        self.seconds_sum += seconds;
        self.born_unix_nano = self.born_unix_nano.min(span.start_time_unix_nano);
        let bucket = DURATION_BOUNDS_SECONDS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket] += 1;
        let example = Example {
            trace_id: *span.trace_id.as_bytes(),
            span_id: *span.span_id.as_bytes(),
            time_unix_nano: span.end_time_unix_nano,
            seconds,
            error: span.status_code == StatusCode::Error,
        };
        if self.example.is_none_or(|kept| example.better_than(&kept)) {
            self.example = Some(example);
        }
    }
}

/// One export's spans counted per series, before they are made durable.
#[derive(Debug, Default)]
pub struct SpanTally {
    series: Vec<(SeriesKey, Counts)>,
}

impl SpanTally {
    /// Counts `spans`.
    pub fn of(spans: &[Span]) -> Self {
        let mut by_key: HashMap<(&str, &str, &'static str, &'static str), Counts> = HashMap::new();
        for span in spans {
            let key = (
                span.resource.service_name(),
                span.name.as_str(),
                otlp_kind(span.kind),
                otlp_status(span.status_code),
            );
            by_key.entry(key).or_default().observe(span);
        }
        Self {
            series: by_key
                .into_iter()
                .map(|((service, name, kind, status), counts)| {
                    let key = SeriesKey {
                        service: service.to_owned(),
                        operation: Some((name.to_owned(), kind, status)),
                    };
                    (key, counts)
                })
                .collect(),
        }
    }
}

/// Every tenant's span metrics.
pub struct SpanMetrics {
    config: SpanMetricsConfig,
    start_unix_nano: u64,
    tenants: Mutex<Tenants>,
}

/// Every tenant's series, and when they were last written.
#[derive(Default)]
struct Tenants {
    series: HashMap<TenantId, HashMap<SeriesKey, Counts>>,
    last_written_unix_nano: u64,
}

/// A series that counted no call for this long is no longer written (its operation is gone,
/// or was renamed), freeing its place under the cap.
pub const SERIES_EXPIRY_NANOS: u64 = 10 * 60 * 1_000_000_000;

impl SpanMetrics {
    /// Span metrics counted from `start_unix_nano` on.
    pub fn new(config: SpanMetricsConfig, start_unix_nano: u64) -> Self {
        Self {
            config,
            start_unix_nano,
            tenants: Mutex::new(Tenants::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SpanMetricsConfig {
        &self.config
    }

    /// Adds a durable export's tally to `tenant`'s series.
    pub fn add(&self, tenant: &TenantId, tally: SpanTally) {
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        let series = tenants.series.entry(tenant.clone()).or_default();
        for (key, counts) in tally.series {
            let full = series.len() >= self.config.max_series_per_tenant;
            let key = if full && !series.contains_key(&key) {
                SeriesKey {
                    service: String::new(),
                    operation: None,
                }
            } else {
                key
            };
            series.entry(key).or_default().add(&counts);
        }
    }

    /// Every tenant's series as an OTLP export at `now_unix_nano` (series new since the last
    /// export also with their zero point).
    pub fn exports(&self, now_unix_nano: u64) -> Vec<(TenantId, ExportMetricsServiceRequest)> {
        let Ok(mut tenants) = self.tenants.lock() else {
            return Vec::new();
        };
        // A new series' zero point: after the last write (it did not exist then), before now.
        let zero_after = tenants.last_written_unix_nano.max(self.start_unix_nano);
        tenants.last_written_unix_nano = now_unix_nano;
        let times = Times {
            start: self.start_unix_nano,
            zero_after,
            now: now_unix_nano,
        };
        for series in tenants.series.values_mut() {
            series.retain(|_, counts| {
                if counts.calls != counts.written_calls || !counts.written {
                    counts.written_calls = counts.calls;
                    counts.idle_since_unix_nano = now_unix_nano;
                    return true;
                }
                now_unix_nano.saturating_sub(counts.idle_since_unix_nano) < SERIES_EXPIRY_NANOS
            });
        }
        tenants.series.retain(|_, series| !series.is_empty());
        tenants
            .series
            .iter_mut()
            .map(|(tenant, series)| {
                let request = export(series, times);
                for counts in series.values_mut() {
                    counts.written = true;
                    counts.example = None;
                }
                (tenant.clone(), request)
            })
            .collect()
    }
}

/// A string attribute.
pub(crate) fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn otlp_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn otlp_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

fn attributes(key: &SeriesKey) -> Vec<KeyValue> {
    match &key.operation {
        Some((name, kind, status)) => vec![
            string("span.name", name),
            string("span.kind", kind),
            string("status.code", status),
        ],
        None => vec![KeyValue {
            key: "otel.metric.overflow".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            }),
            ..KeyValue::default()
        }],
    }
}

/// One tenant's series as an export: a resource per service, both metrics under it.
/// The series' example as an exemplar, its value as `value` makes it.
fn exemplars(counts: &Counts, value: impl Fn(&Example) -> exemplar::Value) -> Vec<Exemplar> {
    counts
        .example
        .map(|example| Exemplar {
            time_unix_nano: example.time_unix_nano,
            trace_id: example.trace_id.to_vec(),
            span_id: example.span_id.to_vec(),
            value: Some(value(&example)),
            ..Exemplar::default()
        })
        .into_iter()
        .collect()
}

/// The times of one write, Unix ns: the counters' start, the last write, now.
#[derive(Clone, Copy)]
struct Times {
    start: u64,
    zero_after: u64,
    now: u64,
}

fn export(series: &HashMap<SeriesKey, Counts>, times: Times) -> ExportMetricsServiceRequest {
    let (start_unix_nano, now_unix_nano) = (times.start, times.now);
    let mut by_service: HashMap<&str, Vec<(&SeriesKey, &Counts)>> = HashMap::new();
    for (key, counts) in series {
        by_service
            .entry(&key.service)
            .or_default()
            .push((key, counts));
    }
    let mut services: Vec<(&str, Vec<(&SeriesKey, &Counts)>)> = by_service.into_iter().collect();
    services.sort_by_key(|(service, _)| *service);
    let resource_metrics = services
        .into_iter()
        .map(|(service, series)| {
            let zero_time = |counts: &Counts| {
                (!counts.written).then(|| {
                    counts
                        .born_unix_nano
                        .max(times.zero_after)
                        .min(now_unix_nano.saturating_sub(1_000_000))
                })
            };
            let calls = series
                .iter()
                .flat_map(|(key, counts)| {
                    let point = |time: u64, calls: u64| NumberDataPoint {
                        attributes: attributes(key),
                        start_time_unix_nano: start_unix_nano,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(
                            i64::try_from(calls).unwrap_or(i64::MAX),
                        )),
                        ..NumberDataPoint::default()
                    };
                    let zero = zero_time(counts).map(|time| point(time, 0));
                    let mut current = point(now_unix_nano, counts.calls);
                    // The example on the calls too: error-ratio alerts name a trace.
                    current.exemplars = exemplars(counts, |_| exemplar::Value::AsInt(1));
                    zero.into_iter().chain([current])
                })
                .collect();
            let zero_durations = series.iter().filter_map(|(key, counts)| {
                zero_time(counts).map(|time| HistogramDataPoint {
                    attributes: attributes(key),
                    start_time_unix_nano: start_unix_nano,
                    time_unix_nano: time,
                    count: 0,
                    sum: Some(0.0),
                    bucket_counts: vec![0; NUM_BUCKETS],
                    explicit_bounds: DURATION_BOUNDS_SECONDS.to_vec(),
                    ..HistogramDataPoint::default()
                })
            });
            let durations = zero_durations
                .chain(series.iter().map(|(key, counts)| HistogramDataPoint {
                    attributes: attributes(key),
                    start_time_unix_nano: start_unix_nano,
                    time_unix_nano: now_unix_nano,
                    count: counts.calls,
                    sum: Some(counts.seconds_sum),
                    bucket_counts: counts.buckets.to_vec(),
                    explicit_bounds: DURATION_BOUNDS_SECONDS.to_vec(),
                    exemplars: exemplars(counts, |example| {
                        exemplar::Value::AsDouble(example.seconds)
                    }),
                    ..HistogramDataPoint::default()
                }))
                .collect();
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![string("service.name", service)],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(
                        opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                            name: SCOPE.to_owned(),
                            ..Default::default()
                        },
                    ),
                    metrics: vec![
                        Metric {
                            name: CALLS_METRIC.to_owned(),
                            description: "Spans counted by service, name, kind and status."
                                .to_owned(),
                            unit: "{call}".to_owned(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: calls,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            })),
                            ..Metric::default()
                        },
                        Metric {
                            name: DURATION_METRIC.to_owned(),
                            description: "Span durations by service, name, kind and status."
                                .to_owned(),
                            unit: "s".to_owned(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: durations,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                            ..Metric::default()
                        },
                    ],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{Attribute, Resource as ModelResource, SpanId, TraceId};

    use super::*;

    fn span(service: &str, name: &str, millis: u64, status: StatusCode, n: u8) -> Span {
        Span {
            resource: Arc::new(ModelResource {
                attributes: vec![Attribute::string("service.name", service)],
                ..ModelResource::default()
            }),
            scope: Arc::default(),
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n; 8]),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: name.to_owned(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 1_000 + millis * 1_000_000,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: status,
            status_message: String::new(),
        }
    }

    fn points(request: &ExportMetricsServiceRequest) -> Vec<(String, String, i64)> {
        let mut out = Vec::new();
        for resource in &request.resource_metrics {
            let service = match &resource.resource.as_ref().expect("resource").attributes[0]
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
            {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            let Some(metric::Data::Sum(sum)) = &resource.scope_metrics[0].metrics[0].data else {
                panic!("calls first")
            };
            for point in &sum.data_points {
                let name = match point.attributes[0]
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    _ => "overflow".to_owned(),
                };
                let Some(number_data_point::Value::AsInt(calls)) = point.value else {
                    panic!("int calls")
                };
                if calls > 0 {
                    out.push((service.clone(), name, calls));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn spans_are_counted_per_operation_with_durations_and_an_error_exemplar() {
        let metrics = SpanMetrics::new(SpanMetricsConfig::default(), 5);
        let tenant = TenantId::default_tenant();
        metrics.add(
            &tenant,
            SpanTally::of(&[
                span("checkout", "POST /pay", 3, StatusCode::Unset, 1),
                span("checkout", "POST /pay", 700, StatusCode::Unset, 2),
                span("checkout", "POST /pay", 30, StatusCode::Error, 3),
                span("cart", "GET /cart", 1, StatusCode::Unset, 4),
            ]),
        );
        metrics.add(
            &tenant,
            SpanTally::of(&[span("cart", "GET /cart", 1, StatusCode::Unset, 5)]),
        );
        const NOW: u64 = 10_000_000_000;
        let exports = metrics.exports(NOW);
        assert_eq!(exports.len(), 1);
        let request = &exports[0].1;
        assert_eq!(
            points(request),
            [
                ("cart".into(), "GET /cart".into(), 2),
                ("checkout".into(), "POST /pay".into(), 1),
                ("checkout".into(), "POST /pay".into(), 2),
            ]
        );
        let checkout = request
            .resource_metrics
            .iter()
            .find(|r| r.scope_metrics[0].metrics[1].data.is_some() && points_of(r) == 4)
            .expect("checkout");
        let Some(metric::Data::Histogram(histogram)) = &checkout.scope_metrics[0].metrics[1].data
        else {
            panic!("durations second")
        };
        let unset = histogram
            .data_points
            .iter()
            .find(|p| p.count == 2)
            .expect("the two unset spans");
        let zeros: Vec<u64> = histogram
            .data_points
            .iter()
            .filter(|p| p.count == 0)
            .map(|p| p.time_unix_nano)
            .collect();
        assert_eq!(
            zeros,
            [1_000, 1_000],
            "new series start from zero at their first span"
        );
        // Written once: the next export has no zero points.
        let again = metrics.exports(2 * NOW);
        let Some(metric::Data::Sum(sum)) =
            &again[0].1.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("calls")
        };
        assert!(sum.data_points.iter().all(|p| p.time_unix_nano == 2 * NOW));
        assert!(
            sum.data_points.iter().all(|p| p.exemplars.is_empty()),
            "examples are the interval's"
        );
        // Idle past the expiry: no longer written.
        assert!(
            metrics
                .exports(2 * NOW + SERIES_EXPIRY_NANOS + 1)
                .is_empty()
        );
        assert_eq!(unset.bucket_counts[1], 1, "3 ms in (2 ms, 4 ms]");
        assert_eq!(unset.bucket_counts[9], 1, "700 ms in (400 ms, 800 ms]");
        assert!((unset.sum.expect("sum") - 0.703).abs() < 1e-9);
        assert_eq!(unset.exemplars[0].span_id, vec![2; 8], "the slowest");
        assert_eq!(unset.start_time_unix_nano, 5);
        assert_eq!(unset.time_unix_nano, NOW);
    }

    fn points_of(resource: &ResourceMetrics) -> usize {
        match &resource.scope_metrics[0].metrics[0].data {
            Some(metric::Data::Sum(sum)) => sum.data_points.len(),
            _ => 0,
        }
    }

    #[test]
    fn series_past_the_cap_overflow_into_one_per_tenant() {
        let config = SpanMetricsConfig {
            max_series_per_tenant: 2,
            ..SpanMetricsConfig::default()
        };
        let metrics = SpanMetrics::new(config, 0);
        let tenant = TenantId::default_tenant();
        for (n, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            metrics.add(
                &tenant,
                SpanTally::of(&[span("svc", name, 1, StatusCode::Unset, n as u8)]),
            );
        }
        metrics.add(
            &tenant,
            SpanTally::of(&[span("svc", "a", 1, StatusCode::Unset, 9)]),
        );
        let exports = metrics.exports(1);
        assert_eq!(
            points(&exports[0].1),
            [
                (String::new(), "overflow".into(), 2),
                ("svc".into(), "a".into(), 2),
                ("svc".into(), "b".into(), 1),
            ]
        );
    }
}
