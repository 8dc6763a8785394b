//! Merge tests: nothing lost or duplicated, order kept, outputs split at the target size,
//! stale plans refused without leftovers, metric files merged alike.

use std::collections::HashSet;
use std::time::Duration;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio_util::sync::CancellationToken;

use crate::budget::Reservation;
use crate::catalog::ManifestChange;
use crate::layout;
use crate::metrics::{MetricStore, find_points};
use crate::model::{Span, TenantId};
use crate::parquet_codec::test_fixtures::{realistic_points, realistic_spans};
use crate::parquet_codec::{MAX_TIME_METADATA_KEY, decode_spans};
use crate::spans::{SpanStore, find_trace};
use crate::table::{TableSignal, TableStore};

fn tenant() -> TenantId {
    "t".parse().unwrap()
}

async fn open<S: TableSignal>(dir: &std::path::Path) -> TableStore<S> {
    TableStore::open_local(dir).await
}

/// Flushes `batches` files of one hour, spans of a few traces each (traces span files).
async fn flushed_spans(store: &SpanStore, batches: usize, per_batch: usize) -> Vec<Span> {
    let mut all = Vec::new();
    for n in 0..batches {
        let spans = realistic_spans(per_batch * 2, n as u64 % 3 + 1);
        let mut spans: Vec<Span> = spans
            .into_iter()
            .map(|mut span| {
                span.span_id.0[0] = n as u8; // distinct spans, shared traces
                span
            })
            .collect();
        spans.truncate(per_batch + n * 10);
        store.apply(
            n as u64 + 1,
            tenant(),
            spans.clone(),
            1,
            Reservation::default(),
        );
        store.flush().await.unwrap();
        all.extend(spans);
    }
    all
}

fn file_rows(path: &std::path::Path) -> Vec<Span> {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .flat_map(|batch| decode_spans(&batch.unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn merged_spans_keep_every_row_in_order_and_are_found_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let spans = flushed_spans(&store, 12, 150).await;
    let inputs = store.table_files(&tenant()).unwrap().files;
    assert_eq!(inputs.len(), 12);
    let outcome = store
        .merge(
            &tenant(),
            &inputs,
            1 << 30,
            Duration::ZERO,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!((outcome.inputs, outcome.outputs), (12, 1));
    assert_eq!(outcome.rows, spans.len() as u64);
    let table = store.table_files(&tenant()).unwrap();
    assert_eq!(table.files.len(), 1);
    let merged = &table.files[0].meta;
    assert_eq!(merged.level, 1);
    assert!(merged.trace_id_filter.is_some());
    assert!(merged.summary_path.is_some());
    let mut expected = crate::catalog::FileSummary::default();
    expected.add_spans(&spans);
    let merged_summary = store.summary(&tenant()).await;
    assert_eq!(
        merged_summary.services, expected.services,
        "the merged file's summary adds up its inputs"
    );
    let mut summarizer = <crate::spans::SpanTable as TableSignal>::Summarizer::default();
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
    crate::table::Summarizer::add_records(&mut summarizer, &sorted);
    assert_eq!(
        merged_summary.dependencies,
        crate::table::Summarizer::finish(summarizer)
            .unwrap()
            .summary
            .unwrap()
            .dependencies,
        "calls are counted from the merged rows, as if flushed at once"
    );
    let rows = file_rows(&store.objects().local_path(&table.files[0].path).unwrap());
    assert_eq!(rows.len(), spans.len());
    assert!(
        rows.windows(2)
            .all(|w| (w[0].trace_id, w[0].start_time_unix_nano)
                <= (w[1].trace_id, w[1].start_time_unix_nano)),
        "sorted by (trace id, start)"
    );
    let min = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    assert_eq!(merged.min_time_unix_nano, min);
    drop((inputs, table));
    assert_eq!(store.delete_unreferenced().await, 12);
    let traces: HashSet<_> = spans.iter().map(|s| s.trace_id).collect();
    for trace_id in traces {
        let found = find_trace(&store, &tenant(), trace_id).await.unwrap();
        let expected = spans.iter().filter(|s| s.trace_id == trace_id).count();
        assert_eq!(found.len(), expected);
    }
}

#[tokio::test]
async fn outputs_are_split_at_the_target_size_with_their_own_time_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let spans = flushed_spans(&store, 10, 3000).await;
    let inputs = store.table_files(&tenant()).unwrap().files;
    let outcome = store
        .merge(
            &tenant(),
            &inputs,
            200_000,
            Duration::ZERO,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(outcome.outputs > 1, "{outcome:?}");
    let table = store.table_files(&tenant()).unwrap();
    let mut total = 0;
    for file in table.files.iter() {
        let rows = file_rows(&store.objects().local_path(&file.path).unwrap());
        total += rows.len();
        let max_end = rows.iter().map(|s| s.end_time_unix_nano).max().unwrap();
        assert_eq!(file.meta.max_time_unix_nano, max_end);
        let footer = store.footer(file).await.unwrap();
        let stated = footer
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .find(|kv| kv.key == MAX_TIME_METADATA_KEY)
            .and_then(|kv| kv.value.clone());
        assert_eq!(
            stated,
            Some(max_end.to_string()),
            "the footer states it too"
        );
    }
    assert_eq!(total, spans.len());
}

#[tokio::test]
async fn a_merge_whose_input_left_the_manifest_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    flushed_spans(&store, 3, 150).await;
    let inputs = store.table_files(&tenant()).unwrap().files;
    let retention = ManifestChange {
        remove: vec![inputs[0].meta.path.clone()],
        ..ManifestChange::default()
    };
    store
        .commit(&tenant(), retention, Duration::ZERO, |_| {})
        .await
        .unwrap();
    let stale = store
        .merge(
            &tenant(),
            &inputs,
            1 << 30,
            Duration::ZERO,
            &CancellationToken::new(),
        )
        .await;
    assert!(stale.is_err());
    let live: HashSet<String> = store
        .table_files(&tenant())
        .unwrap()
        .files
        .iter()
        .flat_map(|f| f.meta.object_paths().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let on_disk: HashSet<String> = store
        .objects()
        .list(&layout::signal_prefix(
            &tenant(),
            crate::model::Signal::Traces,
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .filter(|p| !p.contains("_manifest"))
        .collect();
    // The removed input (data, filter, summary, trace summaries) waits for its deletion; no
    // output of the failed merge remains.
    assert_eq!(on_disk.difference(&live).count(), 4, "{on_disk:?}");
    drop(inputs);
    store.delete_unreferenced().await;
}

#[tokio::test]
async fn metric_files_merge_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = open(dir.path()).await;
    let mut all = Vec::new();
    for n in 0..4u64 {
        let points = realistic_points(500, n + 1);
        store.apply(n + 1, tenant(), points.clone(), 1, Reservation::default());
        store.flush().await.unwrap();
        all.extend(points);
    }
    let inputs = store.table_files(&tenant()).unwrap().files;
    let name = all[0].series.metric.name.clone();
    let before = find_points(&store, &tenant(), &name, 0, u64::MAX)
        .await
        .unwrap()
        .len();
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
    assert_eq!(store.files().0, 1);
    let after = find_points(&store, &tenant(), &name, 0, u64::MAX)
        .await
        .unwrap()
        .len();
    assert_eq!(after, before);
    assert_eq!(
        before,
        all.iter().filter(|p| p.series.metric.name == name).count()
    );
    // The merged file's summary, rebuilt from its rows, equals counting the points at once.
    let mut expected = crate::catalog::FileSummary::default();
    expected.add_metric_points(&all);
    assert!(!expected.metrics.names.is_empty());
    assert!(!expected.metrics.resource_keys.is_empty());
    let merged = store.summary(&tenant()).await;
    assert_eq!(merged.metrics, expected.metrics);
}

#[tokio::test]
async fn a_scan_for_a_metric_skips_files_whose_summary_lacks_it() {
    use crate::scan::{ScanLimits, ScanRequest, TimeRange, scan_to_vec};
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = open(dir.path()).await;
    let points = realistic_points(200, 9);
    store.apply(1, tenant(), points.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    let request = |names: Vec<String>| {
        ScanRequest::metrics(tenant(), Some(names), TimeRange::ALL, ScanLimits::default())
    };
    let batches = scan_to_vec(&store, &request(vec!["no.such.metric".into()]))
        .await
        .unwrap();
    assert!(batches.is_empty());
    assert_eq!(
        store.footer_cache().len(),
        0,
        "no file was opened: its summary ruled it out"
    );
    let name = points[0].series.metric.name.clone();
    let batches = scan_to_vec(&store, &request(vec![name.clone(), "other".into()]))
        .await
        .unwrap();
    let found: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        found,
        points
            .iter()
            .filter(|p| p.series.metric.name == name)
            .count()
    );
}

/// The series of some indexes as (series id, attributes, points, first, last), sorted.
fn series_facts(
    indexes: &[std::sync::Arc<crate::table::SharedSeriesIndex>],
) -> Vec<(u64, String, u64, u64, u64)> {
    let mut facts: Vec<_> = indexes
        .iter()
        .flat_map(|shared| &shared.index.series)
        .map(|s| {
            (
                s.series_id,
                format!("{:?} {:?}", s.attributes, s.layouts),
                s.points,
                s.first_time_unix_nano,
                s.last_time_unix_nano,
            )
        })
        .collect();
    facts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    facts
}

#[tokio::test]
async fn series_indexes_cover_buffers_flushed_and_merged_files() {
    use crate::metrics::SeriesIndexBuilder;
    use crate::scan::TimeRange;
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = open(dir.path()).await;
    let points = realistic_points(600, 5);
    let mut expected = SeriesIndexBuilder::default();
    expected.add_points(&points);
    let expected_facts = series_facts(&[crate::table::SharedSeriesIndex::for_tests(
        expected.finish(),
    )]);
    assert!(expected_facts.len() > 10, "{}", expected_facts.len());
    let (first_half, second_half) = points.split_at(300);
    store.apply(1, tenant(), first_half.to_vec(), 1, Reservation::default());
    let buffered = store
        .series_indexes_in(&tenant(), TimeRange::ALL)
        .await
        .unwrap();
    assert_eq!(buffered.len(), 1, "built from the buffer");
    store.flush().await.unwrap();
    store.apply(2, tenant(), second_half.to_vec(), 1, Reservation::default());
    store.flush().await.unwrap();
    let files = store.table_files(&tenant()).unwrap();
    assert!(files.manifest.files.iter().all(|f| f.index_path.is_some()));
    let inputs = files.files;
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
    let merged = store
        .series_indexes_in(&tenant(), TimeRange::ALL)
        .await
        .unwrap();
    assert_eq!(merged.len(), 1, "one merged file, nothing buffered");
    assert_eq!(
        series_facts(&merged),
        expected_facts,
        "the merged file's index, rebuilt from its rows, equals indexing the points at once"
    );
    assert!(store.series_index_cache_bytes() > 0);
    let nothing = TimeRange {
        start_unix_nano: 0,
        end_unix_nano: 1,
    };
    assert_eq!(
        store
            .series_indexes_in(&tenant(), nothing)
            .await
            .unwrap()
            .len(),
        0
    );
}
