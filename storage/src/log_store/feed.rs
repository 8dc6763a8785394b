//! Feeding the writers: records that arrived since the last feed are added to their
//! partitions' writers between commits, not committed, so each writer's indexing thread works
//! as records arrive and a commit has only the last few to index before it writes the
//! segment, instead of indexing a whole buffer in one burst.
//!
//! Fed records stay in the active buffer, which searches read until the commit makes them
//! searchable in the index (uncommitted documents are invisible), so each is seen once. What
//! a writer holds is tagged with the buffer's generation ([`super::Fed`]); a writer that lost
//! it (a rollback, a close) is untagged, and the next feed or the commit adds every record of
//! its partition again (the commit alone after a failed feed). A crash loses only uncommitted documents: the WAL still has them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::warn;

use super::LogStore;
use super::partitions::{Partition, PartitionKey, group_by_partition, records_from_chunk};
use crate::StorageError;
use crate::buffer::Chunks;
use crate::logs::LogIndex;
use crate::model::{LogRecord, TenantId};

/// One tenant's records in the active buffer: its chunks, and how many were fed before.
type TenantChunks = (TenantId, usize, Chunks<LogRecord>);

impl LogStore {
    /// Adds the records applied since the last feed to their partitions' writers, not
    /// committed. Does nothing while a flush runs (it indexes them) or while a failed one
    /// waits for its retry (the writers hold that buffer's records); a partition whose feed
    /// failed is left to the commit.
    pub async fn feed(self: &Arc<Self>) -> Result<(), StorageError> {
        let Ok(_serial) = self.flush_lock.try_lock() else {
            return Ok(());
        };
        let (generation, tenants, failed_before) = {
            let state = self.lock();
            if state.frozen.is_some() {
                return Ok(());
            }
            let tenants: Vec<TenantChunks> = state
                .active
                .records_by_tenant
                .iter()
                .filter_map(|(tenant, chunks)| {
                    let fed = state.active_fed.chunks.get(tenant).copied().unwrap_or(0);
                    (chunks.0.len() > fed).then(|| (tenant.clone(), fed, chunks.clone()))
                })
                .collect();
            let failed_before = state.active_fed.failed.clone();
            (state.active_fed.generation, tenants, failed_before)
        };
        if tenants.is_empty() {
            return Ok(());
        }
        let store = Arc::clone(self);
        let feeding = move || store.feed_blocking(generation, &tenants, &failed_before);
        let (fed, failed) = match tokio::task::spawn_blocking(feeding).await {
            Ok(outcome) => outcome,
            Err(failed) => {
                // A feed cut short may leave records in writers untold: drop what every
                // writer holds uncommitted (all of it this buffer's, as no frozen one waits),
                // so the commit adds each record once.
                let store = Arc::clone(self);
                if let Err(err) =
                    tokio::task::spawn_blocking(move || store.roll_back_writers()).await
                {
                    warn!(error = %err, "rolling back the log writers failed");
                }
                return Err(failed.into());
            }
        };
        // The flush lock kept the buffer from freezing meanwhile: still the same generation.
        let mut state = self.lock();
        if state.active_fed.generation == generation {
            state.active_fed.chunks.extend(fed);
            state.active_fed.failed.extend(failed);
        }
        Ok(())
    }

    /// Feeds each tenant's new chunks to their partitions' writers, but for the partitions
    /// whose feed `failed_before`; returns how many chunks of each tenant the writers tagged
    /// with `generation` now hold, and the partitions whose feed failed now. Those are rolled
    /// back (untagged): their commit adds all their records.
    fn feed_blocking(
        &self,
        generation: u64,
        tenants: &[TenantChunks],
        failed_before: &BTreeSet<PartitionKey>,
    ) -> (Vec<(TenantId, usize)>, Vec<PartitionKey>) {
        let mut fed = Vec::with_capacity(tenants.len());
        let mut failed = Vec::new();
        for (tenant, first_new, chunks) in tenants {
            let new = group_by_partition(std::iter::once((tenant, chunks)), *first_new);
            // Every chunk's records by partition, grouped at most once, for partitions whose
            // writer lost (or never had) this buffer's earlier records.
            let mut every: Option<BTreeMap<PartitionKey, Vec<(usize, &LogRecord)>>> = None;
            for (key, new_records) in &new {
                if failed_before.contains(key) {
                    continue;
                }
                // A partition is created by the commit, not here: retention may be deleting
                // an expired one that records of its day would bring back.
                let Some(partition) = self.partitions().get(key).cloned() else {
                    continue;
                };
                let fed_partition = {
                    let index = partition.index.read().unwrap_or_else(|p| p.into_inner());
                    let holds_earlier =
                        *first_new == 0 || index.uncommitted_tag() == Some(generation);
                    let records = if holds_earlier {
                        records_from_chunk(new_records, *first_new)
                    } else {
                        let every = every.get_or_insert_with(|| {
                            group_by_partition(std::iter::once((tenant, chunks)), 0)
                        });
                        every
                            .get(key)
                            .map(|group| records_from_chunk(group, 0))
                            .unwrap_or_default()
                    };
                    self.add_tagged(&partition, &index, &records, generation)
                };
                if let Err(err) = fed_partition {
                    warn!(%tenant, error = %err, "feeding log records to their index failed; the commit adds them");
                    failed.push(key.clone());
                }
            }
            fed.push((tenant.clone(), chunks.0.len()));
        }
        (fed, failed)
    }

    /// Rolls back every writer of this node: what they hold uncommitted is dropped and they
    /// are untagged.
    fn roll_back_writers(&self) {
        for partition in self.local_partitions() {
            let index = partition.index.read().unwrap_or_else(|p| p.into_inner());
            if index.has_writer()
                && let Err(err) = index.rollback()
            {
                warn!(tenant = %partition.key.0, error = %err, "log index rollback failed");
            }
        }
    }

    /// Adds `records` to the partition's writer and tags what it holds with `generation`; on
    /// failure rolls the writer back (untagged), dropping whatever it held of the buffer.
    fn add_tagged(
        &self,
        partition: &Partition,
        index: &LogIndex,
        records: &[&LogRecord],
        generation: u64,
    ) -> Result<(), StorageError> {
        let added = self
            .injected_feed_failure(&partition.key.0)
            .and_then(|()| self.add_to_writer(partition, index, records));
        match added {
            Ok(()) => {
                index.tag_uncommitted(generation);
                Ok(())
            }
            Err(err) => {
                if let Err(rollback) = index.rollback() {
                    warn!(tenant = %partition.key.0, error = %rollback, "log index rollback failed");
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::partitions::PartitionId;
    use super::super::tests::{apply, docs_of, found, ids, shifted, tenant};
    use super::super::{CommitStep, LogStore};
    use super::*;
    use crate::logs::LogIndexConfig;
    use crate::logs::test_records::fixture;

    /// A store holding the (empty) partition of the fixture's day for tenants `a` and `b`:
    /// feeds go to partitions that exist.
    fn open() -> (tempfile::TempDir, Arc<LogStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().into(), LogIndexConfig::default()).unwrap();
        let day = PartitionId::of_time(fixture()[0].effective_time_unix_nano());
        for name in ["a", "b"] {
            store.partition(&(tenant(name), day)).unwrap().unwrap();
        }
        (dir, Arc::new(store))
    }

    /// The generation tag of the tenant's only partition's writer.
    fn tag_of(store: &LogStore, name: &str) -> Option<u64> {
        let partitions = store.tenant_partitions(&tenant(name));
        assert_eq!(partitions.len(), 1);
        partitions[0].index.read().unwrap().uncommitted_tag()
    }

    #[tokio::test]
    async fn fed_records_are_searched_from_the_buffer_until_the_commit_indexes_each_once() {
        let (_dir, store) = open();
        let records = fixture();
        let all_ids = ids(records.iter());
        apply(&store, 1, "a", &records[..3]);
        store.feed().await.unwrap();
        assert_eq!(
            tag_of(&store, "a"),
            Some(0),
            "the writer holds generation 0"
        );
        apply(&store, 2, "a", &records[3..6]);
        store.feed().await.unwrap();
        apply(&store, 3, "a", &records[6..]);
        assert_eq!(docs_of(&store, "a"), 0, "fed records are not committed");
        let catalog = store.tenant_partitions(&tenant("a"))[0]
            .dir
            .join("streams.json");
        assert!(
            !catalog.exists(),
            "the stream catalog is saved by the commit only"
        );
        assert_eq!(found(&store, "a"), all_ids);

        assert_eq!(store.flush().await.unwrap(), 3);
        assert!(catalog.exists());
        assert_eq!(docs_of(&store, "a"), 10);
        assert_eq!(found(&store, "a"), all_ids);
        assert_eq!(tag_of(&store, "a"), None, "the commit took what was fed");
        // The next buffer is generation 1.
        apply(&store, 4, "a", &records[..1]);
        store.feed().await.unwrap();
        assert_eq!(tag_of(&store, "a"), Some(1));
        store.flush().await.unwrap();
        assert_eq!(docs_of(&store, "a"), 11);
    }

    #[tokio::test]
    async fn a_day_that_starts_between_feeds_is_created_and_filled_by_the_commit() {
        let (_dir, store) = open();
        apply(&store, 1, "a", &fixture());
        store.flush().await.unwrap();
        apply(&store, 2, "a", &shifted(1)[..5]);
        apply(&store, 3, "a", &fixture()[..3]);
        store.feed().await.unwrap();
        let partitions = store.tenant_partitions(&tenant("a"));
        assert_eq!(partitions.len(), 1, "the feed creates no partition");
        assert_eq!(
            partitions[0].index.read().unwrap().uncommitted_tag(),
            Some(1)
        );
        apply(&store, 4, "a", &shifted(1)[5..]);
        store.flush().await.unwrap();
        let docs: Vec<u64> = store
            .tenant_partitions(&tenant("a"))
            .iter()
            .map(|partition| partition.index.read().unwrap().num_docs())
            .collect();
        assert_eq!(docs, [13, 10]);
    }

    #[tokio::test]
    async fn a_writer_that_lost_what_it_was_fed_gets_all_of_it_again() {
        let (_dir, store) = open();
        let records = fixture();
        apply(&store, 1, "a", &records[..4]);
        store.feed().await.unwrap();
        // Closing the writer (as for an idle one) drops its uncommitted records.
        let partition = store.tenant_partitions(&tenant("a"))[0].clone();
        partition.index.write().unwrap().close_writer().unwrap();
        assert_eq!(tag_of(&store, "a"), None);
        apply(&store, 2, "a", &records[4..7]);
        store.feed().await.unwrap();
        // A rollback drops them too: the commit adds all of them.
        partition.index.read().unwrap().rollback().unwrap();
        apply(&store, 3, "a", &records[7..]);
        store.flush().await.unwrap();
        assert_eq!(docs_of(&store, "a"), 10);
        assert_eq!(found(&store, "a"), ids(records.iter()));
    }

    #[tokio::test]
    async fn a_partition_whose_feed_failed_is_left_to_the_commit() {
        let (_dir, store) = open();
        let records = fixture();
        *store.failing_feeds.lock().unwrap() = Some((tenant("a"), 0));
        apply(&store, 1, "a", &records[..3]);
        apply(&store, 2, "b", &records[..3]);
        store.feed().await.unwrap();
        apply(&store, 3, "a", &records[3..6]);
        apply(&store, 4, "b", &records[3..6]);
        store.feed().await.unwrap();
        store.feed().await.unwrap();
        let failures = store.failing_feeds.lock().unwrap().as_ref().map(|f| f.1);
        assert_eq!(failures, Some(1), "tried once, not on every round");
        assert_eq!(tag_of(&store, "a"), None, "rolled back");
        assert_eq!(
            tag_of(&store, "b"),
            Some(0),
            "other partitions are still fed"
        );
        // The commit adds all of it; the next buffer is fed again.
        *store.failing_feeds.lock().unwrap() = None;
        store.flush().await.unwrap();
        assert_eq!(docs_of(&store, "a"), 6);
        assert_eq!(found(&store, "a"), ids(records[..6].iter()));
        apply(&store, 5, "a", &records[6..]);
        store.feed().await.unwrap();
        assert_eq!(tag_of(&store, "a"), Some(1));
    }

    #[tokio::test]
    async fn nothing_is_fed_while_a_failed_commit_waits_and_its_retry_adds_each_record_once() {
        let (_dir, store) = open();
        let records = fixture();
        apply(&store, 1, "a", &records[..5]);
        apply(&store, 2, "b", &records[..5]);
        store.feed().await.unwrap();
        apply(&store, 3, "b", &records[5..8]);
        // "a" commits, "b" fails after adding its unfed records.
        *store.fail_next_commit_of.lock().unwrap() = Some((tenant("b"), CommitStep::Write));
        assert!(store.flush().await.is_err());
        assert_eq!(tag_of(&store, "b"), None, "rolled back");
        apply(&store, 4, "a", &records[5..]);
        store.feed().await.unwrap();
        assert_eq!(
            tag_of(&store, "a"),
            None,
            "no feed while the failed buffer waits"
        );
        store.flush().await.unwrap();
        assert!(store.is_due(0, Duration::ZERO));
        store.flush().await.unwrap();
        assert_eq!(docs_of(&store, "a"), 10);
        assert_eq!(docs_of(&store, "b"), 8);
        assert_eq!(found(&store, "b"), ids(records[..8].iter()));
    }
}
