//! In-memory buffers: records applied from the WAL but not yet in files, grouped by tenant.
//!
//! A store has one active buffer that the WAL writer appends to and at most one frozen buffer
//! being flushed; queries read both, so acknowledged data is visible at once. Records are kept
//! in shared chunks (one per applied export), so a query takes an immutable snapshot of a
//! tenant's records by cloning a few `Arc`s under the lock and scans them outside it: the WAL
//! writer, which needs the lock to apply, never waits for a scan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::budget::Reservation;
use crate::catalog::FileSummary;
use crate::model::TenantId;
use crate::wal::Lsn;

/// Records of one store waiting for a flush.
#[derive(Debug)]
pub struct Buffer<R> {
    /// Records per tenant, in apply order, one chunk per applied export.
    pub records_by_tenant: HashMap<TenantId, Chunks<R>>,
    /// Estimated bytes held.
    pub bytes: usize,
    /// Records held.
    pub num_records: usize,
    /// The highest LSN applied to this buffer.
    pub last_lsn: Lsn,
    /// When the first record arrived, for age-based flushes.
    pub first_record_at: Option<Instant>,
    /// Memory-budget bytes held until the data is in files.
    pub reservation: Reservation,
    /// What the records of each tenant hold, kept as they arrive (signals with summaries).
    pub summaries: HashMap<TenantId, FileSummary>,
    /// The first and last record time of each tenant's summarised records, ns.
    pub summary_times: HashMap<TenantId, (u64, u64)>,
}

impl<R> Default for Buffer<R> {
    fn default() -> Self {
        Self {
            records_by_tenant: HashMap::new(),
            bytes: 0,
            num_records: 0,
            last_lsn: 0,
            first_record_at: None,
            reservation: Reservation::default(),
            summaries: HashMap::new(),
            summary_times: HashMap::new(),
        }
    }
}

impl<R> Buffer<R> {
    /// Adds records applied at `lsn`.
    pub fn push(
        &mut self,
        lsn: Lsn,
        tenant: TenantId,
        records: Vec<R>,
        bytes: usize,
        reservation: Reservation,
    ) {
        self.last_lsn = self.last_lsn.max(lsn);
        self.reservation.merge(reservation);
        if records.is_empty() {
            return;
        }
        self.bytes += bytes;
        self.num_records += records.len();
        self.first_record_at.get_or_insert_with(Instant::now);
        self.records_by_tenant
            .entry(tenant)
            .or_default()
            .0
            .push(Arc::new(records));
    }

    /// Adds to the summary of `tenant`'s records, whose times lie in `times`.
    pub fn add_summary(&mut self, tenant: &TenantId, summary: &FileSummary, times: (u64, u64)) {
        let (first, last) = times;
        self.summary_times
            .entry(tenant.clone())
            .and_modify(|held| *held = (held.0.min(first), held.1.max(last)))
            .or_insert(times);
        match self.summaries.get_mut(tenant) {
            Some(held) => held.merge(summary),
            None => {
                self.summaries.insert(tenant.clone(), summary.clone());
            }
        }
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.num_records == 0
    }

    /// (records, bytes) of this buffer and an optional frozen one together.
    pub fn held_with(&self, frozen: Option<&Buffer<R>>) -> (usize, usize) {
        let frozen = frozen.map_or((0, 0), |f| (f.num_records, f.bytes));
        (self.num_records + frozen.0, self.bytes + frozen.1)
    }

    /// An immutable view of one tenant's records, cheap to take (no record is copied).
    pub fn tenant_chunks(&self, tenant: &TenantId) -> Chunks<R> {
        self.records_by_tenant
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the buffer should be flushed now.
    pub fn is_due(&self, max_bytes: usize, max_age: std::time::Duration) -> bool {
        !self.is_empty() && self.bytes >= max_bytes
            || self
                .first_record_at
                .is_some_and(|first| first.elapsed() >= max_age)
    }
}

/// Records of one tenant in apply order, as shared chunks.
#[derive(Debug)]
pub struct Chunks<R>(pub Vec<Arc<Vec<R>>>);

impl<R> Default for Chunks<R> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<R> Clone for Chunks<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R> Chunks<R> {
    /// Every record, in apply order.
    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.0.iter().flat_map(|chunk| chunk.iter())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.0.iter().map(|chunk| chunk.len()).sum()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|chunk| chunk.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::MemoryBudget;
    use std::time::Duration;

    #[test]
    fn push_tracks_lsn_bytes_and_reservation() {
        let budget = MemoryBudget::new(1000);
        let tenant: TenantId = "t".parse().unwrap();
        let mut buffer = Buffer::default();
        buffer.push(
            3,
            tenant.clone(),
            vec![1, 2],
            10,
            budget.try_reserve(100).unwrap(),
        );
        buffer.push(
            4,
            tenant.clone(),
            Vec::<i32>::new(),
            0,
            budget.try_reserve(5).unwrap(),
        );
        assert_eq!(buffer.last_lsn, 4);
        assert_eq!(buffer.num_records, 2);
        assert!(buffer.is_due(10, Duration::from_secs(60)));
        assert!(
            !Buffer::<i32>::default().is_due(0, Duration::ZERO),
            "empty is never due"
        );
        assert!(!buffer.is_due(11, Duration::from_secs(60)));
        let snapshot = buffer.tenant_chunks(&tenant);
        assert_eq!(snapshot.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(snapshot.len(), 2);
        assert_eq!(budget.used_bytes(), 105);
        drop(buffer);
        assert_eq!(budget.used_bytes(), 0);
    }
}
