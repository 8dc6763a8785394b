//! A tenant's active-series limit applied to an export before it is converted: every data
//! point's series identity (resource, scope, metric name and point attributes for OTLP; the
//! label set for remote write, attribute and label order ignored) is checked against the
//! tenant's [`ActiveSeries`], and the points of new series past the limit are removed from the
//! export, so what the WAL keeps is what was accepted.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::limits::ActiveSeries;
use crate::remote_write::proto::WriteRequest;

/// Removes the points of series `active` refuses; returns how many were removed.
pub fn limit_otlp(
    request: &mut ExportMetricsServiceRequest,
    active: &ActiveSeries,
    now: Instant,
) -> u64 {
    let mut identities = Vec::new();
    for_each_point_attributes(request, |base, attributes| {
        identities.push(combine(base, attributes_hash(attributes)));
    });
    let verdicts = active.admit(&identities, now);
    let refused = verdicts.iter().filter(|kept| !**kept).count() as u64;
    if refused > 0 {
        let mut verdicts = verdicts.into_iter();
        retain_points(request, |_| verdicts.next().unwrap_or(true));
    }
    refused
}

/// Removes the series (with all their samples) `active` refuses; returns how many samples
/// were removed.
pub fn limit_remote_write(request: &mut WriteRequest, active: &ActiveSeries, now: Instant) -> u64 {
    let identities: Vec<u64> = request
        .timeseries
        .iter()
        .map(|series| {
            series.labels.iter().fold(0u64, |sum, label| {
                sum.wrapping_add(hash_of(|h| {
                    label.name.hash(h);
                    label.value.hash(h);
                }))
            })
        })
        .collect();
    let verdicts = active.admit(&identities, now);
    let mut refused = 0;
    let mut verdicts = verdicts.into_iter();
    request.timeseries.retain(|series| {
        let kept = verdicts.next().unwrap_or(true);
        if !kept {
            refused += series.samples.len() as u64;
        }
        kept
    });
    refused
}

/// Calls `visit` with each data point's series base (resource, scope, metric name) and
/// attributes, in export order.
fn for_each_point_attributes(
    request: &ExportMetricsServiceRequest,
    mut visit: impl FnMut(u64, &[KeyValue]),
) {
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map_or(0, |resource| attributes_hash(&resource.attributes));
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_metrics.scope.as_ref().map_or(0, |scope| {
                hash_of(|h| {
                    scope.name.hash(h);
                    scope.version.hash(h);
                })
            });
            for metric in &scope_metrics.metrics {
                let base = combine(combine(resource, scope), hash_of(|h| metric.name.hash(h)));
                match &metric.data {
                    Some(Data::Gauge(gauge)) => {
                        gauge
                            .data_points
                            .iter()
                            .for_each(|p| visit(base, &p.attributes));
                    }
                    Some(Data::Sum(sum)) => {
                        sum.data_points
                            .iter()
                            .for_each(|p| visit(base, &p.attributes));
                    }
                    Some(Data::Histogram(histogram)) => {
                        histogram
                            .data_points
                            .iter()
                            .for_each(|p| visit(base, &p.attributes));
                    }
                    Some(Data::ExponentialHistogram(histogram)) => {
                        histogram
                            .data_points
                            .iter()
                            .for_each(|p| visit(base, &p.attributes));
                    }
                    Some(Data::Summary(summary)) => {
                        summary
                            .data_points
                            .iter()
                            .for_each(|p| visit(base, &p.attributes));
                    }
                    None => {}
                }
            }
        }
    }
}

/// Keeps the data points `keep` says yes to (called once per point, in export order).
fn retain_points(request: &mut ExportMetricsServiceRequest, mut keep: impl FnMut(()) -> bool) {
    for resource_metrics in &mut request.resource_metrics {
        for scope_metrics in &mut resource_metrics.scope_metrics {
            for metric in &mut scope_metrics.metrics {
                match &mut metric.data {
                    Some(Data::Gauge(gauge)) => gauge.data_points.retain(|_| keep(())),
                    Some(Data::Sum(sum)) => sum.data_points.retain(|_| keep(())),
                    Some(Data::Histogram(histogram)) => {
                        histogram.data_points.retain(|_| keep(()));
                    }
                    Some(Data::ExponentialHistogram(histogram)) => {
                        histogram.data_points.retain(|_| keep(()));
                    }
                    Some(Data::Summary(summary)) => summary.data_points.retain(|_| keep(())),
                    None => {}
                }
            }
        }
    }
}

fn hash_of(write: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut hasher = DefaultHasher::new();
    write(&mut hasher);
    hasher.finish()
}

fn combine(a: u64, b: u64) -> u64 {
    hash_of(|h| {
        a.hash(h);
        b.hash(h);
    })
}

/// Attributes in any order hash alike: each pair is hashed alone and the hashes summed.
fn attributes_hash(attributes: &[KeyValue]) -> u64 {
    attributes.iter().fold(0u64, |sum, attribute| {
        sum.wrapping_add(hash_of(|h| {
            attribute.key.hash(h);
            hash_value(attribute.value.as_ref(), h);
        }))
    })
}

fn hash_value(value: Option<&AnyValue>, h: &mut DefaultHasher) {
    match value.and_then(|value| value.value.as_ref()) {
        None => 0u8.hash(h),
        Some(any_value::Value::StringValue(text)) => (1u8, text).hash(h),
        Some(any_value::Value::BoolValue(flag)) => (2u8, flag).hash(h),
        Some(any_value::Value::IntValue(number)) => (3u8, number).hash(h),
        Some(any_value::Value::DoubleValue(number)) => (4u8, number.to_bits()).hash(h),
        Some(any_value::Value::BytesValue(bytes)) => (5u8, bytes).hash(h),
        Some(any_value::Value::ArrayValue(array)) => {
            6u8.hash(h);
            for value in &array.values {
                hash_value(Some(value), h);
            }
        }
        Some(any_value::Value::KvlistValue(list)) => (7u8, attributes_hash(&list.values)).hash(h),
        Some(any_value::Value::StringValueStrindex(index)) => (8u8, index).hash(h),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    use super::*;

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn gauge(points: Vec<Vec<KeyValue>>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "g".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: points
                                .into_iter()
                                .map(|attributes| NumberDataPoint {
                                    attributes,
                                    ..NumberDataPoint::default()
                                })
                                .collect(),
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    fn points(request: &ExportMetricsServiceRequest) -> Vec<Vec<KeyValue>> {
        match &request.resource_metrics[0].scope_metrics[0].metrics[0].data {
            Some(Data::Gauge(gauge)) => gauge
                .data_points
                .iter()
                .map(|p| p.attributes.clone())
                .collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn points_of_new_series_past_the_limit_leave_the_export_and_known_ones_stay() {
        let now = Instant::now();
        let active = ActiveSeries::new("t".parse().unwrap(), 2, now);
        let (a, b, c) = (
            vec![attribute("k", "a"), attribute("x", "1")],
            vec![attribute("k", "b")],
            vec![attribute("k", "c")],
        );
        let mut first = gauge(vec![a.clone(), b.clone(), c.clone(), a.clone()]);
        assert_eq!(limit_otlp(&mut first, &active, now), 1);
        assert_eq!(points(&first), [a.clone(), b.clone(), a.clone()]);
        // The same series with its attributes in another order is the same series.
        let a_reordered = vec![attribute("x", "1"), attribute("k", "a")];
        let mut second = gauge(vec![c.clone(), a_reordered.clone()]);
        assert_eq!(limit_otlp(&mut second, &active, now), 1);
        assert_eq!(points(&second), [a_reordered]);
    }
}
