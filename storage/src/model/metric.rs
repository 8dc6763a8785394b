//! The metric model: one data point of any of the five OTLP kinds, with its series identity.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attributes::{
    Attribute, AttributeValue, InstrumentationScope, Resource, attributes_bytes, heap_bytes,
};
use super::ids::{SpanId, TraceId};

/// Which OTLP metric kind a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum MetricKind {
    /// A sampled value.
    Gauge = 0,
    /// A sum (counter or up-down counter).
    Sum = 1,
    /// Explicit-bucket histogram.
    Histogram = 2,
    /// Base-2 exponential histogram.
    ExponentialHistogram = 3,
    /// Client-side quantiles.
    Summary = 4,
}

impl MetricKind {
    /// Maps the stored number back; `None` for unknown numbers.
    pub fn from_number(number: u8) -> Option<Self> {
        Some(match number {
            0 => Self::Gauge,
            1 => Self::Sum,
            2 => Self::Histogram,
            3 => Self::ExponentialHistogram,
            4 => Self::Summary,
            _ => return None,
        })
    }

    /// Snake-case name, as the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Sum => "sum",
            Self::Histogram => "histogram",
            Self::ExponentialHistogram => "exponential_histogram",
            Self::Summary => "summary",
        }
    }
}

/// Aggregation temporality of sums and histograms (OTLP numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Temporality {
    /// Not applicable (gauges, summaries) or not set.
    #[default]
    Unspecified = 0,
    /// Each point covers the interval since the previous one.
    Delta = 1,
    /// Each point covers the interval since the series started.
    Cumulative = 2,
}

impl Temporality {
    /// Maps the OTLP number; unknown numbers become `Unspecified`.
    pub fn from_number(number: i32) -> Self {
        match number {
            1 => Self::Delta,
            2 => Self::Cumulative,
            _ => Self::Unspecified,
        }
    }
}

/// What a metric is, shared by all its points in one export.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricDescriptor {
    /// Metric name, e.g. `http.server.request.duration`.
    pub name: String,
    /// Human description.
    pub description: String,
    /// UCUM unit, e.g. `s`, `By`, `1`.
    pub unit: String,
    /// Point kind.
    pub kind: MetricKind,
    /// Temporality for sums and histograms.
    pub temporality: Temporality,
    /// Whether a sum only goes up.
    pub is_monotonic: bool,
}

/// An integer or floating value, as the sender typed it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum NumberValue {
    /// `as_int`.
    Int(i64),
    /// `as_double`.
    Double(f64),
}

impl NumberValue {
    /// The value as a float, for charts and arithmetic.
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Int(value) => value as f64,
            Self::Double(value) => value,
        }
    }
}

/// The buckets of one side of an exponential histogram.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExponentialBuckets {
    /// Index of the first bucket.
    pub offset: i32,
    /// Counts of consecutive buckets from `offset`.
    pub bucket_counts: Vec<u64>,
}

/// One quantile of a summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The quantile, 0.0–1.0.
    pub quantile: f64,
    /// Its value.
    pub value: f64,
}

/// The value part of a data point, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PointValue {
    /// Gauge or sum value.
    Number {
        /// The value.
        value: NumberValue,
    },
    /// Explicit-bucket histogram.
    Histogram {
        /// Number of observations.
        count: u64,
        /// Sum of observations, if sent.
        sum: Option<f64>,
        /// Minimum, if sent.
        min: Option<f64>,
        /// Maximum, if sent.
        max: Option<f64>,
        /// Upper bounds of all buckets but the last.
        explicit_bounds: Vec<f64>,
        /// One count per bucket (`explicit_bounds.len() + 1`).
        bucket_counts: Vec<u64>,
    },
    /// Base-2 exponential histogram.
    ExponentialHistogram {
        /// Number of observations.
        count: u64,
        /// Sum, if sent.
        sum: Option<f64>,
        /// Minimum, if sent.
        min: Option<f64>,
        /// Maximum, if sent.
        max: Option<f64>,
        /// Resolution.
        scale: i32,
        /// Observations in the zero bucket.
        zero_count: u64,
        /// Width of the zero bucket.
        zero_threshold: f64,
        /// Positive buckets.
        positive: ExponentialBuckets,
        /// Negative buckets.
        negative: ExponentialBuckets,
    },
    /// Summary with quantiles.
    Summary {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Quantile values.
        quantiles: Vec<Quantile>,
    },
}

/// A sample that explains a point (often linked to a trace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// When it was recorded, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Its value.
    pub value: NumberValue,
    /// Attributes filtered out of the point.
    #[serde(default)]
    pub filtered_attributes: Vec<Attribute>,
    /// The trace it came from, if any.
    #[serde(default)]
    pub trace_id: Option<TraceId>,
    /// The span it came from, if any.
    #[serde(default)]
    pub span_id: Option<SpanId>,
}

/// What identifies a series, after OpenTelemetry's metric stream identity, with its stable
/// id: every point of the series shares one of these (interned at ingest by
/// [`crate::metrics::SeriesTable`], once per run of rows when read from a file).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// The service instance that produced it.
    pub resource: Arc<Resource>,
    /// The instrumentation library.
    pub scope: Arc<InstrumentationScope>,
    /// Name, unit, kind, temporality.
    pub metric: Arc<MetricDescriptor>,
    /// Point attributes (labels), in the order they were sent.
    pub attributes: Vec<Attribute>,
    /// See [`MetricSeries::id`]; private so it always matches the fields.
    id: u64,
    /// Rough heap size of `attributes` (see [`MetricSeries::estimated_bytes`]), counted once:
    /// budgets count it for every run of buffered points.
    attributes_bytes: usize,
}

impl MetricSeries {
    /// A series of these parts; computes its id.
    pub fn new(
        resource: Arc<Resource>,
        scope: Arc<InstrumentationScope>,
        metric: Arc<MetricDescriptor>,
        attributes: Vec<Attribute>,
    ) -> Self {
        let mut hash = group_hash(&metric, &scope, &resource);
        hash.write_attributes(&attributes);
        Self {
            resource,
            scope,
            metric,
            attributes_bytes: attributes_bytes(&attributes),
            attributes,
            id: hash.finish(),
        }
    }

    /// A series read back from a file with the id stored beside it (the id the writer
    /// computed from these same parts), so reading does not hash.
    pub fn stored(
        id: u64,
        resource: Arc<Resource>,
        scope: Arc<InstrumentationScope>,
        metric: Arc<MetricDescriptor>,
        attributes: Vec<Attribute>,
    ) -> Self {
        Self {
            resource,
            scope,
            metric,
            attributes_bytes: attributes_bytes(&attributes),
            attributes,
            id,
        }
    }

    /// A stable 64-bit id of the series, after OpenTelemetry's metric stream identity: metric
    /// name, kind and unit, the instrumentation scope, resource attributes and point attributes.
    /// Two scopes reporting the same name are two series.
    ///
    /// Stable across runs and versions (FNV-1a over a canonical byte form), so it can be stored.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A hash of what the series shares with its export group (descriptor, scope, resource):
    /// equal groups hash equal, different ones almost never do.
    pub fn group_id(&self) -> u64 {
        group_hash(&self.metric, &self.scope, &self.resource).0
    }

    /// Rough heap size of what the series holds on its own (its attributes; the resource,
    /// scope and descriptor are shared by many series).
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Self>() + self.attributes_bytes
    }

    /// A copy with other attributes (and the id they give): a series derived from another,
    /// as fixtures and tools build them.
    pub fn with_attributes(&self, attributes: Vec<Attribute>) -> Self {
        Self::new(
            Arc::clone(&self.resource),
            Arc::clone(&self.scope),
            Arc::clone(&self.metric),
            attributes,
        )
    }
}

/// The hash state after everything a series shares with its export group (metric, scope,
/// resource), before its own attributes.
fn group_hash(
    metric: &MetricDescriptor,
    scope: &InstrumentationScope,
    resource: &Resource,
) -> Fnv1a {
    let mut hash = Fnv1a::new();
    hash.write(metric.name.as_bytes());
    hash.write(&[metric.kind as u8]);
    hash.write(metric.unit.as_bytes());
    hash.write(scope.name.as_bytes());
    hash.write(scope.version.as_bytes());
    hash.write_attributes(&resource.attributes);
    hash
}

/// One data point as stored: its series and its own time, value and exemplars.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The series, shared with the series' other points.
    pub series: Arc<MetricSeries>,
    /// Start of the aggregation interval, Unix nanoseconds (0 if unknown).
    pub start_time_unix_nano: u64,
    /// Time of the point, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// OTLP data point flags (bit 0: no recorded value).
    pub flags: u32,
    /// The value.
    pub value: PointValue,
    /// Exemplars.
    pub exemplars: Vec<Exemplar>,
}

impl MetricPoint {
    /// The series' stable id ([`MetricSeries::id`]).
    pub fn series_id(&self) -> u64 {
        self.series.id
    }

    /// Rough heap size of this point as a row: its own parts and its series' attributes
    /// (what a row of a file batch holds). Buffers count a series once per run of its points
    /// in an export instead ([`super::SignalBatch::estimated_bytes`]).
    pub fn estimated_bytes(&self) -> usize {
        self.own_bytes() + self.series.attributes_bytes
    }

    /// Rough heap size of the point without its series.
    pub fn own_bytes(&self) -> usize {
        // The value sits inline; only its bucket and quantile lists are on the heap.
        let value_heap = match &self.value {
            PointValue::Number { .. } => 0,
            PointValue::Histogram {
                explicit_bounds,
                bucket_counts,
                ..
            } => heap_bytes(8 * explicit_bounds.len()) + heap_bytes(8 * bucket_counts.len()),
            PointValue::ExponentialHistogram {
                positive, negative, ..
            } => {
                heap_bytes(8 * positive.bucket_counts.len())
                    + heap_bytes(8 * negative.bucket_counts.len())
            }
            PointValue::Summary { quantiles, .. } => heap_bytes(size_of_val(quantiles.as_slice())),
        };
        let exemplars: usize = self
            .exemplars
            .iter()
            .map(|e| size_of::<Exemplar>() + attributes_bytes(&e.filtered_attributes))
            .sum();
        size_of::<Self>() + value_heap + exemplars
    }
}

/// FNV-1a, 64 bit: tiny, stable, good enough to name series.
#[derive(Clone, Copy)]
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    fn write_attributes(&mut self, attributes: &[Attribute]) {
        if attributes.is_sorted_by(|a, b| a.key <= b.key) {
            attributes
                .iter()
                .for_each(|attribute| self.write_attribute(attribute));
        } else {
            let mut sorted: Vec<&Attribute> = attributes.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            sorted
                .into_iter()
                .for_each(|attribute| self.write_attribute(attribute));
        }
    }

    fn write_attribute(&mut self, attribute: &Attribute) {
        self.write(attribute.key.as_bytes());
        self.write(attribute.value.type_name().as_bytes());
        match &attribute.value {
            // The text of a string is itself: no copy.
            AttributeValue::String(text) => self.write(text.as_bytes()),
            other => self.write(other.to_text().as_bytes()),
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> Arc<MetricDescriptor> {
        Arc::new(MetricDescriptor {
            name: "requests".into(),
            description: String::new(),
            unit: "1".into(),
            kind: MetricKind::Sum,
            temporality: Temporality::Cumulative,
            is_monotonic: true,
        })
    }

    fn series(attributes: Vec<Attribute>) -> MetricSeries {
        MetricSeries::new(
            Arc::new(Resource::default()),
            Arc::new(InstrumentationScope::default()),
            requests(),
            attributes,
        )
    }

    #[test]
    fn series_id_ignores_attribute_order_but_not_values() {
        let a = series(vec![
            Attribute::string("a", "1"),
            Attribute::string("b", "2"),
        ]);
        let b = series(vec![
            Attribute::string("b", "2"),
            Attribute::string("a", "1"),
        ]);
        let c = series(vec![
            Attribute::string("a", "1"),
            Attribute::string("b", "3"),
        ]);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        // Pinned: the id is stored on disk and must not change between versions.
        assert_eq!(series(vec![]).id(), 0x16a2_afcb_2006_cb2a);
        assert_eq!(
            series(vec![Attribute {
                key: "n".into(),
                value: AttributeValue::Int(7),
            }])
            .id(),
            series(vec![])
                .with_attributes(vec![Attribute {
                    key: "n".into(),
                    value: AttributeValue::Int(7),
                }])
                .id()
        );
    }

    #[test]
    fn scopes_and_kinds_separate_series() {
        let a = series(vec![]);
        let other_scope = MetricSeries::new(
            Arc::new(Resource::default()),
            Arc::new(InstrumentationScope {
                name: "lib.b".into(),
                ..InstrumentationScope::default()
            }),
            requests(),
            vec![],
        );
        assert_ne!(a.id(), other_scope.id());
        let other_kind = MetricSeries::new(
            Arc::new(Resource::default()),
            Arc::new(InstrumentationScope::default()),
            Arc::new(MetricDescriptor {
                kind: MetricKind::Gauge,
                ..(*a.metric).clone()
            }),
            vec![],
        );
        assert_ne!(a.id(), other_kind.id());
    }
}
