//! Parquet encoding of spans and metric points, and decoding of Arrow record batches back into
//! model types: pure and I/O-free (bytes in, bytes out), so the stores decide where files live.
//!
//! One file format per signal, each a flat table with one row per record:
//!
//! - **spans** (`spans-v3`), sorted by `(time slice, trace_id, start_time_unix_nano)` (see
//!   [`SPAN_SLICE_NANOS`]), with a bloom filter on [`TRACE_ID_COLUMN`] per row group so a trace
//!   is found by id without a time range. Events and links are nested `List<Struct>` columns;
//!   the attributes searched most also have text columns of their own ([`DEDICATED_TAGS`]).
//!   (`spans-v2` files, without those, and `spans-v1` files, sorted by trace id alone, still
//!   read.)
//! - **metric points** (`metrics-v2`), sorted by `(metric_name, series_id, time_unix_nano)`, so a
//!   series is contiguous and its timestamps delta-encode well; a row holds the point, and what
//!   identifies its series is in the file's series index (`metrics-v1` rows also hold it).
//!
//! Attributes of every record, event, link and exemplar share one typed column shape (see
//! `attributes.rs`). Resources and scopes repeat across many rows, so they are stored as typed
//! JSON in dictionary columns: each distinct one is written once per page and parsed once per
//! batch on decode, and rows share its `Arc`.
//!
//! Files carry key-value metadata ([`FORMAT_METADATA_KEY`], [`MIN_TIME_METADATA_KEY`],
//! [`MAX_TIME_METADATA_KEY`]) so a catalog can be rebuilt from footers alone.
//!
//! This module does no I/O and knows nothing of object stores, tenants or catalogs.

pub(crate) mod attributes;
pub(crate) mod columns;
mod exemplars;
mod json;
mod metric_identity;
mod metric_value_runs;
mod metric_values;
mod metrics;
mod sort_keys;
mod span_dedicated;
mod span_nested;
mod span_tags;
mod spans;
#[cfg(test)]
pub(crate) mod test_fixtures;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

pub(crate) use json::SharedJsonReader;
pub use metric_identity::{SERIES_IDENTITY_COLUMNS, SeriesIdentities};
pub use metric_value_runs::{
    NumberSample, add_metric_rows_to_series_index, decode_metric_number_runs,
    decode_metric_value_runs, metric_value_columns,
};
#[cfg(test)]
pub(crate) use metrics::encode_metric_points_in_format_1;
pub use metrics::{
    SeriesRun, add_metric_rows_to_catalog, decode_metric_points, decode_metric_series_runs,
    encode_metric_points, metric_file_schema, metric_points_batch, metric_schema,
    metric_series_columns, metric_writer_properties,
};
pub use sort_keys::{
    MetricSortKey, SpanSortKey, metric_sort_keys, metric_time_range, span_sort_keys,
    span_time_range, span_trace_ids,
};
pub use span_dedicated::{DEDICATED_TAGS, dedicated_column};
pub(crate) use span_nested::{EventsReader, LinksReader};
pub use span_tags::TAG_COLUMNS;
pub(crate) use span_tags::tag_mask;
pub use spans::{
    ATTRIBUTE_TEXT_LEAF, decode_spans, encode_spans, span_writer_properties, spans_batch,
};

/// Span files: the trace id, `FixedSizeBinary(16)`, with a bloom filter per row group.
pub const TRACE_ID_COLUMN: &str = "trace_id";
/// Span files: the service name (`Utf8`, from the resource's `service.name`).
pub const SERVICE_NAME_COLUMN: &str = "service_name";
/// Span files: the span name, Jaeger's operation (`Utf8`).
pub const SPAN_NAME_COLUMN: &str = "name";
/// Span files: the span end, `UInt64` Unix nanoseconds.
pub const END_TIME_COLUMN: &str = "end_time_unix_nano";
/// Span files: the span kind (`UInt8`, OTLP numbers).
pub const SPAN_KIND_COLUMN: &str = "kind";
/// Span files: the status code (`UInt8`, OTLP numbers).
pub const STATUS_CODE_COLUMN: &str = "status_code";
/// Metric files: the metric name (`Utf8`), the first sort key, for row filters by name.
pub const METRIC_NAME_COLUMN: &str = "metric_name";
/// Metric files: the series id (`UInt64`, a hash of the series' identity), the second sort
/// key, by which rows of format 2 find their series in the file's series index.
pub const SERIES_ID_COLUMN: &str = "series_id";
/// Span files: span start, `UInt64` Unix nanoseconds, the second sort key.
pub const START_TIME_COLUMN: &str = "start_time_unix_nano";
/// Metric files: point time, `UInt64` Unix nanoseconds, the third sort key.
pub const POINT_TIME_COLUMN: &str = "time_unix_nano";

/// Key-value metadata key naming a file's format ([`SPANS_FORMAT`] or [`METRICS_FORMAT`]).
pub const FORMAT_METADATA_KEY: &str = "skewer.format";
/// Key-value metadata key holding [`EncodedFile::min_time_unix_nano`] as decimal text.
pub const MIN_TIME_METADATA_KEY: &str = "skewer.min_time_unix_nano";
/// Key-value metadata key holding [`EncodedFile::max_time_unix_nano`] as decimal text.
pub const MAX_TIME_METADATA_KEY: &str = "skewer.max_time_unix_nano";
/// Value of [`FORMAT_METADATA_KEY`] in span files written by this version.
pub const SPANS_FORMAT: &str = "spans-v3";

/// The time slices span files are sorted by first: rows of one slice (by span start) are
/// together, sorted by trace id within it. A search for the newest traces reads the newest
/// slices of an hour and stops, instead of the whole hour; a trace lookup checks one row
/// group per slice (statistics, then the row group's trace-id bloom filter). Five minutes:
/// at 10M spans an hour a slice is ~830k rows (6 row groups), and an hour is 12 slices.
pub const SPAN_SLICE_NANOS: u64 = 300 * 1_000_000_000;

/// The slice of a span starting at `start_unix_nano` ([`SPAN_SLICE_NANOS`]).
pub fn span_slice(start_unix_nano: u64) -> u64 {
    start_unix_nano / SPAN_SLICE_NANOS
}
/// Value of [`FORMAT_METADATA_KEY`] in metric files written by this version: rows without
/// their series' identity, which is in the file's series index.
pub const METRICS_FORMAT: &str = "metrics-v2";
/// Value of [`FORMAT_METADATA_KEY`] in metric files whose rows carry their series' identity
/// (written before format 2, and still when two series of a file share a series id or a
/// merge takes a file of format 1).
pub const METRICS_FORMAT_V1: &str = "metrics-v1";

/// Rows per Parquet row group: the unit of bloom filters, statistics and parallel reads.
pub const MAX_ROW_GROUP_ROWS: usize = 131_072;

/// Rows per Arrow batch handed to the writer, bounding the memory of the Arrow copy.
const MAX_BATCH_ROWS: usize = 8192;
/// Estimated record bytes per Arrow batch, keeping 32-bit string offsets far from overflow.
const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// Errors while encoding or decoding Parquet.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Arrow or Parquet rejected the data.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow rejected an array while building a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// A batch lacks a column this format needs (not a file of this format, or a projection).
    #[error("missing column {column}")]
    MissingColumn {
        /// Column path, nested fields joined by `.`.
        column: String,
    },
    /// A column has an Arrow type this format does not write.
    #[error("column {column} is {actual}, expected {expected}")]
    ColumnType {
        /// Column path, nested fields joined by `.`.
        column: String,
        /// The Arrow array type the decoder wanted.
        expected: &'static str,
        /// The data type found.
        actual: String,
    },
    /// A value cannot be mapped back to the model (unknown enum number, missing value...).
    #[error("column {column}, row {row}: {reason}")]
    InvalidValue {
        /// Column path, nested fields joined by `.`.
        column: String,
        /// Row within the column's array.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A typed-JSON column could not be written or read back.
    #[error("column {column}: bad JSON: {source}")]
    Json {
        /// Column path, nested fields joined by `.`.
        column: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A metric file's series index could not be written.
    #[error(transparent)]
    SeriesIndex(#[from] crate::metrics::SeriesIndexError),
    /// A span file's trace summaries could not be written.
    #[error(transparent)]
    TraceSummaries(#[from] crate::spans::trace_summaries::TraceSummariesError),
    /// A batch holds more list items than Arrow's 32-bit offsets can address.
    #[error("too many items in list column {column} for one batch")]
    TooLarge {
        /// Column path.
        column: &'static str,
    },
}

/// What an encoded file holds, for the catalog.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    /// The complete Parquet file.
    pub bytes: Bytes,
    /// Its format (the value of [`FORMAT_METADATA_KEY`] in it).
    pub format: &'static str,
    /// Number of records (rows) in the file.
    pub num_rows: usize,
    /// Earliest record time: span start, or point time.
    pub min_time_unix_nano: u64,
    /// Latest record time: the latest span end (so overlap queries never miss a long span), or
    /// the latest point time.
    pub max_time_unix_nano: u64,
}

/// The key-value metadata naming a file's time range (written when the range is known: by a
/// flush up front, by compaction when an output file is finished).
pub fn time_range_metadata(min_time_unix_nano: u64, max_time_unix_nano: u64) -> [KeyValue; 2] {
    [
        KeyValue::new(
            MIN_TIME_METADATA_KEY.to_owned(),
            min_time_unix_nano.to_string(),
        ),
        KeyValue::new(
            MAX_TIME_METADATA_KEY.to_owned(),
            max_time_unix_nano.to_string(),
        ),
    ]
}

/// Writer settings shared by both formats. Page statistics (the column index that lets a
/// reader skip pages) are kept for the sort columns only: they are what lookups prune on, and
/// per-page min/max of every other column would only grow the footer readers hold.
fn base_properties(
    format: &'static str,
    time_range: Option<(u64, u64)>,
    zstd_level: i32,
    sorting_leaf_columns: &[i32],
    page_statistics_columns: &[&str],
) -> Result<WriterPropertiesBuilder, CodecError> {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::EnabledStatistics;
    use parquet::schema::types::ColumnPath;
    let mut metadata = vec![KeyValue::new(
        FORMAT_METADATA_KEY.to_owned(),
        format.to_owned(),
    )];
    if let Some((min, max)) = time_range {
        metadata.extend(time_range_metadata(min, max));
    }
    let sorting = sorting_leaf_columns
        .iter()
        .map(|&column_idx| SortingColumn {
            column_idx,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(metadata))
        .set_sorting_columns(Some(sorting));
    for column in page_statistics_columns {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::Page);
    }
    Ok(builder)
}

/// Writes `records` as one Parquet file, converting them to Arrow a bounded chunk at a time;
/// `to_batch` gets each chunk with the index of its first record.
fn write_file<T>(
    schema: SchemaRef,
    properties: WriterProperties,
    records: &[T],
    estimated_bytes: impl Fn(&T) -> usize,
    mut to_batch: impl FnMut(&[T]) -> Result<RecordBatch, CodecError>,
) -> Result<Bytes, CodecError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))?;
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut chunk_bytes = 0;
        while end < records.len()
            && end - start < MAX_BATCH_ROWS
            && (end == start || chunk_bytes < MAX_BATCH_BYTES)
        {
            chunk_bytes += estimated_bytes(&records[end]);
            end += 1;
        }
        writer.write(&to_batch(&records[start..end])?)?;
        start = end;
    }
    Ok(Bytes::from(writer.into_inner()?))
}

/// Reorders `items` in place so that position `i` holds the item that was at `order[i]`.
///
/// `order` must be a permutation of `0..items.len()`; it is consumed as scratch space.
fn apply_permutation<T>(items: &mut [T], order: &mut [usize]) {
    for start in 0..items.len() {
        if order[start] == start {
            continue;
        }
        // Follow the cycle through `start`, pulling each item into place with swaps.
        let mut current = start;
        loop {
            let source = order[current];
            order[current] = current;
            if source == start {
                break;
            }
            items.swap(current, source);
            current = source;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_permutation_reorders_every_cycle() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e', 'f'];
        let mut order = vec![2, 0, 1, 5, 4, 3];
        apply_permutation(&mut items, &mut order);
        assert_eq!(items, vec!['c', 'a', 'b', 'f', 'e', 'd']);
    }

    #[test]
    fn apply_permutation_handles_identity_and_empty() {
        let mut items = vec![1, 2, 3];
        apply_permutation(&mut items, &mut [0, 1, 2]);
        assert_eq!(items, vec![1, 2, 3]);
        let mut empty: Vec<u8> = vec![];
        apply_permutation(&mut empty, &mut []);
        assert!(empty.is_empty());
    }
}
