//! The log store: records buffered from the WAL, committed on a short interval to one tantivy
//! index per tenant and UTC day ([`partitions`]), searched across indexes and buffers with the
//! same meaning, newest partition first; retention drops whole partitions.
//!
//! Consistency: a commit adds and commits records under each partition's read lock (they stay
//! invisible to searches until the reader reloads), then takes the write locks of the
//! partitions it added to (in key order) to reload them and retire the frozen buffer; a
//! search holds the read locks of the tenant's partitions (same order) while it reads buffers
//! and indexes, so a record is seen exactly once. A commit that fails for one partition rolls
//! back that partition's writer and keeps the frozen buffer for a retry; partitions committed before the failure are
//! remembered, so the retry adds none of their records twice (a partition committed to disk
//! whose reader failed to reload is only reloaded) and searches read from the buffer only what
//! the indexes cannot show. Each commit stores the WAL position it reached, so a replay after a
//! crash between the commit and the WAL checkpoint skips what is already indexed.

mod feed;
mod lazy_order;
pub mod partitions;
pub mod quiet_merge;
mod scan;
mod search;
pub mod shared;
mod snapshot;
mod streams;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::StorageError;
use crate::budget::{MemoryBudget, Reservation};
use crate::buffer::Buffer;
use crate::layout;
use crate::logs::{LogIndex, LogIndexConfig};
use crate::model::{LogRecord, Signal, TenantId};
use crate::retention::{RetentionPolicy, partition_expired};
use crate::table::TableStats;
use crate::wal::Lsn;
use partitions::{
    Partition, PartitionId, PartitionKey, commit_payload, group_by_partition, records_from_chunk,
};
pub use scan::{LogVisitor, ScanDirection};
pub use streams::StreamSampleVisitor;

/// A partition's writer is closed (its arena and merge thread freed) after this long without
/// records, and its small segments merged; the next record reopens it. The default of
/// [`LogStore::with_writer_idle`].
const WRITER_IDLE: Duration = Duration::from_secs(300);
/// While the writers' arenas hold more than their share of the memory budget, writers are
/// closed after this long without records instead, least recently written first.
const WRITER_IDLE_UNDER_PRESSURE: Duration = Duration::from_secs(15);
/// Open writers' arenas are counted in the memory budget up to this fraction of it (a
/// quarter: four default arenas of the default budget). It is also what one request can
/// never be given, so it is kept small.
const WRITERS_SHARE_DENOMINATOR: usize = 4;

struct State {
    active: Buffer<LogRecord>,
    /// What of the active buffer is in writers, uncommitted ([`LogStore::feed`]).
    active_fed: Fed,
    frozen: Option<Arc<Buffer<LogRecord>>>,
    /// What of the frozen buffer was in writers when it froze.
    frozen_fed: Fed,
    /// How far each partition's part of the frozen buffer got: a commit retried after a
    /// failure resumes after the last step done (no record added twice), and searches skip
    /// the buffer for partitions whose records are searchable in their index.
    frozen_progress: HashMap<PartitionKey, CommitStep>,
}

/// What of a buffer its partitions' writers hold added but not committed: the records of each
/// tenant's first `chunks[tenant]` chunks, in every writer tagged with `generation` (the
/// buffer's number: [`LogIndex::uncommitted_tag`]). A writer that lost them (a rollback, a
/// close) is untagged, and a commit then adds all of its partition's records again.
#[derive(Debug, Default)]
struct Fed {
    generation: u64,
    chunks: HashMap<TenantId, usize>,
    /// Partitions whose feed failed (rolled back, untagged): not fed again until the commit,
    /// which adds all their records, so a failing partition is not re-fed every round.
    failed: BTreeSet<PartitionKey>,
}

type Partitions = BTreeMap<PartitionKey, Arc<Partition>>;

/// Buffered logs and the per-tenant, per-day indexes.
pub struct LogStore {
    data_dir: PathBuf,
    index_config: LogIndexConfig,
    state: Mutex<State>,
    partitions: Mutex<Partitions>,
    /// Partitions retention took out of `partitions` and is deleting (locked after it): no
    /// commit opens them again meanwhile (see [`Self::partition`]).
    dropping: Mutex<BTreeSet<PartitionKey>>,
    flush_lock: tokio::sync::Mutex<()>,
    stats: TableStats,
    committed_records: AtomicU64,
    /// Other nodes' partitions, when the logs are shared through a bucket.
    replicas: Option<Arc<shared::cache::ReplicaCache>>,
    /// The memory budget open writers' arenas are counted in, and the share of it they may
    /// take there together.
    writer_budget: Option<(Arc<MemoryBudget>, Arc<MemoryBudget>)>,
    /// How long a partition takes no records before its writer is closed and its small
    /// segments merged.
    writer_idle: Duration,
    /// Tests: the tenant whose next partition commit fails, and at which step.
    #[cfg(test)]
    fail_next_commit_of: Mutex<Option<(TenantId, CommitStep)>>,
    /// Tests: the next commit says so on the first channel once it has added its records,
    /// then waits for the second before committing them.
    #[cfg(test)]
    pause_next_commit: Mutex<Option<CommitPause>>,
    /// Tests: the tenant whose feeds fail, and how many have.
    #[cfg(test)]
    failing_feeds: Mutex<Option<(TenantId, u32)>>,
}

#[cfg(test)]
type CommitPause = (
    std::sync::mpsc::SyncSender<()>,
    std::sync::mpsc::Receiver<()>,
);

impl LogStore {
    /// Opens every partition found under the data directory.
    pub fn open(data_dir: PathBuf, index_config: LogIndexConfig) -> Result<Self, StorageError> {
        let partitions = partitions::open_all(&layout::log_indexes_dir(&data_dir), &index_config)?;
        Ok(Self {
            data_dir,
            index_config,
            state: Mutex::new(State {
                active: Buffer::default(),
                active_fed: Fed::default(),
                frozen: None,
                frozen_fed: Fed::default(),
                frozen_progress: HashMap::new(),
            }),
            partitions: Mutex::new(partitions),
            dropping: Mutex::new(BTreeSet::new()),
            flush_lock: tokio::sync::Mutex::new(()),
            stats: TableStats::default(),
            committed_records: AtomicU64::new(0),
            replicas: None,
            writer_budget: None,
            writer_idle: WRITER_IDLE,
            #[cfg(test)]
            fail_next_commit_of: Mutex::new(None),
            #[cfg(test)]
            pause_next_commit: Mutex::new(None),
            #[cfg(test)]
            failing_feeds: Mutex::new(None),
        })
    }

    /// Closes a partition's writer, and merges its small segments (`quiet_merge`), once it has
    /// taken no records for `idle` (by default [`WRITER_IDLE`]; see
    /// [`Self::close_idle_writers`]).
    pub fn with_writer_idle(mut self, idle: Duration) -> Self {
        self.writer_idle = idle;
        self
    }

    /// Reads other nodes' partitions from `replicas` beside this node's own.
    pub fn with_replicas(mut self, replicas: Arc<shared::cache::ReplicaCache>) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// Counts each open writer's memory arena in `budget`, so that admission leaves room
    /// for it: all writers together up to a quarter of the budget (records already accepted
    /// must be indexed, so writers past it still open, uncounted); while the arenas hold more
    /// than that, idle writers are closed sooner ([`Self::close_idle_writers`]).
    pub fn with_writer_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        let writers_share = MemoryBudget::new(budget.limit_bytes() / WRITERS_SHARE_DENOMINATOR);
        budget.set_standing_bytes(writers_share.limit_bytes());
        self.writer_budget = Some((budget, writers_share));
        self
    }

    /// Reservations for one more writer's arena: what fits of it in the writers' share and
    /// in the budget, in both (never past either limit: these records were accepted already).
    fn reserve_arena(&self, arena_bytes: usize) -> Vec<Reservation> {
        let Some((budget, writers_share)) = &self.writer_budget else {
            return Vec::new();
        };
        let counted = arena_bytes
            .min(writers_share.available_bytes())
            .min(budget.available_bytes());
        match (
            writers_share.try_reserve(counted),
            budget.try_reserve(counted),
        ) {
            (Ok(share), Ok(counted)) => vec![share, counted],
            _ => Vec::new(),
        }
    }

    /// What open writers' arenas hold of the memory budget now: no flush frees it.
    pub fn writer_reserved_bytes(&self) -> usize {
        self.writer_budget
            .as_ref()
            .map_or(0, |(_, writers_share)| writers_share.used_bytes())
    }

    /// Other nodes' partitions, when the logs are shared.
    pub fn replicas(&self) -> Option<&Arc<shared::cache::ReplicaCache>> {
        self.replicas.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dropping(&self) -> MutexGuard<'_, BTreeSet<PartitionKey>> {
        self.dropping
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The partition of `key`, created (with its directory and index) when missing; `None`
    /// while retention deletes it: its records have expired, and a partition opened on the
    /// directory being deleted would fail every commit.
    fn partition(&self, key: &PartitionKey) -> Result<Option<Arc<Partition>>, StorageError> {
        let mut partitions = self.partitions();
        if let Some(partition) = partitions.get(key) {
            return Ok(Some(Arc::clone(partition)));
        }
        if self.dropping().contains(key) {
            return Ok(None);
        }
        let dir = layout::log_tenant_dir(&self.data_dir, &key.0).join(key.1.dir_name());
        let partition = Arc::new(Partition::open(key.clone(), dir, &self.index_config)?);
        partitions.insert(key.clone(), Arc::clone(&partition));
        Ok(Some(partition))
    }

    /// The tenant's partitions: this node's in key order, then the other nodes' that are
    /// cached (never written here, so their locks need no order).
    pub(crate) fn tenant_partitions(&self, tenant: &TenantId) -> Vec<Arc<Partition>> {
        let mut partitions: Vec<Arc<Partition>> = self
            .partitions()
            .iter()
            .filter(|(key, _)| &key.0 == tenant)
            .map(|(_, partition)| Arc::clone(partition))
            .collect();
        if let Some(replicas) = &self.replicas {
            partitions.extend(replicas.opened(tenant));
        }
        partitions
    }

    /// Every partition this node writes.
    pub fn local_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions().values().cloned().collect()
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

    /// Drops replayed records that their partition's last commit already holds.
    pub fn drop_committed(&self, lsn: Lsn, tenant: &TenantId, records: &mut Vec<LogRecord>) {
        let partitions = self.partitions();
        records.retain(|record| {
            let key = (
                tenant.clone(),
                PartitionId::of_time(record.effective_time_unix_nano()),
            );
            partitions
                .get(&key)
                .is_none_or(|partition| partition.committed_lsn.load(Ordering::Relaxed) < lsn)
        });
    }

    /// The highest WAL position any partition's last commit reached.
    pub fn max_committed_lsn(&self) -> Lsn {
        self.partitions()
            .values()
            .map(|partition| partition.committed_lsn.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
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
        state.active.held_with(state.frozen.as_deref())
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Number of partitions and their bytes on disk.
    pub fn files(&self) -> (usize, u64) {
        let partitions: Vec<Arc<Partition>> = self.partitions().values().cloned().collect();
        let bytes = partitions.iter().map(|p| p.bytes_on_disk()).sum();
        (partitions.len(), bytes)
    }

    /// Records committed to indexes since start.
    pub fn committed_records(&self) -> u64 {
        self.committed_records.load(Ordering::Relaxed)
    }

    /// Commits buffered records to their partitions; returns the LSN now covered.
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
                    let next = Fed {
                        generation: state.active_fed.generation + 1,
                        ..Fed::default()
                    };
                    state.frozen_fed = std::mem::replace(&mut state.active_fed, next);
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
        let (generation, fed_chunks) = {
            let state = self.lock();
            (state.frozen_fed.generation, state.frozen_fed.chunks.clone())
        };
        let all_groups = group_by_partition(frozen.records_by_tenant.iter(), 0);
        let mut groups = Vec::with_capacity(all_groups.len());
        let mut partitions = Vec::with_capacity(all_groups.len());
        for (key, records) in &all_groups {
            match self.partition(key)? {
                Some(partition) => {
                    groups.push((key, records));
                    partitions.push(partition);
                }
                // Retention is deleting the day: records dated on it expired with it.
                None => {
                    warn!(tenant = %key.0, day = %key.1.dir_name(), records = records.len(), "log records of a day retention is dropping are left out")
                }
            }
        }
        let payload = commit_payload(frozen.last_lsn);
        // Indexing and committing, in key order (a failing partition fails at the same point
        // on every retry), under each partition's read lock: searches go on meanwhile and read
        // these records from the frozen buffer until the reload below. The read lock keeps
        // retention and the closing of idle writers (write locks) away from the writer.
        for (&(key, records), partition) in groups.iter().zip(&partitions) {
            if self.lock().frozen_progress.contains_key(key) {
                continue;
            }
            let index = partition.index.read().unwrap_or_else(|p| p.into_inner());
            // Records fed to the writer before the buffer froze are in it already.
            let first_unfed = match index.uncommitted_tag() {
                Some(tag) if tag == generation => fed_chunks.get(&key.0).copied().unwrap_or(0),
                _ => 0,
            };
            let unfed = records_from_chunk(records, first_unfed);
            // The catalog names every stream id the commit makes durable, fed ones too.
            let added = self
                .add_to_writer(partition, &index, &unfed)
                .and_then(|()| partition.save_streams())
                .and_then(|()| Ok(self.injected_failure(&key.0, CommitStep::Write)?));
            self.injected_pause();
            if let Err(err) = added.and_then(|()| Ok(index.commit_writes(&payload)?)) {
                // Drop what this attempt added, so the retry adds every record exactly once.
                if let Err(rollback) = index.rollback() {
                    warn!(tenant = %key.0, error = %rollback, "log index rollback failed");
                }
                return Err(err);
            }
            partition
                .committed_lsn
                .store(frozen.last_lsn, Ordering::Relaxed);
            self.lock()
                .frozen_progress
                .insert(key.clone(), CommitStep::Write);
        }
        // Making them searchable: every partition's write lock first, in key order (searches
        // lock in the same order), so the frozen buffer is retired atomically with respect to
        // every search it concerns.
        let locked: Vec<_> = partitions
            .iter()
            .map(|partition| partition.index.write().unwrap_or_else(|p| p.into_inner()))
            .collect();
        for (&(key, _), index) in groups.iter().zip(&locked) {
            if self.lock().frozen_progress.get(key) == Some(&CommitStep::Reload) {
                continue;
            }
            // Retention dropped the partition (all its records expired) since its records were
            // committed: there is nothing left to show.
            if !self.partitions().contains_key(key) {
                self.lock()
                    .frozen_progress
                    .insert(key.clone(), CommitStep::Reload);
                continue;
            }
            // Committed but not yet searchable if this fails: the retry only reloads, and
            // searches keep reading these records from the buffer meanwhile.
            self.injected_failure(&key.0, CommitStep::Reload)
                .and_then(|()| index.reload())?;
            self.lock()
                .frozen_progress
                .insert(key.clone(), CommitStep::Reload);
        }
        let mut state = self.lock();
        state.frozen = None;
        state.frozen_progress.clear();
        Ok(())
    }

    /// Adds `records` (of `partition`) to its writer, not committed: their streams interned
    /// (the catalog saved by the commit), the writer opened (its arena counted in the budget)
    /// when it is not.
    fn add_to_writer(
        &self,
        partition: &Partition,
        index: &LogIndex,
        records: &[&LogRecord],
    ) -> Result<(), StorageError> {
        // Written to now: the closing of idle writers leaves this partition alone (and does
        // not queue for its write lock, which would hold searches back meanwhile).
        *partition
            .last_write
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let stream_ids = partition.intern_streams(records);
        // The writer's arena is memory like the buffers': counted while it is open.
        if self.writer_budget.is_some() && !index.has_writer() {
            index.open_writer(self.reserve_arena(index.writer_memory_bytes()))?;
        }
        index.add(records.iter().copied().zip(stream_ids))?;
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

    #[cfg(not(test))]
    fn injected_pause(&self) {}

    #[cfg(not(test))]
    fn injected_feed_failure(&self, _tenant: &TenantId) -> Result<(), StorageError> {
        Ok(())
    }

    #[cfg(test)]
    fn injected_feed_failure(&self, tenant: &TenantId) -> Result<(), StorageError> {
        let mut failing = self.failing_feeds.lock().unwrap_or_else(|p| p.into_inner());
        match failing.as_mut() {
            Some((failing_tenant, failures)) if failing_tenant == tenant => {
                *failures += 1;
                let error = tantivy::TantivyError::SystemError("injected feed failure".into());
                Err(crate::logs::LogIndexError::from(error).into())
            }
            _ => Ok(()),
        }
    }

    #[cfg(test)]
    fn injected_pause(&self) {
        let pause = self
            .pause_next_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((paused, resume)) = pause {
            let _ = paused.send(());
            let _ = resume.recv();
        }
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

    /// Drops every partition whose records have all expired; returns (partitions, bytes).
    /// Blocking: waits for searches and commits of those partitions to finish. Until a
    /// partition's directory is gone, commits leave out records of its day
    /// ([`Self::partition`]); a directory that could not be deleted stays so until a restart.
    pub fn drop_expired(
        &self,
        policy: &RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<(u64, u64), StorageError> {
        let expired: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions();
            let keys: Vec<PartitionKey> = partitions
                .iter()
                .filter(|(key, partition)| {
                    policy
                        .cutoff_unix_nano(&key.0, Signal::Logs, now_unix_nano)
                        .is_some_and(|cutoff| {
                            partition_expired(partition.max_time_unix_nano() + 1, cutoff)
                        })
                })
                .map(|(key, _)| key.clone())
                .collect();
            let mut dropping = self.dropping();
            keys.iter()
                .filter_map(|key| {
                    let partition = partitions.remove(key)?;
                    dropping.insert(key.clone());
                    Some(partition)
                })
                .collect()
        };
        let mut removed = (0, 0);
        let mut first_error = None;
        for partition in expired {
            let bytes = partition.bytes_on_disk();
            {
                let index = partition.index.write().unwrap_or_else(|p| p.into_inner());
                if let Err(err) = index.close_writer() {
                    warn!(dir = %partition.dir.display(), error = %err, "closing an expired partition's writer failed");
                }
            }
            if let Err(err) = std::fs::remove_dir_all(&partition.dir) {
                first_error.get_or_insert(StorageError::io(&partition.dir, err));
                continue;
            }
            self.dropping().remove(&partition.key);
            info!(tenant = %partition.key.0, dir = %partition.dir.display(), bytes, "retention dropped a log partition");
            removed.0 += 1;
            removed.1 += bytes;
        }
        self.stats
            .retention_files_removed
            .fetch_add(removed.0, Ordering::Relaxed);
        self.stats
            .retention_bytes_removed
            .fetch_add(removed.1, Ordering::Relaxed);
        match first_error {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }

    /// Closes the writers of partitions that received no records for the writer idle time
    /// ([`Self::with_writer_idle`]; their memory arenas and merge threads), or for
    /// [`WRITER_IDLE_UNDER_PRESSURE`] while open arenas hold more than the writers' share of
    /// the budget, least recently written first. Blocking: waits for their merges. (A
    /// partition without a writer then has its small segments merged: `quiet_merge`.)
    pub fn close_idle_writers(&self) {
        // The partitions' lock is let go before any index lock is taken: commits and
        // searches take index locks first, then the partitions' lock.
        let partitions: Vec<Arc<Partition>> = self.partitions().values().cloned().collect();
        let mut open: Vec<(Option<Instant>, Arc<Partition>)> = partitions
            .into_iter()
            .filter(|p| {
                p.index
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .has_writer()
            })
            .map(|p| (last_write(&p), p))
            .collect();
        // Least recently written first (never written: first of all).
        open.sort_by_key(|(at, _)| *at);
        let arena = self.index_config.writer_memory_bytes;
        let cap = self
            .writer_budget
            .as_ref()
            .map(|(_, writers_share)| writers_share.limit_bytes());
        let mut open_bytes = open.len().saturating_mul(arena);
        for (_, partition) in open {
            let threshold = if cap.is_some_and(|cap| open_bytes > cap) {
                WRITER_IDLE_UNDER_PRESSURE.min(self.writer_idle)
            } else {
                self.writer_idle
            };
            let is_idle = |partition: &Partition| {
                last_write(partition).is_none_or(|at| at.elapsed() >= threshold)
            };
            if !is_idle(&partition) {
                continue;
            }
            // The write lock, as the commit adds and commits under the read lock and its writer
            // must not close between the two; only if free at once, so that searches never
            // queue behind a close (one in use is closed on a later round).
            let index = match partition.index.try_write() {
                Ok(index) => index,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            if !is_idle(&partition) || !index.has_writer() {
                continue;
            }
            // Closed either way: a failure is of the merges it waited for.
            if let Err(err) = index.close_writer() {
                warn!(dir = %partition.dir.display(), error = %err, "closing an idle log index writer failed");
            }
            open_bytes = open_bytes.saturating_sub(arena);
        }
    }
}

/// When `partition` last took records (`None`: not since it was opened).
fn last_write(partition: &Partition) -> Option<Instant> {
    *partition
        .last_write
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The steps of committing one tenant's records, in order (tests inject failures at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitStep {
    /// Adding the records and committing them to disk.
    Write,
    /// Reloading the reader so they are searchable.
    Reload,
}
