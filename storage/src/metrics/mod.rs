//! The metric store: data points in Parquet, read back by metric name and time range.

mod series_content;
mod series_index;
mod series_table;

pub(crate) use series_content::same_series;
pub use series_index::{
    IndexedSeries, Layout, SeriesGroup, SeriesIndex, SeriesIndexBuilder, SeriesIndexError,
    StoredRun, series_ids_collide,
};
pub use series_table::{SeriesSession, SeriesTable};

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::file::properties::WriterProperties;

use crate::catalog::FileSummary;
use crate::model::{MetricPoint, Signal};
use crate::parquet_codec::{
    self, CodecError, EncodedFile, METRIC_NAME_COLUMN, METRICS_FORMAT, METRICS_FORMAT_V1,
};
use crate::scan::{Predicate, TimeRange, Value};
use crate::table::{FileSidecars, SharedSeriesIndex, Summarizer, TableSignal, TableStore};

/// Metric points as a [`TableSignal`].
pub struct MetricTable;

impl TableSignal for MetricTable {
    type Record = MetricPoint;
    const SIGNAL: Signal = Signal::Metrics;
    const FORMAT: &'static str = METRICS_FORMAT;
    const TIME_COLUMN: &'static str = parquet_codec::POINT_TIME_COLUMN;

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

    fn record_may_match(point: &MetricPoint, predicate: &Predicate, time_range: TimeRange) -> bool {
        let name_matches = match predicate.required_value(METRIC_NAME_COLUMN) {
            Some(Value::Text(name)) => point.series.metric.name == *name,
            _ => true,
        };
        name_matches && time_range.contains(point.time_unix_nano)
    }

    fn writer_properties(
        _expected_rows: usize,
        format: &'static str,
    ) -> Result<WriterProperties, CodecError> {
        parquet_codec::metric_writer_properties(format)
    }

    fn rows_leave_identity(format: &str) -> bool {
        format == METRICS_FORMAT
    }

    fn merges_format(format: &str) -> bool {
        format == METRICS_FORMAT || format == METRICS_FORMAT_V1
    }

    /// Format 2 when every input is of format 2 and no two of their series share an id
    /// (rows of format 2 could not tell them apart). An input of format 1 makes it format 1:
    /// its index, rebuilt from rows grouped by series id, may hold one of two series that
    /// share an id, so it cannot prove the ids unique (the indexes of format 2 files can:
    /// their rows were written knowing the ids unique).
    fn merge_format(inputs: &[(&str, Option<Arc<SharedSeriesIndex>>)]) -> &'static str {
        let known: Option<Vec<&SeriesIndex>> = inputs
            .iter()
            .map(|(format, index)| match *format == METRICS_FORMAT {
                true => index.as_deref().map(|shared| &shared.index),
                false => None,
            })
            .collect();
        match known {
            Some(known) if !series_ids_collide(known.iter().copied()) => METRICS_FORMAT,
            _ => METRICS_FORMAT_V1,
        }
    }

    fn file_schema(format: &str) -> Option<SchemaRef> {
        Some(parquet_codec::metric_file_schema(format))
    }

    fn needs_rewrite(file: &crate::catalog::DataFileMeta) -> bool {
        // Files written before metric summaries or series indexes: rewritten so listings and
        // name lookups need no point.
        file.summary_path.is_none() || file.index_path.is_none()
    }

    const SUMMARIZED: bool = true;

    fn summarize<'a>(points: impl IntoIterator<Item = &'a MetricPoint>, summary: &mut FileSummary) {
        summary.add_metric_points(points);
    }

    type Summarizer = MetricFileSummarizer;

    fn summary_may_match(summary: &FileSummary, predicate: &Predicate) -> bool {
        match predicate.required_values(METRIC_NAME_COLUMN) {
            Some(names) => names.iter().any(|name| match name {
                Value::Text(name) => summary.metrics.may_hold(name),
                _ => true,
            }),
            None => true,
        }
    }

    type SortKey = parquet_codec::MetricSortKey;

    fn sort_keys(batch: &RecordBatch) -> Result<Vec<Self::SortKey>, CodecError> {
        parquet_codec::metric_sort_keys(batch)
    }

    fn batch_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError> {
        parquet_codec::metric_time_range(batch)
    }
}

/// Builds a metric file's summary (its metrics by name) and series index.
#[derive(Debug, Default)]
pub struct MetricFileSummarizer {
    summary: FileSummary,
    series: SeriesIndexBuilder,
}

impl Summarizer<MetricPoint> for MetricFileSummarizer {
    fn add_records(&mut self, points: &[&MetricPoint]) {
        self.summary.add_metric_points(points.iter().copied());
        self.series.add_points(points.iter().copied());
    }

    fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), CodecError> {
        parquet_codec::add_metric_rows_to_catalog(batch, &mut self.summary.metrics)?;
        parquet_codec::add_metric_rows_to_series_index(batch, &mut self.series)
    }

    fn finish(self) -> Result<FileSidecars, CodecError> {
        let index = match self.series.is_empty() {
            true => None,
            false => Some(Bytes::from(self.series.finish().to_bytes()?)),
        };
        Ok(FileSidecars {
            summary: Some(self.summary),
            index,
        })
    }
}

/// The metric store.
pub type MetricStore = TableStore<MetricTable>;

/// Points of metric `name` with time in `[start, end)`, through the scan API (tests).
#[cfg(test)]
pub async fn find_points(
    store: &MetricStore,
    tenant: &crate::model::TenantId,
    name: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<Vec<MetricPoint>, crate::StorageError> {
    let range = TimeRange {
        start_unix_nano,
        end_unix_nano,
    };
    let request = crate::scan::ScanRequest::metric(
        tenant.clone(),
        name,
        range,
        crate::scan::ScanLimits::default(),
    );
    let batches = crate::scan::scan_to_vec(store, &request).await?;
    let mut points = Vec::new();
    for batch in &batches {
        points.extend(MetricTable::decode(batch)?);
    }
    Ok(points)
}
