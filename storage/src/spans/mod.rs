//! The span store: spans in Parquet, found by trace id with no time range through each file's
//! trace-id filter (one 32-byte read per file) and the row groups' trace-id statistics (files
//! are sorted by trace id).

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

use crate::StorageError;
use crate::model::{Signal, Span, TenantId, TraceId};
use crate::parquet_codec::{self, CodecError, EncodedFile, SPANS_FORMAT, TRACE_ID_COLUMN};
use crate::table::reader::{fixed_binary_equals, read_rows_on_pages, row_groups_holding};
use crate::table::{LiveFile, TableSignal, TableStore, id_filter};

/// Spans as a [`TableSignal`].
pub struct SpanTable;

impl TableSignal for SpanTable {
    type Record = Span;
    const SIGNAL: Signal = Signal::Traces;
    const FORMAT: &'static str = SPANS_FORMAT;

    fn encode(records: &mut [&Span]) -> Result<Option<EncodedFile>, CodecError> {
        parquet_codec::encode_spans(records)
    }

    fn to_batch(records: &[&Span]) -> Result<RecordBatch, CodecError> {
        parquet_codec::spans_batch(records)
    }

    fn decode(batch: &RecordBatch) -> Result<Vec<Span>, CodecError> {
        parquet_codec::decode_spans(batch)
    }

    fn time_unix_nano(span: &Span) -> u64 {
        span.start_time_unix_nano
    }

    fn trace_id(span: &Span) -> Option<TraceId> {
        Some(span.trace_id)
    }

    fn writer_properties(expected_rows: usize) -> Result<WriterProperties, CodecError> {
        parquet_codec::span_writer_properties(expected_rows)
    }

    type SortKey = parquet_codec::SpanSortKey;

    fn sort_keys(batch: &RecordBatch) -> Result<Vec<Self::SortKey>, CodecError> {
        parquet_codec::span_sort_keys(batch)
    }

    fn batch_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
        parquet_codec::span_time_range(batch)
    }

    fn needs_rewrite(file: &crate::catalog::DataFileMeta) -> bool {
        file.trace_id_filter.is_none()
    }

    fn batch_trace_ids(batch: &RecordBatch) -> Result<Vec<[u8; 16]>, CodecError> {
        parquet_codec::span_trace_ids(batch)
    }
}

/// The span store.
pub type SpanStore = TableStore<SpanTable>;

/// Whether a file may hold spans of `trace_id`: its trace-id filter says so (one block read),
/// or it has no filter.
pub async fn may_hold_trace(
    store: &SpanStore,
    file: &LiveFile,
    trace_id: TraceId,
) -> Result<bool, StorageError> {
    let Some(filter) = &file.meta.trace_id_filter else {
        return Ok(true);
    };
    let range = id_filter::block_range(trace_id.as_bytes(), filter.num_blocks);
    let path = object_store::path::Path::from(filter.path.as_str());
    let block = store.objects().get_range(&path, range).await?;
    Ok(id_filter::stored_block_may_contain(
        &block,
        trace_id.as_bytes(),
    ))
}

/// Every stored span of a trace: buffered ones and those in files that may hold it.
pub async fn find_trace(
    store: &SpanStore,
    tenant: &TenantId,
    trace_id: TraceId,
) -> Result<Vec<Span>, StorageError> {
    let snapshot = store.snapshot(tenant);
    let mut spans: Vec<Span> = snapshot
        .buffered
        .iter()
        .flat_map(|chunks| chunks.iter())
        .filter(|span| span.trace_id == trace_id)
        .cloned()
        .collect();
    let candidates = futures::future::try_join_all(snapshot.files.iter().map(|file| async move {
        Ok::<_, StorageError>(may_hold_trace(store, file, trace_id).await?.then_some(file))
    }))
    .await?;
    for file in candidates.into_iter().flatten() {
        let footer = store.footer(file).await?;
        let row_groups = row_groups_holding(&footer, TRACE_ID_COLUMN, trace_id.as_bytes());
        if row_groups.is_empty() {
            continue;
        }
        let predicate = fixed_binary_equals(trace_id.as_bytes().to_vec());
        let batches = read_rows_on_pages(
            store.objects(),
            file,
            &footer,
            Some(row_groups),
            Some((TRACE_ID_COLUMN, predicate)),
            Some(trace_id.as_bytes()),
        )
        .await?;
        for batch in &batches {
            spans.extend(SpanTable::decode(batch)?);
        }
    }
    Ok(spans)
}
