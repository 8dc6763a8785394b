//! Searching the log store: the tenant's partitions (read-locked in key order, newest first,
//! skipping those that cannot contribute) and both buffers, with one meaning.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, RwLockReadGuard};

use super::partitions::{Partition, PartitionId, PartitionKey};
use super::{CommitStep, LogStore};
use crate::StorageError;
use crate::logs::{LogIndex, LogQuery};
use crate::model::{LogRecord, TenantId};

impl LogStore {
    /// Searches committed and buffered records of a tenant; newest first, at most
    /// `query.limit`. Partitions are read newest first, and a partition is skipped once the
    /// newer ones gave `limit` records at least as new as anything it can hold.
    /// Blocking: call from a blocking thread.
    pub fn search_blocking(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
    ) -> Result<Vec<LogRecord>, StorageError> {
        // Parse the query once; a bad query is an error even before the tenant has an index.
        let matcher = query.matcher()?;
        let start = query.start_unix_nano.unwrap_or(0);
        let end = query.end_unix_nano.unwrap_or(u64::MAX);
        let partitions = self.tenant_partitions(tenant);
        let known: Vec<PartitionKey> = partitions.iter().map(|p| p.key.clone()).collect();
        let guards: Vec<(&Arc<Partition>, RwLockReadGuard<'_, LogIndex>)> = partitions
            .iter()
            .filter(|partition| partition.overlaps(start, end))
            .map(|partition| {
                let guard = partition.index.read().unwrap_or_else(|p| p.into_inner());
                (partition, guard)
            })
            .collect();
        // Only the newest `limit` matches of each part can make the answer: the buffers are
        // matched keeping that many (no clone of every match), the active one under the state
        // lock, the frozen one after it (it is immutable, and retired only under the write
        // locks of its partitions, which this search holds where they exist).
        let mut keep = |record: &LogRecord| matcher.matches(record);
        let (mut records, frozen, indexed) = {
            let state = self.lock();
            let active = state.active.records_by_tenant.get(tenant);
            let found = newest_matching(
                active.into_iter().flat_map(|chunks| chunks.iter()),
                &mut keep,
                query.limit,
            );
            let indexed: Vec<PartitionId> = state
                .frozen_progress
                .iter()
                .filter(|(key, step)| &key.0 == tenant && **step == CommitStep::Reload)
                .map(|(key, _)| key.1)
                .collect();
            (found, state.frozen.as_ref().map(Arc::clone), indexed)
        };
        if let Some(frozen) = frozen {
            let buffered = frozen.records_by_tenant.get(tenant);
            let not_indexed = |record: &&LogRecord| {
                !indexed.contains(&PartitionId::of_time(record.effective_time_unix_nano()))
            };
            records.extend(newest_matching(
                buffered
                    .into_iter()
                    .flat_map(|chunks| chunks.iter())
                    .filter(not_indexed),
                &mut keep,
                query.limit,
            ));
        }
        let mut newest_first: Vec<&(&Arc<Partition>, RwLockReadGuard<'_, LogIndex>)> =
            guards.iter().collect();
        newest_first.sort_by_key(|(partition, _)| Reverse(partition.max_time_unix_nano()));
        for (partition, index) in newest_first {
            if records.len() >= query.limit {
                records.sort_by_key(|record| Reverse(record.effective_time_unix_nano()));
                records.truncate(query.limit);
                let oldest_kept = records
                    .last()
                    .map_or(0, LogRecord::effective_time_unix_nano);
                if oldest_kept >= partition.max_time_unix_nano() {
                    continue;
                }
            }
            records.extend(index.search(query)?);
        }
        drop(guards);
        let now_known: Vec<PartitionKey> = self
            .tenant_partitions(tenant)
            .iter()
            .map(|p| p.key.clone())
            .collect();
        if now_known.iter().any(|key| !known.contains(key)) {
            // A commit created a partition between the partition lookup and the buffer read:
            // its records may be in neither view. Search again, now with it.
            return self.search_blocking(tenant, query);
        }
        records.sort_by_key(|record| Reverse(record.effective_time_unix_nano()));
        records.truncate(query.limit);
        Ok(records)
    }
}

/// Clones of the newest `limit` records that `keep` accepts, in arrival order.
pub(super) fn newest_matching<'a>(
    records: impl Iterator<Item = &'a LogRecord>,
    keep: &mut impl FnMut(&LogRecord) -> bool,
    limit: usize,
) -> Vec<LogRecord> {
    if limit == 0 {
        return Vec::new();
    }
    // A min-heap on (time, arrival) holding the newest matches seen so far.
    let mut newest: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(limit + 1);
    let mut matched: Vec<&LogRecord> = Vec::new();
    for record in records.filter(|record| keep(record)) {
        let key = (record.effective_time_unix_nano(), matched.len());
        if newest.len() == limit && newest.peek().is_some_and(|Reverse(oldest)| key <= *oldest) {
            continue;
        }
        matched.push(record);
        newest.push(Reverse(key));
        if newest.len() > limit {
            newest.pop();
        }
    }
    // Arrival order, so equal times come back in the order they came in.
    let mut kept: Vec<usize> = newest
        .into_iter()
        .map(|Reverse((_, position))| position)
        .collect();
    kept.sort_unstable();
    kept.into_iter()
        .map(|position| matched[position].clone())
        .collect()
}
