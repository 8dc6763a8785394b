//! The log store: records buffered from the WAL, committed to one tantivy index per tenant on
//! a short interval, searched across index and buffer with the same meaning.
//!
//! Consistency: a commit holds the tenant index's write lock while it moves records from the
//! frozen buffer into the index; a search holds the read lock while it reads both, so a record
//! is seen exactly once. A commit that fails for one tenant rolls back that tenant's writer and
//! keeps the frozen buffer for a retry; tenants committed before the failure are remembered, so
//! the retry adds none of their records twice (a tenant committed to disk whose reader failed to
//! reload is only reloaded) and searches read from the buffer only what the index cannot show.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::StorageError;
use crate::budget::Reservation;
use crate::buffer::Buffer;
use crate::layout;
use crate::logs::{LogIndex, LogIndexConfig, LogQuery};
use crate::model::{LogRecord, TenantId};
use crate::table::TableStats;
use crate::wal::Lsn;

struct State {
    active: Buffer<LogRecord>,
    frozen: Option<Arc<Buffer<LogRecord>>>,
    /// How far each tenant's part of the frozen buffer got: a commit retried after a failure
    /// resumes after the last step done (no record added twice), and searches skip the buffer
    /// for tenants whose records are searchable in their index.
    frozen_progress: HashMap<TenantId, CommitStep>,
}

type SharedIndex = Arc<RwLock<LogIndex>>;

/// Buffered logs and the per-tenant indexes.
pub struct LogStore {
    data_dir: PathBuf,
    index_config: LogIndexConfig,
    state: Mutex<State>,
    indexes: Mutex<HashMap<TenantId, SharedIndex>>,
    flush_lock: tokio::sync::Mutex<()>,
    stats: TableStats,
    committed_records: AtomicU64,
    /// Tests: the tenant whose next commit fails, and at which step.
    #[cfg(test)]
    fail_next_commit_of: Mutex<Option<(TenantId, CommitStep)>>,
}

impl LogStore {
    /// Opens every tenant index found under the data directory.
    pub fn open(data_dir: PathBuf, index_config: LogIndexConfig) -> Result<Self, StorageError> {
        let dir = layout::log_indexes_dir(&data_dir);
        std::fs::create_dir_all(&dir).map_err(|err| StorageError::io(&dir, err))?;
        let mut indexes = HashMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|err| StorageError::io(&dir, err))? {
            let entry = entry.map_err(|err| StorageError::io(&dir, err))?;
            let Some(tenant) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<TenantId>().ok())
            else {
                continue;
            };
            let index = LogIndex::open(&entry.path(), &index_config)?;
            indexes.insert(tenant, Arc::new(RwLock::new(index)));
        }
        info!(num_tenants = indexes.len(), "log indexes opened");
        Ok(Self {
            data_dir,
            index_config,
            state: Mutex::new(State {
                active: Buffer::default(),
                frozen: None,
                frozen_progress: HashMap::new(),
            }),
            indexes: Mutex::new(indexes),
            flush_lock: tokio::sync::Mutex::new(()),
            stats: TableStats::default(),
            committed_records: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_commit_of: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index(&self, tenant: &TenantId, create: bool) -> Result<Option<SharedIndex>, StorageError> {
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = indexes.get(tenant) {
            return Ok(Some(Arc::clone(index)));
        }
        if !create {
            return Ok(None);
        }
        let dir = layout::log_tenant_dir(&self.data_dir, tenant);
        let index = Arc::new(RwLock::new(LogIndex::open(&dir, &self.index_config)?));
        indexes.insert(tenant.clone(), Arc::clone(&index));
        Ok(Some(index))
    }

    /// Adds records applied from the WAL at `lsn`.
    pub fn apply(
        &self,
        lsn: Lsn,
        tenant: TenantId,
        records: Vec<LogRecord>,
        bytes: usize,
        reservation: Reservation,
    ) {
        self.lock()
            .active
            .push(lsn, tenant, records, bytes, reservation);
    }

    /// Whether a commit is due: the buffer is big or old enough, or a failed commit waits
    /// for its retry.
    pub fn is_due(&self, max_bytes: usize, max_age: Duration) -> bool {
        let state = self.lock();
        state.frozen.is_some() || state.active.is_due(max_bytes, max_age)
    }

    /// Notes that the WAL reached `lsn` with a record of another signal.
    pub fn advance_lsn(&self, lsn: Lsn) {
        let mut state = self.lock();
        state.active.last_lsn = state.active.last_lsn.max(lsn);
    }

    /// The LSN logs are fully committed up to, when nothing is in memory.
    pub fn idle_lsn(&self) -> Option<Lsn> {
        let state = self.lock();
        (state.active.is_empty() && state.frozen.is_none()).then_some(state.active.last_lsn)
    }

    /// (records, bytes) held in memory.
    pub fn buffered(&self) -> (usize, usize) {
        let state = self.lock();
        let frozen = state
            .frozen
            .as_ref()
            .map_or((0, 0), |f| (f.num_records, f.bytes));
        (
            state.active.num_records + frozen.0,
            state.active.bytes + frozen.1,
        )
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Number of log index partitions and their bytes on disk (0 until partitions exist).
    pub fn files(&self) -> (usize, u64) {
        (0, 0)
    }

    /// Records committed to indexes since start.
    pub fn committed_records(&self) -> u64 {
        self.committed_records.load(Ordering::Relaxed)
    }

    /// Commits buffered records to their tenants' indexes; returns the LSN now covered.
    pub async fn flush(self: &Arc<Self>) -> Result<Lsn, StorageError> {
        let _serial = self.flush_lock.lock().await;
        let started = Instant::now();
        let frozen = {
            let mut state = self.lock();
            match &state.frozen {
                Some(frozen) => Arc::clone(frozen),
                None => {
                    let frozen = Arc::new(std::mem::take(&mut state.active));
                    state.active.last_lsn = frozen.last_lsn;
                    state.frozen = Some(Arc::clone(&frozen));
                    frozen
                }
            }
        };
        if frozen.is_empty() {
            self.lock().frozen = None;
            return Ok(frozen.last_lsn);
        }
        let store = Arc::clone(self);
        let to_commit = Arc::clone(&frozen);
        let result = tokio::task::spawn_blocking(move || store.commit_blocking(&to_commit)).await?;
        match result {
            Ok(()) => {
                let elapsed = started.elapsed();
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .flush_micros
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                self.committed_records
                    .fetch_add(frozen.num_records as u64, Ordering::Relaxed);
                info!(
                    num_records = frozen.num_records,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "committed logs"
                );
                Ok(frozen.last_lsn)
            }
            Err(err) => {
                self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    fn commit_blocking(&self, frozen: &Buffer<LogRecord>) -> Result<(), StorageError> {
        // Take every tenant's write lock first, so the frozen buffer is retired atomically
        // with respect to searches of any tenant it holds. Tenants in a fixed order, so a
        // failing tenant fails at the same point on every retry.
        let mut tenants: Vec<&TenantId> = frozen.records_by_tenant.keys().collect();
        tenants.sort();
        let mut guards = Vec::new();
        for tenant in tenants {
            if let Some(index) = self.index(tenant, true)? {
                guards.push((tenant, index));
            }
        }
        let mut locked: Vec<_> = guards
            .iter()
            .map(|(tenant, index)| (*tenant, index.write().unwrap_or_else(|p| p.into_inner())))
            .collect();
        for (tenant, index) in &mut locked {
            let done = self.lock().frozen_progress.get(*tenant).copied();
            if done == Some(CommitStep::Reload) {
                continue;
            }
            let Some(records) = frozen.records_by_tenant.get(*tenant) else {
                continue;
            };
            if done.is_none() {
                let added = index
                    .add(records.iter())
                    .and_then(|()| self.injected_failure(tenant, CommitStep::Write));
                if let Err(err) = added.and_then(|()| index.commit_writes()) {
                    // Drop what this attempt added, so the retry adds every record exactly once.
                    if let Err(rollback) = index.rollback() {
                        warn!(%tenant, error = %rollback, "log index rollback failed");
                    }
                    return Err(err.into());
                }
                self.lock()
                    .frozen_progress
                    .insert((*tenant).clone(), CommitStep::Write);
            }
            // Committed but not yet searchable if this fails: the retry only reloads, and
            // searches keep reading these records from the buffer meanwhile.
            self.injected_failure(tenant, CommitStep::Reload)
                .and_then(|()| index.reload())?;
            self.lock()
                .frozen_progress
                .insert((*tenant).clone(), CommitStep::Reload);
        }
        let mut state = self.lock();
        state.frozen = None;
        state.frozen_progress.clear();
        Ok(())
    }

    #[cfg(not(test))]
    fn injected_failure(
        &self,
        _tenant: &TenantId,
        _step: CommitStep,
    ) -> Result<(), crate::logs::LogIndexError> {
        Ok(())
    }

    #[cfg(test)]
    fn injected_failure(
        &self,
        tenant: &TenantId,
        step: CommitStep,
    ) -> Result<(), crate::logs::LogIndexError> {
        let mut fail = self
            .fail_next_commit_of
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if fail.as_ref() == Some(&(tenant.clone(), step)) {
            *fail = None;
            return Err(
                tantivy::TantivyError::SystemError("injected commit failure".into()).into(),
            );
        }
        Ok(())
    }

    /// Searches committed and buffered records of a tenant; newest first, at most `query.limit`.
    /// Blocking: call from a blocking thread.
    pub fn search_blocking(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
    ) -> Result<Vec<LogRecord>, StorageError> {
        // Parse the query once; a bad query is an error even before the tenant has an index.
        let matcher = query.matcher()?;
        let index = self.index(tenant, false)?;
        let guard = index
            .as_ref()
            .map(|index| index.read().unwrap_or_else(|p| p.into_inner()));
        // Only the newest `limit` matches of each part can make the answer: the buffers are
        // matched keeping that many (no clone of every match), the active one under the state
        // lock, the frozen one after it (it is immutable, and retired only under the index's
        // write lock, which this search holds when the tenant has an index).
        let mut keep = |record: &LogRecord| matcher.matches(record);
        let (mut records, frozen) = {
            let state = self.lock();
            let active = state.active.records_by_tenant.get(tenant);
            let found = newest_matching(
                active.into_iter().flat_map(|chunks| chunks.iter()),
                &mut keep,
                query.limit,
            );
            let frozen = state
                .frozen
                .as_ref()
                .filter(|_| state.frozen_progress.get(tenant) != Some(&CommitStep::Reload))
                .map(Arc::clone);
            (found, frozen)
        };
        if let Some(frozen) = frozen {
            let buffered = frozen.records_by_tenant.get(tenant);
            records.extend(newest_matching(
                buffered.into_iter().flat_map(|chunks| chunks.iter()),
                &mut keep,
                query.limit,
            ));
        }
        if let Some(index) = &guard {
            records.extend(index.search(query)?);
        }
        drop(guard);
        if index.is_none() && self.index(tenant, false)?.is_some() {
            // The tenant's first commit landed between the index lookup and the buffer read:
            // its records may be in neither view. Search again, now with the index.
            return self.search_blocking(tenant, query);
        }
        records.sort_by_key(|record| std::cmp::Reverse(record.effective_time_unix_nano()));
        records.truncate(query.limit);
        Ok(records)
    }
}

/// The steps of committing one tenant's records, in order (tests inject failures at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitStep {
    /// Adding the records and committing them to disk.
    Write,
    /// Reloading the reader so they are searchable.
    Reload,
}

/// Clones of the newest `limit` records that `keep` accepts, in arrival order.
fn newest_matching<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_records::fixture;

    #[test]
    fn newest_matching_keeps_the_newest_matches_only() {
        let records = fixture();
        let newest = |limit: usize, keep: &mut dyn FnMut(&LogRecord) -> bool| {
            let mut found = newest_matching(records.iter(), &mut |r| keep(r), limit);
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
    }

    fn tenant(name: &str) -> TenantId {
        name.parse().unwrap()
    }

    fn everything() -> LogQuery {
        LogQuery {
            limit: 1000,
            ..LogQuery::default()
        }
    }

    fn apply(store: &LogStore, lsn: Lsn, name: &str, records: &[LogRecord]) {
        store.apply(
            lsn,
            tenant(name),
            records.to_vec(),
            100,
            Reservation::default(),
        );
    }

    /// Correlation ids of the tenant's records, oldest first (each fixture record has its own).
    fn found(store: &LogStore, name: &str) -> Vec<String> {
        let records = store.search_blocking(&tenant(name), &everything()).unwrap();
        ids(records.iter().rev())
    }

    fn ids<'a>(records: impl Iterator<Item = &'a LogRecord>) -> Vec<String> {
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
        let index = store.index(&tenant("b"), false).unwrap().unwrap();
        assert_eq!(index.read().unwrap().num_docs(), 10);
        let index = store.index(&tenant("a"), false).unwrap().unwrap();
        assert_eq!(index.read().unwrap().num_docs(), 10);
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
        let index = store.index(&tenant("a"), false).unwrap().unwrap();
        assert_eq!(index.read().unwrap().num_docs(), 10);
    }
}
