//! Sends pre-encoded exports over OTLP/gRPC (a pass-through codec, no re-encoding) or
//! OTLP/HTTP (protobuf or JSON), with extra headers, and classifies the answer.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use skewer_ingest::raw_codec::RawCodec;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::Signal;
use super::pool::Encoding;

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

impl TransportKind {
    /// The body encoding this transport sends.
    pub fn encoding(self) -> Encoding {
        match self {
            Self::Grpc | Self::HttpProtobuf => Encoding::Protobuf,
            Self::HttpJson => Encoding::Json,
        }
    }
}

/// How the server answered one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` records were refused through partial success.
    Accepted {
        /// Records refused one by one.
        rejected: u64,
    },
    /// A retryable refusal (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED, HTTP 429/502/503/504).
    Retryable,
    /// Any other failure.
    Failed(String),
}

/// Where exports go and how: the server's addresses, extra headers, and the CA that signs
/// its certificate when it speaks TLS.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// OTLP/gRPC address.
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP address.
    pub http_addr: SocketAddr,
    /// Extra request headers (`authorization`, `x-scope-orgid`…).
    pub headers: Vec<(String, String)>,
    /// PEM CA certificates to trust: TLS (`https`) on both transports when set.
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl Endpoints {
    fn scheme(&self) -> &'static str {
        if self.tls_ca_pem.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// One connection's worth of sending.
#[derive(Clone)]
pub struct Sender {
    kind: TransportKind,
    signal: Signal,
    grpc: Option<tonic::client::Grpc<Channel>>,
    http: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
}

fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    }
}

impl Sender {
    /// Connects (gRPC) or prepares a client (HTTP).
    pub async fn connect(
        kind: TransportKind,
        signal: Signal,
        endpoints: &Endpoints,
    ) -> Result<Self, crate::LoadgenError> {
        let (grpc_addr, http_addr) = (endpoints.grpc_addr, endpoints.http_addr);
        let scheme = endpoints.scheme();
        let grpc = match kind {
            TransportKind::Grpc => {
                let connect_error = |reason: String| crate::LoadgenError::Connect {
                    address: grpc_addr.to_string(),
                    reason,
                };
                let mut endpoint = Endpoint::from_shared(format!("{scheme}://{grpc_addr}"))
                    .map_err(|err| connect_error(err.to_string()))?;
                if let Some(ca) = &endpoints.tls_ca_pem {
                    endpoint = endpoint
                        .tls_config(
                            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                        )
                        .map_err(|err| connect_error(err.to_string()))?;
                }
                let channel = endpoint
                    .initial_stream_window_size(Some(4 * 1024 * 1024))
                    .initial_connection_window_size(Some(16 * 1024 * 1024))
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .map_err(|err| connect_error(err.to_string()))?;
                Some(tonic::client::Grpc::new(channel).max_decoding_message_size(64 * 1024 * 1024))
            }
            _ => None,
        };
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64);
        if let Some(ca) = &endpoints.tls_ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(ca)? {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build()?;
        let url = format!("{scheme}://{http_addr}/v1/{}", signal.path());
        Ok(Self {
            kind,
            signal,
            grpc,
            http,
            url,
            headers: endpoints.headers.clone(),
        })
    }

    /// Sends one export and classifies the answer.
    pub async fn send(&mut self, body: Bytes) -> Outcome {
        match (&mut self.grpc, self.kind) {
            (Some(grpc), _) => {
                let mut request = tonic::Request::new(body);
                for (name, value) in &self.headers {
                    if let (Ok(name), Ok(value)) = (
                        tonic::metadata::MetadataKey::from_bytes(
                            name.to_ascii_lowercase().as_bytes(),
                        ),
                        value.parse(),
                    ) {
                        request.metadata_mut().insert(name, value);
                    }
                }
                if let Err(err) = grpc.ready().await {
                    return Outcome::Failed(err.to_string());
                }
                let path =
                    tonic::codegen::http::uri::PathAndQuery::from_static(grpc_path(self.signal));
                match grpc.unary(request, path, RawCodec).await {
                    Ok(response) => Outcome::Accepted {
                        rejected: rejected_in(
                            self.signal,
                            Encoding::Protobuf,
                            &response.into_inner(),
                        ),
                    },
                    Err(status) => match status.code() {
                        // No connection (a transport error behind the status) is a failure:
                        // the server did not answer, it did not ask to retry.
                        tonic::Code::Unavailable
                            if std::error::Error::source(&status).is_some() =>
                        {
                            Outcome::Failed(format!("server unreachable: {}", status.message()))
                        }
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
                            Outcome::Retryable
                        }
                        _ => Outcome::Failed(format!("{:?}: {}", status.code(), status.message())),
                    },
                }
            }
            (None, kind) => {
                let encoding = kind.encoding();
                let content_type = match encoding {
                    Encoding::Protobuf => "application/x-protobuf",
                    Encoding::Json => "application/json",
                };
                let mut request = self
                    .http
                    .post(&self.url)
                    .header("content-type", content_type);
                for (name, value) in &self.headers {
                    request = request.header(name, value);
                }
                match request.body(body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match status {
                            200..=299 => {
                                let body = response.bytes().await.unwrap_or_default();
                                Outcome::Accepted {
                                    rejected: rejected_in(self.signal, encoding, &body),
                                }
                            }
                            429 | 502 | 503 | 504 => Outcome::Retryable,
                            other => Outcome::Failed(format!("HTTP {other}")),
                        }
                    }
                    Err(err) if err.is_connect() => {
                        Outcome::Failed(format!("server unreachable: {err}"))
                    }
                    Err(err) => Outcome::Failed(err.to_string()),
                }
            }
        }
    }
}

/// Records refused through `partial_success` in an export response.
fn rejected_in(signal: Signal, encoding: Encoding, body: &[u8]) -> u64 {
    fn count(value: Option<i64>) -> u64 {
        value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
    }
    match (signal, encoding) {
        (Signal::Traces, Encoding::Protobuf) => count(
            ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_spans),
        ),
        (Signal::Logs, Encoding::Protobuf) => count(
            ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_log_records),
        ),
        (Signal::Metrics, Encoding::Protobuf) => count(
            ExportMetricsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_data_points),
        ),
        (_, Encoding::Json) => {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let partial = &value["partialSuccess"];
            ["rejectedSpans", "rejectedLogRecords", "rejectedDataPoints"]
                .iter()
                .find_map(|key| match &partial[*key] {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.parse().ok(),
                    _ => None,
                })
                .unwrap_or(0)
        }
    }
}
