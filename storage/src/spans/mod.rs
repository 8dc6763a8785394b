//! The span store: spans in Parquet, found by trace id with no time range through the
//! catalog's per-row-group bloom filters on `trace_id`.

use arrow_array::RecordBatch;

use crate::StorageError;
use crate::model::{Signal, Span, TenantId, TraceId};
use crate::parquet_codec::{self, CodecError, EncodedFile, TRACE_ID_COLUMN};
use crate::table::reader::{fixed_binary_equals, read_rows};
use crate::table::{TableSignal, TableStore};

/// Spans as a [`TableSignal`].
pub struct SpanTable;

impl TableSignal for SpanTable {
    type Record = Span;
    const SIGNAL: Signal = Signal::Traces;
    const BLOOM_COLUMN: Option<&'static str> = Some(TRACE_ID_COLUMN);

    fn encode(records: &mut [&Span]) -> Result<Option<EncodedFile>, CodecError> {
        parquet_codec::encode_spans(records)
    }

    fn decode(batch: &RecordBatch) -> Result<Vec<Span>, CodecError> {
        parquet_codec::decode_spans(batch)
    }

    fn time_unix_nano(span: &Span) -> u64 {
        span.start_time_unix_nano
    }
}

/// The span store.
pub type SpanStore = TableStore<SpanTable>;

/// Every stored span of a trace: buffered ones and those in files whose bloom filter may hold it.
pub async fn find_trace(
    store: &SpanStore,
    tenant: &TenantId,
    trace_id: TraceId,
) -> Result<Vec<Span>, StorageError> {
    let snapshot = store.snapshot(tenant, |span| span.trace_id == trace_id);
    let mut spans = snapshot.buffered;
    for file in &snapshot.files {
        let row_groups = file.row_groups_maybe_holding(trace_id.as_bytes());
        if row_groups.is_empty() {
            continue;
        }
        let predicate = fixed_binary_equals(trace_id.as_bytes().to_vec());
        let batches = read_rows(
            store.object_store(),
            file,
            Some(row_groups),
            Some((TRACE_ID_COLUMN, predicate)),
        )
        .await?;
        for batch in &batches {
            spans.extend(SpanTable::decode(batch)?);
        }
    }
    Ok(spans)
}
