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
    #[error("body of more than {max_bytes} bytes")]
    TooLarge {
        /// The cap.
        max_bytes: usize,
    },
    /// Content type other than protobuf or JSON.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// Content encoding other than gzip or identity.
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedContentEncoding(String),
    /// The tenant header is not a valid tenant id.
    #[error(transparent)]
    BadTenant(#[from] skewer_storage::model::IdError),
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
            | Self::BadTenant(_) => ErrorKind::InvalidArgument,
            Self::TooLarge { .. } => ErrorKind::InvalidArgument,
            Self::Storage(err) => err.kind(),
            Self::NotReady => ErrorKind::Unavailable,
        }
    }

    /// Text safe to show a client: internal failures are not described.
    pub fn client_message(&self) -> String {
        match self.kind() {
            ErrorKind::Internal => "internal error".to_owned(),
            ErrorKind::ResourceExhausted => {
                "server overloaded: memory budget exhausted, retry later".to_owned()
            }
            ErrorKind::Unavailable => "server unavailable, retry later".to_owned(),
            _ => self.to_string(),
        }
    }

    /// The gRPC status; overload and unavailability are `UNAVAILABLE`, which OTLP exporters retry.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.client_message();
        match self.kind() {
            // OTLP exporters retry UNAVAILABLE; RESOURCE_EXHAUSTED only with retry info.
            ErrorKind::ResourceExhausted => tonic::Status::unavailable(message),
            kind => tonic::Status::new(tonic::Code::from(kind.grpc_code()), message),
        }
    }
}
