//! Query errors, each with the kind the API maps to a status.

use skewer_storage::{ErrorKind, StorageError};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is missing or invalid.
    #[error("invalid {parameter}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        parameter: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A LogQL query is invalid or cannot be evaluated as asked.
    #[error(transparent)]
    Logql(#[from] crate::logql::LogqlError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Storage answered in a shape the query did not expect (a bug).
    #[error("internal: {0}")]
    Internal(String),
}

impl QueryError {
    /// The kind that decides the status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidParameter { .. } | Self::Logql(_) => ErrorKind::InvalidArgument,
            Self::Storage(err) => err.kind(),
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
}
