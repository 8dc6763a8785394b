//! OTLP/gRPC receivers: TraceService, LogsService and MetricsService on tonic, gzip accepted,
//! message size capped, HTTP/2 windows raised for one-stream exporters.
//!
//! The services take the request as raw protobuf bytes ([`RawCodec`]) and hand them to the same
//! pipeline path as OTLP/HTTP protobuf: the bytes are decoded once and written to the WAL as
//! received, instead of decoded by tonic and re-encoded for the WAL.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector;
use prost::Message;
use skewer_storage::auth::{AUTHORIZATION_HEADER, ConnectionIdentity, KeyRing, Scope};
use skewer_storage::model::{Signal, TenantId};
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::metadata::MetadataValue;
use tonic::server::{NamedService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::IngestError;
use crate::body_guard::{BodyLimits, GuardedBody, HeldBudget};
use crate::payload::PayloadFormat;
use crate::pipeline::{ExportOutcome, Pipeline};
use crate::raw_codec::RawCodec;
use crate::responses::{logs_response, metrics_response, trace_response};
use crate::stats::SignalCounters;
use crate::whole_body::WholeBody;
use skewer_storage::model::tenant::{TENANT_HEADER, tenant_from_header};
use tokio::sync::Semaphore;

/// gRPC server settings.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// Largest accepted message after decompression.
    pub max_message_bytes: usize,
    /// HTTP/2 per-stream flow-control window.
    pub stream_window_bytes: u32,
    /// HTTP/2 per-connection flow-control window.
    pub connection_window_bytes: u32,
    /// Concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Export calls in flight over all connections; past it, calls are answered `UNAVAILABLE`.
    pub max_concurrent_calls: usize,
    /// The API keys exports must present (none needed while it holds none).
    pub keys: Arc<KeyRing>,
    /// How long a message may take to arrive, and how slowly.
    pub body_limits: BodyLimits,
    /// A connection is asked to go away (GOAWAY) after this long, and closes once its calls in
    /// flight are answered (each bounded by `body_limits` and the pipeline).
    pub max_connection_age: Duration,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            stream_window_bytes: 4 * 1024 * 1024,
            connection_window_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 256,
            max_concurrent_calls: 1024,
            keys: Arc::new(KeyRing::open_access()),
            body_limits: BodyLimits::default(),
            max_connection_age: Duration::from_secs(900),
        }
    }
}

/// One OTLP collector service: its gRPC name, its signal and its answer.
trait OtlpService: Send + Sync + 'static {
    /// Fully qualified service name, as in the `.proto` (and tonic's generated server).
    const NAME: &'static str;
    /// What it receives.
    const SIGNAL: Signal;
    /// The encoded `Export*ServiceResponse` for an outcome.
    fn response(outcome: ExportOutcome) -> Bytes;
}

struct Traces;
struct Logs;
struct Metrics;

impl OtlpService for Traces {
    const NAME: &'static str = collector::trace::v1::trace_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Traces;
    fn response(outcome: ExportOutcome) -> Bytes {
        trace_response(outcome).encode_to_vec().into()
    }
}

impl OtlpService for Logs {
    const NAME: &'static str = collector::logs::v1::logs_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Logs;
    fn response(outcome: ExportOutcome) -> Bytes {
        logs_response(outcome).encode_to_vec().into()
    }
}

impl OtlpService for Metrics {
    const NAME: &'static str = collector::metrics::v1::metrics_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Metrics;
    fn response(outcome: ExportOutcome) -> Bytes {
        metrics_response(outcome).encode_to_vec().into()
    }
}

/// The tonic service of one OTLP collector service over the pipeline.
struct ExportServer<K> {
    pipeline: Arc<Pipeline>,
    max_message_bytes: usize,
    body_limits: BodyLimits,
    /// One permit per call in flight, shared by the three services.
    calls: Arc<Semaphore>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for ExportServer<K> {
    fn clone(&self) -> Self {
        Self {
            pipeline: Arc::clone(&self.pipeline),
            max_message_bytes: self.max_message_bytes,
            body_limits: self.body_limits,
            calls: Arc::clone(&self.calls),
            kind: PhantomData,
        }
    }
}

impl<K: OtlpService> NamedService for ExportServer<K> {
    const NAME: &'static str = K::NAME;
}

impl<K: OtlpService> Service<http::Request<tonic::body::Body>> for ExportServer<K> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(K::NAME));
        if method != Some("/Export") {
            let status = Status::unimplemented(format!("{} has no such method", K::NAME));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let Ok(call) = Arc::clone(&self.calls).try_acquire_owned() else {
            SignalCounters::add(
                &self.pipeline.stats().signal(K::SIGNAL).requests_retryable,
                1,
            );
            let status = Status::unavailable(
                "server overloaded: too many export calls at once, retry later",
            );
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let export = Export::<K> {
            pipeline: Arc::clone(&self.pipeline),
            kind: PhantomData,
        };
        let request = self.guarded(request);
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let mut grpc = tonic::server::Grpc::new(RawCodec)
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(self.max_message_bytes), None);
        Box::pin(async move {
            let response = grpc.unary(export, request).await;
            drop(call);
            Ok(size_errors_not_retryable(response))
        })
    }
}

/// tonic answers a message over the size limit `OUT_OF_RANGE` (`RESOURCE_EXHAUSTED` when it
/// grows past it decompressing), and OTLP exporters retry both: a request that can never
/// succeed would be sent again and again. skewer's own answers use neither code (overload is
/// `UNAVAILABLE`), so both become `INVALID_ARGUMENT`, which exporters drop.
fn size_errors_not_retryable(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let code = headers
        .get(GRPC_STATUS_HEADER)
        .map(|value| tonic::Code::from_bytes(value.as_bytes()));
    if matches!(
        code,
        Some(tonic::Code::OutOfRange | tonic::Code::ResourceExhausted)
    ) {
        headers.insert(
            GRPC_STATUS_HEADER,
            http::HeaderValue::from_static(INVALID_ARGUMENT_CODE),
        );
    }
    response
}

/// A gRPC message's prefix: a compression flag and a 4-byte length.
const GRPC_MESSAGE_PREFIX_BYTES: usize = 5;

/// Where a trailers-only gRPC answer carries its status code.
const GRPC_STATUS_HEADER: &str = "grpc-status";
/// `INVALID_ARGUMENT` as `grpc-status` writes it.
const INVALID_ARGUMENT_CODE: &str = "3";

impl<K: OtlpService> ExportServer<K> {
    /// The request with its body charged to the budget frame by frame as it arrives (a stalled
    /// stream holds only what it sent) and cut when too slow; the budget it holds travels in
    /// its extensions to [`Export`].
    fn guarded(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> http::Request<tonic::body::Body> {
        let held = HeldBudget::default();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(held.clone());
        let pipeline = Arc::clone(&self.pipeline);
        // Charged as it arrives, handed to tonic only whole (see `WholeBody`), and never more
        // than one message of at most `max_message_bytes` with its 5-byte prefix.
        let body = WholeBody::new(
            GuardedBody::new(
                body,
                Arc::clone(self.pipeline.budget()),
                held,
                self.body_limits,
            ),
            self.max_message_bytes
                .saturating_add(GRPC_MESSAGE_PREFIX_BYTES),
        )
        .map_err(move |err| pipeline.body_error(K::SIGNAL, err).to_status());
        http::Request::from_parts(parts, tonic::body::Body::new(body))
    }
}

/// One `Export` call: the raw request into the pipeline, the outcome back as a response.
struct Export<K> {
    pipeline: Arc<Pipeline>,
    kind: PhantomData<fn() -> K>,
}

impl<K: OtlpService> UnaryService<Bytes> for Export<K> {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let pipeline = Arc::clone(&self.pipeline);
        Box::pin(async move {
            let tenant = tenant_of(&request)?;
            let held = request
                .extensions()
                .get::<HeldBudget>()
                .map(HeldBudget::take)
                .unwrap_or_default();
            let outcome = pipeline
                .export_body(
                    K::SIGNAL,
                    tenant,
                    PayloadFormat::Protobuf,
                    request.into_inner(),
                    held,
                )
                .await
                .map_err(|err| err.to_status())?;
            Ok(Response::new(K::response(outcome)))
        })
    }
}

/// Checks the call's key for the ingest scope and names its tenant in the metadata, where
/// [`tenant_of`] reads it.
fn authorize(keys: &KeyRing, request: &mut Request<()>) -> Result<TenantId, Status> {
    let metadata = request.metadata();
    // A TLS connection's mapped client certificate (tonic's connect info).
    let certificate = request
        .extensions()
        .get::<ConnectionIdentity>()
        .and_then(|identity| identity.certificate.as_deref());
    let access = keys
        .authorize_with(
            metadata.get(AUTHORIZATION_HEADER).map(|v| v.as_bytes()),
            metadata.get(TENANT_HEADER).map(|v| v.as_bytes()),
            Scope::Ingest,
            certificate,
        )
        .map_err(|err| IngestError::from(err).to_status())?;
    let tenant = MetadataValue::try_from(access.tenant.as_str())
        .map_err(|err| Status::internal(err.to_string()))?;
    request.metadata_mut().insert(TENANT_HEADER, tenant);
    Ok(access.tenant)
}

fn tenant_of<T>(request: &Request<T>) -> Result<TenantId, Status> {
    let value = request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes());
    tenant_from_header(value).map_err(|err| Status::invalid_argument(err.to_string()))
}

fn export_server<K: OtlpService, F>(
    pipeline: &Arc<Pipeline>,
    config: &GrpcConfig,
    calls: &Arc<Semaphore>,
    admit: F,
) -> InterceptedService<ExportServer<K>, F> {
    let server = ExportServer {
        pipeline: Arc::clone(pipeline),
        max_message_bytes: config.max_message_bytes,
        body_limits: config.body_limits,
        calls: Arc::clone(calls),
        kind: PhantomData,
    };
    InterceptedService::new(server, admit)
}

/// Serves OTLP/gRPC on the connections of `incoming` (plain TCP, or TLS-terminated) until
/// `shutdown` completes; in-flight exports finish first.
pub async fn serve_grpc<I, IO, IE>(
    incoming: I,
    pipeline: Arc<Pipeline>,
    config: GrpcConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<tonic::codegen::StdError>,
{
    // Exports without a valid ingest key, and overloaded ones, are refused on their metadata,
    // before the body is read or decoded.
    let admit = |signal: Signal| {
        let pipeline = Arc::clone(&pipeline);
        let keys = Arc::clone(&config.keys);
        move |mut request: Request<()>| {
            let tenant = authorize(&keys, &mut request)?;
            pipeline
                .admit_tenant(signal, &tenant)
                .map_err(|err| err.to_status())?;
            pipeline
                .admit_early(signal, 0)
                .map(|()| request)
                .map_err(|err| err.to_status())
        }
    };
    let calls = Arc::new(Semaphore::new(config.max_concurrent_calls));
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(config.stream_window_bytes))
        .initial_connection_window_size(Some(config.connection_window_bytes))
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // No forced close after a grace: tonic would then skip the GOAWAY and cut calls.
        .max_connection_age(config.max_connection_age)
        .add_service(export_server::<Traces, _>(
            &pipeline,
            &config,
            &calls,
            admit(Signal::Traces),
        ))
        .add_service(export_server::<Logs, _>(
            &pipeline,
            &config,
            &calls,
            admit(Signal::Logs),
        ))
        .add_service(export_server::<Metrics, _>(
            &pipeline,
            &config,
            &calls,
            admit(Signal::Metrics),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invalid_argument_header_value_is_that_code() {
        assert_eq!(
            tonic::Code::from_bytes(INVALID_ARGUMENT_CODE.as_bytes()),
            tonic::Code::InvalidArgument
        );
    }
}
