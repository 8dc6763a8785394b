//! What compaction needs to merge already-sorted files without decoding records: each row's
//! sort key, a batch's time range and (spans) its trace ids, read straight from the columns.

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, StringArray, UInt64Array};

use super::columns::column;
use super::metrics::SERIES_ID;
use super::spans::END_TIME;
use super::{
    CodecError, METRIC_NAME_COLUMN, POINT_TIME_COLUMN, START_TIME_COLUMN, TRACE_ID_COLUMN,
};

/// A span file's sort key: (time slice, trace id, start time).
pub type SpanSortKey = (u64, [u8; 16], u64);
/// A metric file's sort key: (metric name, series id, time).
pub type MetricSortKey = (String, u64, u64);

fn trace_id_at(ids: &FixedSizeBinaryArray, row: usize) -> [u8; 16] {
    ids.value(row).try_into().unwrap_or([0; 16])
}

/// The sort key of every row of a span batch.
pub fn span_sort_keys(batch: &RecordBatch) -> Result<Vec<SpanSortKey>, CodecError> {
    let ids = column::<FixedSizeBinaryArray>(batch, TRACE_ID_COLUMN)?;
    let starts = column::<UInt64Array>(batch, START_TIME_COLUMN)?;
    Ok((0..batch.num_rows())
        .map(|row| {
            let start = starts.value(row);
            (super::span_slice(start), trace_id_at(ids, row), start)
        })
        .collect())
}

/// The earliest start and the latest end of a span batch.
pub fn span_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
    let starts = column::<UInt64Array>(batch, START_TIME_COLUMN)?;
    let ends = column::<UInt64Array>(batch, END_TIME)?;
    Ok((0..batch.num_rows()).fold(None, |range, row| {
        let (start, end) = (starts.value(row), ends.value(row).max(starts.value(row)));
        Some(range.map_or((start, end), |(min, max): (u64, u64)| {
            (min.min(start), max.max(end))
        }))
    }))
}

/// The trace id of every row of a span batch.
pub fn span_trace_ids(batch: &RecordBatch) -> Result<Vec<[u8; 16]>, CodecError> {
    let ids = column::<FixedSizeBinaryArray>(batch, TRACE_ID_COLUMN)?;
    Ok((0..ids.len()).map(|row| trace_id_at(ids, row)).collect())
}

/// The sort key of every row of a metric batch.
pub fn metric_sort_keys(batch: &RecordBatch) -> Result<Vec<MetricSortKey>, CodecError> {
    let names = column::<StringArray>(batch, METRIC_NAME_COLUMN)?;
    let series = column::<UInt64Array>(batch, SERIES_ID)?;
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    Ok((0..batch.num_rows())
        .map(|row| {
            (
                names.value(row).to_owned(),
                series.value(row),
                times.value(row),
            )
        })
        .collect())
}

/// The earliest and latest point time of a metric batch.
pub fn metric_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    Ok(times.iter().flatten().fold(None, |range, time| {
        Some(range.map_or((time, time), |(min, max): (u64, u64)| {
            (min.min(time), max.max(time))
        }))
    }))
}
