//! The Prometheus remote write 1.0 messages (`prometheus.WriteRequest` from Prometheus's
//! `prompb/remote.proto` and `types.proto`), written by hand with prost: only the fields skewer
//! reads. Decoding only; nothing here validates or converts (see [`super::convert`]).
//!
//! Fields not declared here are skipped by prost, as protobuf requires.

use prost::Message;

/// The body of one remote write request: series with their samples, and metric metadata.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series, each with its labels and samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Type, help and unit of metric families (Prometheus sends these in their own requests,
    /// other senders may mix them with samples).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// One series: its labels (`__name__` among them) and what was sampled on it.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Label pairs, sorted by name by Prometheus (not relied on).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars: not stored, only counted as refused.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<IgnoredExemplar>,
    /// Native histograms: not stored, only counted as refused.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<IgnoredHistogram>,
}

/// One label pair.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One float sample.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The value; the bit pattern [`STALE_NAN_BITS`] marks the series stale.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// An exemplar, left undecoded: skewer counts it as refused and reads none of its fields.
#[derive(Clone, PartialEq, Message)]
pub struct IgnoredExemplar {}

/// A native histogram, left undecoded: skewer counts it as refused and reads none of its
/// fields.
#[derive(Clone, PartialEq, Message)]
pub struct IgnoredHistogram {}

/// Metadata of one metric family.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// `prometheus.MetricMetadata.MetricType` (counter, gauge, ...): read, not used, as
    /// skewer keeps every remote-written series a gauge.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The family name (`http_requests_total`, or `http_request_duration_seconds` for the
    /// `_bucket`, `_sum` and `_count` series of a histogram).
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// `# HELP` text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// `# UNIT` text (`seconds`, `bytes`), often empty.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Prometheus's staleness marker: a NaN with this exact bit pattern, written when a series
/// disappears (`value.StaleNaN` in Prometheus). Other NaNs are ordinary values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field `number` holding `bytes` (wire type 2; lengths under 128).
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let len = u8::try_from(bytes.len()).unwrap();
        assert!(len < 0x80);
        [&[(number << 3) | 2, len][..], bytes].concat()
    }

    #[test]
    fn field_numbers_and_types_match_prometheus_remote_proto() {
        // Assembled byte by byte from prompb/remote.proto and types.proto, independently of
        // the prost attributes above.
        let label = [field(1, b"__name__"), field(2, b"up")].concat();
        // Sample: double value = 1.5 (field 1, fixed64), int64 timestamp = 1000 (field 2, varint).
        let mut sample = vec![0x09];
        sample.extend_from_slice(&1.5f64.to_le_bytes());
        sample.extend_from_slice(&[0x10, 0xe8, 0x07]);
        // Exemplar: double value (field 2); Histogram: count_int = 5 (field 1, varint).
        let mut exemplar = vec![0x11];
        exemplar.extend_from_slice(&2.0f64.to_le_bytes());
        let histogram = [0x08, 0x05];
        let series = [
            field(1, &label),
            field(2, &sample),
            field(3, &exemplar),
            field(4, &histogram),
        ]
        .concat();
        // MetricMetadata: type GAUGE = 2 (field 1), family (2), help (4), unit (5).
        let metadata = [
            vec![0x08, 0x02],
            field(2, b"up"),
            field(4, b"Is it up."),
            field(5, b"none"),
        ]
        .concat();
        let body = [field(1, &series), field(3, &metadata)].concat();

        let request = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(
            request,
            WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![Label {
                        name: "__name__".into(),
                        value: "up".into()
                    }],
                    samples: vec![Sample {
                        value: 1.5,
                        timestamp: 1000
                    }],
                    exemplars: vec![IgnoredExemplar {}],
                    histograms: vec![IgnoredHistogram {}],
                }],
                metadata: vec![MetricMetadata {
                    r#type: 2,
                    metric_family_name: "up".into(),
                    help: "Is it up.".into(),
                    unit: "none".into(),
                }],
            }
        );
    }
}
