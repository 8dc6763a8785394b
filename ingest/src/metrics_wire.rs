//! OTLP metrics as decoded for conversion: the messages of `opentelemetry.proto.metrics.v1`
//! (and its collector's export request), except that a data point's attributes stay the
//! bytes they came in, one slice of the request per `KeyValue`.
//!
//! A repeated message field and a repeated `bytes` field are the same on the wire (each
//! entry length-delimited under the field's tag), so these messages decode any OTLP metrics
//! export. Decoded from a [`Bytes`] body, each attribute is a reference into it: no key or
//! value string is allocated, and the series table finds a known series by those bytes
//! (`SeriesSession::series_by_encoding`). Only an encoding it has not seen lately is decoded
//! as `KeyValue`s ([`decode_attributes`]).
//!
//! Every `KeyValue` is still checked: those of points converted when the series table does not
//! know their encoding, the others (a metric's `metadata`, points refused for another reason)
//! by [`decode_attributes`], so an export holding a malformed one is refused whole as it was
//! when every message was decoded. (Decoded alone, a `KeyValue` starts prost's nesting count
//! afresh; the decoded-size scan has refused any export nested past prost's limit before.)
//!
//! Resources, scopes, exemplars and the other nested messages are opentelemetry-proto's own.

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportMetricsRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, Message)]
pub struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `Metric`, its `metadata` encoded (checked, not kept).
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(oneof = "MetricData", tags = "5, 7, 9, 10, 11")]
    pub data: Option<MetricData>,
    #[prost(bytes = "bytes", repeated, tag = "12")]
    pub metadata: Vec<Bytes>,
}

/// `Metric.data`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricData {
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    #[prost(message, tag = "7")]
    Sum(Sum),
    #[prost(message, tag = "9")]
    Histogram(Histogram),
    #[prost(message, tag = "10")]
    ExponentialHistogram(ExponentialHistogram),
    #[prost(message, tag = "11")]
    Summary(Summary),
}

/// `Gauge`.
#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, Message)]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `Histogram`.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogram`.
#[derive(Clone, PartialEq, Message)]
pub struct ExponentialHistogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

/// `NumberDataPoint`, its attributes encoded.
#[derive(Clone, PartialEq, Message)]
pub struct NumberDataPoint {
    #[prost(bytes = "bytes", repeated, tag = "7")]
    pub attributes: Vec<Bytes>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(message, repeated, tag = "5")]
    pub exemplars: Vec<Exemplar>,
    #[prost(uint32, tag = "8")]
    pub flags: u32,
    #[prost(oneof = "NumberValue", tags = "4, 6")]
    pub value: Option<NumberValue>,
}

/// `NumberDataPoint.value`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum NumberValue {
    #[prost(double, tag = "4")]
    AsDouble(f64),
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

/// `HistogramDataPoint`, its attributes encoded.
#[derive(Clone, PartialEq, Message)]
pub struct HistogramDataPoint {
    #[prost(bytes = "bytes", repeated, tag = "9")]
    pub attributes: Vec<Bytes>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    #[prost(message, repeated, tag = "8")]
    pub exemplars: Vec<Exemplar>,
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    #[prost(double, optional, tag = "11")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "12")]
    pub max: Option<f64>,
}

/// `ExponentialHistogramDataPoint`, its attributes encoded.
#[derive(Clone, PartialEq, Message)]
pub struct ExponentialHistogramDataPoint {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub attributes: Vec<Bytes>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    #[prost(fixed64, tag = "7")]
    pub zero_count: u64,
    #[prost(message, optional, tag = "8")]
    pub positive: Option<Buckets>,
    #[prost(message, optional, tag = "9")]
    pub negative: Option<Buckets>,
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    #[prost(message, repeated, tag = "11")]
    pub exemplars: Vec<Exemplar>,
    #[prost(double, optional, tag = "12")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "13")]
    pub max: Option<f64>,
    #[prost(double, tag = "14")]
    pub zero_threshold: f64,
}

/// `SummaryDataPoint`, its attributes encoded.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryDataPoint {
    #[prost(bytes = "bytes", repeated, tag = "7")]
    pub attributes: Vec<Bytes>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, tag = "5")]
    pub sum: f64,
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<ValueAtQuantile>,
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// Decodes a data point's encoded attributes.
pub fn decode_attributes<P: AsRef<[u8]>>(
    encoded: &[P],
) -> Result<Vec<KeyValue>, prost::DecodeError> {
    encoded
        .iter()
        .map(|attribute| KeyValue::decode(attribute.as_ref()))
        .collect()
}

/// An export with every kind of point, every field set (for the decoders' tests).
#[cfg(test)]
pub(crate) fn every_kind_export()
-> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1 as otlp;
    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }
    let attributes = vec![
        attribute("route", any_value::Value::StringValue("/cart".into())),
        attribute("code", any_value::Value::IntValue(200)),
    ];
    let exemplars = vec![otlp::Exemplar {
        time_unix_nano: 5,
        value: Some(otlp::exemplar::Value::AsDouble(0.5)),
        span_id: vec![1; 8],
        trace_id: vec![2; 16],
        ..Default::default()
    }];
    let number = otlp::NumberDataPoint {
        attributes: attributes.clone(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: exemplars.clone(),
        flags: 1,
        value: Some(otlp::number_data_point::Value::AsInt(-7)),
    };
    let metric = |name: &str, data| otlp::Metric {
        name: name.into(),
        description: "what it counts".into(),
        unit: "s".into(),
        metadata: vec![attribute("ignored", any_value::Value::BoolValue(true))],
        data: Some(data),
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![otlp::ResourceMetrics {
            resource: Some(Resource {
                attributes: attributes.clone(),
                ..Default::default()
            }),
            schema_url: "resource-schema".into(),
            scope_metrics: vec![otlp::ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                schema_url: "scope-schema".into(),
                metrics: vec![
                    metric(
                        "gauge",
                        otlp::metric::Data::Gauge(otlp::Gauge {
                            data_points: vec![number.clone()],
                        }),
                    ),
                    metric(
                        "sum",
                        otlp::metric::Data::Sum(otlp::Sum {
                            data_points: vec![otlp::NumberDataPoint {
                                value: Some(otlp::number_data_point::Value::AsDouble(2.5)),
                                ..number
                            }],
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "histogram",
                        otlp::metric::Data::Histogram(otlp::Histogram {
                            data_points: vec![otlp::HistogramDataPoint {
                                attributes: attributes.clone(),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(4.0),
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                exemplars: exemplars.clone(),
                                flags: 1,
                                min: Some(0.1),
                                max: Some(0.9),
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "exponential",
                        otlp::metric::Data::ExponentialHistogram(otlp::ExponentialHistogram {
                            data_points: vec![otlp::ExponentialHistogramDataPoint {
                                attributes: attributes.clone(),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(4.0),
                                scale: -2,
                                zero_count: 1,
                                positive: Some(Buckets {
                                    offset: -3,
                                    bucket_counts: vec![1, 1],
                                }),
                                negative: Some(Buckets::default()),
                                flags: 1,
                                exemplars,
                                min: Some(0.1),
                                max: Some(9.0),
                                zero_threshold: 0.01,
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "summary",
                        otlp::metric::Data::Summary(otlp::Summary {
                            data_points: vec![otlp::SummaryDataPoint {
                                attributes,
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: 4.0,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 1.5,
                                }],
                                flags: 1,
                            }],
                        }),
                    ),
                ],
            }],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

    fn export() -> ExportMetricsServiceRequest {
        every_kind_export()
    }

    #[test]
    fn every_field_reads_as_opentelemetry_proto_reads_it() {
        let otlp_export = export();
        let body = Bytes::from(otlp_export.encode_to_vec());
        let wire = ExportMetricsRequest::decode(body.clone()).unwrap();
        // Encoded again, it is the export sent.
        assert_eq!(
            ExportMetricsServiceRequest::decode(wire.encode_to_vec().as_slice()).unwrap(),
            otlp_export
        );
        let metrics = &wire.resource_metrics[0].scope_metrics[0].metrics;
        let Some(MetricData::Histogram(histogram)) = &metrics[2].data else {
            panic!("histogram")
        };
        let encoded = &histogram.data_points[0].attributes;
        let resource = otlp_export.resource_metrics[0].resource.as_ref().unwrap();
        assert_eq!(decode_attributes(encoded).unwrap(), resource.attributes);
        // The attributes are slices of the body, not copies.
        let body_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(body_range.contains(&(encoded[0].as_ptr() as usize)));
    }

    #[test]
    fn a_malformed_attribute_fails_when_decoded() {
        assert!(decode_attributes(&[Bytes::from_static(b"\x0a\x05ab")]).is_err());
        // Not UTF-8: opentelemetry-proto refuses it, and so does the attribute decode.
        assert!(decode_attributes(&[Bytes::from_static(b"\x0a\x01\xff")]).is_err());
    }
}
