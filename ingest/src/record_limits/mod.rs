//! Per-record limits, applied to every export after decoding and before the write-ahead log,
//! the way OpenTelemetry SDKs limit what they record: attributes per record, events and links
//! per span, bytes of an attribute value, and the nesting and length of array and key-value
//! list values; for Prometheus remote write, labels per series and bytes of a label value.
//! What exceeds a limit is dropped (counted in the record's `dropped_*_count` and in
//! `/metrics`) or truncated; the export itself is never refused for it.

mod config;
mod otlp;
mod remote_write;

pub use config::RecordLimits;
pub use otlp::LimitedCounts;
