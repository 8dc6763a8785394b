//! Log store tests: commits that fail part-way, day partitions, newest-first search across
//! them, retention, first-format indexes and replay after a commit.

use super::search::newest_matching;
use super::*;
use crate::logs::test_records::{BASE_UNIX_NANO, fixture};
use crate::logs::{LogIndex, LogQuery};

#[test]
fn newest_matching_keeps_the_newest_matches_only() {
    let records = fixture();
    let newest = |limit: usize, keep: &mut dyn FnMut(&LogRecord) -> bool| {
        let mut found =
            newest_matching(&mut records.iter().enumerate(), &mut |r| keep(r), limit, 0);
        found.sort_by_key(|record| std::cmp::Reverse(record.effective_time_unix_nano()));
        ids(found.iter())
    };
    let mut expected = ids(records.iter());
    expected.reverse();
    assert_eq!(newest(100, &mut |_| true), expected);
    assert_eq!(newest(3, &mut |_| true), expected[..3]);
    assert_eq!(newest(0, &mut |_| true), Vec::<String>::new());
    let checkout = |record: &LogRecord| record.resource.service_name() == "checkout";
    assert_eq!(newest(2, &mut |r| checkout(r)), ["req-10", "req-9"]);
    assert_eq!(newest(10, &mut |r| !checkout(r)), ["req-2"]);
    // Records older than the floor are passed over unasked; one at the floor is kept.
    let floor = records[7].effective_time_unix_nano();
    let mut asked = 0;
    let found = newest_matching(
        &mut records.iter().enumerate(),
        &mut |_| {
            asked += 1;
            true
        },
        100,
        floor,
    );
    assert_eq!(ids(found.iter()), ["req-8", "req-9", "req-10"]);
    assert_eq!(asked, 3);
    // Read newest arrival first, once `limit` matches are kept older records are not asked.
    let mut asked = 0;
    let found = newest_matching(
        &mut records.iter().enumerate().rev(),
        &mut |_| {
            asked += 1;
            true
        },
        2,
        0,
    );
    assert_eq!(ids(found.iter()), ["req-9", "req-10"]);
    assert_eq!(asked, 2);
    // Equal times rank by arrival, later first, in whatever order they are read.
    let mut same_time = fixture();
    for record in &mut same_time {
        record.time_unix_nano = BASE_UNIX_NANO;
    }
    for reversed in [false, true] {
        let mut forward = same_time.iter().enumerate();
        let mut backward = same_time.iter().enumerate().rev();
        let records: &mut dyn Iterator<Item = (usize, &LogRecord)> = if reversed {
            &mut backward
        } else {
            &mut forward
        };
        let found = newest_matching(records, &mut |_| true, 3, 0);
        assert_eq!(
            ids(found.iter()),
            ["req-8", "req-9", "req-10"],
            "{reversed}"
        );
    }
}

pub(super) fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

pub(super) fn everything() -> LogQuery {
    LogQuery {
        limit: 1000,
        ..LogQuery::default()
    }
}

pub(super) fn apply(store: &LogStore, lsn: Lsn, name: &str, records: &[LogRecord]) {
    store.apply(
        lsn,
        tenant(name),
        records.to_vec(),
        100,
        Reservation::default(),
    );
}

/// Correlation ids of the tenant's records, oldest first (each fixture record has its own).
pub(super) fn found(store: &LogStore, name: &str) -> Vec<String> {
    let records = store.search_blocking(&tenant(name), &everything()).unwrap();
    ids(records.iter().rev())
}

pub(super) fn ids<'a>(records: impl Iterator<Item = &'a LogRecord>) -> Vec<String> {
    records
        .map(|record| record.correlation_id.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn a_commit_failing_for_one_tenant_is_retried_without_duplicating_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    let all_ids = ids(records.iter());
    apply(&store, 1, "a", &records[..5]);
    apply(&store, 2, "b", &records[..5]);
    assert_eq!(store.flush().await.unwrap(), 2);

    apply(&store, 3, "a", &records[5..]);
    apply(&store, 4, "b", &records[5..]);
    // Tenants commit in order: "a" lands, then "b" fails after adding its records.
    *store.fail_next_commit_of.lock().unwrap() = Some((tenant("b"), CommitStep::Write));
    assert!(store.flush().await.is_err());
    assert_eq!(store.committed_records(), 10);
    // Between the failure and the retry every record is found once, wherever it is.
    assert_eq!(found(&store, "a"), all_ids);
    assert_eq!(found(&store, "b"), all_ids);
    assert!(store.is_due(usize::MAX, Duration::from_secs(3600)));

    assert_eq!(store.flush().await.unwrap(), 4);
    assert_eq!(found(&store, "a"), all_ids);
    assert_eq!(found(&store, "b"), all_ids);
    assert_eq!(store.buffered(), (0, 0));
    assert_eq!(docs_of(&store, "a"), 10);
    assert_eq!(docs_of(&store, "b"), 10);
}

#[tokio::test]
async fn records_committed_but_not_yet_searchable_are_neither_lost_nor_added_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    let all_ids = ids(records.iter());
    apply(&store, 1, "a", &records[..5]);
    assert_eq!(store.flush().await.unwrap(), 1);

    apply(&store, 2, "a", &records[5..]);
    *store.fail_next_commit_of.lock().unwrap() = Some((tenant("a"), CommitStep::Reload));
    assert!(store.flush().await.is_err());
    // On disk, not in the reader yet: still served from the buffer, once.
    assert_eq!(found(&store, "a"), all_ids);

    assert_eq!(store.flush().await.unwrap(), 2);
    assert_eq!(found(&store, "a"), all_ids);
    assert_eq!(docs_of(&store, "a"), 10);
}

/// Committed documents of a tenant across its partitions.
pub(super) fn docs_of(store: &LogStore, name: &str) -> u64 {
    store
        .tenant_partitions(&tenant(name))
        .iter()
        .map(|p| p.index.read().unwrap().num_docs())
        .sum()
}

const DAY: u64 = crate::layout::DAY_NANOS;

/// The fixture's records moved `days` later.
pub(super) fn shifted(days: u64) -> Vec<LogRecord> {
    fixture()
        .into_iter()
        .map(|mut record| {
            if record.time_unix_nano != 0 {
                record.time_unix_nano += days * DAY;
            }
            record.observed_time_unix_nano += days * DAY;
            let id = record.correlation_id.take().unwrap();
            record.correlation_id = Some(format!("{id}+{days}d"));
            record
        })
        .collect()
}

#[tokio::test]
async fn records_go_to_their_day_and_searches_read_newest_partitions_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let mut all = shifted(0);
    all.extend(shifted(2));
    apply(&store, 1, "a", &all);
    store.flush().await.unwrap();
    let days: Vec<PartitionId> = store
        .tenant_partitions(&tenant("a"))
        .iter()
        .map(|p| p.key.1)
        .collect();
    let first = BASE_UNIX_NANO / DAY;
    assert_eq!(days, [PartitionId::Day(first), PartitionId::Day(first + 2)]);
    let newest = store
        .search_blocking(
            &tenant("a"),
            &LogQuery {
                limit: 3,
                ..everything()
            },
        )
        .unwrap();
    assert_eq!(ids(newest.iter()), ["req-10+2d", "req-9+2d", "req-8+2d"]);
    let in_first_day = LogQuery {
        end_unix_nano: Some(BASE_UNIX_NANO + DAY),
        ..everything()
    };
    assert_eq!(
        store
            .search_blocking(&tenant("a"), &in_first_day)
            .unwrap()
            .len(),
        10
    );
    assert_eq!(found(&store, "a").len(), 20);
    assert_eq!(store.files().0, 2);
    assert!(store.files().1 > 0);
}

#[tokio::test]
async fn retention_drops_whole_expired_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let mut all = shifted(0);
    all.extend(shifted(10));
    apply(&store, 1, "a", &all);
    store.flush().await.unwrap();
    let mut policy = RetentionPolicy::default();
    policy.default.logs = Some(Duration::from_secs(7 * 86_400));
    let now = BASE_UNIX_NANO + 12 * DAY;
    let (partitions, bytes) = store.drop_expired(&policy, now).unwrap();
    assert_eq!(partitions, 1);
    assert!(bytes > 0);
    assert_eq!(found(&store, "a").len(), 10, "the recent day stays");
    let first_day =
        crate::layout::log_partition_dir(dir.path(), &tenant("a"), BASE_UNIX_NANO / DAY);
    assert!(!first_day.exists(), "the expired day left the disk");
    assert_eq!(store.drop_expired(&policy, now).unwrap(), (0, 0));
    // Reopened, the store finds only the day that is left.
    drop(store);
    let store = LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap();
    assert_eq!(store.files().0, 1);
}

#[tokio::test]
async fn commits_leave_out_records_of_a_day_retention_is_dropping() {
    // A commit of records dated on an expired day would open a partition on the directory
    // being deleted; while retention deletes it, such records are left out (they expired
    // with their day), and other partitions commit as usual.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let expired_day = (tenant("a"), PartitionId::of_time(BASE_UNIX_NANO));
    store.dropping().insert(expired_day.clone());
    let mut records = shifted(0);
    records.extend(shifted(10));
    apply(&store, 1, "a", &records);
    store.flush().await.unwrap();
    assert_eq!(store.tenant_partitions(&tenant("a")).len(), 1);
    assert_eq!(found(&store, "a"), ids(shifted(10).iter()));
    let first_day =
        crate::layout::log_partition_dir(dir.path(), &tenant("a"), BASE_UNIX_NANO / DAY);
    assert!(
        !first_day.exists(),
        "no partition opened on the dropped day"
    );
    // Once the directory is gone, late records of that day make a new partition.
    store.dropping().remove(&expired_day);
    apply(&store, 2, "a", &shifted(0));
    store.flush().await.unwrap();
    assert_eq!(store.tenant_partitions(&tenant("a")).len(), 2);
    // Retention takes the day out and clears its mark once the directory is deleted.
    let mut policy = RetentionPolicy::default();
    policy.default.logs = Some(Duration::from_secs(7 * 86_400));
    assert_eq!(
        store
            .drop_expired(&policy, BASE_UNIX_NANO + 12 * DAY)
            .unwrap()
            .0,
        1
    );
    assert!(store.dropping().is_empty());
    assert!(!first_day.exists());
}

#[tokio::test]
async fn a_first_format_index_becomes_the_legacy_partition() {
    let dir = tempfile::tempdir().unwrap();
    let tenant_dir = crate::layout::log_tenant_dir(dir.path(), &tenant("a"));
    {
        let index = LogIndex::open(&tenant_dir, &LogIndexConfig::default()).unwrap();
        index.add(fixture().iter().map(|r| (r, 0))).unwrap();
        index.commit_writes("").unwrap();
        index.close_writer().unwrap();
    }
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    assert!(tenant_dir.join("legacy/meta.json").is_file());
    assert!(!tenant_dir.join("meta.json").exists());
    apply(&store, 1, "a", &shifted(1));
    store.flush().await.unwrap();
    assert_eq!(found(&store, "a").len(), 20);
    let keys: Vec<PartitionId> = store
        .tenant_partitions(&tenant("a"))
        .iter()
        .map(|p| p.key.1)
        .collect();
    assert_eq!(keys[0], PartitionId::Legacy);
    let old_only = LogQuery {
        end_unix_nano: Some(BASE_UNIX_NANO + DAY),
        ..everything()
    };
    assert_eq!(
        store
            .search_blocking(&tenant("a"), &old_only)
            .unwrap()
            .len(),
        10
    );
    let mut policy = RetentionPolicy::default();
    policy.default.logs = Some(Duration::from_secs(86_400));
    let (dropped, _) = store
        .drop_expired(&policy, BASE_UNIX_NANO + DAY + DAY / 2)
        .unwrap();
    assert_eq!(
        dropped, 1,
        "the legacy partition expires by the times it holds"
    );
}

#[tokio::test]
async fn replayed_records_already_committed_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    apply(&store, 7, "a", &fixture());
    store.flush().await.unwrap();
    drop(store);
    let store = LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap();
    let mut replayed = fixture();
    store.drop_committed(7, &tenant("a"), &mut replayed);
    assert!(replayed.is_empty(), "LSN 7 is in the index");
    let mut newer = fixture();
    store.drop_committed(8, &tenant("a"), &mut newer);
    assert_eq!(newer.len(), 10);
    let mut other_tenant = fixture();
    store.drop_committed(7, &tenant("b"), &mut other_tenant);
    assert_eq!(other_tenant.len(), 10);
}

/// Correlation ids of what a scan visits, in visiting order, stopping after `stop_after`.
fn scanned(
    store: &LogStore,
    query: &LogQuery,
    direction: ScanDirection,
    stop_after: usize,
) -> Vec<String> {
    let mut visited = Vec::new();
    store
        .scan_blocking(&tenant("a"), query, direction, &mut |record| {
            visited.push(record.correlation_id.clone().unwrap());
            if visited.len() == stop_after {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
    visited
}

#[tokio::test]
async fn scans_visit_indexes_and_buffers_in_time_order_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let (first_day, third_day) = (shifted(0), shifted(2));
    // The first day indexed, with its last five records stored twice (as after a crash
    // between commit and checkpoint); the third day indexed in part, the rest buffered.
    apply(&store, 1, "a", &first_day);
    apply(&store, 2, "a", &first_day[5..]);
    apply(&store, 3, "a", &third_day[..4]);
    store.flush().await.unwrap();
    apply(&store, 4, "a", &third_day[4..]);

    let mut oldest_first: Vec<LogRecord> = first_day.iter().chain(&third_day).cloned().collect();
    oldest_first.sort_by_key(LogRecord::effective_time_unix_nano);
    let expected = ids(oldest_first.iter());
    assert_eq!(
        scanned(&store, &everything(), ScanDirection::Forward, 0),
        expected
    );
    let mut newest_first = expected.clone();
    newest_first.reverse();
    assert_eq!(
        scanned(&store, &everything(), ScanDirection::Backward, 0),
        newest_first
    );
    assert_eq!(
        scanned(&store, &everything(), ScanDirection::Backward, 3),
        newest_first[..3]
    );
    // Filters and bounds hold in the index and the buffers alike.
    let checkout_on_third_day = LogQuery {
        service_name: Some("checkout".into()),
        start_unix_nano: Some(BASE_UNIX_NANO + 2 * DAY),
        ..everything()
    };
    let expected: Vec<String> = oldest_first
        .iter()
        .filter(|r| r.resource.service_name() == "checkout")
        .filter(|r| r.effective_time_unix_nano() >= BASE_UNIX_NANO + 2 * DAY)
        .map(|r| r.correlation_id.clone().unwrap())
        .collect();
    assert!(expected.len() > 3, "{expected:?}");
    assert_eq!(
        scanned(&store, &checkout_on_third_day, ScanDirection::Forward, 0),
        expected
    );
    let empty_range = LogQuery {
        start_unix_nano: Some(5),
        end_unix_nano: Some(5),
        ..everything()
    };
    assert!(scanned(&store, &empty_range, ScanDirection::Forward, 0).is_empty());
}

/// Copies a pinned index fixture into `dir` as tenant `a`'s partition of the fixture's day.
fn install_fixture(name: &str, dir: &std::path::Path) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let day = PartitionId::of_time(BASE_UNIX_NANO).dir_name();
    let target = crate::layout::log_tenant_dir(dir, &tenant("a")).join(day);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
}

/// What a stream-level scan of `records` should visit, sorted.
fn expected_samples(records: &[LogRecord]) -> Vec<(String, u64, u64)> {
    let mut expected: Vec<(String, u64, u64)> = records
        .iter()
        .map(|record| {
            let stream = crate::logs::streams::stream_labels(&record.resource);
            let mut labels: Vec<String> = stream.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let code =
                crate::logs::streams::level_code(record.severity_number, &record.severity_text);
            labels.push(format!(
                "level={}",
                crate::logs::streams::level_name(u64::from(code))
            ));
            (
                labels.join(","),
                record.effective_time_unix_nano(),
                crate::logs::streams::line_bytes(&record.body),
            )
        })
        .collect();
    expected.sort();
    expected
}

/// Stream and line length of every record a stream-level scan of tenant `a` visits, sorted.
fn stream_samples(store: &LogStore) -> Vec<(String, u64, u64)> {
    let mut found = Vec::new();
    store
        .scan_stream_samples_blocking(
            &tenant("a"),
            &everything(),
            &mut |stream, time, bytes, level| {
                let mut labels: Vec<String> =
                    stream.iter().map(|(n, v)| format!("{n}={v}")).collect();
                labels.push(format!("level={level}"));
                found.push((labels.join(","), time, bytes));
            },
        )
        .unwrap();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_go_on_while_a_commit_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    apply(&store, 1, "a", &records[..5]);
    store.flush().await.unwrap();
    apply(&store, 2, "a", &records[5..]);
    let (paused_tx, paused) = std::sync::mpsc::sync_channel(1);
    let (resume, resume_rx) = std::sync::mpsc::sync_channel(1);
    *store.pause_next_commit.lock().unwrap() = Some((paused_tx, resume_rx));
    let flushing = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.flush().await }
    });
    let wait = Duration::from_secs(30);
    paused
        .recv_timeout(wait)
        .expect("the commit reached its pause");
    // The commit has added its records to the index and waits: a search still answers, with
    // every record (the committed ones from the index, the rest from the frozen buffer).
    let (answer_tx, answer) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn({
        let store = Arc::clone(&store);
        move || answer_tx.send(found(&store, "a"))
    });
    let during = answer
        .recv_timeout(wait)
        .expect("a search waited for the commit");
    assert_eq!(during, ids(records.iter()));
    resume.send(()).unwrap();
    assert_eq!(flushing.await.unwrap().unwrap(), 2);
    assert_eq!(store.committed_records(), 10);
    assert_eq!(found(&store, "a"), ids(records.iter()));
}

/// A store over the pinned index `name` (tenant `a`, one day partition), with its partitions.
fn open_pinned(name: &str) -> (tempfile::TempDir, Arc<LogStore>, Vec<Arc<Partition>>) {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(name, dir.path());
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let partitions = store.tenant_partitions(&tenant("a"));
    assert_eq!(partitions.len(), 1);
    (dir, store, partitions)
}

/// The fixture again, each record a nanosecond later with its correlation id suffixed `-new`.
fn fixture_one_nanosecond_later() -> Vec<LogRecord> {
    fixture()
        .into_iter()
        .map(|mut record| {
            record.time_unix_nano += 1;
            record.correlation_id = record.correlation_id.map(|id| format!("{id}-new"));
            record
        })
        .collect()
}

#[tokio::test]
async fn a_pinned_format_1_index_reads_and_keeps_taking_records() {
    let (_dir, store, partitions) = open_pinned("log_index_v1");
    assert_eq!(partitions[0].index.read().unwrap().format(), 1);
    assert!(!partitions[0].streams().complete);
    // Every record reads back exactly, through search, scans and stream listings.
    let mut expected = fixture();
    expected.reverse();
    assert_eq!(
        store.search_blocking(&tenant("a"), &everything()).unwrap(),
        expected
    );
    assert_eq!(
        scanned(&store, &everything(), ScanDirection::Backward, 0),
        ids(expected.iter())
    );
    assert_eq!(stream_samples(&store), expected_samples(&fixture()));
    let streams = store.streams_blocking(&tenant("a"), 0, u64::MAX).unwrap();
    assert_eq!(streams.len(), 2, "{streams:?}");
    // New records of the day go into the same format 1 index, and read back too.
    let more = fixture_one_nanosecond_later();
    apply(&store, 8, "a", &more);
    store.flush().await.unwrap();
    assert_eq!(partitions[0].index.read().unwrap().format(), 1);
    assert_eq!(found(&store, "a").len(), 20);
    let mut all = fixture();
    all.extend(more);
    assert_eq!(stream_samples(&store), expected_samples(&all));
    assert_eq!(
        store
            .streams_blocking(&tenant("a"), 0, u64::MAX)
            .unwrap()
            .len(),
        2
    );
}

/// The pinned index `name` of `format` with its stream catalog, checked to read back the
/// fixture exactly, through search and stream-level scans.
fn open_pinned_with_catalog(
    name: &str,
    format: u32,
) -> (tempfile::TempDir, Arc<LogStore>, Vec<Arc<Partition>>) {
    let (dir, store, partitions) = open_pinned(name);
    assert_eq!(partitions[0].index.read().unwrap().format(), format);
    assert!(partitions[0].streams().complete);
    let mut expected = fixture();
    expected.reverse();
    assert_eq!(
        store.search_blocking(&tenant("a"), &everything()).unwrap(),
        expected
    );
    assert_eq!(stream_samples(&store), expected_samples(&fixture()));
    (dir, store, partitions)
}

/// Adds the fixture a nanosecond later to the pinned partition, which keeps its `format`.
async fn add_to_pinned(store: &Arc<LogStore>, partitions: &[Arc<Partition>], format: u32) {
    apply(store, 8, "a", &fixture_one_nanosecond_later());
    store.flush().await.unwrap();
    assert_eq!(partitions[0].index.read().unwrap().format(), format);
    assert_eq!(found(store, "a").len(), 20);
}

/// Correlation ids of tenant `a`'s records `query` finds, newest first.
fn ids_found(store: &LogStore, query: &LogQuery) -> Vec<String> {
    ids(store.search_blocking(&tenant("a"), query).unwrap().iter())
}

#[tokio::test]
async fn a_pinned_format_2_index_reads_finds_by_id_and_keeps_taking_records() {
    let (_dir, store, partitions) = open_pinned_with_catalog("log_index_v2", 2);
    // Ids are hex text terms in format 2: found by field and through query text alike.
    let by_trace = |trace: crate::model::TraceId| LogQuery {
        trace_id: Some(trace),
        ..everything()
    };
    let by_text = |text: String| LogQuery {
        text: Some(text),
        ..everything()
    };
    let third = fixture()[2].clone();
    let ids_found = |query: &LogQuery| ids_found(&store, query);
    assert_eq!(ids_found(&by_trace(third.trace_id.unwrap())), ["req-3"]);
    let span_text = format!("span_id:{} payment", third.span_id.unwrap());
    assert_eq!(ids_found(&by_text(span_text)), ["req-3"]);
    // New records of the day go into the same format 2 index, and are found the same way.
    add_to_pinned(&store, &partitions, 2).await;
    assert_eq!(
        ids_found(&by_trace(third.trace_id.unwrap())),
        ["req-3-new", "req-3"]
    );
}

#[tokio::test]
async fn a_pinned_format_3_index_answers_phrases_itself_and_keeps_taking_records() {
    let (_dir, store, partitions) = open_pinned_with_catalog("log_index_v3", 3);
    let by_text = |text: &str| LogQuery {
        text: Some(text.into()),
        ..everything()
    };
    let ids_found = |query: &LogQuery| ids_found(&store, query);
    // Format 3 keeps body positions: phrases are the index's own answer.
    assert_eq!(ids_found(&by_text("\"declined by\"")), ["req-10", "req-3"]);
    assert_eq!(
        ids_found(&by_text("\"gateway payment\"")),
        Vec::<String>::new()
    );
    let third = fixture()[2].clone();
    let trace_text = format!("trace_id:{} payment", third.trace_id.unwrap());
    assert_eq!(ids_found(&by_text(&trace_text)), ["req-3"]);
    // New records of the day go into the same format 3 index, and are found the same way.
    add_to_pinned(&store, &partitions, 3).await;
    assert_eq!(
        ids_found(&by_text("\"issuer bank\"")),
        ["req-3-new", "req-3"]
    );
}

/// The pinned index `name` of `format` finds the fixture's third record by trace and
/// correlation id (fields and query text alike), answers a stream read of it from its columns
/// with `column_hits` (`None`: the index finds a superset, so the records are read), and keeps
/// taking records in its format, found the same way.
async fn pinned_index_finds_ids_and_keeps_taking_records(
    name: &str,
    format: u32,
    column_hits: Option<usize>,
) {
    let (_dir, store, partitions) = open_pinned_with_catalog(name, format);
    let third = fixture()[2].clone();
    let by_field = LogQuery {
        trace_id: third.trace_id,
        correlation_id: third.correlation_id.clone(),
        ..everything()
    };
    let trace_text = format!("trace_id:{} correlation_id:req-3", third.trace_id.unwrap());
    let by_text = LogQuery {
        text: Some(trace_text),
        ..everything()
    };
    let ids_found = |query: &LogQuery| ids_found(&store, query);
    assert_eq!(ids_found(&by_field), ["req-3"]);
    assert_eq!(ids_found(&by_text), ["req-3"]);
    let hits = partitions[0].index.read().unwrap().stream_hits(&by_field);
    assert_eq!(hits.unwrap().map(|hits| hits.len()), column_hits);
    add_to_pinned(&store, &partitions, format).await;
    let new_third = LogQuery {
        correlation_id: Some("req-3-new".into()),
        ..everything()
    };
    let records = store.search_blocking(&tenant("a"), &new_third).unwrap();
    assert_eq!(ids(records.iter()), ["req-3-new"]);
    assert_eq!(records[0].body, fixture_one_nanosecond_later()[2].body);
}

#[tokio::test]
async fn a_pinned_format_4_index_finds_ids_by_their_bytes_and_keeps_taking_records() {
    // Format 4 keeps whole ids: their queries read the columns, no record is checked.
    pinned_index_finds_ids_and_keeps_taking_records("log_index_v4", 4, Some(1)).await;
}

#[tokio::test]
async fn a_pinned_format_5_index_finds_ids_by_their_digests_and_keeps_taking_records() {
    // Format 5 keeps ids as digests: their queries check records, not columns alone.
    pinned_index_finds_ids_and_keeps_taking_records("log_index_v5", 5, None).await;
}

#[tokio::test]
async fn a_pinned_format_6_index_reads_records_from_its_batches_and_keeps_taking_records() {
    // Format 6 stores records by the batch (version 1 batches) and ids as digests.
    pinned_index_finds_ids_and_keeps_taking_records("log_index_v6", 6, None).await;
}

#[tokio::test]
async fn a_pinned_format_7_index_reads_records_from_its_column_batches_and_keeps_taking_records() {
    // Format 7 stores records by the batch, in version 2 batches (columns compressed apart).
    pinned_index_finds_ids_and_keeps_taking_records("log_index_v7", 7, None).await;
}

#[tokio::test]
async fn a_pinned_format_8_index_reads_times_from_its_column_and_keeps_taking_records() {
    // Format 8: 3-byte id digests, version 3 batches (event times read from `timestamp`).
    pinned_index_finds_ids_and_keeps_taking_records("log_index_v8", 8, None).await;
}

#[tokio::test]
async fn scans_and_stream_reads_check_phrases_on_an_index_without_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    apply(&store, 1, "a", &fixture());
    store.flush().await.unwrap();
    // Records 6 and 8 hold both words of "gateway payment" but not the phrase; only 8
    // holds "timeout to".
    let phrase = LogQuery {
        text: Some("\"gateway payment\" OR \"timeout to\"".into()),
        ..everything()
    };
    assert_eq!(
        scanned(&store, &phrase, ScanDirection::Backward, 0),
        ["req-8"]
    );
    let mut samples = 0;
    store
        .scan_stream_samples_blocking(&tenant("a"), &phrase, &mut |_, _, _, _| samples += 1)
        .unwrap();
    assert_eq!(samples, 1);
}

#[tokio::test]
async fn new_partitions_answer_stream_reads_from_columns_and_their_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    apply(&store, 1, "a", &fixture());
    // Buffered: read from the records.
    let buffered = stream_samples(&store);
    assert_eq!(buffered, expected_samples(&fixture()));
    store.flush().await.unwrap();
    let partitions = store.tenant_partitions(&tenant("a"));
    assert_eq!(partitions[0].index.read().unwrap().format(), 8);
    assert!(partitions[0].streams().complete);
    // Committed: the same answer from the columns and the catalog.
    assert_eq!(stream_samples(&store), buffered);
    let expected_bytes: u64 = fixture()
        .iter()
        .map(|r| crate::logs::streams::line_bytes(&r.body))
        .sum();
    assert_eq!(buffered.iter().map(|s| s.2).sum::<u64>(), expected_bytes);
    let streams = store.streams_blocking(&tenant("a"), 0, u64::MAX).unwrap();
    assert_eq!(streams.len(), 2);
    // Catalog bounds prune by time: nothing before the first record.
    assert!(
        store
            .streams_blocking(&tenant("a"), 0, BASE_UNIX_NANO)
            .unwrap()
            .is_empty()
    );
    // The catalog survives a restart.
    drop(partitions);
    drop(store);
    let store = LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap();
    assert_eq!(stream_samples(&store), buffered);
    assert_eq!(
        store.streams_blocking(&tenant("a"), 0, u64::MAX).unwrap(),
        streams
    );
}

#[tokio::test]
async fn an_idle_tenants_writer_is_closed_and_its_records_stay_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    apply(&store, 1, "idle", &records[..5]);
    apply(&store, 2, "busy", &records[..5]);
    store.flush().await.unwrap();
    let writers = |store: &LogStore| -> Vec<(String, bool)> {
        let mut writers: Vec<_> = store
            .partitions()
            .values()
            .map(|p| {
                let has = p.index.read().unwrap().has_writer();
                (p.key.0.as_str().to_owned(), has)
            })
            .collect();
        writers.sort();
        writers
    };
    assert_eq!(
        writers(&store),
        [("busy".to_owned(), true), ("idle".to_owned(), true)]
    );
    // "idle" last wrote longer ago than WRITER_IDLE; "busy" just now.
    for partition in store.partitions().values() {
        if partition.key.0.as_str() == "idle" {
            *partition.last_write.lock().unwrap() =
                Instant::now().checked_sub(WRITER_IDLE + Duration::from_secs(1));
        }
    }
    store.close_idle_writers();
    assert_eq!(
        writers(&store),
        [("busy".to_owned(), true), ("idle".to_owned(), false)]
    );
    assert_eq!(found(&store, "idle"), ids(records[..5].iter()));
    // Its next records open a writer again.
    apply(&store, 3, "idle", &records[5..]);
    store.flush().await.unwrap();
    assert_eq!(found(&store, "idle"), ids(records.iter()));
}

#[tokio::test]
async fn a_quiet_partition_is_merged_into_one_segment_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    // Three commits: three segments in each tenant's partition.
    for (lsn, part) in records.chunks(4).enumerate() {
        apply(&store, 2 * lsn as u64 + 1, "quiet", part);
        apply(&store, 2 * lsn as u64 + 2, "busy", part);
        store.flush().await.unwrap();
    }
    let segments = |name: &str| -> usize {
        let partitions = store.tenant_partitions(&tenant(name));
        partitions
            .iter()
            .map(|p| p.index.read().unwrap().segment_count())
            .sum()
    };
    assert_eq!((segments("quiet"), segments("busy")), (3, 3));
    let everything = LogQuery {
        limit: 100,
        ..everything()
    };
    let before = store
        .search_blocking(&tenant("quiet"), &everything)
        .unwrap();
    assert_eq!(before.len(), records.len());
    make_quiet(&store, "quiet");
    // One round closes the quiet partition's writer, then merges its segments.
    store.close_idle_writers();
    store.merge_quiet_partitions();
    assert_eq!((segments("quiet"), segments("busy")), (1, 3));
    assert_eq!(store.stats().merges.load(Ordering::Relaxed), 1);
    // The merged segments' files are gone: the directory holds one segment's.
    let partitions = store.tenant_partitions(&tenant("quiet"));
    let segment_files: std::collections::BTreeSet<String> = std::fs::read_dir(&partitions[0].dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let (stem, extension) = name.split_once('.')?;
            (extension == "store").then(|| stem.to_owned())
        })
        .collect();
    assert_eq!(segment_files.len(), 1, "{segment_files:?}");
    drop(partitions);
    let after = store
        .search_blocking(&tenant("quiet"), &everything)
        .unwrap();
    assert_eq!(after, before, "every record, read from its batch, the same");
    let phrase = LogQuery {
        text: Some("\"declined by\"".into()),
        ..everything.clone()
    };
    let phrase_found = store.search_blocking(&tenant("quiet"), &phrase).unwrap();
    assert_eq!(phrase_found.len(), 2);
    // The merge's writer is closed with it; another round merges nothing.
    let quiet_has_writer = || {
        store
            .tenant_partitions(&tenant("quiet"))
            .iter()
            .any(|p| p.index.read().unwrap().has_writer())
    };
    assert!(!quiet_has_writer());
    store.close_idle_writers();
    store.merge_quiet_partitions();
    assert_eq!(segments("quiet"), 1);
    // New records (the same again, later in the WAL) go into a new segment beside the
    // merged one, and are found.
    apply(&store, 20, "quiet", &records);
    store.flush().await.unwrap();
    assert_eq!(segments("quiet"), 2);
    let all = store
        .search_blocking(&tenant("quiet"), &everything)
        .unwrap();
    assert_eq!(all.len(), 2 * records.len());
    // Quiet again, with as many records beside the merged segment as in it: not merged
    // again within hours of the last merge (a tenant sending in bursts is not rewritten
    // after each).
    make_quiet(&store, "quiet");
    store.close_idle_writers();
    store.merge_quiet_partitions();
    assert!(!quiet_has_writer());
    assert_eq!(segments("quiet"), 2);
    assert_eq!(store.stats().merges.load(Ordering::Relaxed), 1);
}

/// Makes `name`'s partitions look idle for longer than the writer idle time.
fn make_quiet(store: &LogStore, name: &str) {
    for partition in store.partitions().values() {
        if partition.key.0.as_str() == name {
            *partition.last_write.lock().unwrap() =
                Instant::now().checked_sub(WRITER_IDLE + Duration::from_secs(1));
        }
    }
}

#[tokio::test]
async fn a_quiet_merge_is_not_shown_while_a_commit_has_records_on_disk_but_not_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let records = fixture();
    let all_ids = ids(records.iter());
    for (lsn, part) in records[..8].chunks(4).enumerate() {
        apply(&store, lsn as u64 + 1, "a", part);
        store.flush().await.unwrap();
    }
    // The third commit reaches the disk, not the reader: its records are served from the
    // frozen buffer until the retry reloads.
    apply(&store, 3, "a", &records[8..]);
    *store.fail_next_commit_of.lock().unwrap() = Some((tenant("a"), CommitStep::Reload));
    assert!(store.flush().await.is_err());
    make_quiet(&store, "a");
    store.close_idle_writers();
    store.merge_quiet_partitions();
    assert_eq!(store.stats().merges.load(Ordering::Relaxed), 1);
    // Merged on disk, not shown: a reload would show the third commit's records twice.
    assert_eq!(found(&store, "a"), all_ids);
    assert_eq!(docs_of(&store, "a"), 8);
    // The retry shows the merge and the records with it, each once.
    assert_eq!(store.flush().await.unwrap(), 3);
    assert_eq!(found(&store, "a"), all_ids);
    assert_eq!(docs_of(&store, "a"), 10);
    let partitions = store.tenant_partitions(&tenant("a"));
    assert_eq!(partitions[0].index.read().unwrap().segment_count(), 1);
}

#[tokio::test]
async fn open_writers_hold_their_arenas_in_the_budget_and_close_sooner_past_their_share() {
    let dir = tempfile::tempdir().unwrap();
    let arena = LogIndexConfig::default().writer_memory_bytes;
    // Writers may hold a quarter of it, one and a half arenas: the second open writer passes
    // that, and is counted for the half arena left.
    let budget = MemoryBudget::new(6 * arena);
    let store = Arc::new(
        LogStore::open(dir.path().into(), LogIndexConfig::default())
            .unwrap()
            .with_writer_budget(Arc::clone(&budget)),
    );
    let records = fixture();
    apply(&store, 1, "a", &records[..5]);
    store.flush().await.unwrap();
    assert_eq!(budget.used_bytes(), arena, "one writer's arena is counted");
    apply(&store, 2, "b", &records[5..]);
    store.flush().await.unwrap();
    assert_eq!(budget.used_bytes(), arena + arena / 2);
    let written_ago = |name: &str, ago: Duration| {
        for partition in store.partitions().values() {
            if partition.key.0.as_str() == name {
                *partition.last_write.lock().unwrap() = Instant::now().checked_sub(ago);
            }
        }
    };
    // Both written well within WRITER_IDLE; "a" longer ago than the pressure's idle time.
    written_ago("a", WRITER_IDLE_UNDER_PRESSURE + Duration::from_secs(5));
    written_ago("b", WRITER_IDLE_UNDER_PRESSURE + Duration::from_secs(1));
    store.close_idle_writers();
    assert_eq!(
        budget.used_bytes(),
        arena / 2,
        "the least recently written closed"
    );
    let has_writer = |name: &str| {
        store
            .partitions()
            .values()
            .any(|p| p.key.0.as_str() == name && p.index.read().unwrap().has_writer())
    };
    assert!(!has_writer("a") && has_writer("b"));
    // Within the writers' share again: "b" keeps its writer until WRITER_IDLE.
    store.close_idle_writers();
    assert!(has_writer("b"));
    assert_eq!(found(&store, "a"), ids(records[..5].iter()));
    // Closed for good: nothing of the budget is held.
    written_ago("b", WRITER_IDLE + Duration::from_secs(1));
    store.close_idle_writers();
    assert_eq!(budget.used_bytes(), 0);
}

/// Pins the current format: writes the fixture's partition to `testdata/log_index_v<format>`
/// (`cargo test -p skewer-storage --lib write_pinned_fixture -- --ignored`), to run once
/// before a format change, so the old format keeps a fixture that must stay readable.
#[tokio::test]
#[ignore = "writes into the source tree; run by hand before a format change"]
async fn write_pinned_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    apply(&store, 1, "a", &fixture());
    store.flush().await.unwrap();
    let partitions = store.tenant_partitions(&tenant("a"));
    let format = partitions[0].index.read().unwrap().format();
    drop(partitions);
    drop(store);
    let day = PartitionId::of_time(BASE_UNIX_NANO).dir_name();
    let source = crate::layout::log_tenant_dir(dir.path(), &tenant("a")).join(day);
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("log_index_v{format}"));
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".lock") {
            std::fs::copy(entry.path(), target.join(name)).unwrap();
        }
    }
}
