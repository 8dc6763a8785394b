//! Exemplars as Prometheus serves them (`/api/v1/query_exemplars`): a point's exemplars
//! attached to the Prometheus series that Prometheus attaches them to: a histogram's to the
//! `_bucket` series whose `le` is the first bound at or above the exemplar's value, an
//! exponential histogram's to its `_count`, a counter's or gauge's to its one series. An
//! exemplar's labels are `trace_id` and `span_id` (hex) and its filtered attributes.

use skewer_storage::model::{Exemplar, MetricKind, MetricPoint, PointValue};

use super::labels::{LE_LABEL, attribute_labels, series_labels};
use super::naming::{BUCKET_SUFFIX, COUNT_SUFFIX, family_name};
use crate::promql::{Labels, METRIC_NAME_LABEL, label_float};

/// One exemplar, Prometheus-shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarSample {
    /// `trace_id`, `span_id` and the filtered attributes.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
    /// When it was recorded, Unix ms (fractional).
    pub timestamp_ms: f64,
}

impl ExemplarSample {
    /// The trace it names, if any.
    pub fn trace_id(&self) -> Option<&str> {
        let id = self.labels.get(TRACE_ID_LABEL);
        (!id.is_empty()).then_some(id)
    }
}

/// The label of an exemplar's trace id.
pub const TRACE_ID_LABEL: &str = "trace_id";
/// The label of an exemplar's span id.
pub const SPAN_ID_LABEL: &str = "span_id";

/// The exemplars of `point` (read with its series' attributes), each with the labels of the
/// series it belongs to.
pub fn point_exemplars(point: &MetricPoint) -> Vec<(Labels, ExemplarSample)> {
    if point.exemplars.is_empty() {
        return Vec::new();
    }
    let Some(family) = family_name(&point.series.metric) else {
        return Vec::new();
    };
    let base = series_labels(
        &point.series.resource,
        &point.series.scope,
        &point.series.attributes,
    );
    point
        .exemplars
        .iter()
        .map(|exemplar| {
            let sample = sample(exemplar);
            let mut labels = base.clone();
            match (&point.series.metric.kind, &point.value) {
                (
                    MetricKind::Histogram,
                    PointValue::Histogram {
                        explicit_bounds, ..
                    },
                ) => {
                    let le = explicit_bounds
                        .iter()
                        .find(|bound| sample.value <= **bound)
                        .copied()
                        .unwrap_or(f64::INFINITY);
                    labels.set(METRIC_NAME_LABEL, &format!("{family}{BUCKET_SUFFIX}"));
                    labels.set(LE_LABEL, &label_float(le));
                }
                (MetricKind::ExponentialHistogram, _) => {
                    labels.set(METRIC_NAME_LABEL, &format!("{family}{COUNT_SUFFIX}"));
                }
                _ => labels.set(METRIC_NAME_LABEL, &family),
            }
            (labels, sample)
        })
        .collect()
}

fn sample(exemplar: &Exemplar) -> ExemplarSample {
    let mut pairs = attribute_labels(&exemplar.filtered_attributes);
    if let Some(trace_id) = exemplar.trace_id {
        pairs.push((TRACE_ID_LABEL.to_owned(), trace_id.to_string()));
    }
    if let Some(span_id) = exemplar.span_id {
        pairs.push((SPAN_ID_LABEL.to_owned(), span_id.to_string()));
    }
    ExemplarSample {
        labels: Labels::from_pairs(pairs),
        value: exemplar.value.as_f64(),
        timestamp_ms: exemplar.time_unix_nano as f64 / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{
        Attribute, InstrumentationScope, MetricDescriptor, NumberValue, Resource, SpanId,
        Temporality, TraceId,
    };

    use super::*;

    fn point(kind: MetricKind, value: PointValue, name: &str, unit: &str) -> MetricPoint {
        MetricPoint {
            series: Arc::new(skewer_storage::model::MetricSeries::new(
                Arc::new(Resource {
                    attributes: vec![Attribute::string("service.name", "checkout")],
                    ..Resource::default()
                }),
                Arc::new(InstrumentationScope::default()),
                Arc::new(MetricDescriptor {
                    name: name.to_owned(),
                    description: String::new(),
                    unit: unit.to_owned(),
                    kind,
                    temporality: Temporality::Cumulative,
                    is_monotonic: true,
                }),
                vec![Attribute::string("route", "/pay")],
            )),
            start_time_unix_nano: 0,
            time_unix_nano: 2_000_000,
            flags: 0,
            value,
            exemplars: vec![Exemplar {
                time_unix_nano: 1_500_000,
                value: NumberValue::Double(0.3),
                filtered_attributes: vec![Attribute::string("user", "u1")],
                trace_id: Some(TraceId([1; 16])),
                span_id: Some(SpanId([2; 8])),
            }],
        }
    }

    #[test]
    fn histogram_exemplars_go_to_their_bucket() {
        let histogram = point(
            MetricKind::Histogram,
            PointValue::Histogram {
                count: 1,
                sum: Some(0.3),
                min: None,
                max: None,
                explicit_bounds: vec![0.1, 0.5, 1.0],
                bucket_counts: vec![0, 1, 0, 0],
            },
            "http.server.request.duration",
            "s",
        );
        let [(labels, sample)] = &point_exemplars(&histogram)[..] else {
            panic!("one exemplar")
        };
        assert_eq!(
            labels.metric_name(),
            "http_server_request_duration_seconds_bucket"
        );
        assert_eq!(labels.get("le"), "0.5");
        assert_eq!(labels.get("job"), "checkout");
        assert_eq!(labels.get("route"), "/pay");
        assert_eq!(sample.trace_id(), Some("01010101010101010101010101010101"));
        assert_eq!(sample.labels.get("span_id"), "0202020202020202");
        assert_eq!(sample.labels.get("user"), "u1");
        assert_eq!(sample.value, 0.3);
        assert_eq!(sample.timestamp_ms, 1.5);
    }

    #[test]
    fn counter_exemplars_go_to_the_counter() {
        let counter = point(
            MetricKind::Sum,
            PointValue::Number {
                value: NumberValue::Int(3),
            },
            "shop.orders",
            "{order}",
        );
        let exemplars = point_exemplars(&counter);
        assert_eq!(exemplars[0].0.metric_name(), "shop_orders_total");
    }
}
