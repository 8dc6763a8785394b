//! The log index: one tantivy index of log records per tenant, with a synchronous API.
//!
//! Every call blocks (commits fsync, searches read mmapped files), so async callers run it on
//! blocking threads. The index knows nothing of tenants, buffers or the WAL: the caller adds
//! records, commits, and searches; records still in its buffer are filtered with
//! [`matches_in_memory`] (or a [`LogMatcher`]), which gives a [`LogQuery`] the same meaning.
//!
//! # Schema
//!
//! | field            | type      | options                                                     |
//! |------------------|-----------|-------------------------------------------------------------|
//! | `timestamp`      | u64       | FAST only: effective time (event, else observed), Unix ns   |
//! | `severity_number`| i64       | INDEXED + FAST                                              |
//! | `severity_text`  | text      | raw tokenizer (exact), doc ids only, no norms               |
//! | `service_name`   | text      | raw (exact), doc ids only, no norms; `unknown_service` if unset |
//! | `trace_id`       | bytes     | the id's 3-byte digest (4 before format 8) as one term, doc ids only; absent if none |
//! | `span_id`        | bytes     | the id's 3-byte digest (4 before format 8) as one term, doc ids only; absent if none |
//! | `correlation_id` | bytes     | the id's 3-byte digest (4 before format 8) as one term, doc ids only; absent if none |
//! | `correlation_key`| text      | raw (exact): the attribute the correlation id came from     |
//! | `body`           | text      | `default` tokenizer, doc ids only (format 4), no norms, not stored |
//! | `attributes`     | JSON      | raw string values, dots in keys expanded, doc ids only, not stored; without the correlation attribute |
//! | `record_batch_v3`| bytes     | STORED only, on batch documents: up to 1,024 records (`record_batch`, version 3) |
//! | `batch_marker`   | u64       | INDEXED only, on batch documents: every query excludes them |
//! | `stream_id`      | u64       | FAST only (format 2): the record's stream in the partition's catalog |
//! | `line_bytes`     | u64       | FAST only (format 2): the length of the body as LogQL's line |
//! | `level`          | u64       | FAST only (format 2): `detected_level` as a code (`streams::LEVELS`) |
//!
//! This is format 8: format 7 with 3-byte id digests (4 before) and version 3 batches in
//! `record_batch_v3`, which leave event times to the `timestamp` column (pinned in
//! `storage/testdata/log_index_v8`). Since format 6, records are stored by the batch, not one per document: each add
//! writes, per up to 1,024 records, one batch document (the records laid out field by field,
//! which zstd compresses better than records one by one) right before the records' own
//! documents, which store nothing. A record is read from the last batch document before it in
//! its segment, at its distance from it (tantivy keeps one group of operations in one segment,
//! and merges keep a segment's documents in order). Batch documents carry a marker term that
//! every query excludes, and values in every fast field so no column needs a presence index.
//! From format 7 batches keep each column in its own section, compressed apart, and text
//! bodies as columns of tokens, numbers and hex ids (`text_columns`); format 7 is pinned in
//! `storage/testdata/log_index_v7`. Format 6 (`storage/testdata/log_index_v6`) is the same
//! index with version 1 batches in `record_batch` (the columns back to back, compressed by
//! the document store as a whole).
//! Format 5 (`storage/testdata/log_index_v5`) stores each record in its own document's
//! `record` field, in `stored_record`'s format 2.
//!
//! Since format 5, ids are kept as digests (`schema::IdDigest`): four bytes of a hash (three
//! from format 8),
//! a fraction of the term dictionary whole ids took. A digest finds a superset of an id's
//! records (two ids may share one), so every record found by an id is checked against the
//! exact query, as body phrases are. Format 4 indexes
//! (`storage/testdata/log_index_v4`) keep trace and span ids as their 16 and 8 bytes, the
//! correlation id as exact text, and records in stored format 1.
//! Format 3 indexes (`storage/testdata/log_index_v3`) keep the body's freqs
//! and positions, and answer phrases from them; format 4 answers a phrase by its terms and
//! checks each record found against the exact query (`query_rewrite`, `RecordSource::record`).
//! Format 2 indexes (`log_index_v2`) also keep trace and span ids as lowercase hex text, the
//! correlation attribute in `attributes` too, and no `correlation_key`; format 1 indexes
//! (`log_index_v1`) also lack `stream_id`, `line_bytes` and `level`. All stay readable and keep
//! taking records in their own format; query text means the same on every format
//! (`query_rewrite` maps `trace_id:<hex>` and `attributes.<correlation key>:<value>` onto
//! format 3's fields, relaxes body phrases on format 4, and turns ids into digests on format 5).
//! The timestamp has no inverted index: tantivy 0.27 answers a `RangeQuery` on a fast numeric
//! field from the column, and sorts by it, so terms would only cost space. No norms anywhere:
//! results are ordered by time, never by score. Structured bodies are indexed as their words
//! (`key value ...`), not as JSON. The document store is zstd level 3 in 256 KiB blocks.
//!
//! Size, measured by the test `measure_bytes_per_record` (~200-byte bodies, 4 attributes with
//! the request id, 2,000 records, ~355 bytes of OTLP protobuf each): about 98 bytes on disk
//! per record with five records per trace, 143 with every record its own trace (unique ids):
//! the document store ~37 / 61 bytes, term dictionaries 29 / 47, postings 27 / 29. Format 6
//! took 106 / 157 (store 44 / 73); format 5
//! took 112 / 162 (store 52 / 81); format 4 129 / 208 (store 59 / 89, term dictionaries
//! 39 / 85); format 3 157 / 238 (postings 33 / 37, positions 19); format 2 165 / 267.
//! Query text uses tantivy's syntax with `body` as the default
//! field and AND as the default operator, so `timeout "connection reset" -retry`,
//! `severity_text:ERROR` and `attributes.http.method:GET` all work.

mod attribute_clause;
mod index;
mod newest_first;
mod query;
mod query_rewrite;
mod record_batch;
mod record_source;
mod schema;
mod stored_record;
pub mod streams;
#[cfg(test)]
pub(crate) mod test_records;
mod text_columns;
mod text_match;
mod timed_matches;
mod varint;

pub use attribute_clause::attribute_clause;
pub use index::{LogIndex, SegmentMerge};
pub use query::{LogMatcher, LogQuery, matches_in_memory};
pub use timed_matches::{StreamHit, TimedHit, TimedMatches};

/// Errors of the log index.
#[derive(Debug, thiserror::Error)]
pub enum LogIndexError {
    /// tantivy failed (I/O, a corrupt or incompatible index, a lock held by another writer).
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index directory could not be created.
    #[error("cannot create log index directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The index directory could not be opened.
    #[error("cannot open log index directory {path}: {source}")]
    OpenDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: tantivy::directory::error::OpenDirectoryError,
    },
    /// The query text is not valid query syntax or names an unknown or unindexed field.
    #[error("invalid log query {text:?}: {reason}")]
    InvalidQuery {
        /// The query text as given.
        text: String,
        /// What is wrong with it, fit to show the user.
        reason: String,
    },
    /// A record could not be encoded for the document store.
    #[error("cannot encode log record: {0}")]
    EncodeRecord(String),
    /// A stored document did not hold a readable record.
    #[error("stored log record is unreadable: {reason}")]
    CorruptRecord {
        /// What was wrong.
        reason: String,
    },
}

impl LogIndexError {
    /// True when the user's query text was at fault (maps to InvalidArgument).
    pub fn is_invalid_query(&self) -> bool {
        matches!(self, Self::InvalidQuery { .. })
    }

    /// A stored record or batch that does not read, for `reason`.
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::CorruptRecord {
            reason: reason.into(),
        }
    }
}

/// Tuning of one log index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogIndexConfig {
    /// Memory the single indexing thread may fill before it writes a segment; tantivy needs at
    /// least 15 MB.
    pub writer_memory_bytes: usize,
}

impl LogIndexConfig {
    /// The default writer memory: 32 MiB.
    pub const DEFAULT_WRITER_MEMORY_BYTES: usize = 32 << 20;
}

impl Default for LogIndexConfig {
    fn default() -> Self {
        Self {
            writer_memory_bytes: Self::DEFAULT_WRITER_MEMORY_BYTES,
        }
    }
}
