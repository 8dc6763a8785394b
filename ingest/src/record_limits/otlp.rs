//! Applying [`RecordLimits`] to decoded OTLP exports in place: every attribute list, every
//! span's events and links, every attribute value and log body.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::RecordLimits;

/// What the limits dropped or cut in one export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitedCounts {
    /// Attributes dropped past `max_attributes`.
    pub attributes: u64,
    /// Span events dropped past `max_events_per_span`.
    pub events: u64,
    /// Span links dropped past `max_links_per_span`.
    pub links: u64,
    /// Values cut: strings and bytes shortened, arrays and lists shortened or emptied.
    pub values: u64,
}

impl LimitedCounts {
    /// Whether anything was dropped or cut (then the export changed).
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// Adds what another pass over the same export dropped or cut.
    pub fn add(&mut self, other: LimitedCounts) {
        self.attributes += other.attributes;
        self.events += other.events;
        self.links += other.links;
        self.values += other.values;
    }
}

/// How a value may be cut: attribute values have a byte limit, log bodies do not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueRole {
    Attribute,
    Body,
}

impl RecordLimits {
    /// Limits a trace export in place.
    pub fn traces(&self, request: &mut ExportTraceServiceRequest) -> LimitedCounts {
        let mut counts = LimitedCounts::default();
        for resource_spans in &mut request.resource_spans {
            self.resource(resource_spans.resource.as_mut(), &mut counts);
            for scope_spans in &mut resource_spans.scope_spans {
                self.scope(scope_spans.scope.as_mut(), &mut counts);
                for span in &mut scope_spans.spans {
                    span.dropped_attributes_count +=
                        self.attributes(&mut span.attributes, &mut counts);
                    span.dropped_events_count += cut(
                        &mut span.events,
                        self.max_events_per_span,
                        &mut counts.events,
                    );
                    span.dropped_links_count +=
                        cut(&mut span.links, self.max_links_per_span, &mut counts.links);
                    for event in &mut span.events {
                        event.dropped_attributes_count +=
                            self.attributes(&mut event.attributes, &mut counts);
                    }
                    for link in &mut span.links {
                        link.dropped_attributes_count +=
                            self.attributes(&mut link.attributes, &mut counts);
                    }
                }
            }
        }
        counts
    }

    /// Limits a logs export in place (bodies keep their length, not their nesting).
    pub fn logs(&self, request: &mut ExportLogsServiceRequest) -> LimitedCounts {
        let mut counts = LimitedCounts::default();
        for resource_logs in &mut request.resource_logs {
            self.resource(resource_logs.resource.as_mut(), &mut counts);
            for scope_logs in &mut resource_logs.scope_logs {
                self.scope(scope_logs.scope.as_mut(), &mut counts);
                for record in &mut scope_logs.log_records {
                    record.dropped_attributes_count +=
                        self.attributes(&mut record.attributes, &mut counts);
                    if let Some(body) = record.body.as_mut() {
                        self.value(body, 1, ValueRole::Body, &mut counts);
                    }
                }
            }
        }
        counts
    }

    /// Limits a metrics export in place. Data points have no dropped-attributes count: what
    /// is dropped there shows only in `/metrics`.
    pub fn metrics(&self, request: &mut ExportMetricsServiceRequest) -> LimitedCounts {
        let mut counts = LimitedCounts::default();
        for resource_metrics in &mut request.resource_metrics {
            self.resource(resource_metrics.resource.as_mut(), &mut counts);
            for scope_metrics in &mut resource_metrics.scope_metrics {
                self.scope(scope_metrics.scope.as_mut(), &mut counts);
                for metric in &mut scope_metrics.metrics {
                    self.metric(metric, &mut counts);
                }
            }
        }
        counts
    }

    fn metric(&self, metric: &mut Metric, counts: &mut LimitedCounts) {
        self.attributes(&mut metric.metadata, counts);
        macro_rules! points {
            ($points:expr, $($exemplars:ident)?) => {
                for point in $points {
                    self.attributes(&mut point.attributes, counts);
                    $(for exemplar in &mut point.$exemplars {
                        self.attributes(&mut exemplar.filtered_attributes, counts);
                    })?
                }
            };
        }
        match metric.data.as_mut() {
            Some(Data::Gauge(gauge)) => points!(&mut gauge.data_points, exemplars),
            Some(Data::Sum(sum)) => points!(&mut sum.data_points, exemplars),
            Some(Data::Histogram(histogram)) => points!(&mut histogram.data_points, exemplars),
            Some(Data::ExponentialHistogram(histogram)) => {
                points!(&mut histogram.data_points, exemplars)
            }
            Some(Data::Summary(summary)) => points!(&mut summary.data_points,),
            None => {}
        }
    }

    fn resource(&self, resource: Option<&mut Resource>, counts: &mut LimitedCounts) {
        if let Some(resource) = resource {
            resource.dropped_attributes_count += self.attributes(&mut resource.attributes, counts);
        }
    }

    fn scope(&self, scope: Option<&mut InstrumentationScope>, counts: &mut LimitedCounts) {
        if let Some(scope) = scope {
            scope.dropped_attributes_count += self.attributes(&mut scope.attributes, counts);
        }
    }

    /// Keeps the first `max_attributes` and limits their values; returns how many were dropped.
    fn attributes(&self, attributes: &mut Vec<KeyValue>, counts: &mut LimitedCounts) -> u32 {
        let dropped = cut(attributes, self.max_attributes, &mut counts.attributes);
        for attribute in attributes.iter_mut() {
            if let Some(value) = attribute.value.as_mut() {
                self.value(value, 1, ValueRole::Attribute, counts);
            }
        }
        dropped
    }

    /// Cuts a value at `depth` (a top-level value is depth 1).
    fn value(
        &self,
        value: &mut AnyValue,
        depth: usize,
        role: ValueRole,
        counts: &mut LimitedCounts,
    ) {
        let max_bytes = self.max_attribute_value_bytes;
        match value.value.as_mut() {
            Some(Value::StringValue(text))
                if role == ValueRole::Attribute && text.len() > max_bytes =>
            {
                text.truncate(char_boundary_at_or_below(text, max_bytes));
                counts.values += 1;
            }
            Some(Value::BytesValue(bytes))
                if role == ValueRole::Attribute && bytes.len() > max_bytes =>
            {
                bytes.truncate(max_bytes);
                counts.values += 1;
            }
            Some(Value::ArrayValue(array)) => {
                if !self.container(&mut array.values, depth, counts) {
                    return;
                }
                for item in &mut array.values {
                    self.value(item, depth + 1, role, counts);
                }
            }
            Some(Value::KvlistValue(list)) => {
                if !self.container(&mut list.values, depth, counts) {
                    return;
                }
                for entry in &mut list.values {
                    if let Some(value) = entry.value.as_mut() {
                        self.value(value, depth + 1, role, counts);
                    }
                }
            }
            _ => {}
        }
    }
}

impl RecordLimits {
    /// Bounds an array or key-value list value at `depth`: emptied at the depth limit (then
    /// false: nothing left to look into), else cut to `max_value_elements`.
    fn container<T>(
        &self,
        elements: &mut Vec<T>,
        depth: usize,
        counts: &mut LimitedCounts,
    ) -> bool {
        if depth >= self.max_value_depth {
            if !elements.is_empty() {
                elements.clear();
                counts.values += 1;
            }
            return false;
        }
        cut(elements, self.max_value_elements, &mut counts.values);
        true
    }
}

/// Keeps the first `max` items; adds what was dropped to `counted` and returns it (saturated
/// to the width of OTLP's dropped counts).
fn cut<T>(items: &mut Vec<T>, max: usize, counted: &mut u64) -> u32 {
    if items.len() <= max {
        return 0;
    }
    let dropped = items.len() - max;
    items.truncate(max);
    items.shrink_to_fit();
    *counted += dropped as u64;
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// The largest index at or below `max` that starts a character of `text`.
pub(super) fn char_boundary_at_or_below(text: &str, max: usize) -> usize {
    let mut index = max.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    fn limits() -> RecordLimits {
        RecordLimits {
            max_attributes: 3,
            max_events_per_span: 2,
            max_links_per_span: 1,
            max_attribute_value_bytes: 5,
            max_value_depth: 2,
            max_value_elements: 2,
        }
    }

    fn spans(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: (0..5).map(|i| text(&format!("r{i}"), "v")).collect(),
                    dropped_attributes_count: 1,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn spans_keep_the_first_items_and_count_the_rest_on_top_of_what_the_sdk_dropped() {
        let mut request = spans(Span {
            attributes: (0..10).map(|i| text(&format!("a{i}"), "v")).collect(),
            dropped_attributes_count: 2,
            events: (0..4)
                .map(|i| Event {
                    name: format!("e{i}"),
                    attributes: (0..4).map(|i| text(&format!("e{i}"), "v")).collect(),
                    ..Default::default()
                })
                .collect(),
            links: vec![Link::default(), Link::default()],
            ..Default::default()
        });
        let counts = limits().traces(&mut request);
        assert_eq!(
            counts,
            LimitedCounts {
                attributes: 2 + 7 + 1 + 1,
                events: 2,
                links: 1,
                values: 0
            }
        );
        let resource = request.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 3);
        assert_eq!(resource.dropped_attributes_count, 1 + 2);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["a0", "a1", "a2"], "the first ones stay, in order");
        assert_eq!(span.dropped_attributes_count, 2 + 7);
        assert_eq!((span.events.len(), span.dropped_events_count), (2, 2));
        assert_eq!((span.links.len(), span.dropped_links_count), (1, 1));
        assert_eq!(span.events[1].dropped_attributes_count, 1);
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_nesting_is_bounded() {
        let nested = |depth: usize| {
            let mut value = AnyValue {
                value: Some(Value::StringValue("leaf".into())),
            };
            for _ in 0..depth {
                value = AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue {
                        values: vec![value.clone(), value.clone(), value],
                    })),
                };
            }
            value
        };
        let mut request = spans(Span {
            attributes: vec![
                text("long", "abcdéfgh"),
                KeyValue {
                    key: "deep".into(),
                    value: Some(nested(3)),
                    ..Default::default()
                },
                KeyValue {
                    key: "list".into(),
                    value: Some(AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![text("k", "0123456789")],
                        })),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let counts = limits().traces(&mut request);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        let value = |i: usize| span.attributes[i].value.clone().unwrap().value.unwrap();
        // "abcdé" is six bytes: the cut falls before the é.
        assert_eq!(value(0), Value::StringValue("abcd".into()));
        let Value::ArrayValue(top) = value(1) else {
            panic!("array")
        };
        assert_eq!(top.values.len(), 2, "elements past the limit dropped");
        for second in &top.values {
            let Some(Value::ArrayValue(second)) = &second.value else {
                panic!("array")
            };
            assert!(second.values.is_empty(), "emptied at the depth limit");
        }
        let Value::KvlistValue(list) = value(2) else {
            panic!("list")
        };
        assert_eq!(
            list.values[0].value.clone().unwrap().value,
            Some(Value::StringValue("01234".into()))
        );
        // "long", the dropped third element, two emptied arrays, the list's string.
        assert_eq!(counts.values, 5);
        assert_eq!(counts.attributes, 2, "only the resource's");
    }

    #[test]
    fn log_bodies_keep_their_length_but_not_their_nesting() {
        let body = "a long log line, longer than five bytes".to_owned();
        let mut request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(Value::StringValue(body.clone())),
                        }),
                        attributes: (0..4).map(|i| text(&format!("a{i}"), "v")).collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let counts = limits().logs(&mut request);
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            record.body.clone().unwrap().value,
            Some(Value::StringValue(body))
        );
        assert_eq!(record.dropped_attributes_count, 1);
        assert_eq!(counts.attributes, 1);
        assert!(counts.any());
        assert!(!RecordLimits::default().logs(&mut request).any());
    }
}
