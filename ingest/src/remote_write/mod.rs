//! Prometheus remote write 1.0 in: `POST /api/v1/write` on the OTLP/HTTP listener, so
//! Prometheus servers and agents and Grafana Alloy can ship samples unchanged.
//!
//! [`receiver`] reads the snappy-compressed body ([`snappy`]) and hands the decompressed
//! `prometheus.WriteRequest` ([`proto`]) to the shared [`crate::pipeline`] as
//! [`PayloadFormat::RemoteWrite`](crate::payload::PayloadFormat::RemoteWrite), so the WAL
//! holds it and replay decodes it with [`decode`] exactly as live ingest did. [`convert`]
//! turns series into model points. Prometheus shapes stop here.

pub mod convert;
pub mod proto;
pub(crate) mod receiver;
pub mod snappy;

use prost::Message;
use skewer_storage::metrics::SeriesTable;
use skewer_storage::model::MetricPoint;

use crate::IngestError;
use crate::convert::Converted;

/// The path Prometheus's `remote_write` `url` points at.
pub const REMOTE_WRITE_PATH: &str = "/api/v1/write";

/// Parses a decompressed remote write body.
pub fn parse(body: &[u8]) -> Result<proto::WriteRequest, IngestError> {
    proto::WriteRequest::decode(body).map_err(|err| IngestError::Malformed {
        format: "remote write protobuf",
        reason: err.to_string(),
    })
}

/// Converts a parsed write request. Remote write has no partial answer, and a sender drops a
/// batch refused with 400 for good: so a request with something valid is kept (the refused
/// rest counted), and one whose every record was refused is [`IngestError::NoValidRecords`].
/// A request with nothing in it (metadata only) is fine.
pub fn convert(
    request: proto::WriteRequest,
    series: &SeriesTable,
) -> Result<Converted<MetricPoint>, IngestError> {
    let converted = convert::convert_write_request(request, series);
    if converted.records.is_empty() && converted.rejections.count > 0 {
        return Err(IngestError::NoValidRecords {
            rejected: converted.rejections.count,
            reason: converted.rejections.first_message.unwrap_or_default(),
        });
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::proto::{Label, Sample, TimeSeries, WriteRequest};
    use super::*;
    use crate::payload::{DecodeOptions, PayloadFormat, decode_export};
    use skewer_storage::ErrorKind;
    use skewer_storage::model::{Signal, SignalBatch};
    use skewer_storage::storage::WalDecoder;
    use skewer_storage::wal::WalEntry;

    fn series(name: Option<&str>, timestamp: i64) -> TimeSeries {
        TimeSeries {
            labels: name
                .map(|name| Label {
                    name: "__name__".into(),
                    value: name.into(),
                })
                .into_iter()
                .collect(),
            samples: vec![Sample {
                value: 1.0,
                timestamp,
            }],
            ..TimeSeries::default()
        }
    }

    fn body(timeseries: Vec<TimeSeries>) -> bytes::Bytes {
        WriteRequest {
            timeseries,
            metadata: Vec::new(),
        }
        .encode_to_vec()
        .into()
    }

    fn options() -> DecodeOptions {
        DecodeOptions {
            correlation_keys: std::sync::Arc::from(Vec::<String>::new()),
            redactor: None,
            record_limits: None,
            active_series: None,
            series: std::sync::Arc::default(),
        }
    }

    /// Decodes an uncompressed `prometheus.WriteRequest` and converts it.
    fn decode(body: &[u8]) -> Result<Converted<MetricPoint>, IngestError> {
        convert(parse(body)?, &SeriesTable::default())
    }

    #[test]
    fn a_request_with_anything_valid_is_kept_and_one_with_nothing_valid_refused() {
        let kept = decode(&body(vec![series(Some("up"), 1), series(None, 1)])).unwrap();
        assert_eq!(
            (kept.records.len(), kept.rejections.count),
            (1, 1),
            "the valid rest is kept"
        );

        let err = decode(&body(vec![series(None, 1), series(Some("up"), -5)])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.to_string(),
            "no valid record in the request: 2 refused, the first because no __name__ label (series {})"
        );

        let empty = decode(&body(Vec::new())).unwrap();
        assert!(empty.records.is_empty(), "metadata-only requests are fine");
    }

    #[test]
    fn bytes_that_are_not_a_write_request_are_malformed() {
        let err = decode(b"\xff\xff\xff\xff").unwrap_err();
        assert!(
            matches!(err, IngestError::Malformed { format, .. } if format == "remote write protobuf"),
            "{err}"
        );
    }

    #[test]
    fn the_wal_format_decodes_metrics_only_and_replays_like_live_ingest() {
        let body = body(vec![series(Some("replayed"), 1_000)]);
        let live = decode_export(
            Signal::Metrics,
            PayloadFormat::RemoteWrite,
            &body,
            &options(),
        )
        .unwrap();
        let SignalBatch::Metrics(live_points) = live.batch else {
            panic!("not metrics")
        };
        assert_eq!(live_points[0].time_unix_nano, 1_000_000_000);

        assert_eq!(
            PayloadFormat::from_number(3),
            Some(PayloadFormat::RemoteWrite)
        );
        let entry = WalEntry {
            signal: Signal::Metrics,
            payload_format: PayloadFormat::RemoteWrite as u8,
            tenant: skewer_storage::model::TenantId::default_tenant(),
            body: body.clone(),
        };
        let replayed = crate::payload::OtlpWalDecoder::new(options())
            .decode(&entry)
            .unwrap();
        assert_eq!(replayed, SignalBatch::Metrics(live_points));

        for signal in [Signal::Traces, Signal::Logs] {
            let err =
                decode_export(signal, PayloadFormat::RemoteWrite, &body, &options()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("remote write payloads carry no {}", signal.name())
            );
        }
    }
}
