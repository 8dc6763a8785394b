//! skewer-ingest: OTLP in. gRPC ([`grpc`]) and HTTP ([`http`]) receivers decode exports
//! ([`payload`], [`convert`]), admit them against the memory budget and hand them to the WAL
//! ([`pipeline`]); Prometheus remote write ([`remote_write`]) comes in on the HTTP listener
//! the same way. Protocol shapes stop here: storage only sees model types and opaque bytes.

pub mod body_guard;
pub mod convert;
pub mod decoded_size;
pub mod error;
pub mod grpc;
pub mod http;
mod json_floats;
mod json_names;
pub mod limits;
pub mod metrics_wire;
pub mod payload;
pub mod pipeline;
pub mod raw_codec;
pub mod record_limits;
pub mod redact;
pub mod remote_write;
pub mod responses;
mod series_limit;
pub mod skew_metrics;
pub mod span_metrics;
pub mod stats;
mod whole_body;

pub use error::IngestError;
pub use pipeline::{ExportOutcome, Pipeline};
