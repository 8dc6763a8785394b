//! Ingest errors, mapped once to an [`ErrorKind`] and from there to a gRPC status.

use skewer_storage::{ErrorKind, StorageError};

/// Why an export was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not a valid OTLP message of the expected kind.
    #[error("malformed {format} body: {reason}")]
    Malformed {
        /// `protobuf` or `json`.
        format: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The body (or its decompressed form) exceeds the configured cap.
    #[error("request too large: body of more than {max_bytes} bytes")]
    TooLarge {
        /// The cap.
        max_bytes: usize,
    },
    /// Decoding the body would take more memory than the whole budget holds: however small
    /// the body, it can never be accepted as it is.
    #[error(
        "export would take {needed_bytes} bytes of memory once decoded, more than the whole memory budget ({budget_bytes} bytes): send it in smaller parts"
    )]
    TooCostly {
        /// What decoding it would hold.
        needed_bytes: usize,
        /// The budget (`max_buffered_bytes`).
        budget_bytes: usize,
    },
    /// The body came too slowly, or not whole within its deadline.
    #[error("request body too slow: {0}")]
    BodyTooSlow(String),
    /// Content type other than protobuf or JSON.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// Content encoding other than gzip or identity.
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedContentEncoding(String),
    /// A remote write content type other than 1.0's protobuf (2.0's `proto=` messages among
    /// them: read as 1.0 they would decode as empty).
    #[error(
        "unsupported remote write content type {0:?}: use application/x-protobuf (remote write 1.0, prometheus.WriteRequest)"
    )]
    UnsupportedRemoteWriteType(String),
    /// A remote write content encoding other than snappy.
    #[error("unsupported remote write content encoding {0:?}: use snappy")]
    UnsupportedRemoteWriteEncoding(String),
    /// Every record of a request was refused (for protocols with no partial answer, such as
    /// remote write, where the sender must hear that nothing was kept).
    #[error("no valid record in the request: {rejected} refused, the first because {reason}")]
    NoValidRecords {
        /// Records refused.
        rejected: u64,
        /// Why the first was refused.
        reason: String,
    },
    /// A payload format that cannot carry this signal (remote write carries metrics only).
    #[error("{format} payloads carry no {signal}")]
    SignalNotInFormat {
        /// The payload format's name.
        format: &'static str,
        /// The signal asked for.
        signal: &'static str,
    },
    /// The tenant header is not a valid tenant id.
    #[error(transparent)]
    BadTenant(#[from] skewer_storage::model::IdError),
    /// The tenant is over one of its limits (or a new tenant past the cap).
    #[error(transparent)]
    TenantLimit(#[from] crate::limits::LimitExceeded),
    /// No key, a bad key, or a key without the ingest scope or for another tenant.
    #[error(transparent)]
    Auth(#[from] skewer_storage::auth::AuthError),
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Not ready yet (WAL replay running) or shutting down.
    #[error("not ready")]
    NotReady,
}

impl IngestError {
    /// The kind that decides the status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed { .. }
            | Self::UnsupportedContentType(_)
            | Self::UnsupportedContentEncoding(_)
            | Self::UnsupportedRemoteWriteType(_)
            | Self::UnsupportedRemoteWriteEncoding(_)
            | Self::NoValidRecords { .. }
            | Self::SignalNotInFormat { .. }
            | Self::BadTenant(_) => ErrorKind::InvalidArgument,
            Self::TooLarge { .. } | Self::TooCostly { .. } => ErrorKind::InvalidArgument,
            Self::Storage(err) => err.kind(),
            Self::Auth(err) => err.kind(),
            Self::TenantLimit(_) => ErrorKind::ResourceExhausted,
            Self::NotReady | Self::BodyTooSlow(_) => ErrorKind::Unavailable,
        }
    }

    /// Text safe to show a client: internal failures are not described.
    pub fn client_message(&self) -> String {
        if let Self::TenantLimit(limit) = self {
            return limit.to_string();
        }
        match self.kind() {
            ErrorKind::Internal => "internal error".to_owned(),
            ErrorKind::ResourceExhausted => {
                "server overloaded: memory budget exhausted, retry later".to_owned()
            }
            ErrorKind::Unavailable if matches!(self, Self::BodyTooSlow(_)) => self.to_string(),
            ErrorKind::Unavailable => "server unavailable, retry later".to_owned(),
            _ => self.to_string(),
        }
    }

    /// Seconds a client should wait before retrying, when retrying can help.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::TenantLimit(limit) => Some(limit.retry_after_seconds),
            Self::BodyTooSlow(_) => None,
            _ if self.kind().is_retryable() => Some(u64::from(crate::http::RETRY_AFTER_SECONDS)),
            _ => None,
        }
    }

    /// The gRPC status; overload and unavailability are `UNAVAILABLE`, which OTLP exporters retry.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.client_message();
        if let Self::BodyTooSlow(_) = self {
            return tonic::Status::deadline_exceeded(message);
        }
        match self.kind() {
            // OTLP exporters retry UNAVAILABLE; RESOURCE_EXHAUSTED only with retry info.
            ErrorKind::ResourceExhausted => tonic::Status::unavailable(message),
            kind => tonic::Status::new(tonic::Code::from(kind.grpc_code()), message),
        }
    }
}
