//! Searching the log store: the tenant's partitions (read-locked in key order, newest first,
//! skipping those that cannot contribute) and both buffers, with one meaning.

use super::LogStore;
use crate::StorageError;
use crate::logs::LogQuery;
use crate::model::{LogRecord, TenantId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
        // keeping that many (no clone of every match). Each buffer is read newest arrival
        // first, and the active one before the frozen one: once `limit` matches are kept,
        // older records are passed over on their time alone, unmatched.
        let mut floor = 0;
        let mut take = |records: &mut dyn Iterator<Item = &LogRecord>| {
            let in_arrival_order: Vec<&LogRecord> = records.collect();
            let mut newest_arrivals_first = in_arrival_order.iter().copied().enumerate().rev();
            let matcher = &mut |record: &LogRecord| matcher.matches(record);
            let found = newest_matching(&mut newest_arrivals_first, matcher, query.limit, floor);
            if found.len() == query.limit {
                let oldest = found.iter().map(LogRecord::effective_time_unix_nano).min();
                floor = floor.max(oldest.unwrap_or(0));
            }
            found
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

/// Clones of the newest `limit` records that `keep` accepts, in arrival order, among those
/// not older than `floor` (Unix ns); `records` come with their arrival positions, in any order
/// (newest arrivals first is cheapest). Equal times rank by arrival, later first. A record
/// that ranks below every one kept so far is passed over before `keep` is asked.
pub(super) fn newest_matching<'a>(
    records: &mut dyn Iterator<Item = (usize, &'a LogRecord)>,
    keep: &mut dyn FnMut(&LogRecord) -> bool,
    limit: usize,
    floor: u64,
) -> Vec<LogRecord> {
    if limit == 0 {
        return Vec::new();
    }
    // A min-heap on (time, arrival) holding the newest matches seen so far.
    let mut newest: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(limit + 1);
    let mut matched: HashMap<usize, &LogRecord> = HashMap::new();
    for (arrival, record) in records {
        let key = (record.effective_time_unix_nano(), arrival);
        let outranked = newest.len() == limit && newest.peek().is_some_and(|r| key < r.0);
        if key.0 < floor || outranked || !keep(record) {
            continue;
        }
        matched.insert(arrival, record);
        newest.push(Reverse(key));
        if newest.len() > limit
            && let Some(Reverse((_, dropped))) = newest.pop()
        {
            matched.remove(&dropped);
        }
    }
    // Arrival order, so equal times come back in the order they came in.
    let mut kept: Vec<usize> = newest
        .into_iter()
        .map(|Reverse((_, position))| position)
        .collect();
    kept.sort_unstable();
    kept.into_iter()
        .filter_map(|position| matched.get(&position).map(|record| (*record).clone()))
        .collect()
}
