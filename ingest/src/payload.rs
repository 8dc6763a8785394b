//! Export payloads: the two OTLP encodings and Prometheus remote write, decoding a body of
//! any of them into model records, and the WAL decoder that does the same on replay.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use skewer_storage::metrics::SeriesTable;
use skewer_storage::model::{Signal, SignalBatch};
use skewer_storage::storage::WalDecoder;
use skewer_storage::wal::WalEntry;

use crate::IngestError;
use crate::convert::{Rejections, convert_logs, convert_metrics, convert_traces};
use crate::limits::ActiveSeries;
use crate::record_limits::{LimitedCounts, RecordLimits};
use crate::redact::Redactor;

/// How an export body is encoded. The number is what the WAL stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PayloadFormat {
    /// Binary protobuf (`application/x-protobuf`, and gRPC).
    Protobuf = 1,
    /// OTLP JSON (`application/json`).
    Json = 2,
    /// Prometheus remote write 1.0: an uncompressed `prometheus.WriteRequest` protobuf
    /// (received snappy-compressed, stored decompressed). Metrics only.
    RemoteWrite = 3,
}

impl PayloadFormat {
    /// Maps the stored number back.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(Self::Protobuf),
            2 => Some(Self::Json),
            3 => Some(Self::RemoteWrite),
            _ => None,
        }
    }

    /// `protobuf`, `json` or `remote write`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Protobuf => "protobuf",
            Self::Json => "json",
            Self::RemoteWrite => "remote write",
        }
    }

    /// The MIME type of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf | Self::RemoteWrite => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    /// Bytes of memory a typical decoded body of `body_len` bytes needs: to refuse early, before
    /// a body is read (what a body really costs is read from it, see
    /// [`crate::decoded_size::decoding_cost`]).
    pub fn decoded_size_estimate(self, body_len: usize) -> usize {
        match self {
            Self::Protobuf => body_len.saturating_mul(3),
            Self::Json => body_len.saturating_mul(3) / 2,
            // Every sample becomes a whole point with its series' labels copied: a typical
            // Prometheus batch (one or two samples per series) grows about six-fold, plus
            // the decoded message alongside.
            Self::RemoteWrite => body_len.saturating_mul(8),
        }
    }
}

/// Settings that shape decoding.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Log attribute keys tried in order for the correlation id.
    pub correlation_keys: Arc<[String]>,
    /// Redaction rules applied to live exports (never to WAL replay: the WAL holds the
    /// redacted export already).
    pub redactor: Option<Arc<Redactor>>,
    /// Per-record limits applied to live exports (never to WAL replay: the WAL holds the
    /// limited export already, and replay must not cut more if the limits were lowered).
    pub record_limits: Option<Arc<RecordLimits>>,
    /// The exporting tenant's active series when it has a series limit (live metric exports
    /// only; never on replay, the WAL holds what was accepted).
    pub active_series: Option<Arc<ActiveSeries>>,
    /// The series metric points are interned in (shared by every export the server takes).
    pub series: Arc<SeriesTable>,
}

/// Records decoded from one export, with what was refused.
#[derive(Debug)]
pub struct DecodedExport {
    /// The records kept.
    pub batch: SignalBatch,
    /// The records refused.
    pub rejections: Rejections,
    /// What the record limits dropped or cut.
    pub limited: LimitedCounts,
    /// The export as protobuf after limits and redaction changed it: what the WAL keeps
    /// instead of the body received.
    pub rewritten_body: Option<Bytes>,
}

fn parse<M>(format: PayloadFormat, body: &[u8]) -> Result<M, IngestError>
where
    M: Message
        + Default
        + PartialEq
        + serde::de::DeserializeOwned
        + crate::json_floats::UnmarkFloats,
{
    let malformed = |reason: String| IngestError::Malformed {
        format: format.name(),
        reason,
    };
    match format {
        PayloadFormat::Protobuf => M::decode(body).map_err(|err| malformed(err.to_string())),
        // Not OTLP: `decode_export` routes it elsewhere.
        PayloadFormat::RemoteWrite => Err(malformed("not an OTLP message".to_owned())),
        // Doubles written as "NaN" / "Infinity" (the JSON mapping allows them).
        PayloadFormat::Json if crate::json_floats::may_hold_special_floats(body) => {
            decode_json_value(body, &malformed)
        }
        PayloadFormat::Json => {
            let message: M =
                serde_json::from_slice(body).map_err(|err| malformed(err.to_string()))?;
            // Nothing known in it: written with proto field names? (Checked only then, so
            // ordinary bodies pay nothing.)
            if message != M::default() || !crate::json_names::has_snake_case_key(body) {
                return Ok(message);
            }
            decode_json_value(body, &malformed)
        }
    }
}

/// Decodes OTLP/JSON the slow way: as a JSON value with proto field names rewritten to
/// lowerCamelCase and `"NaN"` / `"Infinity"` doubles marked, then the markers restored.
fn decode_json_value<M>(
    body: &[u8],
    malformed: &impl Fn(String) -> IngestError,
) -> Result<M, IngestError>
where
    M: serde::de::DeserializeOwned + crate::json_floats::UnmarkFloats,
{
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| malformed(err.to_string()))?;
    crate::json_names::camel_case_keys(&mut value);
    crate::json_floats::mark_special_floats(&mut value);
    let mut message: M = serde_json::from_value(value).map_err(|err| malformed(err.to_string()))?;
    message.unmark_floats();
    Ok(message)
}

/// Decodes and converts a body of `signal` in `format`.
pub fn decode_export(
    signal: Signal,
    format: PayloadFormat,
    body: &Bytes,
    options: &DecodeOptions,
) -> Result<DecodedExport, IngestError> {
    if format == PayloadFormat::RemoteWrite {
        return match signal {
            Signal::Metrics => decoded_remote_write(body, options),
            other => Err(IngestError::SignalNotInFormat {
                format: format.name(),
                signal: other.name(),
            }),
        };
    }
    Ok(match signal {
        Signal::Traces => {
            let mut request = parse(format, body)?;
            let rewritten = rewrite(
                options,
                &mut request,
                RecordLimits::traces,
                Redactor::traces,
            );
            decoded_traces(request).with_rewrite(rewritten)
        }
        Signal::Logs => {
            let mut request = parse(format, body)?;
            let rewritten = rewrite(options, &mut request, RecordLimits::logs, Redactor::logs);
            decoded_logs(request, options).with_rewrite(rewritten)
        }
        // Nothing to apply before conversion: the body is converted as it came, each
        // point's attributes looked up by their bytes (see `crate::metrics_wire`).
        Signal::Metrics if metrics_converted_as_received(format, options) => {
            decoded_metrics(body.clone(), format, &options.series)?
        }
        Signal::Metrics => {
            let mut request: ExportMetricsServiceRequest = parse(format, body)?;
            let (limited, mut rewritten) = rewrite(
                options,
                &mut request,
                RecordLimits::metrics,
                Redactor::metrics,
            );
            let refused = options.active_series.as_deref().and_then(|active| {
                let refused = crate::series_limit::limit_otlp(&mut request, active, Instant::now());
                (refused > 0).then(|| (refused, active.refusal(refused)))
            });
            if refused.is_some() {
                rewritten = Some(Bytes::from(request.encode_to_vec()));
            }
            // Converted from protobuf as every metrics export is: encoded again unless the
            // rewrite did.
            let encoded = match &rewritten {
                Some(rewritten) => rewritten.clone(),
                None => Bytes::from(request.encode_to_vec()),
            };
            drop(request);
            decoded_metrics(encoded, format, &options.series)?
                .with_rewrite((limited, rewritten))
                .with_series_refused(refused, options.active_series.as_deref())?
        }
    })
}

/// Whether a metrics export in `format` is converted from the body received. Else it is
/// decoded whole (limits, redaction and the series limit apply to that), then encoded again
/// as protobuf to be converted: see [`reencoding_bytes`].
fn metrics_converted_as_received(format: PayloadFormat, options: &DecodeOptions) -> bool {
    format == PayloadFormat::Protobuf
        && options.record_limits.is_none()
        && options.redactor.is_none()
        && options.active_series.is_none()
}

/// Bytes decoding a body of `body_len` bytes takes beyond its decoded size: the protobuf copy
/// a metrics export not converted as received is encoded into (no longer than the body: it
/// holds no more than the body did, and protobuf is the more compact of the encodings).
pub fn reencoding_bytes(
    signal: Signal,
    format: PayloadFormat,
    body_len: usize,
    options: &DecodeOptions,
) -> usize {
    match signal {
        Signal::Metrics
            if format != PayloadFormat::RemoteWrite
                && !metrics_converted_as_received(format, options) =>
        {
            body_len
        }
        _ => 0,
    }
}

/// Applies the record limits, then the redaction rules, and returns what the limits cut with
/// the export as protobuf when the WAL must keep it instead of the body received: whenever a
/// limit cut something, and always with redaction rules (the body may hold fields the decoder
/// does not know and the rules never saw).
fn rewrite<M: Message>(
    options: &DecodeOptions,
    request: &mut M,
    limit: fn(&RecordLimits, &mut M) -> LimitedCounts,
    redact: fn(&Redactor, &mut M) -> bool,
) -> (LimitedCounts, Option<Bytes>) {
    let limited = options
        .record_limits
        .as_deref()
        .map(|limits| limit(limits, request))
        .unwrap_or_default();
    let redacted = options
        .redactor
        .as_deref()
        .map(|redactor| redact(redactor, request))
        .is_some();
    let rewritten = (limited.any() || redacted).then(|| Bytes::from(request.encode_to_vec()));
    (limited, rewritten)
}

impl DecodedExport {
    /// Counts the points a series limit removed among the refused records (OTLP's partial
    /// success: the export's active series go on, retrying cannot bring the rest in); an
    /// export left with nothing is refused whole as the other tenant limits are (`429` /
    /// `UNAVAILABLE` naming the limit).
    fn with_series_refused(
        mut self,
        refused: Option<(u64, String)>,
        active: Option<&ActiveSeries>,
    ) -> Result<Self, IngestError> {
        if let Some((count, message)) = refused {
            if self.batch.is_empty()
                && let Some(active) = active
            {
                return Err(IngestError::TenantLimit(active.exceeded()));
            }
            self.rejections.count += count;
            self.rejections.first_message.get_or_insert(message);
        }
        Ok(self)
    }

    fn with_rewrite(mut self, (limited, rewritten_body): (LimitedCounts, Option<Bytes>)) -> Self {
        self.limited = limited;
        self.rewritten_body = rewritten_body;
        self
    }
}

/// Decodes and converts a remote write body: the record limits and redaction rules first (as
/// for OTLP: labels are the points' attributes), then the active-series limit. The WAL keeps
/// the request as these left it whenever one changed it, and always with redaction rules.
fn decoded_remote_write(
    body: &[u8],
    options: &DecodeOptions,
) -> Result<DecodedExport, IngestError> {
    let mut request = crate::remote_write::parse(body)?;
    let limited = options
        .record_limits
        .as_deref()
        .map(|limits| limits.remote_write(&mut request))
        .unwrap_or_default();
    let redacted = options
        .redactor
        .as_deref()
        .map(|redactor| redactor.remote_write(&mut request))
        .is_some();
    let active = options.active_series.as_deref();
    let refused = active.map_or(0, |active| {
        crate::series_limit::limit_remote_write(&mut request, active, Instant::now())
    });
    let rewritten =
        (limited.any() || redacted || refused > 0).then(|| Bytes::from(request.encode_to_vec()));
    let export = remote_write_export(
        crate::remote_write::convert(request, &options.series)?,
        rewritten,
    );
    let export = DecodedExport { limited, ..export };
    match active {
        Some(active) if refused > 0 => {
            let message = active.refusal(refused);
            export.with_series_refused(Some((refused, message)), Some(active))
        }
        _ => Ok(export),
    }
}

fn remote_write_export(
    converted: crate::convert::Converted<skewer_storage::model::MetricPoint>,
    rewritten_body: Option<Bytes>,
) -> DecodedExport {
    DecodedExport {
        batch: SignalBatch::Metrics(converted.records),
        rejections: converted.rejections,
        limited: LimitedCounts::default(),
        rewritten_body,
    }
}

/// Converts a decoded trace export.
fn decoded_traces(request: ExportTraceServiceRequest) -> DecodedExport {
    let converted = convert_traces(request);
    DecodedExport {
        batch: SignalBatch::Spans(converted.records),
        rejections: converted.rejections,
        limited: LimitedCounts::default(),
        rewritten_body: None,
    }
}

/// Converts a decoded logs export.
fn decoded_logs(request: ExportLogsServiceRequest, options: &DecodeOptions) -> DecodedExport {
    let converted = convert_logs(request, &options.correlation_keys);
    DecodedExport {
        batch: SignalBatch::Logs(converted.records),
        rejections: converted.rejections,
        limited: LimitedCounts::default(),
        rewritten_body: None,
    }
}

/// Decodes and converts a metrics export in protobuf (`format` names the encoding it came
/// in, for errors).
fn decoded_metrics(
    body: Bytes,
    format: PayloadFormat,
    series: &SeriesTable,
) -> Result<DecodedExport, IngestError> {
    let malformed = |err: prost::DecodeError| IngestError::Malformed {
        format: format.name(),
        reason: err.to_string(),
    };
    let converted = match crate::convert::metrics_walk::convert_metrics_walked(&body, series) {
        Ok(converted) => converted,
        // Not taken by the walk: decoded first, which converts it or says why it cannot.
        Err(_) => {
            let request =
                crate::metrics_wire::ExportMetricsRequest::decode(body).map_err(malformed)?;
            convert_metrics(request, series).map_err(malformed)?
        }
    };
    Ok(DecodedExport {
        batch: SignalBatch::Metrics(converted.records),
        rejections: converted.rejections,
        limited: LimitedCounts::default(),
        rewritten_body: None,
    })
}

/// Replays WAL entries written by this crate.
pub struct OtlpWalDecoder {
    options: DecodeOptions,
}

impl OtlpWalDecoder {
    /// A decoder using the same options as live ingest, less redaction and limits (replayed
    /// entries were redacted and limited before they were written).
    pub fn new(options: DecodeOptions) -> Self {
        Self {
            options: DecodeOptions {
                redactor: None,
                record_limits: None,
                active_series: None,
                ..options
            },
        }
    }
}

impl WalDecoder for OtlpWalDecoder {
    fn decode(&self, entry: &WalEntry) -> Result<SignalBatch, String> {
        let format = PayloadFormat::from_number(entry.payload_format)
            .ok_or_else(|| format!("unknown payload format {}", entry.payload_format))?;
        decode_export(entry.signal, format, &entry.body, &self.options)
            .map(|decoded| decoded.batch)
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DecodeOptions {
        DecodeOptions {
            correlation_keys: Arc::from(vec!["request.id".to_owned()]),
            redactor: None,
            record_limits: Some(Arc::new(RecordLimits::default())),
            active_series: None,
            series: Arc::default(),
        }
    }

    #[test]
    fn otlp_json_with_hex_ids_string_ints_and_unknown_fields_decodes() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","name":"GET","kind":2,"startTimeUnixNano":"1700000000000000000",
            "endTimeUnixNano":"1700000000500000000","attributes":[{"key":"n","value":{"intValue":"42"}}],
            "someFutureField":true}]}]}]}"#;
        let decoded = decode_export(
            Signal::Traces,
            PayloadFormat::Json,
            &Bytes::copy_from_slice(body),
            &options(),
        )
        .unwrap();
        let SignalBatch::Spans(spans) = decoded.batch else {
            panic!("not spans")
        };
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].trace_id.to_string(),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(spans[0].start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(spans[0].resource.service_name(), "cart");
        assert_eq!(
            spans[0].attributes[0].value,
            skewer_storage::model::AttributeValue::Int(42)
        );
    }

    #[test]
    fn otlp_json_with_proto_field_names_decodes_like_lower_camel_case() {
        let camel = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"GET","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000"}]}]}]}"#;
        let snake = br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"cart"}}]},
            "scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "name":"GET","start_time_unix_nano":"1700000000000000000","end_time_unix_nano":"1700000000500000000"}]}]}]}"#;
        let spans = |body: &[u8]| {
            let decoded = decode_export(
                Signal::Traces,
                PayloadFormat::Json,
                &Bytes::copy_from_slice(body),
                &options(),
            )
            .unwrap();
            let SignalBatch::Spans(spans) = decoded.batch else {
                panic!("not spans")
            };
            spans
        };
        let (camel, snake) = (spans(camel), spans(snake));
        assert_eq!(snake.len(), 1);
        assert_eq!(snake, camel);
    }

    #[test]
    fn doubles_written_as_nan_and_infinity_decode() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1","asDouble":"NaN"}]}},
            {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1",
              "count":"2","sum":"Infinity","min":"-Infinity","bucketCounts":["1","1"],
              "explicitBounds":[1.5],"attributes":[{"key":"ratio","value":{"doubleValue":"NaN"}},
              {"key":"word","value":{"stringValue":"NaN"}}]}]}}]}]}]}"#;
        let request: ExportMetricsServiceRequest = parse(PayloadFormat::Json, body).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Gauge(gauge)) = &metrics[0].data else {
            panic!("gauge")
        };
        let gauge_value = gauge.data_points[0].value;
        assert!(
            matches!(gauge_value, Some(number_data_point::Value::AsDouble(v)) if v.is_nan()),
            "{gauge_value:?}"
        );
        let Some(Data::Histogram(histogram)) = &metrics[1].data else {
            panic!("histogram")
        };
        let point = &histogram.data_points[0];
        assert_eq!(point.sum, Some(f64::INFINITY));
        assert_eq!(point.min, Some(f64::NEG_INFINITY));
        assert_eq!(point.explicit_bounds, [1.5]);
        let value = |i: usize| {
            point.attributes[i]
                .value
                .as_ref()
                .and_then(|v| v.value.clone())
        };
        assert!(matches!(value(0), Some(Any::DoubleValue(v)) if v.is_nan()));
        assert_eq!(
            value(1),
            Some(Any::StringValue("NaN".into())),
            "text stays text"
        );
        // The whole export is kept, so nothing else in it is lost.
        assert!(
            decode_export(
                Signal::Metrics,
                PayloadFormat::Json,
                &Bytes::copy_from_slice(body),
                &options()
            )
            .is_ok()
        );
    }

    /// A metrics export of a gauge point with one string attribute.
    fn gauge_export(name: &str, route: &str) -> Vec<u8> {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
            number_data_point,
        };
        let point = NumberDataPoint {
            attributes: vec![KeyValue {
                key: "route".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(route.into())),
                }),
                ..Default::default()
            }],
            time_unix_nano: 1,
            value: Some(number_data_point::Value::AsDouble(0.5)),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![point],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn metric_points(decoded: DecodedExport) -> Vec<skewer_storage::model::MetricPoint> {
        let SignalBatch::Metrics(points) = decoded.batch else {
            panic!("not metrics")
        };
        points
    }

    #[test]
    fn metrics_decode_alike_with_the_attribute_bytes_kept_or_decoded_first() {
        let body = Bytes::from(gauge_export("load", "/cart"));
        let plain = DecodeOptions {
            record_limits: None,
            ..options()
        };
        let kept = metric_points(
            decode_export(Signal::Metrics, PayloadFormat::Protobuf, &body, &plain).unwrap(),
        );
        // With record limits to apply, the export is decoded whole first.
        let decoded_first = metric_points(
            decode_export(Signal::Metrics, PayloadFormat::Protobuf, &body, &options()).unwrap(),
        );
        assert_eq!(kept, decoded_first);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].series.attributes,
            [skewer_storage::model::Attribute::string("route", "/cart")]
        );
    }

    #[test]
    fn metric_attributes_that_are_not_utf8_make_the_export_malformed() {
        // Also when the point is refused anyway (its metric has no name).
        for name in ["load", ""] {
            let mut body = gauge_export(name, "XX");
            let at = body.windows(2).position(|pair| pair == b"XX").unwrap();
            body[at..at + 2].copy_from_slice(b"\xff\xfe");
            assert_malformed(&Bytes::from(body));
        }
    }

    fn assert_malformed(body: &Bytes) {
        let plain = DecodeOptions {
            record_limits: None,
            ..options()
        };
        for options in [plain, options()] {
            let err = decode_export(Signal::Metrics, PayloadFormat::Protobuf, body, &options)
                .unwrap_err();
            assert_eq!(err.kind(), skewer_storage::ErrorKind::InvalidArgument);
            // Refused again: a refused encoding is never remembered.
            let again = decode_export(Signal::Metrics, PayloadFormat::Protobuf, body, &options)
                .unwrap_err();
            assert_eq!(again.kind(), skewer_storage::ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn malformed_bodies_are_invalid_argument() {
        for (format, body) in [
            (PayloadFormat::Protobuf, &b"\xff\xff\xff"[..]),
            (PayloadFormat::Json, &b"{not json"[..]),
        ] {
            let err = decode_export(
                Signal::Logs,
                format,
                &Bytes::copy_from_slice(body),
                &options(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), skewer_storage::ErrorKind::InvalidArgument);
        }
    }
}
