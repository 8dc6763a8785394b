//! OTLP/gRPC receivers: TraceService, LogsService and MetricsService on tonic, gzip accepted,
//! message size capped, HTTP/2 windows raised for one-stream exporters.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use skewer_storage::model::{Signal, TenantId};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::payload::{decoded_logs, decoded_metrics, decoded_traces};
use crate::pipeline::{ExportOutcome, Pipeline};
use crate::tenant::{TENANT_HEADER, tenant_from_header};

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
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            stream_window_bytes: 4 * 1024 * 1024,
            connection_window_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 256,
        }
    }
}

/// The three OTLP services over one pipeline.
#[derive(Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
}

fn tenant_of<T>(request: &Request<T>) -> Result<TenantId, Status> {
    let value = request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes());
    tenant_from_header(value).map_err(|err| Status::invalid_argument(err.to_string()))
}

fn partial<P>(outcome: ExportOutcome, build: impl FnOnce(i64, String) -> P) -> Option<P> {
    (outcome.rejected > 0 || outcome.message.is_some()).then(|| {
        build(
            i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
            outcome.message.unwrap_or_default(),
        )
    })
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let outcome = self
            .pipeline
            .export_message(Signal::Traces, tenant, request.into_inner(), decoded_traces)
            .await
            .map_err(|err| err.to_status())?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: partial(outcome, |rejected_spans, error_message| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let outcome = self
            .pipeline
            .export_message(Signal::Logs, tenant, request.into_inner(), decoded_logs)
            .await
            .map_err(|err| err.to_status())?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: partial(outcome, |rejected_log_records, error_message| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let outcome = self
            .pipeline
            .export_message(
                Signal::Metrics,
                tenant,
                request.into_inner(),
                decoded_metrics,
            )
            .await
            .map_err(|err| err.to_status())?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: partial(outcome, |rejected_data_points, error_message| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        }))
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes; in-flight exports finish first.
pub async fn serve_grpc(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    config: GrpcConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = OtlpGrpc {
        pipeline: Arc::clone(&pipeline),
    };
    let max = config.max_message_bytes;
    let admit = |signal: Signal| {
        let pipeline = Arc::clone(&pipeline);
        move |request: Request<()>| {
            pipeline
                .admit_early(signal, 0)
                .map(|()| request)
                .map_err(|err| err.to_status())
        }
    };
    let traces = InterceptedService::new(
        TraceServiceServer::new(service.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
        admit(Signal::Traces),
    );
    let logs = InterceptedService::new(
        LogsServiceServer::new(service.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
        admit(Signal::Logs),
    );
    let metrics = InterceptedService::new(
        MetricsServiceServer::new(service)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
        admit(Signal::Metrics),
    );
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(config.stream_window_bytes))
        .initial_connection_window_size(Some(config.connection_window_bytes))
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(traces)
        .add_service(logs)
        .add_service(metrics)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
