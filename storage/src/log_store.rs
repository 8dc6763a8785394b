//! The log store: records buffered from the WAL, committed to one tantivy index per tenant on
//! a short interval, searched across index and buffer with the same meaning.
//!
//! Consistency: a commit holds the tenant index's write lock while it moves records from the
//! frozen buffer into the index; a search holds the read lock while it reads both, so a record
//! is seen exactly once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tracing::info;

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
            }),
            indexes: Mutex::new(indexes),
            flush_lock: tokio::sync::Mutex::new(()),
            stats: TableStats::default(),
            committed_records: AtomicU64::new(0),
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
        let dir = layout::log_index_dir(&self.data_dir, tenant);
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
        // with respect to searches of any tenant it holds.
        let mut guards = Vec::new();
        for tenant in frozen.records_by_tenant.keys() {
            if let Some(index) = self.index(tenant, true)? {
                guards.push((tenant.clone(), index));
            }
        }
        let mut locked: Vec<_> = guards
            .iter()
            .map(|(tenant, index)| (tenant, index.write().unwrap_or_else(|p| p.into_inner())))
            .collect();
        for (tenant, index) in &mut locked {
            if let Some(records) = frozen.records_by_tenant.get(*tenant) {
                index.add(records)?;
                index.commit()?;
            }
        }
        self.lock().frozen = None;
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
        let mut records = {
            let state = self.lock();
            let mut keep = |record: &LogRecord| matcher.matches(record);
            let mut found = state.active.matching(tenant, &mut keep);
            if let Some(frozen) = &state.frozen {
                found.extend(frozen.matching(tenant, &mut keep));
            }
            found
        };
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
