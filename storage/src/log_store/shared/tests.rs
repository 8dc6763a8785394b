//! Sharing log partitions through a bucket: a node's commits uploaded, read by another node
//! through its cache, replaced after merges and new commits, evicted past the cache's size,
//! removed with their partition.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;

use super::cache::ReplicaCache;
use super::upload::{LogUploader, UploadRound};
use super::{ReplicaKey, file_path, manifest_path};
use crate::budget::Reservation;
use crate::layout::DAY_NANOS;
use crate::log_store::LogStore;
use crate::logs::test_records::{BASE_UNIX_NANO, fixture};
use crate::logs::{LogIndexConfig, LogQuery};
use crate::model::{LogRecord, TenantId};
use crate::objects::Objects;
use crate::retention::RetentionPolicy;

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

fn bucket() -> Objects {
    Objects::remote(Arc::new(InMemory::new()))
}

/// A node's log store with `records` of tenant `a` committed.
async fn writer_with(dir: &std::path::Path, records: &[LogRecord]) -> Arc<LogStore> {
    let store = Arc::new(LogStore::open(dir.into(), LogIndexConfig::default()).unwrap());
    commit(&store, 1, "a", records).await;
    store
}

async fn commit(store: &Arc<LogStore>, lsn: u64, name: &str, records: &[LogRecord]) {
    store.apply(
        lsn,
        tenant(name),
        records.to_vec(),
        100,
        Reservation::default(),
    );
    store.flush().await.unwrap();
}

/// A node reading other nodes' replicas through a cache of `capacity` bytes.
fn reader(dir: &std::path::Path, objects: &Objects, capacity: u64) -> Arc<LogStore> {
    let cache = ReplicaCache::new(
        objects.clone(),
        Some("node-reader".into()),
        dir.join("log-cache"),
        capacity,
        LogIndexConfig::default(),
    )
    .unwrap();
    Arc::new(
        LogStore::open(dir.into(), LogIndexConfig::default())
            .unwrap()
            .with_replicas(Arc::new(cache)),
    )
}

/// Correlation ids of what `store` finds of `name`, oldest first, reading the replicas it
/// needs.
async fn found(store: &LogStore, name: &str) -> Vec<String> {
    let replicas = store.replicas().unwrap();
    replicas.refresh().await.unwrap();
    let _held = replicas
        .prepare(&tenant(name), (0, u64::MAX))
        .await
        .unwrap();
    let query = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    let mut records = store.search_blocking(&tenant(name), &query).unwrap();
    records.reverse();
    records
        .into_iter()
        .map(|record| record.correlation_id.unwrap())
        .collect()
}

fn ids(records: &[LogRecord]) -> Vec<String> {
    records
        .iter()
        .map(|record| record.correlation_id.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn another_node_reads_what_a_node_committed_and_only_new_files_travel() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = bucket();
    let records = fixture();
    let writer = writer_with(dirs[0].path(), &records[..6]).await;
    let uploader = LogUploader::new(objects.clone(), "node-a", Duration::ZERO);
    let first = uploader.upload(&writer).await.unwrap();
    assert_eq!(first.replicas, 1);
    assert!(first.files > 0 && first.bytes > 0, "{first:?}");
    assert_eq!(
        uploader.upload(&writer).await.unwrap(),
        UploadRound::default(),
        "nothing changed, nothing uploaded"
    );

    let node = reader(dirs[1].path(), &objects, u64::MAX);
    assert_eq!(found(&node, "a").await, ids(&records[..6]));
    assert!(
        found(&node, "b").await.is_empty(),
        "another tenant sees none"
    );
    let stats = node.replicas().unwrap().stats();
    let downloaded = stats
        .downloaded_files
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(downloaded, first.files as u64);

    // A second commit adds a segment: only its files are uploaded and downloaded.
    commit(&writer, 2, "a", &records[6..]).await;
    let second = uploader.upload(&writer).await.unwrap();
    assert_eq!(second.replicas, 1);
    assert!(
        second.files > 0 && second.files < first.files * 2,
        "{second:?}"
    );
    assert_eq!(found(&node, "a").await, ids(&records));
    assert_eq!(
        stats
            .downloaded_files
            .load(std::sync::atomic::Ordering::Relaxed),
        downloaded + second.files as u64
    );
    // The reader's own search of its stream catalog sees the writer's streams.
    let streams = node.streams_blocking(&tenant("a"), 0, u64::MAX).unwrap();
    assert_eq!(streams.len(), 2, "checkout and cart: {streams:?}");
}

#[tokio::test]
async fn a_partition_created_but_not_yet_committed_to_is_not_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let objects = bucket();
    let store = Arc::new(LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap());
    let day = crate::log_store::partitions::PartitionId::of_time(BASE_UNIX_NANO);
    store.partition(&(tenant("a"), day)).unwrap().unwrap();
    assert_eq!(store.local_partitions().len(), 1);
    let uploader = LogUploader::new(objects.clone(), "node-a", Duration::ZERO);
    assert_eq!(
        uploader.upload(&store).await.unwrap(),
        UploadRound::default()
    );
    commit(&store, 1, "a", &fixture()).await;
    assert_eq!(uploader.upload(&store).await.unwrap().replicas, 1);
}

#[tokio::test]
async fn a_restarted_uploader_adopts_the_bucket_and_clears_what_a_cut_upload_left() {
    let dir = tempfile::tempdir().unwrap();
    let objects = bucket();
    let writer = writer_with(dir.path(), &fixture()).await;
    let first = LogUploader::new(objects.clone(), "node-a", Duration::ZERO);
    first.upload(&writer).await.unwrap();
    let replica = ReplicaKey {
        tenant: tenant("a"),
        day: BASE_UNIX_NANO / DAY_NANOS,
        node: "node-a".into(),
    };
    let stray = file_path(&replica, "0123.idx");
    objects
        .put(&stray, "left by a cut upload".into())
        .await
        .unwrap();

    let restarted = LogUploader::new(objects.clone(), "node-a", Duration::ZERO);
    assert_eq!(
        restarted.upload(&writer).await.unwrap(),
        UploadRound::default(),
        "the manifest in the bucket is this commit's"
    );
    assert!(objects.get(&stray).await.is_err(), "the stray file is gone");
    assert!(objects.get(&manifest_path(&replica)).await.is_ok());
}

#[tokio::test]
async fn replicas_past_the_cache_size_are_evicted_unless_a_read_holds_them() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = bucket();
    let records = fixture();
    let writer = writer_with(dirs[0].path(), &records).await;
    commit(&writer, 2, "b", &records).await;
    LogUploader::new(objects.clone(), "node-a", Duration::ZERO)
        .upload(&writer)
        .await
        .unwrap();

    // Room for one replica at a time.
    let node = reader(dirs[1].path(), &objects, 1);
    let replicas = node.replicas().unwrap();
    replicas.refresh().await.unwrap();
    let held_a = replicas.prepare(&tenant("a"), (0, u64::MAX)).await.unwrap();
    assert_eq!(held_a.len(), 1);
    let held_b = replicas.prepare(&tenant("b"), (0, u64::MAX)).await.unwrap();
    assert_eq!(held_b.len(), 1);
    assert_eq!(replicas.opened(&tenant("a")).len(), 1, "a read holds it");
    drop(held_a);
    drop(held_b);
    assert_eq!(found(&node, "a").await.len(), 10);
    assert!(replicas.opened(&tenant("b")).is_empty(), "b was evicted");
    let evictions = replicas
        .stats()
        .evictions
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(evictions, 1);
    let b_dir = dirs[1].path().join("log-cache").join("b");
    let left: Vec<_> = walk(&b_dir);
    assert!(
        left.is_empty(),
        "the evicted replica's files left: {left:?}"
    );
    assert_eq!(found(&node, "b").await.len(), 10, "read again on demand");
    assert!(
        replicas.opened(&tenant("a")).is_empty(),
        "now a was evicted"
    );
}

/// Files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            if entry.path().is_dir() {
                walk(&entry.path())
            } else {
                vec![entry.path()]
            }
        })
        .collect()
}

#[tokio::test]
async fn expired_partitions_leave_the_bucket_and_every_reader() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = bucket();
    let records = fixture();
    let writer = writer_with(dirs[0].path(), &records).await;
    let later: Vec<LogRecord> = records
        .iter()
        .cloned()
        .map(|mut record| {
            if record.time_unix_nano != 0 {
                record.time_unix_nano += 3 * DAY_NANOS;
            }
            record.observed_time_unix_nano += 3 * DAY_NANOS;
            record
        })
        .collect();
    commit(&writer, 2, "a", &later).await;
    let uploader = LogUploader::new(objects.clone(), "node-a", Duration::ZERO);
    let days: std::collections::BTreeSet<u64> = records
        .iter()
        .chain(&later)
        .map(|record| record.effective_time_unix_nano() / DAY_NANOS)
        .collect();
    assert_eq!(uploader.upload(&writer).await.unwrap().replicas, days.len());
    let node = reader(dirs[1].path(), &objects, u64::MAX);
    assert_eq!(found(&node, "a").await.len(), 20);

    let mut policy = RetentionPolicy::default();
    policy.default.logs = Some(Duration::from_secs(2 * 86_400));
    let now = BASE_UNIX_NANO + 4 * DAY_NANOS;
    // The writer drops its expired day; its next round removes the day's replica.
    assert_eq!(writer.drop_expired(&policy, now).unwrap().0, 1);
    uploader.upload(&writer).await.unwrap();
    assert_eq!(found(&node, "a").await.len(), 10);
    assert!(
        walk(&dirs[1].path().join("log-cache"))
            .iter()
            .all(|path| !path.to_string_lossy().contains("2024-01-01")),
        "the reader dropped the removed replica's files"
    );
    // A maintenance node removes expired replicas of nodes that are gone.
    let everything_expired = BASE_UNIX_NANO + 9 * DAY_NANOS;
    let removed = node
        .replicas()
        .unwrap()
        .remove_expired(&policy, everything_expired)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(
        objects
            .list(&super::manifests_prefix())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        objects
            .list(&crate::layout::signal_prefix(
                &tenant("a"),
                crate::model::Signal::Logs
            ))
            .await
            .unwrap()
            .is_empty(),
        "the files went with the manifest"
    );
    assert!(found(&node, "a").await.is_empty());
}
