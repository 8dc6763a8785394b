//! Storage-level crash tests: a crash between a flush (files and manifest, or a log commit)
//! and the WAL checkpoint that would follow it replays nothing twice.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Storage, WalDecoder};
use crate::config::StorageConfig;
use crate::logs::LogQuery;
use crate::model::{Signal, SignalBatch, TenantId};
use crate::parquet_codec::test_fixtures::realistic_spans;
use crate::wal::WalEntry;

/// WAL bodies are a seed and a count; the decoder regenerates the same records from them.
struct SeedDecoder;

fn body(seed: u64, count: u64) -> Bytes {
    let mut bytes = seed.to_le_bytes().to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    Bytes::from(bytes)
}

impl WalDecoder for SeedDecoder {
    fn decode(&self, entry: &WalEntry) -> Result<SignalBatch, String> {
        let number = |at: usize| {
            entry
                .body
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or("short body")
        };
        let (seed, count) = (number(0)?, number(8)?);
        Ok(match entry.signal {
            Signal::Traces => SignalBatch::Spans(realistic_spans(count as usize, seed)),
            Signal::Logs => {
                let mut records = crate::logs::test_records::realistic_records(count, 1);
                for record in &mut records {
                    record.correlation_id = Some(format!("seed-{seed}"));
                }
                SignalBatch::Logs(records)
            }
            Signal::Metrics => SignalBatch::Metrics(Vec::new()),
        })
    }
}

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut config = StorageConfig::new(dir.to_path_buf());
    config.flush_interval = Duration::from_secs(3600);
    config.log_commit_interval = Duration::from_secs(3600);
    config.compaction.enabled = false;
    // The fixtures are from 2024 and 2025: keep them.
    config.retention.default = crate::retention::SignalRetention {
        traces: None,
        logs: None,
        metrics: None,
    };
    config
}

async fn write(storage: &Storage, signal: Signal, seed: u64, count: u64) {
    let entry = WalEntry {
        signal,
        payload_format: 0,
        tenant: TenantId::default_tenant(),
        body: body(seed, count),
    };
    let batch = SeedDecoder.decode(&entry).unwrap();
    let admission = storage.budget().try_reserve(1).unwrap();
    storage.write(entry, batch, admission).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_flush_and_its_checkpoint_replays_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    write(&storage, Signal::Traces, 1, 300).await;
    write(&storage, Signal::Logs, 2, 50).await;
    // The files and the log commit land; the checkpoint that would follow does not.
    storage.stores.spans.flush().await.unwrap();
    storage.stores.logs.flush().await.unwrap();
    storage.crash().await;

    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    assert_eq!(storage.stores.spans.buffered().0, 0, "no span replayed");
    assert_eq!(
        storage.stores.logs.buffered().0,
        0,
        "no log record replayed"
    );
    let spans = realistic_spans(300, 1);
    let trace = spans[0].trace_id;
    let expected = spans.iter().filter(|s| s.trace_id == trace).count();
    let found = crate::spans::find_trace(&storage.stores.spans, &TenantId::default_tenant(), trace)
        .await
        .unwrap();
    assert_eq!(found.len(), expected);
    assert_eq!(logs_of_seed(&storage, 2).await, 50, "each record once");
    storage.shutdown().await.unwrap();
}

/// How many log records (of at most 1,000) written with `seed` a search finds.
async fn logs_of_seed(storage: &Storage, seed: u64) -> usize {
    let query = LogQuery {
        correlation_id: Some(format!("seed-{seed}")),
        limit: 1000,
        ..LogQuery::default()
    };
    let logs = storage
        .search_logs(&TenantId::default_tenant(), query)
        .await
        .unwrap();
    logs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    let second = Storage::open(config(dir.path()), Arc::new(SeedDecoder)).await;
    assert!(matches!(second, Err(crate::StorageError::DataDirInUse(_))));
    storage.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_past_its_limit_ends_with_the_error_even_for_a_slow_reader() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    for seed in 0..10 {
        write(&storage, Signal::Traces, seed, 300).await;
        storage.stores.spans.flush().await.unwrap();
    }
    let request = crate::scan::ScanRequest {
        tenant: TenantId::default_tenant(),
        signal: Signal::Traces,
        time_range: crate::scan::TimeRange::ALL,
        columns: Some(vec!["trace_id".into()]),
        predicate: crate::scan::Predicate::All,
        limits: crate::scan::ScanLimits {
            max_rows: 2_000,
            ..crate::scan::ScanLimits::default()
        },
        order: crate::scan::ScanOrder::Any,
    };
    let mut stream = storage.scan(request).unwrap();
    let mut rows = 0;
    let mut last = None;
    while let Some(batch) = stream.next().await {
        // A slow reader: the scan fills the channel and hits its limit meanwhile.
        tokio::time::sleep(Duration::from_millis(30)).await;
        match batch {
            Ok(batch) => rows += batch.num_rows(),
            Err(err) => last = Some(err),
        }
    }
    assert!(rows <= 2_000);
    assert!(
        matches!(last, Some(crate::StorageError::LimitExceeded { .. })),
        "the answer must end with the limit error, not look complete: {last:?}"
    );
    storage.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_records_never_reuse_a_position_the_files_already_cover() {
    // A restored backup can hold files newer than its WAL: here, the WAL is gone entirely.
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    for seed in 0..5 {
        write(&storage, Signal::Traces, seed, 10).await;
    }
    storage.stores.spans.flush().await.unwrap();
    storage.crash().await;
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();

    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    write(&storage, Signal::Traces, 99, 10).await;
    storage.crash().await;
    let storage = Storage::open(config(dir.path()), Arc::new(SeedDecoder))
        .await
        .unwrap();
    assert_eq!(
        storage.stores.spans.buffered().0,
        10,
        "the record written after the restore is replayed, not taken for one already in files"
    );
    storage.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_merges_a_quiet_log_day_into_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.log_writer_idle = Duration::from_millis(300);
    config.retention.check_interval = Duration::from_millis(100);
    let storage = Storage::open(config, Arc::new(SeedDecoder)).await.unwrap();
    // Three commits, three segments.
    for seed in 1..=3 {
        write(&storage, Signal::Logs, seed, 200).await;
        storage.flush_all().await.unwrap();
    }
    let merges = || {
        storage
            .stores
            .logs
            .stats()
            .merges
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while merges() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(merges(), 1);
    let partitions = storage
        .stores
        .logs
        .tenant_partitions(&TenantId::default_tenant());
    let segments: usize = partitions
        .iter()
        .map(|p| p.index.read().unwrap().segment_count())
        .sum();
    assert_eq!(segments, 1);
    drop(partitions);
    for seed in 1..=3 {
        let found = logs_of_seed(&storage, seed).await;
        assert_eq!(found, 200, "seed {seed}: each record once");
    }
    storage.shutdown().await.unwrap();
}
