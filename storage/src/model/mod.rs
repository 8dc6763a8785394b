//! The storage model: what skewer stores for each signal, independent of any wire protocol.
//!
//! Ingest converts OTLP into these types; query and the API adapters read them back.

pub mod attributes;
pub mod ids;
pub mod log;
pub mod metric;
pub mod tenant;
pub mod trace;
mod value_serde;

pub use attributes::{Attribute, AttributeValue, InstrumentationScope, Resource, find_attribute};
pub use ids::{IdError, SpanId, TenantId, TraceId};
pub use log::LogRecord;
pub use metric::{
    Exemplar, ExponentialBuckets, MetricDescriptor, MetricKind, MetricPoint, MetricSeries,
    NumberValue, PointValue, Quantile, Temporality,
};
pub use trace::{Span, SpanEvent, SpanKind, SpanLink, StatusCode};

/// Rough heap size of buffered points: each point's own parts, and each series once per run
/// of its points (points share their series; a series also held by earlier exports is
/// counted again, which errs on the safe side).
fn metric_points_bytes(points: &[MetricPoint]) -> usize {
    let mut previous: Option<&std::sync::Arc<MetricSeries>> = None;
    points
        .iter()
        .map(|point| {
            let series_bytes = match previous {
                Some(series) if std::sync::Arc::ptr_eq(series, &point.series) => 0,
                _ => point.series.estimated_bytes(),
            };
            previous = Some(&point.series);
            point.own_bytes() + series_bytes
        })
        .sum()
}

/// A batch of decoded records of one signal for one tenant: the unit that flows from ingest to storage.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalBatch {
    /// Spans.
    Spans(Vec<Span>),
    /// Log records.
    Logs(Vec<LogRecord>),
    /// Metric data points.
    Metrics(Vec<MetricPoint>),
}

impl SignalBatch {
    /// Which signal this batch carries.
    pub fn signal(&self) -> Signal {
        match self {
            Self::Spans(_) => Signal::Traces,
            Self::Logs(_) => Signal::Logs,
            Self::Metrics(_) => Signal::Metrics,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        match self {
            Self::Spans(spans) => spans.len(),
            Self::Logs(logs) => logs.len(),
            Self::Metrics(points) => points.len(),
        }
    }

    /// Rough heap size of the records, as buffers account for them.
    pub fn estimated_bytes(&self) -> usize {
        match self {
            Self::Spans(spans) => spans.iter().map(Span::estimated_bytes).sum(),
            Self::Logs(logs) => logs.iter().map(LogRecord::estimated_bytes).sum(),
            Self::Metrics(points) => metric_points_bytes(points),
        }
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The three OpenTelemetry signals.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Signal {
    /// Spans.
    Traces = 1,
    /// Log records.
    Logs = 2,
    /// Metric data points.
    Metrics = 3,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// Lowercase name for paths, metrics labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Logs => "logs",
            Self::Metrics => "metrics",
        }
    }

    /// Maps the stored byte back.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(Self::Traces),
            2 => Some(Self::Logs),
            3 => Some(Self::Metrics),
            _ => None,
        }
    }
}
