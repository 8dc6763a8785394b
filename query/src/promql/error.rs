//! Why a PromQL query failed, in the classes the Prometheus API reports.

use crate::QueryError;

/// A PromQL failure.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    /// The query does not parse or is not valid PromQL (`bad_data`).
    #[error("{0}")]
    Parse(String),
    /// A parameter of the request is invalid (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be evaluated on this data (`execution`), e.g. duplicate
    /// series on one side of a one-to-one match.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query would hold more samples than allowed (`execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The server cannot answer yet (storage still opening) or is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Reading the series failed.
    #[error(transparent)]
    Source(#[from] QueryError),
}

impl PromqlError {
    /// The Prometheus API's `errorType` for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Parse(_) | Self::BadData(_) => "bad_data",
            Self::Execution(_) | Self::TooManySamples(_) => "execution",
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Source(err) => match err.kind() {
                skewer_storage::ErrorKind::InvalidArgument => "bad_data",
                skewer_storage::ErrorKind::Unavailable
                | skewer_storage::ErrorKind::ResourceExhausted => "unavailable",
                skewer_storage::ErrorKind::DeadlineExceeded => "timeout",
                skewer_storage::ErrorKind::LimitExceeded => "execution",
                _ => "internal",
            },
        }
    }
}
