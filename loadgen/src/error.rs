//! The load generator's errors, each saying what to fix.

/// Why a load run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// A `--header` is not `Name: value`.
    #[error("header {0:?} is not `Name: value`")]
    BadHeader(String),
    /// A request could not be encoded as JSON.
    #[error("cannot encode a request as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The gRPC endpoint is unreachable or malformed.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The address tried.
        address: String,
        /// Why it failed.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--backfill-hours` was given for a signal other than logs.
    #[error("--backfill-hours dates log records only; use --spread-hours for traces")]
    BackfillLogsOnly,
    /// The server acknowledged nothing.
    #[error("nothing was acknowledged; is the server running at the given addresses?")]
    NothingAcknowledged,
    /// Most demo exports failed.
    #[error("most exports failed; is `skewer serve` running?")]
    DemoFailed,
}
