//! OTLP metrics converted straight from their wire format: the fast path of metric ingest.
//!
//! Decoding an export into messages first (even [`crate::metrics_wire`]'s, whose attributes
//! stay bytes) allocates every metric, point list and name, only to drop them once converted.
//! This walks the protobuf instead, field by field, and hands each point to the same
//! [`PointSink`] as the decoded path: names are borrowed from the body, attributes are slices
//! of it looked up by their bytes, and only what a point keeps (bucket lists, exemplars) or
//! what a group shares (resource, scope) is decoded, by prost.
//!
//! It takes every export the way prost reads it, or none: an export it does not convert
//! exactly ([`Unwalked`]: a singular message sent twice, which protobuf merges; a metric
//! without a name or data, whose points are refused; anything malformed) is converted by the
//! decoded path instead, which gives the definitive answer or error.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope as OtlpScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar as OtlpExemplar, exponential_histogram_data_point::Buckets,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message;
use skewer_storage::metrics::SeriesTable;
use skewer_storage::model::{
    InstrumentationScope, MetricKind, MetricPoint, PointValue, Resource, Temporality,
};

use super::common::{Converted, convert_resource, convert_scope};
use super::metrics::{
    Common, MetricShape, PointGroup, PointSink, buckets, histogram_point, histogram_shape,
    number_point, sum_shape, summary_point,
};
use crate::decoded_size::{read_varint, take, take_delimited};
use crate::metrics_wire::NumberValue;

/// An export this walk does not convert (see the module docs): decode it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwalked;

type Walk<T = ()> = Result<T, Unwalked>;

impl From<crate::decoded_size::WireError> for Unwalked {
    fn from(_: crate::decoded_size::WireError) -> Self {
        Unwalked
    }
}

impl From<prost::DecodeError> for Unwalked {
    fn from(_: prost::DecodeError) -> Self {
        Unwalked
    }
}

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// One field's value, by wire type.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Delimited(&'a [u8]),
    Fixed32,
}

/// Calls `visit` with each field of the message `body`, in order.
fn for_each_field<'a>(mut body: &'a [u8], mut visit: impl FnMut(u32, Value<'a>) -> Walk) -> Walk {
    while !body.is_empty() {
        let key = read_varint(&mut body)?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(Unwalked);
        }
        let value = match key & 7 {
            0 => Value::Varint(read_varint(&mut body)?),
            1 => Value::Fixed64(take(&mut body, 8)?.try_into().map_err(|_| Unwalked)?),
            2 => Value::Delimited(take_delimited(&mut body)?),
            5 => {
                take(&mut body, 4)?;
                Value::Fixed32
            }
            // Groups: OTLP has none (the decoded-size scan refuses them before this).
            _ => return Err(Unwalked),
        };
        visit(number as u32, value)?;
    }
    Ok(())
}

fn text(bytes: &[u8]) -> Walk<&str> {
    std::str::from_utf8(bytes).map_err(|_| Unwalked)
}

/// Sets a singular message field, refusing a second occurrence (protobuf merges those).
fn set_once<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Walk {
    match slot.replace(value) {
        Some(_) => Err(Unwalked),
        None => Ok(()),
    }
}

fn f64_of(bytes: [u8; 8]) -> f64 {
    f64::from_le_bytes(bytes)
}

/// Appends a repeated 8-byte field, packed or not.
fn push_fixed64<T>(list: &mut Vec<T>, value: Value<'_>, from: fn([u8; 8]) -> T) -> Walk {
    match value {
        Value::Fixed64(bytes) => list.push(from(bytes)),
        Value::Delimited(packed) => {
            let chunks = packed.chunks_exact(8);
            if !chunks.remainder().is_empty() {
                return Err(Unwalked);
            }
            list.extend(chunks.map(|chunk| {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(chunk);
                from(bytes)
            }));
        }
        _ => return Err(Unwalked),
    }
    Ok(())
}

/// Converts a metrics export in protobuf, or says it does not (see the module docs).
pub fn convert_metrics_walked(body: &[u8], series: &SeriesTable) -> Walk<Converted<MetricPoint>> {
    let mut walker = Walker {
        sink: PointSink::new(series),
        attributes: Vec::new(),
    };
    for_each_field(body, |number, value| match (number, value) {
        (1, Value::Delimited(resource_metrics)) => walker.resource_metrics(resource_metrics),
        (1, _) => Err(Unwalked),
        _ => Ok(()),
    })?;
    Ok(walker.sink.finish())
}

struct Walker<'s, 'a> {
    sink: PointSink<'s>,
    /// The attributes of the point being read (reused from point to point).
    attributes: Vec<&'a [u8]>,
}

impl<'a> Walker<'_, 'a> {
    fn resource_metrics(&mut self, body: &'a [u8]) -> Walk {
        let (resource, schema_url) = group_header(body)?;
        let resource = resource.map(OtlpResource::decode).transpose()?;
        let resource = convert_resource(resource, schema_url.to_owned());
        for_each_field(body, |number, value| match (number, value) {
            (2, Value::Delimited(scope_metrics)) => self.scope_metrics(scope_metrics, &resource),
            _ => Ok(()),
        })
    }

    fn scope_metrics(&mut self, body: &'a [u8], resource: &Arc<Resource>) -> Walk {
        let (scope, schema_url) = group_header(body)?;
        let scope = scope.map(OtlpScope::decode).transpose()?;
        let scope = convert_scope(scope, schema_url.to_owned());
        for_each_field(body, |number, value| match (number, value) {
            (2, Value::Delimited(metric)) => self.metric(metric, resource, &scope),
            _ => Ok(()),
        })
    }

    fn metric(
        &mut self,
        body: &'a [u8],
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
    ) -> Walk {
        let (mut name, mut description, mut unit) = ("", "", "");
        let mut data = None;
        let mut data_field = 0;
        for_each_field(body, |number, value| match (number, value) {
            (1, Value::Delimited(bytes)) => {
                name = text(bytes)?;
                Ok(())
            }
            (2, Value::Delimited(bytes)) => {
                description = text(bytes)?;
                Ok(())
            }
            (3, Value::Delimited(bytes)) => {
                unit = text(bytes)?;
                Ok(())
            }
            (5 | 7 | 9 | 10 | 11, Value::Delimited(bytes)) => {
                data_field = number;
                set_once(&mut data, bytes)
            }
            // Metadata: checked, not kept.
            (12, Value::Delimited(bytes)) => {
                KeyValue::decode(bytes).map(drop).map_err(Unwalked::from)
            }
            (1..=3 | 5 | 7 | 9..=12, _) => Err(Unwalked),
            _ => Ok(()),
        })?;
        // Refused whole: the decoded path counts (and checks) their points.
        let Some(data) = data else {
            return Err(Unwalked);
        };
        if name.is_empty() {
            return Err(Unwalked);
        }
        let shape = data_shape(data_field, data)?;
        let descriptor = self.sink.descriptor(name, description, unit, shape);
        let group = (resource, scope, &descriptor);
        for_each_field(data, |number, value| match (number, value) {
            (1, Value::Delimited(point)) => match shape.0 {
                MetricKind::Gauge | MetricKind::Sum => self.number_point(group, point),
                MetricKind::Histogram => self.histogram_point(group, point),
                MetricKind::ExponentialHistogram => self.exponential_point(group, point),
                MetricKind::Summary => self.summary_point(group, point),
            },
            (1, _) => Err(Unwalked),
            _ => Ok(()),
        })
    }

    fn number_point(&mut self, group: PointGroup<'_>, body: &'a [u8]) -> Walk {
        let attributes = &mut self.attributes;
        attributes.clear();
        let (mut start, mut time, mut flags) = (0, 0, 0);
        let mut value = None;
        let mut exemplars = Vec::new();
        for_each_field(body, |number, field| {
            match (number, field) {
                (7, Value::Delimited(bytes)) => attributes.push(bytes),
                (2, Value::Fixed64(bytes)) => start = u64::from_le_bytes(bytes),
                (3, Value::Fixed64(bytes)) => time = u64::from_le_bytes(bytes),
                (4, Value::Fixed64(bytes)) => value = Some(NumberValue::AsDouble(f64_of(bytes))),
                (6, Value::Fixed64(bytes)) => {
                    value = Some(NumberValue::AsInt(i64::from_le_bytes(bytes)))
                }
                (5, Value::Delimited(bytes)) => exemplars.push(OtlpExemplar::decode(bytes)?),
                (8, Value::Varint(bits)) => flags = bits as u32,
                (2..=8, _) => return Err(Unwalked),
                _ => {}
            }
            Ok(())
        })?;
        self.push_point(
            group,
            (start, time, flags),
            exemplars,
            Ok(number_point(value)),
        )
    }

    fn histogram_point(&mut self, group: PointGroup<'_>, body: &'a [u8]) -> Walk {
        let attributes = &mut self.attributes;
        attributes.clear();
        let (mut start, mut time, mut flags, mut count) = (0, 0, 0, 0);
        let (mut sum, mut min, mut max) = (None, None, None);
        let (mut bucket_counts, mut explicit_bounds) = (Vec::new(), Vec::new());
        let mut exemplars = Vec::new();
        for_each_field(body, |number, field| {
            match (number, field) {
                (9, Value::Delimited(bytes)) => attributes.push(bytes),
                (2, Value::Fixed64(bytes)) => start = u64::from_le_bytes(bytes),
                (3, Value::Fixed64(bytes)) => time = u64::from_le_bytes(bytes),
                (4, Value::Fixed64(bytes)) => count = u64::from_le_bytes(bytes),
                (5, Value::Fixed64(bytes)) => sum = Some(f64_of(bytes)),
                (6, field) => push_fixed64(&mut bucket_counts, field, u64::from_le_bytes)?,
                (7, field) => push_fixed64(&mut explicit_bounds, field, f64_of)?,
                (8, Value::Delimited(bytes)) => exemplars.push(OtlpExemplar::decode(bytes)?),
                (10, Value::Varint(bits)) => flags = bits as u32,
                (11, Value::Fixed64(bytes)) => min = Some(f64_of(bytes)),
                (12, Value::Fixed64(bytes)) => max = Some(f64_of(bytes)),
                (2..=12, _) => return Err(Unwalked),
                _ => {}
            }
            Ok(())
        })?;
        let value = histogram_point(
            &group.2.name,
            count,
            sum,
            min,
            max,
            explicit_bounds,
            bucket_counts,
        );
        self.push_point(group, (start, time, flags), exemplars, value)
    }

    fn exponential_point(&mut self, group: PointGroup<'_>, body: &'a [u8]) -> Walk {
        let attributes = &mut self.attributes;
        attributes.clear();
        let (mut start, mut time, mut flags, mut count, mut zero_count) = (0, 0, 0, 0, 0);
        let (mut sum, mut min, mut max) = (None, None, None);
        let (mut scale, mut zero_threshold) = (0, 0.0);
        let (mut positive, mut negative) = (None, None);
        let mut exemplars = Vec::new();
        for_each_field(body, |number, field| {
            match (number, field) {
                (1, Value::Delimited(bytes)) => attributes.push(bytes),
                (2, Value::Fixed64(bytes)) => start = u64::from_le_bytes(bytes),
                (3, Value::Fixed64(bytes)) => time = u64::from_le_bytes(bytes),
                (4, Value::Fixed64(bytes)) => count = u64::from_le_bytes(bytes),
                (5, Value::Fixed64(bytes)) => sum = Some(f64_of(bytes)),
                (6, Value::Varint(bits)) => scale = zigzag32(bits),
                (7, Value::Fixed64(bytes)) => zero_count = u64::from_le_bytes(bytes),
                (8, Value::Delimited(bytes)) => set_once(&mut positive, bytes)?,
                (9, Value::Delimited(bytes)) => set_once(&mut negative, bytes)?,
                (10, Value::Varint(bits)) => flags = bits as u32,
                (11, Value::Delimited(bytes)) => exemplars.push(OtlpExemplar::decode(bytes)?),
                (12, Value::Fixed64(bytes)) => min = Some(f64_of(bytes)),
                (13, Value::Fixed64(bytes)) => max = Some(f64_of(bytes)),
                (14, Value::Fixed64(bytes)) => zero_threshold = f64_of(bytes),
                (1..=14, _) => return Err(Unwalked),
                _ => {}
            }
            Ok(())
        })?;
        let value = PointValue::ExponentialHistogram {
            count,
            sum,
            min,
            max,
            scale,
            zero_count,
            zero_threshold,
            positive: buckets(positive.map(Buckets::decode).transpose()?),
            negative: buckets(negative.map(Buckets::decode).transpose()?),
        };
        self.push_point(group, (start, time, flags), exemplars, Ok(value))
    }

    fn summary_point(&mut self, group: PointGroup<'_>, body: &'a [u8]) -> Walk {
        let attributes = &mut self.attributes;
        attributes.clear();
        let (mut start, mut time, mut flags, mut count, mut sum) = (0, 0, 0, 0, 0.0);
        let mut quantiles = Vec::new();
        for_each_field(body, |number, field| {
            match (number, field) {
                (7, Value::Delimited(bytes)) => attributes.push(bytes),
                (2, Value::Fixed64(bytes)) => start = u64::from_le_bytes(bytes),
                (3, Value::Fixed64(bytes)) => time = u64::from_le_bytes(bytes),
                (4, Value::Fixed64(bytes)) => count = u64::from_le_bytes(bytes),
                (5, Value::Fixed64(bytes)) => sum = f64_of(bytes),
                (6, Value::Delimited(bytes)) => quantiles.push(ValueAtQuantile::decode(bytes)?),
                (8, Value::Varint(bits)) => flags = bits as u32,
                (2..=8, _) => return Err(Unwalked),
                _ => {}
            }
            Ok(())
        })?;
        let value = summary_point(count, sum, quantiles);
        self.push_point(group, (start, time, flags), Vec::new(), Ok(value))
    }

    /// Hands the point just read (its attributes in `self.attributes`) to the sink.
    fn push_point(
        &mut self,
        group: PointGroup<'_>,
        (start_time_unix_nano, time_unix_nano, flags): (u64, u64, u32),
        exemplars: Vec<OtlpExemplar>,
        value: Result<PointValue, String>,
    ) -> Walk {
        let attributes = std::mem::take(&mut self.attributes);
        let common = Common {
            attributes: &attributes,
            start_time_unix_nano,
            time_unix_nano,
            flags,
            exemplars,
        };
        let pushed = self.sink.push(group, common, value).map_err(Unwalked::from);
        self.attributes = attributes;
        pushed
    }
}

/// The shared part (field 1: a resource or scope) and schema URL (field 3) of a
/// `ResourceMetrics` or `ScopeMetrics`, whose field 2 lists what the group holds.
fn group_header(body: &[u8]) -> Walk<(Option<&[u8]>, &str)> {
    let mut shared = None;
    let mut schema_url = "";
    for_each_field(body, |number, value| match (number, value) {
        (1, Value::Delimited(bytes)) => set_once(&mut shared, bytes),
        (2, Value::Delimited(_)) => Ok(()),
        (3, Value::Delimited(bytes)) => {
            schema_url = text(bytes)?;
            Ok(())
        }
        (1..=3, _) => Err(Unwalked),
        _ => Ok(()),
    })?;
    Ok((shared, schema_url))
}

/// A metric's kind, temporality and monotonicity, from its data (field `number` of `Metric`).
fn data_shape(number: u32, data: &[u8]) -> Walk<MetricShape> {
    let (mut temporality, mut is_monotonic) = (0i32, false);
    let kind = match number {
        5 => MetricKind::Gauge,
        7 => MetricKind::Sum,
        9 => MetricKind::Histogram,
        10 => MetricKind::ExponentialHistogram,
        _ => MetricKind::Summary,
    };
    let has_temporality = matches!(
        kind,
        MetricKind::Sum | MetricKind::Histogram | MetricKind::ExponentialHistogram
    );
    for_each_field(data, |field, value| match (field, value) {
        (1, Value::Delimited(_)) => Ok(()),
        (2, Value::Varint(bits)) if has_temporality => {
            temporality = bits as i32;
            Ok(())
        }
        (3, Value::Varint(bits)) if kind == MetricKind::Sum => {
            is_monotonic = bits != 0;
            Ok(())
        }
        (1, _) => Err(Unwalked),
        (2, _) if has_temporality => Err(Unwalked),
        (3, _) if kind == MetricKind::Sum => Err(Unwalked),
        _ => Ok(()),
    })?;
    Ok(match kind {
        MetricKind::Gauge | MetricKind::Summary => (kind, Temporality::Unspecified, false),
        MetricKind::Sum => sum_shape(temporality, is_monotonic),
        _ => histogram_shape(kind, temporality),
    })
}

/// A `sint32` from its varint, as prost reads it.
fn zigzag32(bits: u64) -> i32 {
    let bits = bits as u32;
    ((bits >> 1) as i32) ^ -((bits & 1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::convert_metrics;
    use crate::metrics_wire::{ExportMetricsRequest, every_kind_export};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1 as otlp;

    /// The export converted by the decoded path.
    fn decoded(body: &[u8]) -> Converted<MetricPoint> {
        let request = ExportMetricsRequest::decode(bytes::Bytes::copy_from_slice(body)).unwrap();
        convert_metrics(request, &SeriesTable::default()).unwrap()
    }

    fn walked(body: &[u8]) -> Walk<Converted<MetricPoint>> {
        convert_metrics_walked(body, &SeriesTable::default())
    }

    fn assert_alike(body: &[u8]) {
        let (walked, decoded) = (walked(body).unwrap(), decoded(body));
        assert!(!decoded.records.is_empty());
        assert_eq!(walked.records, decoded.records);
        assert_eq!(walked.rejections.count, decoded.rejections.count);
        assert_eq!(
            walked.rejections.first_message,
            decoded.rejections.first_message
        );
    }

    /// Protobuf fields, each a message of its own, concatenated: one message with the fields
    /// in this order.
    fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// A length-delimited field.
    fn delimited(number: u8, value: &[u8]) -> Vec<u8> {
        let mut field = vec![(number << 3) | 2];
        prost::encode_length_delimiter(value.len(), &mut field).unwrap();
        field.extend_from_slice(value);
        field
    }

    #[test]
    fn every_kind_converts_as_the_decoded_path_converts_it() {
        assert_alike(&every_kind_export().encode_to_vec());
    }

    #[test]
    fn fields_in_any_order_and_unpacked_lists_convert_alike() {
        let export = every_kind_export();
        let metrics = &export.resource_metrics[0].scope_metrics[0].metrics;
        let Some(otlp::metric::Data::Histogram(histogram)) = metrics[2].data.clone() else {
            panic!("histogram")
        };
        let point = &histogram.data_points[0];
        // A histogram point: flags and counts first, its bounds and counts unpacked.
        let mut unpacked = Vec::new();
        for count in &point.bucket_counts {
            unpacked.push((6 << 3) | 1);
            unpacked.extend_from_slice(&count.to_le_bytes());
        }
        for bound in &point.explicit_bounds {
            unpacked.push((7 << 3) | 1);
            unpacked.extend_from_slice(&bound.to_le_bytes());
        }
        let point = concat(&[
            otlp::HistogramDataPoint {
                flags: point.flags,
                count: point.count,
                ..Default::default()
            }
            .encode_to_vec(),
            unpacked,
            otlp::HistogramDataPoint {
                attributes: point.attributes.clone(),
                time_unix_nano: point.time_unix_nano,
                sum: point.sum,
                ..Default::default()
            }
            .encode_to_vec(),
        ]);
        // The data point field, then the temporality after it.
        let mut data = delimited(1, &point);
        data.extend_from_slice(&[2 << 3, 2]);
        // The metric's data before its name and unit.
        let mut metric = delimited(9, &data);
        metric.extend(
            otlp::Metric {
                name: "latency".into(),
                unit: "s".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        // The scope's metrics before its scope, the resource's after its resource.
        let mut scope_metrics = delimited(2, &metric);
        scope_metrics.extend(
            otlp::ScopeMetrics {
                scope: export.resource_metrics[0].scope_metrics[0].scope.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let resource_metrics = concat(&[
            otlp::ResourceMetrics {
                resource: export.resource_metrics[0].resource.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            delimited(2, &scope_metrics),
        ]);
        let body = delimited(1, &resource_metrics);
        assert_alike(&body);
        let points = walked(&body).unwrap().records;
        let PointValue::Histogram { bucket_counts, .. } = &points[0].value else {
            panic!("histogram")
        };
        assert_eq!(bucket_counts, &[1, 2]);
    }

    #[test]
    fn what_the_walk_does_not_take_is_left_to_the_decoded_path() {
        let export = every_kind_export();
        // A resource sent twice (protobuf merges the two).
        let twice = otlp::ResourceMetrics {
            resource: export.resource_metrics[0].resource.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let merged = concat(&[twice.clone(), export.resource_metrics[0].encode_to_vec()]);
        let body = delimited(1, &merged);
        assert_eq!(walked(&body).err(), Some(Unwalked));
        assert!(!decoded(&body).records.is_empty());
        // A metric without a name; a body cut short.
        let mut nameless = export.clone();
        nameless.resource_metrics[0].scope_metrics[0].metrics[0]
            .name
            .clear();
        assert_eq!(walked(&nameless.encode_to_vec()).err(), Some(Unwalked));
        let whole = export.encode_to_vec();
        assert_eq!(walked(&whole[..whole.len() - 1]).err(), Some(Unwalked));
        // A point field of the wrong wire type (attributes as a varint): malformed.
        let point = [0x08, 0x00];
        let metric = concat(&[
            otlp::Metric {
                name: "sizes".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            delimited(10, &delimited(1, &point)),
        ]);
        let body = delimited(1, &delimited(2, &delimited(2, &metric)));
        assert_eq!(walked(&body).err(), Some(Unwalked));
        assert!(ExportMetricsRequest::decode(body.as_slice()).is_err());
        // An empty export is no points.
        let empty = ExportMetricsServiceRequest::default().encode_to_vec();
        assert!(walked(&empty).unwrap().records.is_empty());
    }
}
