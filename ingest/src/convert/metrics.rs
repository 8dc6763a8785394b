//! OTLP metrics to model data points: all five kinds, exemplars kept, malformed points refused.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar as OtlpExemplar, exemplar, exponential_histogram_data_point::Buckets,
};
use skewer_storage::model::{
    Exemplar, ExponentialBuckets, InstrumentationScope, MetricDescriptor, MetricKind, MetricPoint,
    NumberValue, PointValue, Quantile, Resource, Temporality,
};

use skewer_storage::metrics::{SeriesSession, SeriesTable};

use super::common::{Converted, Rejections, convert_attributes, convert_resource, convert_scope};
use super::traces::{optional_span_id, optional_trace_id};
use crate::metrics_wire::{self, ExportMetricsRequest, MetricData};

/// Converts an export, keeping valid points and counting the rest; each point's series is
/// looked up in (or added to) `series`, by the bytes of its attributes when the table knows
/// them. Fails (the export is malformed) when a point's attributes, decoded, are no
/// `KeyValue`s.
pub fn convert_metrics(
    request: ExportMetricsRequest,
    series: &SeriesTable,
) -> Result<Converted<MetricPoint>, prost::DecodeError> {
    let mut out = PointSink {
        points: Vec::new(),
        rejections: Rejections::default(),
        series: series.session(),
        descriptors: HashSet::default(),
    };
    for resource_metrics in request.resource_metrics {
        let resource = convert_resource(resource_metrics.resource, resource_metrics.schema_url);
        for scope_metrics in resource_metrics.scope_metrics {
            let scope = convert_scope(scope_metrics.scope, scope_metrics.schema_url);
            for metric in scope_metrics.metrics {
                out.convert_metric(&resource, &scope, metric)?;
            }
        }
    }
    Ok(Converted {
        records: out.points,
        rejections: out.rejections,
    })
}

struct PointSink<'a> {
    points: Vec<MetricPoint>,
    rejections: Rejections,
    series: SeriesSession<'a>,
    /// One descriptor per distinct metric of the export, however many `Metric` messages
    /// repeat it.
    descriptors: HashSet<Arc<MetricDescriptor>, foldhash::fast::RandomState>,
}

/// The parts every point kind shares.
struct Common {
    /// Each attribute as the request encoded it (see [`metrics_wire`]).
    attributes: Vec<Bytes>,
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    flags: u32,
    exemplars: Vec<OtlpExemplar>,
}

impl PointSink<'_> {
    fn convert_metric(
        &mut self,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        mut metric: metrics_wire::Metric,
    ) -> Result<(), prost::DecodeError> {
        let name = metric.name;
        let Some(data) = metric.data else {
            self.rejections
                .reject(|| format!("metric {name:?} has no data"));
            return Ok(());
        };
        if name.is_empty() {
            let count = data_point_count(&data).max(1);
            for _ in 0..count {
                self.rejections
                    .reject(|| "metric without a name".to_owned());
            }
            return Ok(());
        }
        let (kind, temporality, is_monotonic) = match &data {
            MetricData::Gauge(_) => (MetricKind::Gauge, Temporality::Unspecified, false),
            MetricData::Sum(sum) => (
                MetricKind::Sum,
                Temporality::from_number(sum.aggregation_temporality),
                sum.is_monotonic,
            ),
            MetricData::Histogram(histogram) => (
                MetricKind::Histogram,
                Temporality::from_number(histogram.aggregation_temporality),
                false,
            ),
            MetricData::ExponentialHistogram(histogram) => (
                MetricKind::ExponentialHistogram,
                Temporality::from_number(histogram.aggregation_temporality),
                false,
            ),
            MetricData::Summary(_) => (MetricKind::Summary, Temporality::Unspecified, false),
        };
        let descriptor = self.descriptor(MetricDescriptor {
            name,
            description: std::mem::take(&mut metric.description),
            unit: std::mem::take(&mut metric.unit),
            kind,
            temporality,
            is_monotonic,
        });
        match data {
            MetricData::Gauge(gauge) => {
                for point in gauge.data_points {
                    let common = Common {
                        attributes: point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(
                        resource,
                        scope,
                        &descriptor,
                        common,
                        Ok(PointValue::Number {
                            value: number_value(point.value),
                        }),
                    )?;
                }
            }
            MetricData::Sum(sum) => {
                for point in sum.data_points {
                    let common = Common {
                        attributes: point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(
                        resource,
                        scope,
                        &descriptor,
                        common,
                        Ok(PointValue::Number {
                            value: number_value(point.value),
                        }),
                    )?;
                }
            }
            MetricData::Histogram(histogram) => {
                for point in histogram.data_points {
                    let consistent = point.bucket_counts.is_empty()
                        || point.bucket_counts.len() == point.explicit_bounds.len() + 1;
                    let value = if consistent {
                        Ok(PointValue::Histogram {
                            count: point.count,
                            sum: point.sum,
                            min: point.min,
                            max: point.max,
                            explicit_bounds: point.explicit_bounds,
                            bucket_counts: point.bucket_counts,
                        })
                    } else {
                        Err(format!(
                            "histogram {:?}: {} bucket counts for {} bounds",
                            descriptor.name,
                            point.bucket_counts.len(),
                            point.explicit_bounds.len()
                        ))
                    };
                    let common = Common {
                        attributes: point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(resource, scope, &descriptor, common, value)?;
                }
            }
            MetricData::ExponentialHistogram(histogram) => {
                for point in histogram.data_points {
                    let value = PointValue::ExponentialHistogram {
                        count: point.count,
                        sum: point.sum,
                        min: point.min,
                        max: point.max,
                        scale: point.scale,
                        zero_count: point.zero_count,
                        zero_threshold: point.zero_threshold,
                        positive: buckets(point.positive),
                        negative: buckets(point.negative),
                    };
                    let common = Common {
                        attributes: point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(resource, scope, &descriptor, common, Ok(value))?;
                }
            }
            MetricData::Summary(summary) => {
                for point in summary.data_points {
                    let value = PointValue::Summary {
                        count: point.count,
                        sum: point.sum,
                        quantiles: point
                            .quantile_values
                            .into_iter()
                            .map(|q| Quantile {
                                quantile: q.quantile,
                                value: q.value,
                            })
                            .collect(),
                    };
                    let common = Common {
                        attributes: point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: Vec::new(),
                    };
                    self.push(resource, scope, &descriptor, common, Ok(value))?;
                }
            }
        }
        Ok(())
    }

    /// The export's one `Arc` of a descriptor equal to `descriptor`.
    fn descriptor(&mut self, descriptor: MetricDescriptor) -> Arc<MetricDescriptor> {
        match self.descriptors.get(&descriptor) {
            Some(known) => Arc::clone(known),
            None => {
                let descriptor = Arc::new(descriptor);
                self.descriptors.insert(Arc::clone(&descriptor));
                descriptor
            }
        }
    }

    fn push(
        &mut self,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        descriptor: &Arc<MetricDescriptor>,
        common: Common,
        value: Result<PointValue, String>,
    ) -> Result<(), prost::DecodeError> {
        let value = match value {
            Ok(value) => value,
            Err(reason) => {
                self.rejections.reject(|| reason);
                return Ok(());
            }
        };
        let exemplars = match common.exemplars.into_iter().map(convert_exemplar).collect() {
            Ok(exemplars) => exemplars,
            Err(reason) => {
                self.rejections
                    .reject(|| format!("metric {:?}: exemplar {reason}", descriptor.name));
                return Ok(());
            }
        };
        let encoded = common.attributes;
        let series =
            self.series
                .series_by_encoding(resource, scope, descriptor, &encoded, || {
                    metrics_wire::decode_attributes(&encoded).map(convert_attributes)
                })?;
        self.points.push(MetricPoint {
            series,
            start_time_unix_nano: common.start_time_unix_nano,
            time_unix_nano: common.time_unix_nano,
            flags: common.flags,
            value,
            exemplars,
        });
        Ok(())
    }
}

/// A number point without a value (OTLP's "no recorded value" staleness marker) is kept as NaN.
fn number_value(value: Option<metrics_wire::NumberValue>) -> NumberValue {
    match value {
        Some(metrics_wire::NumberValue::AsInt(value)) => NumberValue::Int(value),
        Some(metrics_wire::NumberValue::AsDouble(value)) => NumberValue::Double(value),
        None => NumberValue::Double(f64::NAN),
    }
}

fn buckets(buckets: Option<Buckets>) -> ExponentialBuckets {
    let buckets = buckets.unwrap_or_default();
    ExponentialBuckets {
        offset: buckets.offset,
        bucket_counts: buckets.bucket_counts,
    }
}

fn convert_exemplar(exemplar: OtlpExemplar) -> Result<Exemplar, String> {
    let value = match exemplar.value {
        Some(exemplar::Value::AsInt(value)) => NumberValue::Int(value),
        Some(exemplar::Value::AsDouble(value)) => NumberValue::Double(value),
        None => NumberValue::Double(f64::NAN),
    };
    Ok(Exemplar {
        time_unix_nano: exemplar.time_unix_nano,
        value,
        filtered_attributes: convert_attributes(exemplar.filtered_attributes),
        trace_id: optional_trace_id(&exemplar.trace_id).map_err(|e| e.to_string())?,
        span_id: optional_span_id(&exemplar.span_id).map_err(|e| e.to_string())?,
    })
}

fn data_point_count(data: &MetricData) -> usize {
    match data {
        MetricData::Gauge(g) => g.data_points.len(),
        MetricData::Sum(s) => s.data_points.len(),
        MetricData::Histogram(h) => h.data_points.len(),
        MetricData::ExponentialHistogram(h) => h.data_points.len(),
        MetricData::Summary(s) => s.data_points.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, metric, number_data_point,
    };
    use prost::Message;

    /// Converts `request` as it arrives: encoded.
    fn convert(
        request: ExportMetricsServiceRequest,
        table: &SeriesTable,
    ) -> Converted<MetricPoint> {
        let body = Bytes::from(request.encode_to_vec());
        convert_metrics(ExportMetricsRequest::decode(body).unwrap(), table).unwrap()
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    #[test]
    fn gauge_and_histogram_points_convert_and_bad_ones_are_counted() {
        let gauge = Metric {
            name: "temperature".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 7,
                    value: Some(number_data_point::Value::AsInt(21)),
                    ..NumberDataPoint::default()
                }],
            })),
            ..Metric::default()
        };
        let histogram = Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                aggregation_temporality: 2,
                data_points: vec![
                    HistogramDataPoint {
                        count: 3,
                        explicit_bounds: vec![1.0],
                        bucket_counts: vec![1, 2],
                        ..HistogramDataPoint::default()
                    },
                    HistogramDataPoint {
                        explicit_bounds: vec![1.0, 2.0],
                        bucket_counts: vec![1],
                        ..HistogramDataPoint::default()
                    },
                ],
            })),
            ..Metric::default()
        };
        let converted = convert(request(vec![gauge, histogram]), &SeriesTable::default());
        assert_eq!(converted.records.len(), 2);
        assert_eq!(converted.rejections.count, 1);
        assert_eq!(
            converted.records[0].value,
            PointValue::Number {
                value: NumberValue::Int(21)
            }
        );
        assert_eq!(
            converted.records[1].series.metric.temporality,
            Temporality::Cumulative
        );
    }

    #[test]
    fn repeated_metrics_share_a_descriptor_and_exports_share_series() {
        let table = SeriesTable::default();
        let gauge = |value| Metric {
            name: "temperature".into(),
            unit: "Cel".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 7,
                    value: Some(number_data_point::Value::AsInt(value)),
                    ..NumberDataPoint::default()
                }],
            })),
            ..Metric::default()
        };
        let first = convert(request(vec![gauge(1), gauge(2)]), &table).records;
        assert!(Arc::ptr_eq(
            &first[0].series.metric,
            &first[1].series.metric
        ));
        assert!(Arc::ptr_eq(&first[0].series, &first[1].series));
        let second = convert(request(vec![gauge(3)]), &table).records;
        assert!(Arc::ptr_eq(&first[0].series, &second[0].series));
        assert_eq!(
            second[0].value,
            PointValue::Number {
                value: NumberValue::Int(3)
            }
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn resources_of_one_export_keep_their_own_series_once_the_table_knows_them() {
        let table = SeriesTable::default();
        let export = || {
            let resource_metrics = |service: &str| {
                ResourceMetrics {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                        key: "service.name".into(),
                        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                            value: Some(
                                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                    service.into(),
                                ),
                            ),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: request(vec![Metric {
                    name: "up".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(number_data_point::Value::AsInt(1)),
                            ..NumberDataPoint::default()
                        }],
                    })),
                    ..Metric::default()
                }])
                .resource_metrics
                .remove(0)
                .scope_metrics,
                ..ResourceMetrics::default()
            }
            };
            ExportMetricsServiceRequest {
                resource_metrics: ["cart", "shop", "cart", "shop"]
                    .into_iter()
                    .map(resource_metrics)
                    .collect(),
            }
        };
        for _ in 0..3 {
            let points = convert(export(), &table).records;
            let services: Vec<&str> = points
                .iter()
                .map(|point| point.series.resource.service_name())
                .collect();
            assert_eq!(services, ["cart", "shop", "cart", "shop"]);
        }
        assert_eq!(table.len(), 2);
    }
}
