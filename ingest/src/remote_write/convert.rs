//! Remote write series to model points: one gauge point per float sample, named by the
//! `__name__` label, every other label a string attribute, help from the request's metadata
//! (no unit: the name already says it); a staleness marker kept as OTLP's "no recorded value". Invalid series, native
//! histograms and exemplars are refused and counted, the rest kept. Pure: no I/O, no
//! decoding of bytes (see [`super::decode`]).

use std::collections::HashMap;
use std::sync::Arc;

use skewer_storage::model::{
    Attribute, AttributeValue, InstrumentationScope, MetricDescriptor, MetricKind, MetricPoint,
    NumberValue, PointValue, Resource, Temporality,
};

use skewer_storage::metrics::{SeriesSession, SeriesTable};

use super::proto::{Label, MetricMetadata, STALE_NAN_BITS, TimeSeries, WriteRequest};
use crate::convert::{Converted, Rejections};

/// The label that holds a Prometheus series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// OTLP's data point flag "no recorded value": what a staleness marker becomes, and what
/// the Prometheus read side turns back into one.
pub const NO_RECORDED_VALUE_FLAG: u32 = 1;

/// Suffixes a series name may add to its family's name in metadata: histogram and summary
/// parts, and counters in OpenMetrics (family `x`, series `x_total`).
const FAMILY_SUFFIXES: [&str; 5] = ["_bucket", "_sum", "_count", "_total", "_created"];

/// Nanoseconds in a millisecond.
const NANOS_PER_MILLI: u64 = 1_000_000;

/// Label names and values longer than this are cut in messages.
const MAX_DESCRIBED_CHARS: usize = 64;

/// Series with more labels than this are described by their first ones only.
const MAX_DESCRIBED_LABELS: usize = 8;

/// Converts a write request, keeping valid samples and counting the rest; each series is
/// looked up in (or added to) `series`.
pub fn convert_write_request(
    request: WriteRequest,
    series: &SeriesTable,
) -> Converted<MetricPoint> {
    let mut sink = PointSink::new(request.metadata, series.session());
    for series in request.timeseries {
        sink.convert_series(series);
    }
    Converted {
        records: sink.points,
        rejections: sink.rejections,
    }
}

struct PointSink<'a> {
    /// Help and unit by family name, from the request.
    metadata: HashMap<String, MetricMetadata>,
    /// One descriptor per metric name, shared by its points.
    descriptors: HashMap<String, Arc<MetricDescriptor>>,
    /// Remote write has no resource or scope: one empty each, shared by every point.
    resource: Arc<Resource>,
    scope: Arc<InstrumentationScope>,
    points: Vec<MetricPoint>,
    rejections: Rejections,
    series: SeriesSession<'a>,
}

impl<'a> PointSink<'a> {
    fn new(metadata: Vec<MetricMetadata>, series: SeriesSession<'a>) -> Self {
        let mut by_family = HashMap::with_capacity(metadata.len());
        for entry in metadata {
            // The first entry of a family wins.
            by_family
                .entry(entry.metric_family_name.clone())
                .or_insert(entry);
        }
        Self {
            metadata: by_family,
            descriptors: HashMap::new(),
            resource: Arc::new(Resource::default()),
            scope: Arc::new(InstrumentationScope::default()),
            points: Vec::new(),
            rejections: Rejections::default(),
            series,
        }
    }

    fn convert_series(&mut self, series: TimeSeries) {
        let TimeSeries {
            labels,
            samples,
            exemplars,
            histograms,
        } = series;
        self.rejections.reject_many(histograms.len() as u64, || {
            format!(
                "native histograms are not supported (series {})",
                describe(&labels)
            )
        });
        self.rejections.reject_many(exemplars.len() as u64, || {
            format!("exemplars are not stored (series {})", describe(&labels))
        });
        if let Some(problem) = label_problem(&labels) {
            self.rejections.reject_many(samples.len() as u64, || {
                format!("{problem} (series {})", describe(&labels))
            });
            return;
        }
        if samples.is_empty() {
            return;
        }
        let (name, attributes) = split_labels(labels);
        let descriptor = self.descriptor(&name);
        let series = self
            .series
            .series(&self.resource, &self.scope, &descriptor, attributes);
        self.points.reserve(samples.len());
        for sample in samples {
            let Some(time_unix_nano) = time_unix_nano(sample.timestamp) else {
                self.rejections.reject(|| {
                    format!(
                        "sample of {name:?} at {} ms: timestamp before 1970 or past 2554",
                        sample.timestamp
                    )
                });
                continue;
            };
            let flags = if sample.value.to_bits() == STALE_NAN_BITS {
                NO_RECORDED_VALUE_FLAG
            } else {
                0
            };
            self.points.push(MetricPoint {
                series: Arc::clone(&series),
                start_time_unix_nano: 0,
                time_unix_nano,
                flags,
                value: PointValue::Number {
                    value: NumberValue::Double(sample.value),
                },
                exemplars: Vec::new(),
            });
        }
    }

    /// The shared descriptor of metric `name`: always a gauge, so the name reads back through
    /// Prometheus naming unchanged (a unit-less gauge gets no suffix), with the help of its
    /// family when the request carried it.
    fn descriptor(&mut self, name: &str) -> Arc<MetricDescriptor> {
        if let Some(descriptor) = self.descriptors.get(name) {
            return Arc::clone(descriptor);
        }
        let metadata = family_metadata(&self.metadata, name);
        let descriptor = Arc::new(MetricDescriptor {
            name: name.to_owned(),
            description: metadata.map(|m| m.help.clone()).unwrap_or_default(),
            // Never a unit: Prometheus naming would append one the name lacks (`foo` with
            // unit `bytes` would read back as `foo_bytes`); a remote-written name is final.
            unit: String::new(),
            kind: MetricKind::Gauge,
            temporality: Temporality::Unspecified,
            is_monotonic: false,
        });
        self.descriptors
            .insert(name.to_owned(), Arc::clone(&descriptor));
        descriptor
    }
}

/// The metadata of the family `name` belongs to: its own, else that of the name without a
/// histogram, summary or counter suffix.
fn family_metadata<'a>(
    metadata: &'a HashMap<String, MetricMetadata>,
    name: &str,
) -> Option<&'a MetricMetadata> {
    metadata.get(name).or_else(|| {
        FAMILY_SUFFIXES
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find_map(|family| metadata.get(family))
    })
}

/// Why a series' labels cannot name a series.
#[derive(Debug, PartialEq, Eq)]
enum LabelProblem<'a> {
    LabelWithoutName,
    RepeatedLabel(&'a str),
    NoMetricName,
}

impl std::fmt::Display for LabelProblem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LabelWithoutName => f.write_str("a label with an empty name"),
            Self::RepeatedLabel(name) => write!(f, "label {name:?} given twice"),
            Self::NoMetricName => write!(f, "no {METRIC_NAME_LABEL} label"),
        }
    }
}

/// What is wrong with `labels`, if anything: an empty or repeated name, or no (or an
/// empty) `__name__`.
fn label_problem(labels: &[Label]) -> Option<LabelProblem<'_>> {
    let mut names: Vec<&str> = labels.iter().map(|label| label.name.as_str()).collect();
    names.sort_unstable();
    if names.first().is_some_and(|name| name.is_empty()) {
        return Some(LabelProblem::LabelWithoutName);
    }
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Some(LabelProblem::RepeatedLabel(pair[0]));
    }
    let has_name = labels
        .iter()
        .any(|label| label.name == METRIC_NAME_LABEL && !label.value.is_empty());
    (!has_name).then_some(LabelProblem::NoMetricName)
}

/// Splits valid labels into the metric name and the attributes, in the order sent. A label
/// with an empty value is left out: in Prometheus it is the same as no label.
fn split_labels(labels: Vec<Label>) -> (String, Vec<Attribute>) {
    let mut name = String::new();
    let mut attributes = Vec::with_capacity(labels.len().saturating_sub(1));
    for label in labels {
        if label.name == METRIC_NAME_LABEL {
            name = label.value;
        } else if !label.value.is_empty() {
            attributes.push(Attribute {
                key: label.name,
                value: AttributeValue::String(label.value),
            });
        }
    }
    (name, attributes)
}

/// Unix milliseconds as Unix nanoseconds; `None` before 1970 or past what `u64` nanoseconds
/// hold (the year 2554).
fn time_unix_nano(timestamp_ms: i64) -> Option<u64> {
    u64::try_from(timestamp_ms)
        .ok()?
        .checked_mul(NANOS_PER_MILLI)
}

/// A short `{name="value", ...}` of a series for messages, cut to a bounded length.
fn describe(labels: &[Label]) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .take(MAX_DESCRIBED_LABELS)
        .map(|label| format!("{}={:?}", shorten(&label.name), shorten(&label.value)))
        .collect();
    if labels.len() > MAX_DESCRIBED_LABELS {
        parts.push("...".to_owned());
    }
    format!("{{{}}}", parts.join(", "))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_DESCRIBED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{IgnoredExemplar, IgnoredHistogram, Sample};

    fn convert_write_request(request: WriteRequest) -> Converted<MetricPoint> {
        super::convert_write_request(request, &SeriesTable::default())
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn sample(value: f64, timestamp: i64) -> Sample {
        Sample { value, timestamp }
    }

    fn series(labels: &[(&str, &str)], samples: Vec<Sample>) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
            samples,
            ..TimeSeries::default()
        }
    }

    fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
        WriteRequest {
            timeseries,
            metadata: Vec::new(),
        }
    }

    fn number(point: &MetricPoint) -> f64 {
        match point.value {
            PointValue::Number {
                value: NumberValue::Double(value),
            } => value,
            ref other => panic!("not a double: {other:?}"),
        }
    }

    #[test]
    fn one_gauge_point_per_sample_with_every_other_label_an_attribute() {
        let converted = convert_write_request(request(vec![series(
            &[
                ("__name__", "http_requests_total"),
                ("instance", "a:9090"),
                ("job", "api"),
            ],
            vec![
                sample(1.5, 1_700_000_000_123),
                sample(2.0, 1_700_000_015_123),
            ],
        )]));
        assert_eq!(converted.rejections, Rejections::default());
        let points = converted.records;
        assert_eq!(points.len(), 2);
        for point in &points {
            assert_eq!(point.series.metric.name, "http_requests_total");
            assert_eq!(point.series.metric.kind, MetricKind::Gauge);
            assert_eq!(point.series.metric.temporality, Temporality::Unspecified);
            assert!(!point.series.metric.is_monotonic);
            assert_eq!(
                point.series.attributes,
                [
                    Attribute::string("instance", "a:9090"),
                    Attribute::string("job", "api")
                ]
            );
            assert!(point.series.resource.attributes.is_empty());
            assert_eq!(point.series.scope.name, "");
            assert_eq!(point.start_time_unix_nano, 0);
            assert_eq!(point.flags, 0);
            assert!(point.exemplars.is_empty());
        }
        assert_eq!(points[0].time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(points[1].time_unix_nano, 1_700_000_015_123_000_000);
        assert_eq!((number(&points[0]), number(&points[1])), (1.5, 2.0));
        assert_eq!(points[0].series_id(), points[1].series_id());
        assert!(
            Arc::ptr_eq(&points[0].series.metric, &points[1].series.metric),
            "one descriptor per name"
        );
    }

    #[test]
    fn a_staleness_marker_is_no_recorded_value_and_other_nans_are_values() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let converted = convert_write_request(request(vec![series(
            &[("__name__", "up")],
            vec![sample(1.0, 1), sample(stale, 2), sample(f64::NAN, 3)],
        )]));
        let points = converted.records;
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].flags, 0);
        assert_eq!(points[1].flags, NO_RECORDED_VALUE_FLAG);
        assert!(number(&points[1]).is_nan());
        assert_eq!(
            points[2].flags, 0,
            "an ordinary NaN is a value, not staleness"
        );
        assert!(number(&points[2]).is_nan());
    }

    #[test]
    fn invalid_series_are_refused_whole_and_the_rest_kept() {
        let converted = convert_write_request(request(vec![
            series(&[("job", "api")], vec![sample(1.0, 1), sample(2.0, 2)]),
            series(&[("__name__", ""), ("job", "api")], vec![sample(1.0, 1)]),
            series(&[("__name__", "a"), ("", "x")], vec![sample(1.0, 1)]),
            series(
                &[("__name__", "b"), ("job", "x"), ("job", "y")],
                vec![sample(1.0, 1)],
            ),
            series(&[("__name__", "kept")], vec![sample(3.0, 1)]),
        ]));
        assert_eq!(converted.records.len(), 1);
        assert_eq!(converted.records[0].series.metric.name, "kept");
        assert_eq!(converted.rejections.count, 5);
        assert_eq!(
            converted.rejections.first_message.as_deref(),
            Some(r#"no __name__ label (series {job="api"})"#)
        );
        let problem = |labels: &[(&str, &str)]| {
            let labels: Vec<Label> = labels.iter().map(|(n, v)| label(n, v)).collect();
            label_problem(&labels).map(|p| p.to_string())
        };
        assert_eq!(
            problem(&[("__name__", "a"), ("", "x")]).as_deref(),
            Some("a label with an empty name")
        );
        assert_eq!(
            problem(&[("job", "x"), ("__name__", "b"), ("job", "y")]).as_deref(),
            Some(r#"label "job" given twice"#)
        );
        assert_eq!(problem(&[("__name__", "ok"), ("job", "x")]), None);
    }

    #[test]
    fn timestamps_before_1970_or_past_u64_nanoseconds_are_refused_one_by_one() {
        let converted = convert_write_request(request(vec![series(
            &[("__name__", "t")],
            vec![
                sample(1.0, -1),
                sample(2.0, 0),
                sample(3.0, i64::MAX),
                sample(4.0, 18_446_744_073_709),
            ],
        )]));
        let times: Vec<u64> = converted.records.iter().map(|p| p.time_unix_nano).collect();
        assert_eq!(times, [0, 18_446_744_073_709_000_000]);
        assert_eq!(converted.rejections.count, 2);
        assert_eq!(
            converted.rejections.first_message.as_deref(),
            Some(r#"sample of "t" at -1 ms: timestamp before 1970 or past 2554"#)
        );
    }

    #[test]
    fn empty_label_values_are_no_labels() {
        let converted = convert_write_request(request(vec![series(
            &[("__name__", "m"), ("empty", ""), ("job", "x")],
            vec![sample(1.0, 1)],
        )]));
        assert_eq!(
            converted.records[0].series.attributes,
            [Attribute::string("job", "x")]
        );
    }

    #[test]
    fn help_comes_from_the_family_metadata_and_the_kind_stays_a_unitless_gauge() {
        let metadata = |family: &str, help: &str, unit: &str| MetricMetadata {
            r#type: 1, // COUNTER: still a gauge here.
            metric_family_name: family.into(),
            help: help.into(),
            unit: unit.into(),
        };
        let converted = convert_write_request(WriteRequest {
            timeseries: vec![
                series(&[("__name__", "requests_total")], vec![sample(1.0, 1)]),
                series(
                    &[("__name__", "latency_seconds_bucket")],
                    vec![sample(1.0, 1)],
                ),
                series(&[("__name__", "latency_seconds_sum")], vec![sample(1.0, 1)]),
                series(&[("__name__", "undocumented")], vec![sample(1.0, 1)]),
            ],
            metadata: vec![
                metadata("requests_total", "Requests served.", ""),
                metadata("latency_seconds", "Request latency.", "seconds"),
                metadata("latency_seconds", "A later duplicate.", "ms"),
            ],
        });
        let described: Vec<(&str, &str, &str, MetricKind)> = converted
            .records
            .iter()
            .map(|p| {
                (
                    p.series.metric.name.as_str(),
                    p.series.metric.description.as_str(),
                    p.series.metric.unit.as_str(),
                    p.series.metric.kind,
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                ("requests_total", "Requests served.", "", MetricKind::Gauge),
                (
                    "latency_seconds_bucket",
                    "Request latency.",
                    "",
                    MetricKind::Gauge
                ),
                (
                    "latency_seconds_sum",
                    "Request latency.",
                    "",
                    MetricKind::Gauge
                ),
                ("undocumented", "", "", MetricKind::Gauge),
            ]
        );
    }

    #[test]
    fn native_histograms_and_exemplars_are_counted_as_refused() {
        let converted = convert_write_request(request(vec![TimeSeries {
            labels: vec![label("__name__", "h")],
            samples: vec![sample(1.0, 1)],
            exemplars: vec![IgnoredExemplar {}],
            histograms: vec![IgnoredHistogram {}, IgnoredHistogram {}],
        }]));
        assert_eq!(converted.records.len(), 1);
        assert_eq!(converted.rejections.count, 3);
        assert_eq!(
            converted.rejections.first_message.as_deref(),
            Some(r#"native histograms are not supported (series {__name__="h"})"#)
        );
    }

    #[test]
    fn long_series_are_described_briefly() {
        let long = "x".repeat(1000);
        let labels: Vec<Label> = (0..20).map(|i| label(&format!("l{i}"), &long)).collect();
        let text = describe(&labels);
        assert!(text.len() < 1000, "{} chars", text.len());
        assert!(text.ends_with(", ...}"), "{text}");
        assert_eq!(
            shorten("é".repeat(65).as_str()),
            format!("{}...", "é".repeat(64))
        );
    }
}
