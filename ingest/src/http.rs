//! OTLP/HTTP receivers: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` in protobuf or JSON,
//! optionally gzip-compressed; answers in the request's encoding, errors as `google.rpc.Status`.
//! The same listener takes Prometheus remote write (`POST /api/v1/write`, see
//! [`crate::remote_write`]), which shares the body reading here.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::BytesMut;
use http_body_util::BodyExt;
use prost::Message;
use skewer_storage::budget::Reservation;
use skewer_storage::model::{Signal, TenantId};

use crate::IngestError;
use crate::body_guard::{BodyLimits, GuardedBody, HeldBudget};
use crate::payload::PayloadFormat;
use crate::pipeline::{ExportOutcome, Pipeline};
use crate::responses::{logs_response, metrics_response, trace_response};
use skewer_storage::auth::{ConnectionIdentity, KeyRing, Scope};
use skewer_storage::model::tenant::TENANT_HEADER;

/// Compressed bodies above this size are inflated on a blocking thread.
const INLINE_DECOMPRESS_MAX_BYTES: usize = 64 * 1024;

/// Seconds a client is asked to wait before retrying an overloaded export.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// OTLP/HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted body, compressed and decompressed alike.
    pub max_body_bytes: usize,
    /// The API keys exports must present (none needed while it holds none).
    pub keys: Arc<KeyRing>,
    /// How long a body may take to arrive, and how slowly.
    pub body_limits: BodyLimits,
}

/// What every handler on the ingest listener shares.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) max_body_bytes: usize,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) body_limits: BodyLimits,
}

impl HttpState {
    /// The tenant an export writes to: its key's (or its mapped client certificate's),
    /// checked for the ingest scope before any of the body is read.
    pub(crate) fn authorize(&self, parts: &Parts) -> Result<TenantId, IngestError> {
        let headers = &parts.headers;
        let certificate = parts
            .extensions
            .get::<ConnectionIdentity>()
            .and_then(|identity| identity.certificate.as_deref());
        let access = self.keys.authorize_with(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            headers.get(TENANT_HEADER).map(HeaderValue::as_bytes),
            Scope::Ingest,
            certificate,
        )?;
        Ok(access.tenant)
    }
}

/// The OTLP/HTTP routes, and Prometheus remote write's.
pub fn otlp_http_router(pipeline: Arc<Pipeline>, config: &HttpConfig) -> Router {
    let state = HttpState {
        pipeline,
        max_body_bytes: config.max_body_bytes,
        keys: Arc::clone(&config.keys),
        body_limits: config.body_limits,
    };
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/logs", post(export_logs))
        .route("/v1/metrics", post(export_metrics))
        .route(
            crate::remote_write::REMOTE_WRITE_PATH,
            post(crate::remote_write::receiver::remote_write),
        )
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

/// The `google.rpc.Status` message OTLP/HTTP uses for error bodies.
#[derive(Clone, PartialEq, Message, serde::Serialize)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Human-readable reason.
    #[prost(string, tag = "2")]
    pub message: String,
}

async fn export_traces(State(state): State<HttpState>, request: Request) -> Response {
    export(state, Signal::Traces, request, |format, outcome| {
        encode_message(format, &trace_response(outcome))
    })
    .await
}

async fn export_logs(State(state): State<HttpState>, request: Request) -> Response {
    export(state, Signal::Logs, request, |format, outcome| {
        encode_message(format, &logs_response(outcome))
    })
    .await
}

async fn export_metrics(State(state): State<HttpState>, request: Request) -> Response {
    export(state, Signal::Metrics, request, |format, outcome| {
        encode_message(format, &metrics_response(outcome))
    })
    .await
}

fn encode_message<M: Message + serde::Serialize>(format: PayloadFormat, message: &M) -> Vec<u8> {
    match format {
        // Never asked for remote write, whose answers carry no OTLP message
        // (`remote_write::receiver`).
        PayloadFormat::Protobuf | PayloadFormat::RemoteWrite => message.encode_to_vec(),
        // Absent fields are left out (`{}` for a full success), not written as `null`.
        // Serializing generated structs cannot fail.
        PayloadFormat::Json => match serde_json::to_value(message) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.retain(|_, value| !value.is_null());
                serde_json::to_vec(&fields).unwrap_or_else(|_| b"{}".to_vec())
            }
            _ => b"{}".to_vec(),
        },
    }
}

async fn export(
    state: HttpState,
    signal: Signal,
    request: Request,
    respond: impl FnOnce(PayloadFormat, ExportOutcome) -> Vec<u8>,
) -> Response {
    let (parts, body) = request.into_parts();
    let (tenant, format) = match admit(&state, signal, &parts) {
        Ok(admitted) => admitted,
        Err((format, err)) => {
            return drained(body, state.max_body_bytes, error_response(format, &err)).await;
        }
    };
    let headers = parts.headers;
    let result = async {
        let declared_len = declared_body_len(&headers, state.max_body_bytes);
        let (body, receiving) = read_body(&state, signal, body, declared_len).await?;
        let body = if body.len() <= INLINE_DECOMPRESS_MAX_BYTES {
            decompress(&headers, body, state.max_body_bytes)?
        } else {
            let max_bytes = state.max_body_bytes;
            let headers = headers.clone();
            tokio::task::spawn_blocking(move || decompress(&headers, body, max_bytes))
                .await
                .map_err(|err| IngestError::Storage(err.into()))??
        };
        state
            .pipeline
            .export_body(signal, tenant, format, body, receiving)
            .await
    }
    .await;
    match result {
        Ok(outcome) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            respond(format, outcome),
        )
            .into_response(),
        Err(err) => error_response(format, &err),
    }
}

/// Who is asking, in what format, and whether the export may come in at all: settled on the
/// headers, before the body is read. A refusal carries the format to answer in (JSON, readable
/// by anyone, for an unknown content type).
fn admit(
    state: &HttpState,
    signal: Signal,
    parts: &Parts,
) -> Result<(TenantId, PayloadFormat), (PayloadFormat, IngestError)> {
    let headers = &parts.headers;
    let format = payload_format(headers);
    let answer_format = *format.as_ref().unwrap_or(&PayloadFormat::Json);
    let tenant = state.authorize(parts).map_err(|err| (answer_format, err))?;
    let format = format.map_err(|err| (PayloadFormat::Json, err))?;
    state
        .pipeline
        .admit_tenant(signal, &tenant)
        .map_err(|err| (format, err))?;
    // Refuse an overloaded export before reading its body, not after decoding it.
    let declared_len = declared_body_len(headers, state.max_body_bytes);
    state
        .pipeline
        .admit_early(
            signal,
            format.decoded_size_estimate(declared_len.unwrap_or(0)),
        )
        .map_err(|err| (format, err))?;
    Ok((tenant, format))
}

/// How long reading an unneeded body (to throw it away) may take before a refusal is sent.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `response`, sent once what is left of `body` was read and thrown away (at most
/// `max_bytes`, within [`DRAIN_TIMEOUT`]; nothing is kept): a client still sending its body
/// then reads the answer (a `429` it retries) instead of a connection reset under its feet.
pub(crate) async fn drained(
    body: axum::body::Body,
    max_bytes: usize,
    response: Response,
) -> Response {
    let discard = async {
        let mut body = body;
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > max_bytes {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
    response
}

/// The body length `Content-Length` declares, capped at `max_body_bytes` (a longer body is
/// refused as it arrives).
pub(crate) fn declared_body_len(headers: &HeaderMap, max_body_bytes: usize) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map(|len| len.min(max_body_bytes))
}

/// The most of a declared length allocated before the bytes arrive: a body grows its buffer
/// as it comes, so a declared length alone takes next to no memory (120 stalled uploads
/// declaring 5 MiB took 120 MiB of resident memory outside the budget with 1 MiB here).
const INITIAL_BODY_CAPACITY_BYTES: usize = 64 * 1024;

/// Reads a body of at most `max_body_bytes`, holding memory budget for what has arrived (never
/// for what was declared), within the body deadline and rate of [`BodyLimits`].
pub(crate) async fn read_body(
    state: &HttpState,
    signal: Signal,
    body: axum::body::Body,
    declared_len: Option<usize>,
) -> Result<(Bytes, Reservation), IngestError> {
    let max_bytes = state.max_body_bytes;
    let held = HeldBudget::default();
    let mut body = GuardedBody::new(
        body,
        Arc::clone(state.pipeline.budget()),
        held.clone(),
        state.body_limits,
    );
    let mut received =
        BytesMut::with_capacity(declared_len.unwrap_or(0).min(INITIAL_BODY_CAPACITY_BYTES));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| state.pipeline.body_error(signal, err))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if received.len() + data.len() > max_bytes {
            return Err(IngestError::TooLarge { max_bytes });
        }
        received.extend_from_slice(&data);
    }
    Ok((received.freeze(), held.take()))
}

fn payload_format(headers: &HeaderMap) -> Result<PayloadFormat, IngestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(PayloadFormat::Protobuf),
        "application/json" => Ok(PayloadFormat::Json),
        _ => Err(IngestError::UnsupportedContentType(content_type.to_owned())),
    }
}

/// Undoes `Content-Encoding: gzip`, refusing output past `max_bytes` (no gzip bombs).
fn decompress(headers: &HeaderMap, body: Bytes, max_bytes: usize) -> Result<Bytes, IngestError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut output = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
            let limit = u64::try_from(max_bytes)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            flate2::read::MultiGzDecoder::new(body.as_ref())
                .take(limit)
                .read_to_end(&mut output)
                .map_err(|err| IngestError::Malformed {
                    format: "gzip",
                    reason: err.to_string(),
                })?;
            if output.len() > max_bytes {
                return Err(IngestError::TooLarge { max_bytes });
            }
            Ok(Bytes::from(output))
        }
        other => Err(IngestError::UnsupportedContentEncoding(other.to_owned())),
    }
}

/// Ingest errors as HTTP answers with a `google.rpc.Status` body: the error kind's status
/// (one mapping, `ErrorKind::http_status`), except the two statuses only OTLP/HTTP bodies
/// have (too large, unsupported content type).
fn error_response(format: PayloadFormat, err: &IngestError) -> Response {
    let kind = err.kind();
    let (status, grpc_code) = match err {
        // gRPC answers an oversized message RESOURCE_EXHAUSTED; not retried over HTTP (413).
        IngestError::TooLarge { .. } | IngestError::TooCostly { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, 8)
        }
        // Not retried: a client this slow is on a broken link (the limits are generous).
        IngestError::BodyTooSlow(_) => (StatusCode::REQUEST_TIMEOUT, kind.grpc_code()),
        IngestError::UnsupportedContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, kind.grpc_code())
        }
        _ => (
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind.grpc_code(),
        ),
    };
    let body = encode_message(
        format,
        &RpcStatus {
            code: grpc_code,
            message: err.client_message(),
        },
    );
    let response = (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response();
    with_retry_after(response, err)
}

/// `response` with `Retry-After` when `err` is worth retrying (overload, not ready), and
/// with the challenge HTTP clients expect when a key is missing or invalid.
pub(crate) fn with_retry_after(mut response: Response, err: &IngestError) -> Response {
    let kind = err.kind();
    if let Some(seconds) = err.retry_after_seconds() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if kind == skewer_storage::ErrorKind::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(skewer_storage::auth::BEARER_CHALLENGE),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(encoding).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_bombs_are_refused_and_normal_gzip_passes() {
        let small = gzip(b"hello");
        assert_eq!(
            decompress(&headers("gzip"), small, 100).unwrap().as_ref(),
            b"hello"
        );
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(
            decompress(&headers("gzip"), bomb, 1024 * 1024),
            Err(IngestError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(&headers("br"), Bytes::new(), 10),
            Err(IngestError::UnsupportedContentEncoding(_))
        ));
    }

    #[test]
    fn content_types_with_parameters_are_understood() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(payload_format(&headers).unwrap(), PayloadFormat::Json);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(payload_format(&headers).is_err());
    }
}
