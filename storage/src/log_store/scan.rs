//! Scanning the log store: every record a query matches, in time order (either direction),
//! handed to a visitor that may stop the scan; what LogQL evaluation reads.
//!
//! Memory stays bounded by one hour of matches: the range is walked in aligned hour windows,
//! and in each window the matches of every overlapping partition (time and address only, from
//! the timestamp column) and of the buffers are put in order as far as the visitor reads
//! ([`LazyOrder`]), and loaded one record at a time as it asks for them. A record stored twice (a crash between a commit and the WAL
//! checkpoint) is visited once.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use super::LogStore;
use super::lazy_order::LazyOrder;
use crate::StorageError;
use crate::layout::HOUR_NANOS;
use crate::logs::{LogQuery, TimedMatches};
use crate::model::{LogRecord, TenantId};

/// The order a scan visits records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanDirection {
    /// Oldest first.
    Forward,
    /// Newest first.
    #[default]
    Backward,
}

/// What a scan hands records to, on a blocking thread, until it breaks.
pub trait LogVisitor: Send + 'static {
    /// Takes one record; `Break` ends the scan.
    fn visit(&mut self, record: &LogRecord) -> ControlFlow<()>;
}

/// Where one match of a window is.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// In partition `.0` of the snapshot, in its window matches `.1` at this address.
    Indexed(usize, tantivy::DocAddress),
    /// In the snapshot's buffered records at this position.
    Buffered(usize),
}

impl LogStore {
    /// Visits every record of `tenant` that `query` matches (its limit ignored) in
    /// `direction`'s time order, records of equal time in arrival order (reversed when
    /// backward), until `visit` breaks. Blocking: call from a blocking thread.
    pub fn scan_blocking(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        direction: ScanDirection,
        visit: &mut dyn FnMut(&LogRecord) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let matcher = query.matcher()?;
        let start = query.start_unix_nano.unwrap_or(0);
        let end = query.end_unix_nano.unwrap_or(u64::MAX);
        if start >= end {
            return Ok(());
        }
        let partitions = self.tenant_partitions(tenant);
        let mut take = |records: &mut dyn Iterator<Item = &LogRecord>| {
            records
                .filter(|record| matcher.matches(record))
                .cloned()
                .collect()
        };
        let Some(snapshot) = self.snapshot(tenant, &partitions, (start, end), &mut take) else {
            return self.scan_blocking(tenant, query, direction, visit);
        };
        let mut buffered = snapshot.buffered;
        buffered.sort_by_key(LogRecord::effective_time_unix_nano);

        // The hours that may hold matches: those of each partition's records and the buffers'.
        let mut hours: BTreeSet<u64> = BTreeSet::new();
        let mut add_hours = |(first, last): (u64, u64)| {
            let (first, last) = (first.max(start), last.min(end - 1));
            if first <= last {
                hours.extend(first / HOUR_NANOS..=last / HOUR_NANOS);
            }
        };
        for (_, index) in &snapshot.partitions {
            if let Some(range) = index.time_range() {
                add_hours(range);
            }
        }
        if let (Some(first), Some(last)) = (buffered.first(), buffered.last()) {
            add_hours((
                first.effective_time_unix_nano(),
                last.effective_time_unix_nano(),
            ));
        }
        let hours: Vec<u64> = match direction {
            ScanDirection::Forward => hours.into_iter().collect(),
            ScanDirection::Backward => hours.into_iter().rev().collect(),
        };

        let mut last_visited: Vec<LogRecord> = Vec::new();
        for hour in hours {
            let window_start = (hour * HOUR_NANOS).max(start);
            let window_end = hour.saturating_add(1).saturating_mul(HOUR_NANOS).min(end);
            let window_query = LogQuery {
                start_unix_nano: Some(window_start),
                end_unix_nano: Some(window_end),
                ..query.clone()
            };
            let mut matches: Vec<TimedMatches> = Vec::new();
            let mut found: Vec<(u64, Found)> = Vec::new();
            for (_, index) in &snapshot.partitions {
                let window_matches = index.timed_matches(&window_query)?;
                let position = matches.len();
                found.extend(
                    window_matches
                        .hits
                        .iter()
                        .map(|&(time, address)| (time, Found::Indexed(position, address))),
                );
                matches.push(window_matches);
            }
            let first = buffered.partition_point(|r| r.effective_time_unix_nano() < window_start);
            let after = buffered.partition_point(|r| r.effective_time_unix_nano() < window_end);
            found.extend(
                (first..after)
                    .map(|i| (buffered[i].effective_time_unix_nano(), Found::Buffered(i))),
            );
            // Arrival order within a time: index documents by address, then the buffers.
            // Sorted only as far as the visitor reads (a page stops after a few matches).
            let arrival_order = |&(time, place): &(u64, Found)| match place {
                Found::Indexed(partition, address) => {
                    (time, 0, partition, address.segment_ord, address.doc_id)
                }
                Found::Buffered(i) => (time, 1, 0, 0, u32::try_from(i).unwrap_or(u32::MAX)),
            };
            let descending = direction == ScanDirection::Backward;
            for (time, place) in LazyOrder::new(found, arrival_order, descending) {
                let record = match place {
                    Found::Indexed(partition, address) => {
                        match matches[partition].record(address)? {
                            Some(record) => record,
                            // A hit of a superset that the record itself does not match.
                            None => continue,
                        }
                    }
                    Found::Buffered(i) => buffered[i].clone(),
                };
                if last_visited
                    .first()
                    .is_some_and(|seen| seen.effective_time_unix_nano() != time)
                {
                    last_visited.clear();
                }
                if last_visited.contains(&record) {
                    continue;
                }
                let flow = visit(&record);
                last_visited.push(record);
                if flow.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
