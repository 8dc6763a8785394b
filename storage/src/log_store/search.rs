//! Searching the log store: the tenant's partitions (read-locked in key order, newest first,
//! skipping those that cannot contribute) and both buffers, with one meaning.

use super::LogStore;
use crate::StorageError;
use crate::logs::LogQuery;
use crate::model::{LogRecord, TenantId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
        let range = (
            query.start_unix_nano.unwrap_or(0),
            query.end_unix_nano.unwrap_or(u64::MAX),
        );
        let partitions = self.tenant_partitions(tenant);
        // Only the newest `limit` matches of each buffer can make the answer: they are matched
        // keeping that many (no clone of every match).
        let mut take = |records: &mut dyn Iterator<Item = &LogRecord>| {
            newest_matching(records, &mut |record| matcher.matches(record), query.limit)
        };
        let Some(snapshot) = self.snapshot(tenant, &partitions, range, &mut take) else {
            return self.search_blocking(tenant, query);
        };
        let mut records = snapshot.buffered;
        let mut newest_first: Vec<_> = snapshot.partitions.iter().collect();
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
        records.sort_by_key(|record| Reverse(record.effective_time_unix_nano()));
        records.truncate(query.limit);
        Ok(records)
    }
}

/// Clones of the newest `limit` records that `keep` accepts, in arrival order.
pub(super) fn newest_matching<'a>(
    records: &mut dyn Iterator<Item = &'a LogRecord>,
    keep: &mut dyn FnMut(&LogRecord) -> bool,
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
