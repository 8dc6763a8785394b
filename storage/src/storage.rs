//! The storage facade: opens the WAL and the three stores, replays, takes writes, runs the
//! background flusher and checkpointer, serves reads, and shuts down in order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::budget::{MemoryBudget, Reservation};
use crate::catalog::{Catalog, ObjectCatalog};
use crate::checkpoint::Checkpoint;
use crate::config::StorageConfig;
use crate::layout;
use crate::log_store::LogStore;
use crate::logs::{LogIndexConfig, LogQuery};
use crate::maintenance::{CompactionConfig, compact_store, sweep_store};
use crate::metrics::MetricStore;
use crate::model::{LogRecord, Signal, SignalBatch, TenantId};
use crate::objects::Objects;
use crate::spans::SpanStore;
use crate::table::FooterCache;
use crate::wal::{Lsn, Replay, Wal, WalConfig, WalEntry, WalError, WalStats};
use crate::{ErrorKind, StorageError};

/// Turns a WAL entry back into records on replay. Supplied by the ingest layer, which knows
/// the wire format; storage stays protocol-free.
pub trait WalDecoder: Send + Sync {
    /// Decodes the entry, as it was decoded when it was first accepted.
    fn decode(&self, entry: &WalEntry) -> Result<SignalBatch, String>;
}

/// What rides with a WAL record to the applier.
pub struct Applied {
    tenant: TenantId,
    batch: SignalBatch,
    reservation: Reservation,
}

/// The three stores, shared by the WAL applier, the flusher and readers.
pub(crate) struct Stores {
    pub(crate) spans: SpanStore,
    pub(crate) metrics: MetricStore,
    pub(crate) logs: Arc<LogStore>,
}

impl Stores {
    /// Whether a replayed record is already in the tenant's files (a crash came between the
    /// manifest commit and the WAL checkpoint).
    fn already_flushed(&self, lsn: Lsn, signal: Signal, tenant: &TenantId) -> bool {
        match signal {
            Signal::Traces => lsn <= self.spans.flushed_lsn(tenant),
            Signal::Metrics => lsn <= self.metrics.flushed_lsn(tenant),
            Signal::Logs => false,
        }
    }

    fn apply(&self, lsn: Lsn, applied: Applied) {
        let Applied {
            tenant,
            batch,
            reservation,
        } = applied;
        // The other signals have nothing pending at this LSN: let their checkpoints pass it,
        // or an idle signal would pin every WAL segment forever.
        let signal = batch.signal();
        for other in Signal::ALL.into_iter().filter(|s| *s != signal) {
            match other {
                Signal::Traces => self.spans.advance_lsn(lsn),
                Signal::Metrics => self.metrics.advance_lsn(lsn),
                Signal::Logs => self.logs.advance_lsn(lsn),
            }
        }
        // The reservation was sized to the records' estimated bytes by the writer.
        let bytes = reservation.bytes();
        match batch {
            SignalBatch::Spans(spans) => self.spans.apply(lsn, tenant, spans, bytes, reservation),
            SignalBatch::Logs(logs) => self.logs.apply(lsn, tenant, logs, bytes, reservation),
            SignalBatch::Metrics(points) => {
                self.metrics.apply(lsn, tenant, points, bytes, reservation)
            }
        }
    }
}

/// Memory and file figures for self-metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignalStats {
    /// Records held in memory.
    pub buffered_records: usize,
    /// Estimated bytes held in memory.
    pub buffered_bytes: usize,
    /// Completed flushes since start.
    pub flushes: u64,
    /// Total flush time since start, seconds.
    pub flush_seconds: f64,
    /// Failed flushes since start.
    pub flush_failures: u64,
    /// Live files (Parquet files, or log index partitions).
    pub files: u64,
    /// Bytes of the live files.
    pub file_bytes: u64,
    /// Completed compaction merges since start.
    pub merges: u64,
    /// Failed compaction merges since start.
    pub merge_failures: u64,
    /// Bytes read by compaction since start.
    pub merged_bytes_read: u64,
    /// Bytes written by compaction since start.
    pub merged_bytes_written: u64,
    /// Files (or partitions) removed by retention since start.
    pub retention_files_removed: u64,
    /// Bytes removed by retention since start.
    pub retention_bytes_removed: u64,
}

/// Storage, opened and running.
pub struct Storage {
    config: StorageConfig,
    budget: Arc<MemoryBudget>,
    wal: Wal<Applied>,
    stores: Arc<Stores>,
    checkpoint: tokio::sync::Mutex<Checkpoint>,
    checkpoint_io: tokio::sync::Mutex<()>,
    cancel: CancellationToken,
    flusher: std::sync::Mutex<Option<JoinHandle<()>>>,
    compactor: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Storage {
    /// Opens everything under the data directory, replays the WAL past the checkpoint and
    /// starts the flusher. Returns when the data is queryable.
    pub async fn open(
        config: StorageConfig,
        decoder: Arc<dyn WalDecoder>,
    ) -> Result<Arc<Self>, StorageError> {
        let objects_dir = layout::objects_dir(&config.data_dir);
        let wal_dir = layout::wal_dir(&config.data_dir);
        std::fs::create_dir_all(&wal_dir).map_err(|err| StorageError::io(&wal_dir, err))?;
        let objects = Objects::local(&objects_dir)?;
        let catalog: Arc<dyn Catalog> = Arc::new(ObjectCatalog::new(objects.clone()));
        let footers = Arc::new(FooterCache::new(config.footer_cache_bytes));
        let index_config = LogIndexConfig {
            writer_memory_bytes: config.log_writer_memory_bytes,
        };
        let logs_dir = config.data_dir.clone();
        let stores = Arc::new(Stores {
            spans: SpanStore::open(objects.clone(), Arc::clone(&catalog), Arc::clone(&footers))
                .await?,
            metrics: MetricStore::open(objects.clone(), Arc::clone(&catalog), footers).await?,
            logs: Arc::new(
                tokio::task::spawn_blocking(move || LogStore::open(logs_dir, index_config))
                    .await??,
            ),
        });
        let budget = MemoryBudget::new(config.max_buffered_bytes);
        let mut checkpoint = Checkpoint::load(&wal_dir)?;
        let next_lsn = replay(
            &config,
            &wal_dir,
            &stores,
            &budget,
            &decoder,
            &mut checkpoint,
        )
        .await?;

        let applier_stores = Arc::clone(&stores);
        let wal = Wal::start(
            WalConfig {
                dir: wal_dir,
                segment_max_bytes: config.wal_segment_max_bytes,
                queue_capacity: 1024,
                max_group_bytes: 8 * 1024 * 1024,
            },
            next_lsn,
            Box::new(move |lsn, applied| applier_stores.apply(lsn, applied)),
        )?;
        let storage = Arc::new(Self {
            config,
            budget,
            wal,
            stores,
            checkpoint: tokio::sync::Mutex::new(checkpoint),
            checkpoint_io: tokio::sync::Mutex::new(()),
            cancel: CancellationToken::new(),
            flusher: std::sync::Mutex::new(None),
            compactor: std::sync::Mutex::new(None),
        });
        let handle = tokio::spawn(Arc::clone(&storage).run_flusher());
        if let Ok(mut slot) = storage.flusher.lock() {
            *slot = Some(handle);
        }
        if storage.config.compaction.enabled {
            let compactor = spawn_compactor(
                Arc::clone(&storage.stores),
                storage.config.compaction.clone(),
                storage.config.file_delete_grace,
                storage.cancel.clone(),
            )?;
            if let Ok(mut slot) = storage.compactor.lock() {
                *slot = Some(compactor);
            }
        }
        Ok(storage)
    }

    /// The stores, for reads that run off the async workers.
    pub(crate) fn stores(&self) -> Arc<Stores> {
        Arc::clone(&self.stores)
    }

    /// The budget that admission reserves from before decoding.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Makes an export durable and visible; returns its LSN once both hold. `admission` is
    /// what was reserved before decoding; it is exchanged for the decoded records' own size,
    /// which the buffer then holds until the records are in files.
    pub async fn write(
        &self,
        entry: WalEntry,
        batch: SignalBatch,
        admission: Reservation,
    ) -> Result<Lsn, StorageError> {
        let reservation = self.budget.reserve_unchecked(batch.estimated_bytes());
        drop(admission);
        let applied = Applied {
            tenant: entry.tenant.clone(),
            batch,
            reservation,
        };
        self.wal
            .append(entry, applied)
            .await
            .map_err(|err| match err {
                WalError::Closed => StorageError::ShuttingDown,
                other => StorageError::Wal(other),
            })
    }

    /// Log records matching `query`, newest first.
    pub async fn search_logs(
        &self,
        tenant: &TenantId,
        query: LogQuery,
    ) -> Result<Vec<LogRecord>, StorageError> {
        let stores = Arc::clone(&self.stores);
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || stores.logs.search_blocking(&tenant, &query)).await?
    }

    /// WAL counters.
    pub fn wal_stats(&self) -> &Arc<WalStats> {
        self.wal.stats()
    }

    /// Memory and flush figures of one signal.
    pub fn signal_stats(&self, signal: Signal) -> SignalStats {
        let (buffered, stats, files) = match signal {
            Signal::Traces => (
                self.stores.spans.buffered(),
                self.stores.spans.stats(),
                self.stores.spans.files(),
            ),
            Signal::Metrics => (
                self.stores.metrics.buffered(),
                self.stores.metrics.stats(),
                self.stores.metrics.files(),
            ),
            Signal::Logs => (
                self.stores.logs.buffered(),
                self.stores.logs.stats(),
                self.stores.logs.files(),
            ),
        };
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        SignalStats {
            buffered_records: buffered.0,
            buffered_bytes: buffered.1,
            flushes: load(&stats.flushes),
            flush_seconds: load(&stats.flush_micros) as f64 / 1e6,
            flush_failures: load(&stats.flush_failures),
            files: files.0 as u64,
            file_bytes: files.1,
            merges: load(&stats.merges),
            merge_failures: load(&stats.merge_failures),
            merged_bytes_read: load(&stats.merged_bytes_read),
            merged_bytes_written: load(&stats.merged_bytes_written),
            retention_files_removed: load(&stats.retention_files_removed),
            retention_bytes_removed: load(&stats.retention_bytes_removed),
        }
    }

    /// Bytes of parsed Parquet footers held for reads.
    pub fn footer_cache_bytes(&self) -> usize {
        self.stores.spans.footer_cache().bytes()
    }

    /// Flushes every store now and checkpoints the WAL (tests, shutdown, admin).
    pub async fn flush_all(&self) -> Result<(), StorageError> {
        let mut first_error = None;
        for signal in Signal::ALL {
            if let Err(err) = self.flush_signal(signal).await {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => self.checkpoint_wal().await,
        }
    }

    async fn flush_signal(&self, signal: Signal) -> Result<(), StorageError> {
        let flushed = match signal {
            Signal::Traces => self.stores.spans.flush().await,
            Signal::Metrics => self.stores.metrics.flush().await,
            Signal::Logs => self.stores.logs.flush().await,
        };
        match flushed {
            Ok(lsn) => {
                let mut checkpoint = self.checkpoint.lock().await;
                checkpoint.advance(signal, lsn);
                Ok(())
            }
            Err(err) => {
                error!(signal = signal.name(), error = %err, "flush failed; data stays buffered and in the WAL");
                Err(err)
            }
        }
    }

    /// Persists the checkpoint, closes the current segment and deletes covered segments.
    async fn checkpoint_wal(&self) -> Result<(), StorageError> {
        // One checkpoint write at a time: the signal flushers finish independently.
        let _serial = self.checkpoint_io.lock().await;
        let checkpoint = *self.checkpoint.lock().await;
        let wal_dir = layout::wal_dir(&self.config.data_dir);
        tokio::task::spawn_blocking(move || checkpoint.store(&wal_dir)).await??;
        if let Err(err) = self.wal.rotate().await {
            // Closed during shutdown: the segment stays and is replayed, skipped, next start.
            if !matches!(err, WalError::Closed) {
                return Err(err.into());
            }
        }
        let wal_dir = layout::wal_dir(&self.config.data_dir);
        let removed = tokio::task::spawn_blocking(move || {
            crate::wal::remove_segments_through(&wal_dir, checkpoint.min())
        })
        .await??;
        if removed > 0 {
            info!(
                removed,
                checkpoint = checkpoint.min(),
                "WAL segments removed"
            );
        }
        Ok(())
    }

    /// One flusher per signal, so a long flush of one (a big log commit) never delays the
    /// others; this task also persists checkpoints moved by idle signals.
    async fn run_flusher(self: Arc<Self>) {
        let mut flushers = tokio::task::JoinSet::new();
        for signal in Signal::ALL {
            flushers.spawn(Arc::clone(&self).run_signal_flusher(signal));
        }
        flushers.spawn(Arc::clone(&self).run_retention());
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep(IDLE_CHECKPOINT_INTERVAL) => {}
            }
            self.stores.spans.delete_unreferenced().await;
            self.stores.metrics.delete_unreferenced().await;
            let idle_advanced = self.advance_idle_checkpoints().await;
            if idle_advanced && last_checkpoint.elapsed() >= IDLE_CHECKPOINT_INTERVAL {
                match self.checkpoint_wal().await {
                    Ok(()) => last_checkpoint = std::time::Instant::now(),
                    Err(err) => warn!(error = %err, "WAL checkpoint failed; will retry"),
                }
            }
        }
        while let Some(joined) = flushers.join_next().await {
            if let Err(err) = joined {
                warn!(error = %err, "a flusher task ended abnormally");
            }
        }
    }

    async fn run_signal_flusher(self: Arc<Self>, signal: Signal) {
        let tick = Duration::from_millis(250);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let under_pressure = self.budget.used_bytes() * 4 >= self.budget.limit_bytes() * 3;
            let max_bytes = if under_pressure {
                0
            } else {
                self.config.flush_max_bytes
            };
            let due = match signal {
                Signal::Traces => self
                    .stores
                    .spans
                    .is_due(max_bytes, self.config.flush_interval),
                Signal::Metrics => self
                    .stores
                    .metrics
                    .is_due(max_bytes, self.config.flush_interval),
                Signal::Logs => self
                    .stores
                    .logs
                    .is_due(max_bytes, self.config.log_commit_interval),
            };
            if due
                && self.flush_signal(signal).await.is_ok()
                && let Err(err) = self.checkpoint_wal().await
            {
                warn!(error = %err, "WAL checkpoint failed; will retry");
            }
        }
    }

    /// Sweeps expired data at start and then every check interval.
    async fn run_retention(self: Arc<Self>) {
        let policy = &self.config.retention;
        loop {
            let now = crate::maintenance::now_unix_nano();
            let logs = Arc::clone(&self.stores.logs);
            let logs_policy = policy.clone();
            let swept = async {
                sweep_store(&self.stores.spans, policy, now).await?;
                sweep_store(&self.stores.metrics, policy, now).await?;
                tokio::task::spawn_blocking(move || {
                    let dropped = logs.drop_expired(&logs_policy, now);
                    logs.close_idle_writers();
                    dropped
                })
                .await??;
                Ok::<_, StorageError>(())
            };
            if let Err(err) = swept.await {
                warn!(error = %err, "retention sweep failed; will retry");
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(policy.check_interval) => {}
            }
        }
    }

    /// Moves the checkpoint of every signal with nothing in memory up to the LSN its store
    /// has seen; returns whether any moved.
    async fn advance_idle_checkpoints(&self) -> bool {
        let idle = [
            (Signal::Traces, self.stores.spans.idle_lsn()),
            (Signal::Metrics, self.stores.metrics.idle_lsn()),
            (Signal::Logs, self.stores.logs.idle_lsn()),
        ];
        let mut checkpoint = self.checkpoint.lock().await;
        let mut advanced = false;
        for (signal, lsn) in idle {
            if let Some(lsn) = lsn
                && lsn > checkpoint.get(signal)
            {
                checkpoint.advance(signal, lsn);
                advanced = true;
            }
        }
        advanced
    }

    /// Stops the flusher and the compactor, drains the WAL writer, flushes every store and
    /// checkpoints.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.cancel.cancel();
        let handle = self.flusher.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle
            && let Err(err) = handle.await
        {
            warn!(error = %err, "flusher task ended abnormally");
        }
        let compactor = self.compactor.lock().ok().and_then(|mut slot| slot.take());
        if let Some(compactor) = compactor {
            let joined = tokio::task::spawn_blocking(move || compactor.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                warn!("compaction thread ended abnormally");
            }
        }
        self.wal.close().await;
        self.flush_all().await
    }
}

/// Starts the compaction thread: one thread at low priority, so merges yield to ingest and
/// queries; a failed pass is retried after a growing pause.
fn spawn_compactor(
    stores: Arc<Stores>,
    config: CompactionConfig,
    delete_grace: Duration,
    cancel: CancellationToken,
) -> Result<std::thread::JoinHandle<()>, StorageError> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("skewer-compactor".to_owned())
        .spawn(move || {
            crate::maintenance::lower_thread_priority();
            let mut pause = config.interval;
            loop {
                let stopped = runtime.block_on(async {
                    tokio::select! {
                        () = cancel.cancelled() => true,
                        () = tokio::time::sleep(pause) => false,
                    }
                });
                if stopped {
                    return;
                }
                let pass = runtime.block_on(async {
                    let spans =
                        compact_store(&stores.spans, &config.policy, delete_grace, &cancel).await?;
                    let metrics =
                        compact_store(&stores.metrics, &config.policy, delete_grace, &cancel)
                            .await?;
                    Ok::<_, StorageError>(spans + metrics)
                });
                pause = match pass {
                    // Merges can enable more merges (the next tier): look again soon.
                    Ok(merges) if merges > 0 => Duration::from_secs(1),
                    Ok(_) => config.interval,
                    Err(err) => {
                        warn!(error = %err, "compaction failed; backing off");
                        (pause * 2).clamp(config.interval, MAX_COMPACTION_BACKOFF)
                    }
                };
            }
        })
        .map_err(|err| StorageError::io("skewer-compactor thread", err))
}

/// The longest pause after failed compaction passes (a full disk, say).
const MAX_COMPACTION_BACKOFF: Duration = Duration::from_secs(600);

/// How often a checkpoint moved only by idle signals is persisted (and the WAL trimmed).
const IDLE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Replays the WAL into the stores, flushing between segments when buffers grow large.
async fn replay(
    config: &StorageConfig,
    wal_dir: &Path,
    stores: &Arc<Stores>,
    budget: &Arc<MemoryBudget>,
    decoder: &Arc<dyn WalDecoder>,
    checkpoint: &mut Checkpoint,
) -> Result<Lsn, StorageError> {
    let mut reader = Replay::open(wal_dir)?;
    let mut replayed = 0u64;
    loop {
        let (returned, segment) = tokio::task::spawn_blocking(move || {
            let segment = reader.next_segment();
            (reader, segment)
        })
        .await?;
        reader = returned;
        let Some(records) = segment else { break };
        for (lsn, entry) in records? {
            if lsn <= checkpoint.get(entry.signal)
                || stores.already_flushed(lsn, entry.signal, &entry.tenant)
            {
                continue;
            }
            let mut batch = match decoder.decode(&entry) {
                Ok(batch) => batch,
                Err(reason) => {
                    warn!(lsn, %reason, "undecodable WAL record skipped");
                    continue;
                }
            };
            if let SignalBatch::Logs(records) = &mut batch {
                stores.logs.drop_committed(lsn, &entry.tenant, records);
            }
            // Replayed data was accepted before: never refuse it, but account for it.
            let reservation = budget.reserve_unchecked(batch.estimated_bytes());
            replayed += 1;
            stores.apply(
                lsn,
                Applied {
                    tenant: entry.tenant,
                    batch,
                    reservation,
                },
            );
        }
        let over = |(_, bytes): (usize, usize)| bytes >= config.flush_max_bytes;
        if over(stores.spans.buffered()) {
            checkpoint.advance(Signal::Traces, stores.spans.flush().await?);
        }
        if over(stores.metrics.buffered()) {
            checkpoint.advance(Signal::Metrics, stores.metrics.flush().await?);
        }
        if over(stores.logs.buffered()) {
            checkpoint.advance(Signal::Logs, stores.logs.flush().await?);
        }
    }
    let stats = reader.stats();
    // Never hand out an LSN a checkpoint already covers (a segment cut to nothing could
    // otherwise lower the next LSN), or new records would be skipped on the next replay.
    let next_lsn = stats.next_lsn.max(
        checkpoint
            .traces
            .max(checkpoint.logs)
            .max(checkpoint.metrics)
            + 1,
    );
    info!(
        records_replayed = replayed,
        segments_repaired = stats.segments_repaired,
        next_lsn,
        "WAL replayed"
    );
    Ok(next_lsn)
}

impl ErrorKind {
    /// Whether a client should retry the same request later.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::ResourceExhausted | Self::Unavailable)
    }
}
