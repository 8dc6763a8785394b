//! The remote write HTTP handler: checks the content type and encoding, admits and reads the
//! body as OTLP/HTTP does (same budget, same cap), decompresses it within the cap, and hands
//! it to the pipeline, which makes it durable before the answer. Answers `204`, or a plain
//! text error whose status Prometheus acts on: `429` and `503` (with `Retry-After`) are
//! retried, other `4xx` dropped for good. Knows nothing of the message inside.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use skewer_storage::model::{Signal, TenantId};
use tracing::warn;

use super::snappy;
use crate::IngestError;
use crate::http::{HttpState, declared_body_len, drained, read_body, with_retry_after};
use crate::payload::PayloadFormat;
use crate::pipeline::ExportOutcome;

/// Bodies that decompress to more than this are decompressed on a blocking thread.
const INLINE_DECOMPRESS_MAX_BYTES: usize = 256 * 1024;

/// The only content type remote write 1.0 sends.
const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// The message remote write 1.0 carries, as remote write 2.0's `proto=` parameter names it.
const WRITE_REQUEST_MESSAGE: &str = "prometheus.WriteRequest";

/// `POST /api/v1/write`.
pub(crate) async fn remote_write(State(state): State<HttpState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let tenant = match admit(&state, &parts) {
        Ok(tenant) => tenant,
        Err(err) => return drained(body, state.max_body_bytes, error_response(&err)).await,
    };
    match receive(&state, &parts.headers, tenant, body).await {
        Ok((tenant, outcome)) => {
            if outcome.rejected > 0 {
                // Prometheus hears nothing of these (there is no partial answer): say it here.
                warn!(
                    tenant = %tenant,
                    accepted = outcome.accepted,
                    rejected = outcome.rejected,
                    reason = outcome.message.as_deref().unwrap_or_default(),
                    "remote write: samples refused, the rest kept"
                );
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => {
            if matches!(err, IngestError::NoValidRecords { .. }) {
                warn!(error = %err, "remote write: request refused");
            }
            error_response(&err)
        }
    }
}

/// Checks the key, the tenant's limits, the content type and encoding, and the budget, on the
/// headers alone.
fn admit(state: &HttpState, parts: &Parts) -> Result<TenantId, IngestError> {
    let headers = &parts.headers;
    let tenant = state.authorize(parts)?;
    state.pipeline.admit_tenant(Signal::Metrics, &tenant)?;
    check_content_type(headers)?;
    check_content_encoding(headers)?;
    // Refuse an overloaded export before reading its body, not after decoding it.
    let declared_len = declared_body_len(headers, state.max_body_bytes);
    state.pipeline.admit_early(
        Signal::Metrics,
        PayloadFormat::RemoteWrite.decoded_size_estimate(declared_len.unwrap_or(0)),
    )?;
    Ok(tenant)
}

/// Reads, decompresses and exports one admitted request.
async fn receive(
    state: &HttpState,
    headers: &HeaderMap,
    tenant: TenantId,
    body: Body,
) -> Result<(TenantId, ExportOutcome), IngestError> {
    let format = PayloadFormat::RemoteWrite;
    let declared_len = declared_body_len(headers, state.max_body_bytes);
    let (compressed, mut reservation) =
        read_body(state, Signal::Metrics, body, declared_len).await?;
    let max_bytes = state.max_body_bytes;
    // The declared length is checked before anything is allocated for it.
    let decompressed_len = snappy::decompressed_len(&compressed, max_bytes)?;
    reservation.merge(
        state
            .pipeline
            .reserve_body(Signal::Metrics, decompressed_len)?,
    );
    let decompressed = if decompressed_len <= INLINE_DECOMPRESS_MAX_BYTES {
        snappy::decompress(&compressed, max_bytes)?
    } else {
        tokio::task::spawn_blocking(move || snappy::decompress(&compressed, max_bytes))
            .await
            .map_err(|err| IngestError::Storage(err.into()))??
    };
    let outcome = state
        .pipeline
        .export_body(
            Signal::Metrics,
            tenant.clone(),
            format,
            Bytes::from(decompressed),
            reservation,
        )
        .await?;
    Ok((tenant, outcome))
}

/// Accepts remote write 1.0's `application/x-protobuf` (or no content type, as Prometheus's
/// own receiver does); refuses anything else with `415`, as the 2.0 specification asks,
/// remote write 2.0's `application/x-protobuf;proto=io.prometheus.write.v2.Request` among
/// it: decoded as 1.0, such a body would read as empty and its samples be lost unseen.
fn check_content_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let refused = || {
        IngestError::UnsupportedRemoteWriteType(String::from_utf8_lossy(value.as_bytes()).into())
    };
    let text = value.to_str().map_err(|_| refused())?;
    let mut parts = text.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    let mime_ok = mime.is_empty() || mime.eq_ignore_ascii_case(PROTOBUF_CONTENT_TYPE);
    let message_ok = parts
        .filter_map(|parameter| parameter.split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("proto"))
        .all(|(_, message)| message.trim().trim_matches('"') == WRITE_REQUEST_MESSAGE);
    if mime_ok && message_ok {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Accepts `snappy`, or no content encoding (remote write is always snappy).
fn check_content_encoding(headers: &HeaderMap) -> Result<(), IngestError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let encoding = value.to_str().unwrap_or("?").trim();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("snappy") {
        Ok(())
    } else {
        Err(IngestError::UnsupportedRemoteWriteEncoding(
            encoding.to_owned(),
        ))
    }
}

/// An error as a plain-text answer: the error kind's status (one mapping,
/// `ErrorKind::http_status`), except `413` for a body past the cap and `415` for a content
/// type or encoding other than remote write 1.0's; `Retry-After` on retryable ones.
fn error_response(err: &IngestError) -> Response {
    let status = match err {
        IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::UnsupportedRemoteWriteType(_)
        | IngestError::UnsupportedRemoteWriteEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::from_u16(err.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", err.client_message()),
    )
        .into_response();
    with_retry_after(response, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use skewer_storage::StorageError;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn remote_write_1_content_types_pass_and_others_are_refused() {
        for accepted in [
            "application/x-protobuf",
            "Application/X-Protobuf",
            "application/x-protobuf;proto=prometheus.WriteRequest",
            "application/x-protobuf; proto=\"prometheus.WriteRequest\"",
        ] {
            assert!(
                check_content_type(&headers(header::CONTENT_TYPE, accepted)).is_ok(),
                "{accepted}"
            );
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for refused in [
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "application/json",
            "text/plain",
        ] {
            assert!(
                matches!(
                    check_content_type(&headers(header::CONTENT_TYPE, refused)),
                    Err(IngestError::UnsupportedRemoteWriteType(_))
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn only_snappy_or_no_content_encoding_passes() {
        assert!(check_content_encoding(&HeaderMap::new()).is_ok());
        assert!(check_content_encoding(&headers(header::CONTENT_ENCODING, "snappy")).is_ok());
        assert!(matches!(
            check_content_encoding(&headers(header::CONTENT_ENCODING, "gzip")),
            Err(IngestError::UnsupportedRemoteWriteEncoding(encoding)) if encoding == "gzip"
        ));
    }

    #[test]
    fn errors_get_the_statuses_prometheus_acts_on() {
        let answer = |err: IngestError| {
            let response = error_response(&err);
            (
                response.status().as_u16(),
                response.headers().contains_key(header::RETRY_AFTER),
            )
        };
        assert_eq!(answer(IngestError::TooLarge { max_bytes: 1 }), (413, false));
        assert_eq!(
            answer(IngestError::UnsupportedRemoteWriteType("x".into())),
            (415, false)
        );
        assert_eq!(
            answer(IngestError::Malformed {
                format: "snappy",
                reason: "bad".into()
            }),
            (400, false)
        );
        assert_eq!(
            answer(IngestError::NoValidRecords {
                rejected: 1,
                reason: "bad".into()
            }),
            (400, false)
        );
        let overloaded = IngestError::Storage(StorageError::BudgetExhausted {
            requested_bytes: 1,
            available_bytes: 0,
        });
        assert_eq!(answer(overloaded), (429, true));
        assert_eq!(answer(IngestError::NotReady), (503, true));
    }
}
