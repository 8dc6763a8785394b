//! skewer-ingest: OTLP in. gRPC ([`grpc`]) and HTTP ([`http`]) receivers decode exports
//! ([`payload`], [`convert`]), admit them against the memory budget and hand them to the WAL
//! ([`pipeline`]). Protocol shapes stop here: storage only sees model types and opaque bytes.

pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
mod json_floats;
mod json_names;
pub mod payload;
pub mod pipeline;
pub mod raw_codec;
pub mod responses;
pub mod stats;

pub use error::IngestError;
pub use pipeline::{ExportOutcome, Pipeline};
