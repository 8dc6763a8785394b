//! Metric file formats through the table store: format 2 files (rows without their series'
//! identity) flushed, scanned with the identity restored from the series index, merged with
//! format 1 files; series sharing an id kept in format 1; a lost index said, never guessed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::StorageError;
use crate::budget::Reservation;
use crate::metrics::{MetricFileSummarizer, MetricStore, MetricTable, find_points};
use crate::model::{Attribute, MetricPoint, MetricSeries, Signal, TenantId};
use crate::parquet_codec::test_fixtures::realistic_points;
use crate::parquet_codec::{
    self, CodecError, EncodedFile, METRIC_NAME_COLUMN, METRICS_FORMAT, METRICS_FORMAT_V1,
    MetricSortKey, metric_value_columns,
};
use crate::scan::{Predicate, ScanLimits, ScanRequest, TimeRange, Value, scan_to_vec};
use crate::table::{TableSignal, TableStore};

fn tenant() -> TenantId {
    "t".parse().unwrap()
}

/// Metric points written as the version before format 2 wrote them (every row with its
/// series' identity), so a store can be given files of format 1.
struct LegacyMetricTable;

impl TableSignal for LegacyMetricTable {
    type Record = MetricPoint;
    const SIGNAL: Signal = Signal::Metrics;
    const FORMAT: &'static str = METRICS_FORMAT_V1;
    const TIME_COLUMN: &'static str = MetricTable::TIME_COLUMN;
    const SUMMARIZED: bool = true;
    type Summarizer = MetricFileSummarizer;
    type SortKey = MetricSortKey;

    fn encode(records: &mut [&MetricPoint]) -> Result<Option<EncodedFile>, CodecError> {
        parquet_codec::encode_metric_points_in_format_1(records)
    }
    fn to_batch(records: &[&MetricPoint]) -> Result<arrow_array::RecordBatch, CodecError> {
        MetricTable::to_batch(records)
    }
    fn decode(batch: &arrow_array::RecordBatch) -> Result<Vec<MetricPoint>, CodecError> {
        MetricTable::decode(batch)
    }
    fn time_unix_nano(point: &MetricPoint) -> u64 {
        point.time_unix_nano
    }
    fn record_may_match(point: &MetricPoint, predicate: &Predicate, range: TimeRange) -> bool {
        MetricTable::record_may_match(point, predicate, range)
    }
    fn writer_properties(
        rows: usize,
        format: &'static str,
    ) -> Result<parquet::file::properties::WriterProperties, CodecError> {
        MetricTable::writer_properties(rows, format)
    }
    fn summarize<'a>(
        points: impl IntoIterator<Item = &'a MetricPoint>,
        summary: &mut crate::catalog::FileSummary,
    ) {
        MetricTable::summarize(points, summary)
    }
    fn sort_keys(batch: &arrow_array::RecordBatch) -> Result<Vec<MetricSortKey>, CodecError> {
        MetricTable::sort_keys(batch)
    }
    fn batch_time_range(
        batch: &arrow_array::RecordBatch,
    ) -> Result<Option<(u64, u64)>, CodecError> {
        MetricTable::batch_time_range(batch)
    }
}

/// `points` sorted as files and scans give them back, for comparing.
fn sorted(mut points: Vec<MetricPoint>) -> Vec<MetricPoint> {
    points.sort_by(|a, b| {
        (&a.series.metric.name, a.series_id(), a.time_unix_nano).cmp(&(
            &b.series.metric.name,
            b.series_id(),
            b.time_unix_nano,
        ))
    });
    points
}

/// Every point of the store, through the scan API.
async fn all_points(store: &MetricStore) -> Result<Vec<MetricPoint>, StorageError> {
    let request = ScanRequest::metrics(tenant(), None, TimeRange::ALL, ScanLimits::default());
    let mut points = Vec::new();
    for batch in scan_to_vec(store, &request).await? {
        points.extend(MetricTable::decode(&batch)?);
    }
    Ok(sorted(points))
}

fn formats(store: &MetricStore) -> Vec<String> {
    let files = store.table_files(&tenant()).unwrap().manifest.files.clone();
    files.iter().map(|file| file.format.clone()).collect()
}

async fn merge_all(store: &MetricStore) {
    let inputs = store.table_files(&tenant()).unwrap().files;
    store
        .merge(
            &tenant(),
            &inputs,
            1 << 30,
            Duration::ZERO,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn flushed_files_leave_identities_to_the_index_and_scans_restore_them() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let points = realistic_points(800, 6);
    store.apply(1, tenant(), points.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    assert_eq!(formats(&store), [METRICS_FORMAT]);

    // Values alone: the index is not even read.
    let mut values = ScanRequest::metrics(tenant(), None, TimeRange::ALL, ScanLimits::default());
    values.columns = Some(metric_value_columns(false));
    let batches = scan_to_vec(&store, &values).await.unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        points.len()
    );
    assert_eq!(store.series_index_cache_bytes(), 0);

    assert_eq!(all_points(&store).await.unwrap(), sorted(points.clone()));
    assert!(
        store.series_index_cache_bytes() > 0,
        "restored from the index"
    );

    // A predicate on a restored column, checked after the restore.
    let pod = Attribute::string("pod", "checkout-0");
    let mut by_service = ScanRequest::metric(
        tenant(),
        &points[0].series.metric.name,
        TimeRange::ALL,
        ScanLimits::default(),
    );
    by_service.predicate = by_service
        .predicate
        .and(Predicate::eq("service_name", Value::Text("nobody".into())));
    by_service.columns = Some(vec!["attributes".into(), METRIC_NAME_COLUMN.into()]);
    assert!(scan_to_vec(&store, &by_service).await.unwrap().is_empty());
    by_service.predicate = Predicate::eq(
        "service_name",
        Value::Text(points[0].series.resource.service_name().to_owned()),
    );
    let found: usize = scan_to_vec(&store, &by_service)
        .await
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b.num_columns(), 2);
            b.num_rows()
        })
        .sum();
    assert_eq!(found, points.len());
    assert!(points.iter().any(|p| p.series.attributes.contains(&pod)));
}

#[tokio::test]
async fn files_of_both_formats_are_read_and_merged_alike() {
    let dir = tempfile::tempdir().unwrap();
    let old_points = realistic_points(500, 1);
    {
        let legacy: TableStore<LegacyMetricTable> = TableStore::open_local(dir.path()).await;
        legacy.apply(1, tenant(), old_points.clone(), 1, Reservation::default());
        legacy.flush().await.unwrap();
    }
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let new_points = realistic_points(500, 2);
    store.apply(2, tenant(), new_points.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    assert_eq!(formats(&store), [METRICS_FORMAT_V1, METRICS_FORMAT]);
    let mut all = old_points;
    all.extend(new_points);
    let all = sorted(all);
    assert_eq!(all_points(&store).await.unwrap(), all);

    merge_all(&store).await;
    assert_eq!(
        formats(&store),
        [METRICS_FORMAT_V1],
        "a format 1 input's index cannot prove its ids unique"
    );
    assert_eq!(all_points(&store).await.unwrap(), all);
    let name = &all[0].series.metric.name;
    let found = find_points(&store, &tenant(), name, 0, u64::MAX).await;
    assert_eq!(
        found.unwrap().len(),
        all.iter().filter(|p| p.series.metric.name == *name).count()
    );
}

#[tokio::test]
async fn format_2_files_merge_into_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let mut all = Vec::new();
    for n in 0..3u64 {
        let points = realistic_points(400, n + 1);
        store.apply(n + 1, tenant(), points.clone(), 1, Reservation::default());
        store.flush().await.unwrap();
        all.extend(points);
    }
    merge_all(&store).await;
    assert_eq!(formats(&store), [METRICS_FORMAT]);
    assert_eq!(all_points(&store).await.unwrap(), sorted(all));
}

/// A copy of `point` whose series differs from its own only in the metric's description,
/// which the series id does not hash (a new version of a service describing it anew).
fn redescribed(point: &MetricPoint) -> MetricPoint {
    let mut metric = (*point.series.metric).clone();
    metric.description = "described anew".into();
    let series = MetricSeries::new(
        Arc::clone(&point.series.resource),
        Arc::clone(&point.series.scope),
        Arc::new(metric),
        point.series.attributes.clone(),
    );
    assert_eq!(
        series.id(),
        point.series_id(),
        "the id ignores descriptions"
    );
    let mut copy = point.clone();
    copy.series = Arc::new(series);
    copy.time_unix_nano += 1;
    copy
}

#[tokio::test]
async fn series_sharing_an_id_stay_apart_through_flushes_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let points = realistic_points(300, 3);
    store.apply(1, tenant(), points.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    // A second file holding a different series under an id of the first file's.
    let twin = redescribed(&points[0]);
    store.apply(2, tenant(), vec![twin.clone()], 1, Reservation::default());
    store.flush().await.unwrap();
    assert_eq!(formats(&store), [METRICS_FORMAT, METRICS_FORMAT]);

    merge_all(&store).await;
    assert_eq!(
        formats(&store),
        [METRICS_FORMAT_V1],
        "the merged rows must tell the twins apart"
    );
    let mut all = points;
    all.push(twin);
    assert_eq!(all_points(&store).await.unwrap(), sorted(all.clone()));

    // Merged again with a file of format 2: the twins stay apart.
    let later = realistic_points(50, 8);
    store.apply(3, tenant(), later.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    merge_all(&store).await;
    assert_eq!(formats(&store), [METRICS_FORMAT_V1]);
    all.extend(later);
    assert_eq!(all_points(&store).await.unwrap(), sorted(all));
}

#[tokio::test]
async fn one_flush_of_series_sharing_an_id_is_written_in_format_1() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let mut points = realistic_points(100, 5);
    points.push(redescribed(&points[0]));
    store.apply(1, tenant(), points.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    assert_eq!(formats(&store), [METRICS_FORMAT_V1]);
    assert_eq!(all_points(&store).await.unwrap(), sorted(points));
}

#[tokio::test]
async fn a_format_2_file_without_its_index_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let index_path = {
        let store: MetricStore = TableStore::open_local(dir.path()).await;
        store.apply(
            1,
            tenant(),
            realistic_points(100, 4),
            1,
            Reservation::default(),
        );
        store.flush().await.unwrap();
        let files = store.table_files(&tenant()).unwrap().manifest.files.clone();
        files[0].index_path.clone().unwrap()
    };
    std::fs::remove_file(dir.path().join(&index_path)).unwrap();
    let store: MetricStore = TableStore::open_local(dir.path()).await;
    let err = all_points(&store).await.unwrap_err();
    assert!(
        matches!(err, StorageError::SeriesIndexUnreadable { .. }),
        "{err}"
    );
    // Values alone still read.
    let mut values = ScanRequest::metrics(tenant(), None, TimeRange::ALL, ScanLimits::default());
    values.columns = Some(metric_value_columns(true));
    assert!(!scan_to_vec(&store, &values).await.unwrap().is_empty());

    // Merges leave it out rather than fail: the rest of its hour still merges.
    store.apply(
        2,
        tenant(),
        realistic_points(100, 5),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    store.apply(
        3,
        tenant(),
        realistic_points(100, 6),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    assert_eq!(store.files().0, 3);
    merge_all(&store).await;
    assert_eq!(
        store.files().0,
        2,
        "the two readable files merged, the third kept"
    );
}
