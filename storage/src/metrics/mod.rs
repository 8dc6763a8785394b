//! The metric store: data points in Parquet, read back by metric name and time range.

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

use crate::StorageError;
use crate::model::{MetricPoint, Signal, TenantId};
use crate::parquet_codec::{self, CodecError, EncodedFile, METRIC_NAME_COLUMN, METRICS_FORMAT};
use crate::table::reader::{read_rows_on_pages, row_groups_holding, text_equals};
use crate::table::{TableSignal, TableStore};

/// Metric points as a [`TableSignal`].
pub struct MetricTable;

impl TableSignal for MetricTable {
    type Record = MetricPoint;
    const SIGNAL: Signal = Signal::Metrics;
    const FORMAT: &'static str = METRICS_FORMAT;

    fn encode(records: &mut [&MetricPoint]) -> Result<Option<EncodedFile>, CodecError> {
        parquet_codec::encode_metric_points(records)
    }

    fn to_batch(records: &[&MetricPoint]) -> Result<RecordBatch, CodecError> {
        parquet_codec::metric_points_batch(records)
    }

    fn decode(batch: &RecordBatch) -> Result<Vec<MetricPoint>, CodecError> {
        parquet_codec::decode_metric_points(batch)
    }

    fn time_unix_nano(point: &MetricPoint) -> u64 {
        point.time_unix_nano
    }

    fn writer_properties(_expected_rows: usize) -> Result<WriterProperties, CodecError> {
        parquet_codec::metric_writer_properties()
    }

    type SortKey = parquet_codec::MetricSortKey;

    fn sort_keys(batch: &RecordBatch) -> Result<Vec<Self::SortKey>, CodecError> {
        parquet_codec::metric_sort_keys(batch)
    }

    fn batch_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
        parquet_codec::metric_time_range(batch)
    }
}

/// The metric store.
pub type MetricStore = TableStore<MetricTable>;

/// Points of metric `name` with time in `[start, end)`, buffered and in files, unordered.
pub async fn find_points(
    store: &MetricStore,
    tenant: &TenantId,
    name: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<Vec<MetricPoint>, StorageError> {
    let in_range = |time: u64| time >= start_unix_nano && time < end_unix_nano;
    let snapshot = store.snapshot(tenant);
    let mut points: Vec<MetricPoint> = snapshot
        .buffered
        .iter()
        .flat_map(|chunks| chunks.iter())
        .filter(|point| point.metric.name == name && in_range(point.time_unix_nano))
        .cloned()
        .collect();
    for file in snapshot.files.iter() {
        if !file.overlaps(start_unix_nano, end_unix_nano) {
            continue;
        }
        let footer = store.footer(file).await?;
        let row_groups = row_groups_holding(&footer, METRIC_NAME_COLUMN, name.as_bytes());
        if row_groups.is_empty() {
            continue;
        }
        let batches = read_rows_on_pages(
            store.objects(),
            file,
            &footer,
            Some(row_groups),
            Some((METRIC_NAME_COLUMN, text_equals(name.to_owned()))),
            Some(name.as_bytes()),
        )
        .await?;
        for batch in &batches {
            points.extend(
                MetricTable::decode(batch)?
                    .into_iter()
                    .filter(|point| in_range(point.time_unix_nano)),
            );
        }
    }
    Ok(points)
}
