//! skewer-storage: the model, the write-ahead log, in-memory buffers and the three stores.
//!
//! Data flows one way through this crate: [`wal`] makes an accepted export durable, the
//! stores' in-memory buffers make it queryable at once, and flushes turn buffers into
//! immutable files (spans and metrics as Parquet through `object_store`, logs into a tantivy
//! index), after which the WAL is checkpointed. This crate knows nothing of wire protocols:
//! the WAL carries opaque payloads that a caller-supplied decoder turns back into
//! [`model::SignalBatch`]es on replay.

pub mod auth;
pub mod aws_credentials;
pub mod backup;
pub mod budget;
pub mod buffer;
pub mod catalog;
pub mod check;
pub mod checkpoint;
pub mod config;
mod deployment;
pub mod error;
pub mod file_stamp;
mod id_hash;
pub mod layout;
pub mod lock;
pub mod log_store;
pub mod logs;
pub mod maintenance;
pub mod membership;
pub mod metrics;
pub mod model;
pub mod node;
pub mod object_copy;
pub mod objects;
pub mod parquet_codec;
pub mod remote;
pub mod retention;
pub mod scan;
pub mod skew;
pub mod spans;
pub mod storage;
pub mod table;
pub mod wal;

pub use error::{ErrorKind, StorageError};
pub use storage::Storage;
