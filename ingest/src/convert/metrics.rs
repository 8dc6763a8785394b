//! OTLP metrics to model data points: all five kinds, exemplars kept, malformed points refused.
//!
//! Two decoders feed the same [`PointSink`]: [`convert_metrics`] takes an export decoded by
//! prost ([`crate::metrics_wire`]), and [`super::metrics_walk`] converts one straight from
//! its wire format (the fast path, which hands the rare exports it does not take to the
//! first).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;
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
    let mut out = PointSink::new(series);
    for resource_metrics in request.resource_metrics {
        let resource = convert_resource(resource_metrics.resource, resource_metrics.schema_url);
        for scope_metrics in resource_metrics.scope_metrics {
            let scope = convert_scope(scope_metrics.scope, scope_metrics.schema_url);
            for metric in scope_metrics.metrics {
                out.convert_metric(&resource, &scope, metric)?;
            }
        }
    }
    Ok(out.finish())
}

/// Collects the points of one export.
pub(super) struct PointSink<'a> {
    points: Vec<MetricPoint>,
    rejections: Rejections,
    series: SeriesSession<'a>,
    /// One descriptor per distinct metric of the export, however many `Metric` messages
    /// repeat it.
    descriptors: HashTable<Arc<MetricDescriptor>>,
    hasher: foldhash::fast::RandomState,
}

/// The parts every point kind shares.
pub(super) struct Common<'e, P> {
    /// Each attribute as the request encoded it (see [`metrics_wire`]).
    pub attributes: &'e [P],
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub flags: u32,
    pub exemplars: Vec<OtlpExemplar>,
}

/// A metric's kind, temporality and monotonicity, from its data.
pub(super) type MetricShape = (MetricKind, Temporality, bool);

impl<'a> PointSink<'a> {
    pub(super) fn new(series: &'a SeriesTable) -> Self {
        Self {
            points: Vec::new(),
            rejections: Rejections::default(),
            series: series.session(),
            descriptors: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub(super) fn finish(self) -> Converted<MetricPoint> {
        Converted {
            records: self.points,
            rejections: self.rejections,
        }
    }

    /// Refuses a metric without data.
    pub(super) fn reject_without_data(&mut self, name: &str) {
        self.rejections
            .reject(|| format!("metric {name:?} has no data"));
    }

    /// Refuses a metric without a name, and its points.
    pub(super) fn reject_without_name(&mut self, num_points: usize) {
        self.rejections.reject_many(num_points.max(1) as u64, || {
            "metric without a name".to_owned()
        });
    }

    /// The export's one `Arc` of this descriptor (made on first sight).
    pub(super) fn descriptor(
        &mut self,
        name: &str,
        description: &str,
        unit: &str,
        (kind, temporality, is_monotonic): MetricShape,
    ) -> Arc<MetricDescriptor> {
        let shape = (kind, temporality, is_monotonic);
        let hash = descriptor_hash(&self.hasher, name, description, unit, shape);
        let same = |known: &Arc<MetricDescriptor>| {
            known.kind == kind
                && known.temporality == temporality
                && known.is_monotonic == is_monotonic
                && same_text(&known.name, name)
                && same_text(&known.unit, unit)
                && same_text(&known.description, description)
        };
        if let Some(known) = self.descriptors.find(hash, same) {
            return Arc::clone(known);
        }
        let descriptor = Arc::new(MetricDescriptor {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            kind,
            temporality,
            is_monotonic,
        });
        let hasher = &self.hasher;
        self.descriptors
            .insert_unique(hash, Arc::clone(&descriptor), |known| {
                let shape = (known.kind, known.temporality, known.is_monotonic);
                descriptor_hash(hasher, &known.name, &known.description, &known.unit, shape)
            });
        descriptor
    }

    /// Converts one prost-decoded metric's points.
    fn convert_metric(
        &mut self,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        metric: metrics_wire::Metric,
    ) -> Result<(), prost::DecodeError> {
        metrics_wire::decode_attributes(&metric.metadata)?;
        let Some(data) = metric.data else {
            self.reject_without_data(&metric.name);
            return Ok(());
        };
        if metric.name.is_empty() {
            check_point_attributes(&data)?;
            self.reject_without_name(data_point_count(&data));
            return Ok(());
        }
        let shape = match &data {
            MetricData::Gauge(_) => (MetricKind::Gauge, Temporality::Unspecified, false),
            MetricData::Sum(sum) => sum_shape(sum.aggregation_temporality, sum.is_monotonic),
            MetricData::Histogram(histogram) => {
                histogram_shape(MetricKind::Histogram, histogram.aggregation_temporality)
            }
            MetricData::ExponentialHistogram(histogram) => histogram_shape(
                MetricKind::ExponentialHistogram,
                histogram.aggregation_temporality,
            ),
            MetricData::Summary(_) => (MetricKind::Summary, Temporality::Unspecified, false),
        };
        let descriptor = self.descriptor(&metric.name, &metric.description, &metric.unit, shape);
        let parts = (resource, scope, &descriptor);
        match data {
            MetricData::Gauge(metrics_wire::Gauge { data_points })
            | MetricData::Sum(metrics_wire::Sum { data_points, .. }) => {
                for point in data_points {
                    let common = Common {
                        attributes: &point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(parts, common, Ok(number_point(point.value)))?;
                }
            }
            MetricData::Histogram(histogram) => {
                for point in histogram.data_points {
                    let common = Common {
                        attributes: &point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    let value = histogram_point(
                        &descriptor.name,
                        point.count,
                        point.sum,
                        point.min,
                        point.max,
                        point.explicit_bounds,
                        point.bucket_counts,
                    );
                    self.push(parts, common, value)?;
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
                        attributes: &point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: point.exemplars,
                    };
                    self.push(parts, common, Ok(value))?;
                }
            }
            MetricData::Summary(summary) => {
                for point in summary.data_points {
                    let value = summary_point(point.count, point.sum, point.quantile_values);
                    let common = Common {
                        attributes: &point.attributes,
                        start_time_unix_nano: point.start_time_unix_nano,
                        time_unix_nano: point.time_unix_nano,
                        flags: point.flags,
                        exemplars: Vec::new(),
                    };
                    self.push(parts, common, Ok(value))?;
                }
            }
        }
        Ok(())
    }

    /// Adds a point of the group `(resource, scope, descriptor)`, or counts it refused when
    /// its value or an exemplar is; fails (the export is malformed) when its attributes,
    /// decoded, are no `KeyValue`s.
    pub(super) fn push<P: AsRef<[u8]>>(
        &mut self,
        (resource, scope, descriptor): PointGroup<'_>,
        common: Common<'_, P>,
        value: Result<PointValue, String>,
    ) -> Result<(), prost::DecodeError> {
        let encoded = common.attributes;
        let value = match value {
            Ok(value) => value,
            Err(reason) => {
                metrics_wire::decode_attributes(encoded)?;
                self.rejections.reject(|| reason);
                return Ok(());
            }
        };
        let exemplars = match common.exemplars.into_iter().map(convert_exemplar).collect() {
            Ok(exemplars) => exemplars,
            Err(reason) => {
                metrics_wire::decode_attributes(encoded)?;
                self.rejections
                    .reject(|| format!("metric {:?}: exemplar {reason}", descriptor.name));
                return Ok(());
            }
        };
        let series =
            self.series
                .series_by_encoding(resource, scope, descriptor, encoded, || {
                    metrics_wire::decode_attributes(encoded).map(convert_attributes)
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

/// The parts a point shares with its export group: resource, scope and descriptor.
pub(super) type PointGroup<'g> = (
    &'g Arc<Resource>,
    &'g Arc<InstrumentationScope>,
    &'g Arc<MetricDescriptor>,
);

/// A sum's shape.
pub(super) fn sum_shape(aggregation_temporality: i32, is_monotonic: bool) -> MetricShape {
    (
        MetricKind::Sum,
        Temporality::from_number(aggregation_temporality),
        is_monotonic,
    )
}

/// A histogram's (explicit or exponential) shape.
pub(super) fn histogram_shape(kind: MetricKind, aggregation_temporality: i32) -> MetricShape {
    (
        kind,
        Temporality::from_number(aggregation_temporality),
        false,
    )
}

/// A number point's value; one without a value (OTLP's "no recorded value" staleness
/// marker) is kept as NaN.
pub(super) fn number_point(value: Option<metrics_wire::NumberValue>) -> PointValue {
    let value = match value {
        Some(metrics_wire::NumberValue::AsInt(value)) => NumberValue::Int(value),
        Some(metrics_wire::NumberValue::AsDouble(value)) => NumberValue::Double(value),
        None => NumberValue::Double(f64::NAN),
    };
    PointValue::Number { value }
}

/// A histogram point's value, refused when its counts do not fit its bounds.
pub(super) fn histogram_point(
    name: &str,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    explicit_bounds: Vec<f64>,
    bucket_counts: Vec<u64>,
) -> Result<PointValue, String> {
    if !bucket_counts.is_empty() && bucket_counts.len() != explicit_bounds.len() + 1 {
        return Err(format!(
            "histogram {name:?}: {} bucket counts for {} bounds",
            bucket_counts.len(),
            explicit_bounds.len()
        ));
    }
    Ok(PointValue::Histogram {
        count,
        sum,
        min,
        max,
        explicit_bounds,
        bucket_counts,
    })
}

/// A summary point's value.
pub(super) fn summary_point(
    count: u64,
    sum: f64,
    quantiles: Vec<opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile>,
) -> PointValue {
    PointValue::Summary {
        count,
        sum,
        quantiles: quantiles
            .into_iter()
            .map(|q| Quantile {
                quantile: q.quantile,
                value: q.value,
            })
            .collect(),
    }
}

/// Whether two strings are equal, compared inline: names and units are short, and a call to
/// the C library's `memcmp` per string cost more than the comparison (3% of ingest CPU for
/// one descriptor lookup per metric).
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut left, mut right) = (a.chunks_exact(8), b.chunks_exact(8));
    let words_equal = (&mut left)
        .zip(&mut right)
        .all(|(x, y)| u64::from_ne_bytes(word(x)) == u64::from_ne_bytes(word(y)));
    words_equal
        && left
            .remainder()
            .iter()
            .zip(right.remainder())
            .all(|(x, y)| x == y)
}

/// Eight bytes of a chunk of eight.
#[inline]
fn word(chunk: &[u8]) -> [u8; 8] {
    let mut word = [0; 8];
    word.copy_from_slice(chunk);
    word
}

/// The hash [`PointSink::descriptor`] finds a descriptor by.
fn descriptor_hash(
    hasher: &foldhash::fast::RandomState,
    name: &str,
    description: &str,
    unit: &str,
    (kind, temporality, is_monotonic): MetricShape,
) -> u64 {
    let mut state = hasher.build_hasher();
    name.hash(&mut state);
    description.hash(&mut state);
    unit.hash(&mut state);
    state.write_u8(kind as u8);
    state.write_u8(temporality as u8);
    state.write_u8(u8::from(is_monotonic));
    state.finish()
}

pub(super) fn buckets(buckets: Option<Buckets>) -> ExponentialBuckets {
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

/// Decodes the attributes of every point of `data` (points refused whole).
fn check_point_attributes(data: &MetricData) -> Result<(), prost::DecodeError> {
    let check = metrics_wire::decode_attributes::<Bytes>;
    match data {
        MetricData::Gauge(metrics_wire::Gauge { data_points })
        | MetricData::Sum(metrics_wire::Sum { data_points, .. }) => data_points
            .iter()
            .try_for_each(|point| check(&point.attributes).map(drop)),
        MetricData::Histogram(h) => h
            .data_points
            .iter()
            .try_for_each(|point| check(&point.attributes).map(drop)),
        MetricData::ExponentialHistogram(h) => h
            .data_points
            .iter()
            .try_for_each(|point| check(&point.attributes).map(drop)),
        MetricData::Summary(s) => s
            .data_points
            .iter()
            .try_for_each(|point| check(&point.attributes).map(drop)),
    }
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
    fn texts_compare_by_every_byte() {
        for (a, b) in [
            ("", ""),
            ("http.server.request.count", "http.server.request.count"),
            ("exactly8", "exactly8"),
        ] {
            assert!(same_text(a, b));
        }
        for (a, b) in [
            ("", "a"),
            ("http.server.request.count", "http.server.request.coun7"),
            ("http.server.request.count", "Http.server.request.count"),
            ("http.server.x", "http.server.y"),
            ("exactly8", "exactly9"),
        ] {
            assert!(!same_text(a, b), "{a} {b}");
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
