//! The span store: spans in Parquet, found by trace id with no time range through each file's
//! trace-id filter (one 32-byte read per file) and the row groups' trace-id statistics (files
//! are sorted by trace id).

mod summarizer;
pub mod trace_summaries;

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

#[cfg(test)]
use crate::StorageError;
use crate::catalog::FileSummary;
#[cfg(test)]
use crate::model::TenantId;
use crate::model::{Signal, Span, TraceId};
use crate::parquet_codec::{
    self, CodecError, EncodedFile, SERVICE_NAME_COLUMN, SPAN_NAME_COLUMN, SPANS_FORMAT,
    TRACE_ID_COLUMN,
};
use crate::scan::{Predicate, TimeRange, Value};
use crate::table::{TableSignal, TableStore};

/// Spans as a [`TableSignal`].
pub struct SpanTable;

impl TableSignal for SpanTable {
    type Record = Span;
    const SIGNAL: Signal = Signal::Traces;
    const FORMAT: &'static str = SPANS_FORMAT;
    const TIME_COLUMN: &'static str = parquet_codec::START_TIME_COLUMN;
    const ID_FILTER_COLUMN: Option<&'static str> = Some(TRACE_ID_COLUMN);
    const ATTRIBUTE_TEXT_LEAF: Option<&'static str> = Some(parquet_codec::ATTRIBUTE_TEXT_LEAF);

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

    fn record_may_match(span: &Span, predicate: &Predicate, time_range: TimeRange) -> bool {
        let trace_matches = predicate
            .required_values(TRACE_ID_COLUMN)
            .is_none_or(|ids| {
                ids.iter().any(|id| match id {
                    Value::Bytes(id) => span.trace_id.as_bytes().as_slice() == id.as_slice(),
                    _ => true,
                })
            });
        let service_matches = match predicate.required_value(SERVICE_NAME_COLUMN) {
            Some(Value::Text(service)) => span.resource.service_name() == service,
            _ => true,
        };
        trace_matches && service_matches && time_range.contains(span.start_time_unix_nano)
    }

    fn trace_id(span: &Span) -> Option<TraceId> {
        Some(span.trace_id)
    }

    fn writer_properties(
        expected_rows: usize,
        _format: &'static str,
    ) -> Result<WriterProperties, CodecError> {
        parquet_codec::span_writer_properties(expected_rows)
    }

    type SortKey = parquet_codec::SpanSortKey;

    fn sort_keys(batch: &RecordBatch) -> Result<Vec<Self::SortKey>, CodecError> {
        parquet_codec::span_sort_keys(batch)
    }

    fn batch_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
        parquet_codec::span_time_range(batch)
    }

    /// Files without a filter, a summary, or trace summaries (unless too big to have them).
    fn needs_rewrite(file: &crate::catalog::DataFileMeta) -> bool {
        file.trace_id_filter.is_none()
            || file.summary_path.is_none()
            || (file.index_path.is_none()
                && file.num_rows <= trace_summaries::MAX_TRACES_PER_FILE as u64)
    }

    const SUMMARIZED: bool = true;

    fn summarize<'a>(spans: impl IntoIterator<Item = &'a Span>, summary: &mut FileSummary) {
        summary.add_spans(spans);
    }

    type Summarizer = summarizer::SpanFileSummarizer;

    fn summary_may_match(summary: &FileSummary, predicate: &Predicate) -> bool {
        let Some(Value::Text(service)) = predicate.required_value(SERVICE_NAME_COLUMN) else {
            return true;
        };
        let operation = match predicate.required_value(SPAN_NAME_COLUMN) {
            Some(Value::Text(operation)) => Some(operation.as_str()),
            _ => None,
        };
        summary.may_hold(service, operation)
    }

    fn batch_trace_ids(batch: &RecordBatch) -> Result<Vec<[u8; 16]>, CodecError> {
        parquet_codec::span_trace_ids(batch)
    }

    /// Tags with a dedicated column in the file are checked on it.
    fn file_predicate(predicate: Predicate, file_schema: &arrow_schema::Schema) -> Predicate {
        predicate.tags_as_columns(&|key| {
            parquet_codec::dedicated_column(key)
                .filter(|column| file_schema.index_of(column).is_ok())
        })
    }
}

/// The span store.
pub type SpanStore = TableStore<SpanTable>;

/// Every stored span of a trace, through the scan API (tests).
#[cfg(test)]
pub async fn find_trace(
    store: &SpanStore,
    tenant: &TenantId,
    trace_id: TraceId,
) -> Result<Vec<Span>, StorageError> {
    let request = crate::scan::ScanRequest::trace(
        tenant.clone(),
        trace_id,
        crate::scan::ScanLimits::default(),
    );
    let batches = crate::scan::scan_to_vec(store, &request).await?;
    let mut spans = Vec::new();
    for batch in &batches {
        spans.extend(SpanTable::decode(batch)?);
    }
    Ok(spans)
}
