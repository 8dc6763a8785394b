//! The crate's error type and the error kinds every layer maps to a gRPC code or HTTP status.

/// What a caller can do about an error; adapters map each kind to one gRPC code and one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; retrying it unchanged will fail again.
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// No or bad credentials.
    Unauthenticated,
    /// Credentials lack the right.
    PermissionDenied,
    /// Overloaded: retry later (OTLP's retryable answer).
    ResourceExhausted,
    /// Not ready or shutting down: retry later.
    Unavailable,
    /// The request asks for more than one answer may hold (rows, bytes): narrow it.
    LimitExceeded,
    /// The request did not finish in time.
    DeadlineExceeded,
    /// A bug or an environment failure (disk, permissions).
    Internal,
}

impl ErrorKind {
    /// The one mapping from error kinds to HTTP statuses, for every HTTP surface.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::NotFound => 404,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ResourceExhausted => 429,
            Self::Unavailable => 503,
            Self::LimitExceeded => 422,
            Self::DeadlineExceeded => 504,
            Self::Internal => 500,
        }
    }

    /// The one mapping from error kinds to gRPC status codes.
    pub fn grpc_code(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::NotFound => 5,
            Self::Unauthenticated => 16,
            Self::PermissionDenied => 7,
            Self::ResourceExhausted => 8,
            Self::Unavailable => 14,
            Self::LimitExceeded => 11,
            Self::DeadlineExceeded => 4,
            Self::Internal => 13,
        }
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    /// Encoding or decoding a Parquet file failed.
    #[error(transparent)]
    Codec(#[from] crate::parquet_codec::CodecError),
    /// The catalog failed (a damaged manifest, a conflicting change).
    #[error(transparent)]
    Catalog(Box<crate::catalog::CatalogError>),
    /// The log index failed.
    #[error(transparent)]
    LogIndex(#[from] crate::logs::LogIndexError),
    /// Reading or writing an object failed.
    #[error("object store {path}: {source}")]
    ObjectStore {
        /// The object's path.
        path: String,
        /// The cause.
        source: object_store::Error,
    },
    /// The configured object store URL cannot be used.
    #[error("invalid object store url {url:?}: {reason}")]
    InvalidStoreUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The configured object store does not answer (missing bucket, refused credentials,
    /// unreachable endpoint).
    #[error("object store {url} unavailable: {reason}")]
    StoreUnavailable {
        /// The store's URL.
        url: String,
        /// What it answered, or why it could not be reached.
        reason: String,
    },
    /// A file-system operation outside the object store failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The memory budget for in-flight and buffered data is used up.
    #[error(
        "memory budget exhausted: {requested_bytes} bytes requested, {available_bytes} available"
    )]
    BudgetExhausted {
        /// What the request needed.
        requested_bytes: usize,
        /// What was left.
        available_bytes: usize,
    },
    /// Storage is shutting down and takes no more writes.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// A query argument is invalid (bad log query syntax...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A manifest commit failed and its outcome could not be read back: the files it named
    /// are kept (the next start removes them if no manifest lists them).
    #[error("manifest commit of {table} may or may not have landed: {reason}")]
    CommitOutcomeUnknown {
        /// The table.
        table: String,
        /// What failed.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another skewer process")]
    DataDirInUse(std::path::PathBuf),
    /// A query would return more than its limit allows.
    #[error("the query matches more than {limit} {what}: narrow the time range or add filters")]
    LimitExceeded {
        /// Rows or bytes.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A query would pass one of its tenant's own query limits.
    #[error(
        "the query is over this tenant's limit {limit} = {value}: narrow the time range or add filters"
    )]
    TenantQueryLimit {
        /// The limit's config key.
        limit: &'static str,
        /// Its value.
        value: u64,
    },
    /// A query ran past its deadline.
    #[error("the query did not finish in time: narrow the time range or add filters")]
    DeadlineExceeded,
    /// A truncating scan reached a limit (internal: ends its stream, which says so).
    #[error("scan {0}")]
    Truncated(crate::scan::Truncation),
    /// The consumer of a scan went away (internal: ends the scan quietly).
    #[error("scan abandoned by its consumer")]
    ScanAbandoned,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// A file whose rows leave their series' identity to its series index has no readable
    /// one.
    #[error("{path}: series index unreadable, its points have no series: {reason}")]
    SeriesIndexUnreadable {
        /// The data file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl StorageError {
    /// The kind that decides the status code a client sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BudgetExhausted { .. } => ErrorKind::ResourceExhausted,
            Self::ShuttingDown => ErrorKind::Unavailable,
            Self::Wal(crate::wal::WalError::Unavailable(_) | crate::wal::WalError::Closed) => {
                ErrorKind::Unavailable
            }
            Self::InvalidQuery(_) => ErrorKind::InvalidArgument,
            Self::LimitExceeded { .. } | Self::Truncated(_) => ErrorKind::LimitExceeded,
            Self::TenantQueryLimit { .. } => ErrorKind::ResourceExhausted,
            Self::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            Self::ScanAbandoned | Self::DataDirInUse(_) | Self::CommitOutcomeUnknown { .. } => {
                ErrorKind::Unavailable
            }
            Self::LogIndex(err) if err.is_invalid_query() => ErrorKind::InvalidArgument,
            Self::Wal(_)
            | Self::Catalog(_)
            | Self::Codec(_)
            | Self::LogIndex(_)
            | Self::ObjectStore { .. }
            | Self::InvalidStoreUrl { .. }
            | Self::StoreUnavailable { .. }
            | Self::Io { .. }
            | Self::SeriesIndexUnreadable { .. }
            | Self::Task(_) => ErrorKind::Internal,
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<crate::catalog::CatalogError> for StorageError {
    fn from(err: crate::catalog::CatalogError) -> Self {
        match err {
            crate::catalog::CatalogError::Storage(inner) => *inner,
            other => Self::Catalog(Box::new(other)),
        }
    }
}

impl From<tokio::task::JoinError> for StorageError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Task(err.to_string())
    }
}
