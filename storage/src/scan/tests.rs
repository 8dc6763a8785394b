//! Scan tests: the same answer from buffers and files, projection, time ranges, limits,
//! pruning, and scans racing flushes and merges.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio_util::sync::CancellationToken;

use super::{Predicate, ScanLimits, ScanRequest, TimeRange, Value};
use crate::StorageError;
use crate::budget::Reservation;
use crate::metrics::MetricStore;
use crate::model::{MetricPoint, Signal, Span, TenantId};
use crate::parquet_codec::test_fixtures::{realistic_points, realistic_spans};
use crate::parquet_codec::{decode_metric_points, decode_spans};
use crate::spans::SpanStore;
use crate::table::{TableSignal, TableStore};

fn tenant() -> TenantId {
    "t".parse().unwrap()
}

async fn open<S: TableSignal>(dir: &std::path::Path) -> TableStore<S> {
    TableStore::open_local(dir).await
}

fn request(signal: Signal, predicate: Predicate) -> ScanRequest {
    ScanRequest {
        tenant: tenant(),
        signal,
        time_range: TimeRange::ALL,
        columns: None,
        predicate,
        limits: ScanLimits::default(),
        order: crate::scan::ScanOrder::Any,
    }
}

async fn scan<S: TableSignal>(
    store: &TableStore<S>,
    request: &ScanRequest,
) -> Result<Vec<RecordBatch>, StorageError> {
    super::scan_to_vec(store, request).await
}

async fn spans_scanned(store: &SpanStore, request: &ScanRequest) -> Vec<Span> {
    let mut spans: Vec<Span> = scan(store, request)
        .await
        .unwrap()
        .iter()
        .flat_map(|batch| decode_spans(batch).unwrap())
        .collect();
    spans.sort_by_key(|s| (s.trace_id, s.span_id));
    spans
}

fn by_trace(spans: &[Span], trace: crate::model::TraceId) -> Vec<Span> {
    let mut found: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect();
    found.sort_by_key(|s| (s.trace_id, s.span_id));
    found
}

fn trace_predicate(span: &Span) -> Predicate {
    Predicate::eq("trace_id", Value::Bytes(span.trace_id.0.to_vec()))
}

#[tokio::test]
async fn buffered_and_flushed_spans_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let flushed = realistic_spans(2000, 1);
    let buffered = realistic_spans(500, 2);
    store.apply(1, tenant(), flushed.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    store.apply(2, tenant(), buffered.clone(), 1, Reservation::default());
    for span in [&flushed[17], &buffered[3]] {
        let found = spans_scanned(&store, &request(Signal::Traces, trace_predicate(span))).await;
        let mut all = flushed.clone();
        all.extend(buffered.iter().cloned());
        assert_eq!(found, by_trace(&all, span.trace_id));
    }
}

#[tokio::test]
async fn columns_are_projected_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let spans = realistic_spans(300, 3);
    store.apply(
        1,
        tenant(),
        spans[..150].to_vec(),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    store.apply(
        2,
        tenant(),
        spans[150..].to_vec(),
        1,
        Reservation::default(),
    );
    let mut asked = request(Signal::Traces, Predicate::All);
    asked.columns = Some(vec!["name".into(), "trace_id".into()]);
    let batches = scan(&store, &asked).await.unwrap();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        300
    );
    for batch in &batches {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["name", "trace_id"]);
    }
    asked.columns = Some(vec!["nope".into()]);
    assert!(matches!(
        scan(&store, &asked).await,
        Err(StorageError::InvalidQuery(_))
    ));
}

#[tokio::test]
async fn metric_scans_keep_the_time_range_and_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let store: MetricStore = open(dir.path()).await;
    let points = realistic_points(3000, 4);
    store.apply(
        1,
        tenant(),
        points[..2000].to_vec(),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    store.apply(
        2,
        tenant(),
        points[2000..].to_vec(),
        1,
        Reservation::default(),
    );
    let name = points[0].series.metric.name.clone();
    let mut times: Vec<u64> = points.iter().map(|p| p.time_unix_nano).collect();
    times.sort_unstable();
    let range = TimeRange {
        start_unix_nano: times[500],
        end_unix_nano: times[2500],
    };
    let mut asked = request(
        Signal::Metrics,
        Predicate::eq("metric_name", Value::Text(name.clone())),
    );
    asked.time_range = range;
    let found: Vec<MetricPoint> = scan(&store, &asked)
        .await
        .unwrap()
        .iter()
        .flat_map(|batch| decode_metric_points(batch).unwrap())
        .collect();
    let expected = points
        .iter()
        .filter(|p| p.series.metric.name == name && range.contains(p.time_unix_nano))
        .count();
    assert!(expected > 0);
    assert_eq!(found.len(), expected);
    assert!(
        found
            .iter()
            .all(|p| p.series.metric.name == name && range.contains(p.time_unix_nano))
    );
}

#[tokio::test]
async fn limits_stop_a_scan_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    store.apply(
        1,
        tenant(),
        realistic_spans(1000, 5),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    let mut rows = request(Signal::Traces, Predicate::All);
    rows.limits.max_rows = 100;
    let error = scan(&store, &rows).await.unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::LimitExceeded {
                what: "rows",
                limit: 100
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind().http_status(), 422);
    let mut bytes = request(Signal::Traces, Predicate::All);
    bytes.limits.max_bytes = 10_000;
    assert!(matches!(
        scan(&store, &bytes).await,
        Err(StorageError::LimitExceeded { what: "bytes", .. })
    ));
    let mut late = request(Signal::Traces, Predicate::All);
    late.limits.deadline = Some(Instant::now() - Duration::from_millis(1));
    let error = scan(&store, &late).await.unwrap_err();
    assert!(matches!(error, StorageError::DeadlineExceeded));
    assert_eq!(error.kind().http_status(), 504);
}

/// A truncating scan of `request`: the rows it let through and why it stopped.
async fn scan_truncating(
    store: &SpanStore,
    request: &ScanRequest,
) -> (u64, Option<super::Truncation>) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let mut sink = super::execute::Sink::new(sender, request.limits);
    let ended = super::execute::scan_table(store, request, &mut sink).await;
    drop(sink);
    let mut rows = 0;
    while let Some(batch) = receiver.recv().await {
        rows += batch.unwrap().0.num_rows() as u64;
    }
    match ended {
        Ok(()) => (rows, None),
        Err(StorageError::Truncated(cut)) => (rows, Some(cut)),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn truncating_scans_end_at_their_limits_with_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    store.apply(
        1,
        tenant(),
        realistic_spans(1000, 5),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    store.apply(
        2,
        tenant(),
        realistic_spans(50, 5),
        2,
        Reservation::default(),
    );
    let mut rows = request(Signal::Traces, Predicate::All);
    rows.limits.truncate = true;
    rows.limits.max_rows = 120;
    let (kept, cut) = scan_truncating(&store, &rows).await;
    assert_eq!(kept, 120);
    assert_eq!(
        cut,
        Some(super::Truncation {
            what: "rows",
            limit: 120
        })
    );

    let mut whole = rows.clone();
    whole.limits.max_rows = 1050;
    assert_eq!(scan_truncating(&store, &whole).await, (1050, None));

    let all_bytes: u64 = scan(&store, &request(Signal::Traces, Predicate::All))
        .await
        .unwrap()
        .iter()
        .map(|batch| batch.get_array_memory_size() as u64)
        .sum();
    let mut bytes = request(Signal::Traces, Predicate::All);
    bytes.limits.truncate = true;
    bytes.limits.max_bytes = all_bytes / 4;
    let (kept, cut) = scan_truncating(&store, &bytes).await;
    assert_eq!(cut.map(|cut| cut.what), Some("bytes"));
    assert!(kept > 0 && kept < 1050, "{kept} rows kept");

    // Not even one row fits: nothing is sent, the scan says why.
    bytes.limits.max_bytes = 1;
    assert_eq!(scan_truncating(&store, &bytes).await.0, 0);
}

#[tokio::test]
async fn a_missing_trace_reads_no_footer_and_a_bad_predicate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    store.apply(
        1,
        tenant(),
        realistic_spans(1000, 6),
        1,
        Reservation::default(),
    );
    store.flush().await.unwrap();
    let missing = Predicate::eq("trace_id", Value::Bytes(vec![0xee; 16]));
    assert!(
        scan(&store, &request(Signal::Traces, missing))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.footer_cache().bytes(),
        0,
        "the trace-id filters ruled every file out"
    );
    let wrong = Predicate::eq("trace_id", Value::Text("x".into()));
    assert!(matches!(
        scan(&store, &request(Signal::Traces, wrong)).await,
        Err(StorageError::InvalidQuery(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_racing_flushes_and_merges_see_every_span_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open::<crate::spans::SpanTable>(dir.path()).await);
    let target = realistic_spans(40, 7)[0].trace_id;
    let mut expected = 0;
    let mut lsn = 0;
    let racing = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for _ in 0..200 {
                let span = realistic_spans(1, 7).remove(0);
                let found =
                    spans_scanned(&store, &request(Signal::Traces, trace_predicate(&span))).await;
                let ids: std::collections::HashSet<_> = found.iter().map(|s| s.span_id).collect();
                assert_eq!(ids.len(), found.len(), "a span seen twice");
                *counts.entry(found.len()).or_default() += 1;
                tokio::task::yield_now().await;
            }
            counts
        })
    };
    for round in 0..20u8 {
        let mut spans = realistic_spans(40, 7);
        for span in &mut spans {
            span.span_id.0[7] = round;
        }
        expected += spans.iter().filter(|s| s.trace_id == target).count();
        lsn += 1;
        store.apply(lsn, tenant(), spans, 1, Reservation::default());
        store.flush().await.unwrap();
        if round % 5 == 4 {
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
    }
    let counts = racing.await.unwrap();
    assert!(!counts.is_empty());
    let last = spans_scanned(
        &store,
        &request(
            Signal::Traces,
            Predicate::eq("trace_id", Value::Bytes(target.0.to_vec())),
        ),
    )
    .await;
    assert_eq!(last.len(), expected);
}

#[tokio::test]
async fn a_time_range_reads_its_slices_and_a_trace_across_slices_comes_back_whole() {
    use crate::parquet_codec::SPAN_SLICE_NANOS;
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    // Three slices of one hour, traces in each; one trace straddles the first boundary.
    let mut spans = realistic_spans(3000, 4);
    let base = 7 * 12 * SPAN_SLICE_NANOS; // the start of an hour
    for (index, span) in spans.iter_mut().enumerate() {
        let offset = (index as u64 % 3) * SPAN_SLICE_NANOS + 1_000 * index as u64;
        span.start_time_unix_nano = base + offset;
        span.end_time_unix_nano = base + offset + 500;
    }
    let straddling = spans[0].trace_id;
    let mut last = spans[1].clone();
    last.trace_id = straddling;
    last.span_id = crate::model::SpanId([0xee; 8]);
    last.start_time_unix_nano = base + SPAN_SLICE_NANOS + 1;
    spans.push(last);
    store.apply(1, tenant(), spans.clone(), 1, Reservation::default());
    store.flush().await.unwrap();

    let middle = TimeRange {
        start_unix_nano: base + SPAN_SLICE_NANOS,
        end_unix_nano: base + 2 * SPAN_SLICE_NANOS,
    };
    let mut ranged = request(Signal::Traces, Predicate::All);
    ranged.time_range = middle;
    let found = spans_scanned(&store, &ranged).await;
    let mut expected: Vec<Span> = spans
        .iter()
        .filter(|s| middle.contains(s.start_time_unix_nano))
        .cloned()
        .collect();
    expected.sort_by_key(|s| (s.trace_id, s.span_id));
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);

    let whole = spans_scanned(&store, &request(Signal::Traces, trace_predicate(&spans[0]))).await;
    assert_eq!(whole, by_trace(&spans, straddling));
    assert!(whole.len() >= 2, "the trace lies in two slices");
}

#[tokio::test]
async fn newest_first_reads_newer_row_groups_first_and_bounds_what_is_still_to_come() {
    use crate::parquet_codec::SPAN_SLICE_NANOS;
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    // Three flushes, each a file of its own slice, written oldest last.
    let base = 9 * 12 * SPAN_SLICE_NANOS;
    let mut all = Vec::new();
    for (seed, slice) in [(1, 2u64), (2, 0), (3, 1)] {
        let mut spans = realistic_spans(400, seed);
        for (index, span) in spans.iter_mut().enumerate() {
            span.start_time_unix_nano = base + slice * SPAN_SLICE_NANOS + index as u64;
            span.end_time_unix_nano = span.start_time_unix_nano + 10;
        }
        store.apply(seed, tenant(), spans.clone(), 1, Reservation::default());
        store.flush().await.unwrap();
        all.extend(spans);
    }
    let mut newest_first = request(Signal::Traces, Predicate::All);
    newest_first.order = super::ScanOrder::NewestFirst;
    let batches = super::scan_with_bounds(&store, &newest_first)
        .await
        .unwrap();
    let mut seen = 0;
    let mut previous_bound = u64::MAX;
    for (position, (batch, bound)) in batches.iter().enumerate() {
        assert!(*bound <= previous_bound, "bounds never rise");
        previous_bound = *bound;
        // Every row from here on starts at or before the bound.
        for (later, _) in &batches[position..] {
            for span in decode_spans(later).unwrap() {
                assert!(span.start_time_unix_nano <= *bound);
            }
        }
        seen += batch.num_rows();
    }
    assert_eq!(seen, all.len());
    let first = decode_spans(
        batches
            .iter()
            .map(|(b, _)| b)
            .find(|b| b.num_rows() > 0)
            .unwrap(),
    )
    .unwrap();
    assert!(
        first
            .iter()
            .all(|s| s.start_time_unix_nano >= base + 2 * SPAN_SLICE_NANOS)
    );
}

#[tokio::test]
async fn tags_are_found_in_span_attributes_resources_and_events_of_files() {
    use crate::model::{Attribute, SpanEvent};
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let mut spans = realistic_spans(3000, 21);
    spans[7]
        .attributes
        .push(Attribute::string("user.id", "needle-7"));
    let event_time = spans[9].start_time_unix_nano;
    spans[9].events.push(SpanEvent {
        time_unix_nano: event_time,
        name: "retry".into(),
        attributes: vec![Attribute::string("retry.reason", "needle-9")],
        dropped_attributes_count: 0,
    });
    store.apply(1, tenant(), spans.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    let tag = |key: &str, value: &str| Predicate::Tag {
        key: key.into(),
        value: Some(value.into()),
        span_attributes_only: false,
    };
    let ids = |found: Vec<Span>| found.iter().map(|s| s.span_id).collect::<Vec<_>>();
    let found = spans_scanned(&store, &request(Signal::Traces, tag("user.id", "needle-7"))).await;
    assert_eq!(ids(found), [spans[7].span_id]);
    let found = spans_scanned(
        &store,
        &request(Signal::Traces, tag("retry.reason", "needle-9")),
    )
    .await;
    assert_eq!(ids(found), [spans[9].span_id]);
    let absent = spans_scanned(&store, &request(Signal::Traces, tag("user.id", "needle-8"))).await;
    assert!(absent.is_empty());
    let service = spans[0].resource.service_name().to_owned();
    let found = spans_scanned(
        &store,
        &request(Signal::Traces, tag("service.name", &service)),
    )
    .await;
    let expected = spans
        .iter()
        .filter(|s| s.resource.service_name() == service)
        .count();
    assert_eq!(found.len(), expected);
}

#[tokio::test]
async fn tags_with_a_column_of_their_own_find_what_the_attribute_lists_hold() {
    use crate::model::{Attribute, AttributeValue, SpanEvent, SpanId};
    let dir = tempfile::tempdir().unwrap();
    let store: SpanStore = open(dir.path()).await;
    let mut spans = realistic_spans(3000, 22);
    // An http.route in an event: the file's summary says the key nests, so its search
    // reads the attribute lists (and events) instead of the route column.
    let event_time = spans[11].start_time_unix_nano;
    spans[11].events.push(SpanEvent {
        time_unix_nano: event_time,
        name: "redirect".into(),
        attributes: vec![Attribute::string("http.route", "/from-an-event")],
        dropped_attributes_count: 0,
    });
    spans[12].attributes.push(Attribute {
        key: "rpc.method".into(),
        value: AttributeValue::Bool(true),
    });
    spans[13].attributes.push(Attribute {
        key: "error".into(),
        value: AttributeValue::Bool(true),
    });
    store.apply(1, tenant(), spans.clone(), 1, Reservation::default());
    store.flush().await.unwrap();
    let tag = |key: &str, value: &str| Predicate::Tag {
        key: key.into(),
        value: Some(value.into()),
        span_attributes_only: false,
    };
    let matching = |key: &str, value: &str| -> Vec<SpanId> {
        let mut ids: Vec<SpanId> = spans
            .iter()
            .filter(|span| {
                span.attributes
                    .iter()
                    .chain(span.events.iter().flat_map(|e| &e.attributes))
                    .any(|a| a.key == key && a.value.to_text() == value)
            })
            .map(|span| span.span_id)
            .collect();
        ids.sort();
        ids
    };
    for (key, value) in [
        ("http.response.status_code", "500"),
        ("http.request.method", "GET"),
        ("http.route", "/from-an-event"),
        ("rpc.method", "true"),
        ("http.method", "GET"),
        ("error", "true"),
    ] {
        let mut found: Vec<SpanId> =
            spans_scanned(&store, &request(Signal::Traces, tag(key, value)))
                .await
                .iter()
                .map(|span| span.span_id)
                .collect();
        found.sort();
        assert_eq!(found, matching(key, value), "{key}={value}");
    }
    assert!(!matching("http.response.status_code", "500").is_empty());
    // A file written before the columns existed keeps the attribute-list check.
    let narrow = Predicate::Tag {
        key: "http.route".into(),
        value: Some("/x".into()),
        span_attributes_only: true,
    };
    let current = crate::parquet_codec::spans_batch::<Span>(&[])
        .unwrap()
        .schema();
    let older = arrow_schema::Schema::new(
        current
            .fields()
            .iter()
            .filter(|field| !field.name().starts_with("tag_"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        crate::spans::SpanTable::file_predicate(narrow.clone(), &older),
        narrow
    );
    assert_eq!(
        crate::spans::SpanTable::file_predicate(narrow, &current),
        Predicate::eq("tag_http_route", Value::Text("/x".into()))
    );
}
