//! The shape of OTLP messages as far as their decoded size goes: which fields hold nested
//! messages, text or repeated scalars, and how many bytes one decoded message takes. It decodes
//! nothing itself.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use skewer_storage::model::Signal;

/// An OTLP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MessageKind {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExponentialHistogramPoint,
    ExponentialBuckets,
    SummaryPoint,
    Quantile,
    Exemplar,
    Resource,
    Scope,
    EntityRef,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a field of a message costs once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    /// A singular nested message, stored inside its parent: only its own fields cost more.
    Inline(MessageKind),
    /// One element of a repeated nested message (a `Vec` slot plus its fields).
    Repeated(MessageKind),
    /// A string or bytes: its length on the heap.
    Text,
    /// One element of a repeated string (a `String` slot plus its length).
    RepeatedText,
    /// One element of a repeated 8-byte number, packed or not; `varint` when packed elements
    /// are varints (one byte on the wire can become eight).
    RepeatedScalar { varint: bool },
    /// A number, a bool, or a field the decoder does not know: nothing on the heap.
    Other,
}

impl MessageKind {
    /// The export request of `signal`.
    pub(super) fn request(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Self::TraceRequest,
            Signal::Logs => Self::LogsRequest,
            Signal::Metrics => Self::MetricsRequest,
        }
    }

    /// Bytes one decoded message of this kind takes in place (its heap parts not counted).
    pub(super) fn decoded_bytes(self) -> usize {
        match self {
            Self::TraceRequest => size_of::<ExportTraceServiceRequest>(),
            Self::ResourceSpans => size_of::<ResourceSpans>(),
            Self::ScopeSpans => size_of::<ScopeSpans>(),
            Self::Span => size_of::<Span>(),
            Self::SpanEvent => size_of::<Event>(),
            Self::SpanLink => size_of::<Link>(),
            Self::SpanStatus => size_of::<Status>(),
            Self::LogsRequest => size_of::<ExportLogsServiceRequest>(),
            Self::ResourceLogs => size_of::<ResourceLogs>(),
            Self::ScopeLogs => size_of::<ScopeLogs>(),
            Self::LogRecord => size_of::<LogRecord>(),
            Self::MetricsRequest => size_of::<ExportMetricsServiceRequest>(),
            Self::ResourceMetrics => size_of::<ResourceMetrics>(),
            Self::ScopeMetrics => size_of::<ScopeMetrics>(),
            Self::Metric => size_of::<Metric>(),
            Self::Gauge => size_of::<Gauge>(),
            Self::Sum => size_of::<Sum>(),
            Self::Histogram => size_of::<Histogram>(),
            Self::ExponentialHistogram => size_of::<ExponentialHistogram>(),
            Self::Summary => size_of::<Summary>(),
            Self::NumberPoint => size_of::<NumberDataPoint>(),
            Self::HistogramPoint => size_of::<HistogramDataPoint>(),
            Self::ExponentialHistogramPoint => size_of::<ExponentialHistogramDataPoint>(),
            Self::ExponentialBuckets => size_of::<Buckets>(),
            Self::SummaryPoint => size_of::<SummaryDataPoint>(),
            Self::Quantile => size_of::<ValueAtQuantile>(),
            Self::Exemplar => size_of::<Exemplar>(),
            Self::Resource => size_of::<Resource>(),
            Self::Scope => size_of::<InstrumentationScope>(),
            Self::EntityRef => size_of::<EntityRef>(),
            Self::KeyValue => size_of::<KeyValue>(),
            Self::AnyValue => size_of::<AnyValue>(),
            Self::ArrayValue => size_of::<ArrayValue>(),
            Self::KeyValueList => size_of::<KeyValueList>(),
        }
    }

    /// Bytes of the model record one message of this kind converts into, for the kinds that
    /// become records (spans, log records, data points).
    pub(super) fn converted_record_bytes(self) -> usize {
        match self {
            Self::Span => size_of::<skewer_storage::model::Span>(),
            Self::LogRecord => size_of::<skewer_storage::model::LogRecord>(),
            Self::NumberPoint
            | Self::HistogramPoint
            | Self::ExponentialHistogramPoint
            | Self::SummaryPoint => size_of::<skewer_storage::model::MetricPoint>(),
            _ => 0,
        }
    }

    /// Whether a list of these is one the record limits bound (attributes, events, links).
    pub(super) fn is_limited_list(self) -> bool {
        matches!(self, Self::KeyValue | Self::SpanEvent | Self::SpanLink)
    }

    /// The field numbered `number` of this message, as the OTLP `.proto` files define it.
    pub(super) fn field(self, number: u32) -> FieldKind {
        use FieldKind::{Inline, Other, Repeated, RepeatedScalar, RepeatedText, Text};
        use MessageKind as M;
        match (self, number) {
            (M::TraceRequest, 1) => Repeated(M::ResourceSpans),
            (M::LogsRequest, 1) => Repeated(M::ResourceLogs),
            (M::MetricsRequest, 1) => Repeated(M::ResourceMetrics),
            (M::ResourceSpans | M::ResourceLogs | M::ResourceMetrics, 1) => Inline(M::Resource),
            (M::ResourceSpans, 2) => Repeated(M::ScopeSpans),
            (M::ResourceLogs, 2) => Repeated(M::ScopeLogs),
            (M::ResourceMetrics, 2) => Repeated(M::ScopeMetrics),
            (
                M::ResourceSpans
                | M::ResourceLogs
                | M::ResourceMetrics
                | M::ScopeSpans
                | M::ScopeLogs
                | M::ScopeMetrics,
                3,
            ) => Text,
            (M::ScopeSpans | M::ScopeLogs | M::ScopeMetrics, 1) => Inline(M::Scope),
            (M::ScopeSpans, 2) => Repeated(M::Span),
            (M::ScopeLogs, 2) => Repeated(M::LogRecord),
            (M::ScopeMetrics, 2) => Repeated(M::Metric),
            (M::Span, 1..=5) => Text,
            (M::Span, 9) => Repeated(M::KeyValue),
            (M::Span, 11) => Repeated(M::SpanEvent),
            (M::Span, 13) => Repeated(M::SpanLink),
            (M::Span, 15) => Inline(M::SpanStatus),
            (M::SpanEvent, 2) => Text,
            (M::SpanEvent, 3) => Repeated(M::KeyValue),
            (M::SpanLink, 1..=3) => Text,
            (M::SpanLink, 4) => Repeated(M::KeyValue),
            (M::SpanStatus, 2) => Text,
            (M::LogRecord, 3 | 9 | 10 | 12) => Text,
            (M::LogRecord, 5) => Inline(M::AnyValue),
            (M::LogRecord, 6) => Repeated(M::KeyValue),
            (M::Metric, 1..=3) => Text,
            (M::Metric, 5) => Inline(M::Gauge),
            (M::Metric, 7) => Inline(M::Sum),
            (M::Metric, 9) => Inline(M::Histogram),
            (M::Metric, 10) => Inline(M::ExponentialHistogram),
            (M::Metric, 11) => Inline(M::Summary),
            (M::Metric, 12) => Repeated(M::KeyValue),
            (M::Gauge | M::Sum, 1) => Repeated(M::NumberPoint),
            (M::Histogram, 1) => Repeated(M::HistogramPoint),
            (M::ExponentialHistogram, 1) => Repeated(M::ExponentialHistogramPoint),
            (M::Summary, 1) => Repeated(M::SummaryPoint),
            (M::NumberPoint, 7) => Repeated(M::KeyValue),
            (M::NumberPoint, 5) => Repeated(M::Exemplar),
            (M::HistogramPoint, 9) => Repeated(M::KeyValue),
            (M::HistogramPoint, 6 | 7) => RepeatedScalar { varint: false },
            (M::HistogramPoint, 8) => Repeated(M::Exemplar),
            (M::ExponentialHistogramPoint, 1) => Repeated(M::KeyValue),
            (M::ExponentialHistogramPoint, 8 | 9) => Inline(M::ExponentialBuckets),
            (M::ExponentialHistogramPoint, 11) => Repeated(M::Exemplar),
            (M::ExponentialBuckets, 2) => RepeatedScalar { varint: true },
            (M::SummaryPoint, 7) => Repeated(M::KeyValue),
            (M::SummaryPoint, 6) => Repeated(M::Quantile),
            (M::Exemplar, 7) => Repeated(M::KeyValue),
            (M::Exemplar, 4 | 5) => Text,
            (M::Resource, 1) => Repeated(M::KeyValue),
            (M::Resource, 3) => Repeated(M::EntityRef),
            (M::Scope, 1 | 2) => Text,
            (M::Scope, 3) => Repeated(M::KeyValue),
            (M::EntityRef, 1 | 2) => Text,
            (M::EntityRef, 3 | 4) => RepeatedText,
            (M::KeyValue, 1) => Text,
            (M::KeyValue, 2) => Inline(M::AnyValue),
            (M::AnyValue, 1 | 7) => Text,
            (M::AnyValue, 5) => Inline(M::ArrayValue),
            (M::AnyValue, 6) => Inline(M::KeyValueList),
            (M::ArrayValue, 1) => Repeated(M::AnyValue),
            (M::KeyValueList, 1) => Repeated(M::KeyValue),
            _ => Other,
        }
    }
}

/// What an OTLP/JSON key holds, whatever object it is in (the keys whose values cost heap
/// mean the same thing wherever they appear; `values` and `dataPoints` take their largest
/// meaning). Both the lowerCamelCase and the proto field names are known.
pub(super) fn json_field(key: &[u8]) -> FieldKind {
    use FieldKind::{Other, Repeated, RepeatedScalar, RepeatedText};
    use MessageKind as M;
    match key {
        b"resourceSpans" | b"resource_spans" => Repeated(M::ResourceSpans),
        b"scopeSpans" | b"scope_spans" => Repeated(M::ScopeSpans),
        b"spans" => Repeated(M::Span),
        b"events" => Repeated(M::SpanEvent),
        b"links" => Repeated(M::SpanLink),
        b"resourceLogs" | b"resource_logs" => Repeated(M::ResourceLogs),
        b"scopeLogs" | b"scope_logs" => Repeated(M::ScopeLogs),
        b"logRecords" | b"log_records" => Repeated(M::LogRecord),
        b"resourceMetrics" | b"resource_metrics" => Repeated(M::ResourceMetrics),
        b"scopeMetrics" | b"scope_metrics" => Repeated(M::ScopeMetrics),
        b"metrics" => Repeated(M::Metric),
        b"dataPoints" | b"data_points" => Repeated(largest(&[
            M::NumberPoint,
            M::HistogramPoint,
            M::ExponentialHistogramPoint,
            M::SummaryPoint,
        ])),
        b"exemplars" => Repeated(M::Exemplar),
        b"quantileValues" | b"quantile_values" => Repeated(M::Quantile),
        b"attributes" | b"filteredAttributes" | b"filtered_attributes" | b"metadata" => {
            Repeated(M::KeyValue)
        }
        b"values" => Repeated(largest(&[M::KeyValue, M::AnyValue])),
        b"entityRefs" | b"entity_refs" => Repeated(M::EntityRef),
        b"idKeys" | b"id_keys" | b"descriptionKeys" | b"description_keys" => RepeatedText,
        b"bucketCounts" | b"bucket_counts" | b"explicitBounds" | b"explicit_bounds" => {
            RepeatedScalar { varint: false }
        }
        _ => Other,
    }
}

fn largest(kinds: &[MessageKind]) -> MessageKind {
    kinds
        .iter()
        .copied()
        .max_by_key(|kind| kind.decoded_bytes())
        .unwrap_or(MessageKind::KeyValue)
}

/// Slots a `Vec` grown one push at a time holds for `len` elements: Rust's growth starts at
/// four and doubles.
pub(super) fn vec_capacity(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.checked_next_power_of_two().unwrap_or(len).max(4)
    }
}
