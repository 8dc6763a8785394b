//! The metric store: data points in Parquet, read back by metric name and time range.

use arrow_array::RecordBatch;

use crate::StorageError;
use crate::model::{MetricPoint, Signal, TenantId};
use crate::parquet_codec::{self, CodecError, EncodedFile, METRIC_NAME_COLUMN};
use crate::table::reader::{read_rows, text_equals};
use crate::table::{TableSignal, TableStore};

/// Metric points as a [`TableSignal`].
pub struct MetricTable;

impl TableSignal for MetricTable {
    type Record = MetricPoint;
    const SIGNAL: Signal = Signal::Metrics;
    const BLOOM_COLUMN: Option<&'static str> = None;

    fn encode(records: &mut [&MetricPoint]) -> Result<Option<EncodedFile>, CodecError> {
        parquet_codec::encode_metric_points(records)
    }

    fn decode(batch: &RecordBatch) -> Result<Vec<MetricPoint>, CodecError> {
        parquet_codec::decode_metric_points(batch)
    }

    fn time_unix_nano(point: &MetricPoint) -> u64 {
        point.time_unix_nano
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
    let snapshot = store.snapshot(tenant, |point| {
        point.metric.name == name && in_range(point.time_unix_nano)
    });
    let mut points = snapshot.buffered;
    for file in &snapshot.files {
        if !file.overlaps(start_unix_nano, end_unix_nano) {
            continue;
        }
        let batches = read_rows(
            store.object_store(),
            file,
            None,
            Some((METRIC_NAME_COLUMN, text_equals(name.to_owned()))),
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
