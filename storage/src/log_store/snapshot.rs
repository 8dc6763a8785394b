//! A consistent view of one tenant's logs for a read: the read-locked partitions that overlap
//! the range and what the read takes from the buffers, so every record is seen exactly once.

use std::sync::{Arc, RwLockReadGuard};

use super::partitions::{Partition, PartitionId, PartitionKey};
use super::{CommitStep, LogStore};
use crate::logs::LogIndex;
use crate::model::{LogRecord, TenantId};

/// One read-locked partition.
pub(super) type LockedPartition<'p> = (&'p Arc<Partition>, RwLockReadGuard<'p, LogIndex>);

/// What a read sees.
pub(super) struct Snapshot<'p> {
    /// The partitions that may hold records of the range, read-locked in key order.
    pub(super) partitions: Vec<LockedPartition<'p>>,
    /// What the read took from the buffered records no index shows yet.
    pub(super) buffered: Vec<LogRecord>,
}

impl LogStore {
    /// Locks the partitions of `partitions` (the tenant's, in key order) that overlap
    /// `[start, end)`, then lets `take` pick from the active buffer (under the state lock) and
    /// from the frozen buffer's records that no index shows yet. `None` when a commit created a
    /// partition meanwhile: its records may be in neither view, so the caller reads again.
    pub(super) fn snapshot<'p>(
        &self,
        tenant: &TenantId,
        partitions: &'p [Arc<Partition>],
        (start, end): (u64, u64),
        take: &mut dyn FnMut(&mut dyn Iterator<Item = &LogRecord>) -> Vec<LogRecord>,
    ) -> Option<Snapshot<'p>> {
        let known: Vec<&PartitionKey> = partitions.iter().map(|p| &p.key).collect();
        let locked: Vec<LockedPartition<'p>> = partitions
            .iter()
            .filter(|partition| partition.overlaps(start, end))
            .map(|partition| {
                let guard = partition.index.read().unwrap_or_else(|p| p.into_inner());
                (partition, guard)
            })
            .collect();
        // The active buffer under the state lock; the frozen one after it (it is immutable,
        // and retired only under the write locks of its partitions, which this read holds
        // where they exist).
        let (mut buffered, frozen, indexed) = {
            let state = self.lock();
            let active = state.active.records_by_tenant.get(tenant);
            let taken = take(&mut active.into_iter().flat_map(|chunks| chunks.iter()));
            let indexed: Vec<PartitionId> = state
                .frozen_progress
                .iter()
                .filter(|(key, step)| &key.0 == tenant && **step == CommitStep::Reload)
                .map(|(key, _)| key.1)
                .collect();
            (taken, state.frozen.as_ref().map(Arc::clone), indexed)
        };
        if let Some(frozen) = frozen {
            let not_indexed = |record: &&LogRecord| {
                !indexed.contains(&PartitionId::of_time(record.effective_time_unix_nano()))
            };
            let records = frozen.records_by_tenant.get(tenant);
            buffered.extend(take(
                &mut records
                    .into_iter()
                    .flat_map(|chunks| chunks.iter())
                    .filter(not_indexed),
            ));
        }
        let now_known = self.tenant_partitions(tenant);
        if now_known.iter().any(|p| !known.contains(&&p.key)) {
            return None;
        }
        Some(Snapshot {
            partitions: locked,
            buffered,
        })
    }
}
