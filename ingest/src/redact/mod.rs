//! Redaction at ingest: data that should not be kept is never written. Rules from the config
//! drop, mask or hash attributes whose key matches a pattern, and mask, hash or cut out the
//! parts of log bodies and string attribute values that match a regular expression (card
//! numbers, e-mail addresses, bearer tokens). Hashing is a keyed HMAC-SHA-256, so equal values
//! still correlate across records without being readable. Applied to every OTLP export after
//! decoding and before the write-ahead log, and to every Prometheus remote write request (labels
//! as attributes); the WAL then holds the redacted export.

mod config;
mod hash_key;
mod otlp;
mod redactor;
mod remote_write;

pub use config::{RedactionAction, RedactionConfig, RedactionRule};
pub use hash_key::{HASH_KEY_FILE, load_or_create_hash_key};
pub use redactor::{MASK, RedactionError, Redactor};
