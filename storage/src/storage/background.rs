//! The storage's background work: one flusher per signal (with a growing pause after
//! failures), WAL checkpoints, retention sweeps, quiet log merges and the compaction thread.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::health::{Component, Health};
use super::{Storage, Stores};
use crate::StorageError;
use crate::layout;
use crate::maintenance::{CompactionConfig, compact_store, sweep_store};
use crate::model::Signal;
use crate::wal::WalError;

impl Storage {
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
    pub(super) async fn run_flusher(self: Arc<Self>) {
        let mut flushers = tokio::task::JoinSet::new();
        for signal in Signal::ALL {
            flushers.spawn(Arc::clone(&self).run_signal_flusher(signal));
        }
        flushers.spawn(Arc::clone(&self).run_retention());
        flushers.spawn(Arc::clone(&self).run_quiet_log_merges());
        if self.config.shares_tables() {
            flushers.spawn(Arc::clone(&self).run_catalog_refresh());
        }
        if self.stores.log_uploader.is_some() {
            flushers.spawn(Arc::clone(&self).run_log_upload());
        }
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
        let mut pause = tick;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            // Open log writers' arenas are not data a flush frees: left out.
            let flushable = self
                .budget
                .used_bytes()
                .saturating_sub(self.stores.logs.writer_reserved_bytes());
            let under_pressure = flushable * 4 >= self.budget.limit_bytes() * 3;
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
            if !due {
                if signal == Signal::Logs
                    && let Err(err) = self.stores.logs.feed().await
                {
                    warn!(error = %err, "feeding log records to their indexes failed");
                }
                pause = tick;
                continue;
            }
            match self.flush_signal(signal).await {
                Ok(()) => {
                    pause = tick;
                    self.health.set(Component::Flush(signal), None);
                    if let Err(err) = self.checkpoint_wal().await {
                        warn!(error = %err, "WAL checkpoint failed; will retry");
                    }
                }
                Err(err) => {
                    // A full disk or a failing store: retry, but back off so the failures do
                    // not spin (data stays buffered and in the WAL meanwhile).
                    pause = (pause * 2).clamp(Duration::from_secs(1), MAX_FLUSH_BACKOFF);
                    self.health.set(
                        Component::Flush(signal),
                        Some(format!("{} flush failing: {err}", signal.name())),
                    );
                }
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
            // Other nodes may still read what leaves a shared table: it stays for the grace.
            let grace = if self.config.shares_tables() {
                self.config.file_delete_grace
            } else {
                Duration::ZERO
            };
            let swept = async {
                if self.config.table_maintenance {
                    sweep_store(&self.stores.spans, policy, now, grace).await?;
                    sweep_store(&self.stores.metrics, policy, now, grace).await?;
                    if let Some(replicas) = self.stores.logs.replicas() {
                        replicas.remove_expired(policy, now).await?;
                    }
                }
                tokio::task::spawn_blocking(move || {
                    let dropped = logs.drop_expired(&logs_policy, now);
                    logs.close_idle_writers();
                    dropped
                })
                .await??;
                Ok::<_, StorageError>(())
            };
            match swept.await {
                Ok(()) => self.health.set(Component::Retention, None),
                Err(err) => {
                    warn!(error = %err, "retention sweep failed; will retry");
                    self.health.set(
                        Component::Retention,
                        Some(format!("retention sweep failing: {err}")),
                    );
                }
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(policy.check_interval) => {}
            }
        }
    }

    /// Merges quiet log partitions' small segments (`log_store::quiet_merge`), one at a
    /// time, every retention check interval. A merge still running at shutdown is left to
    /// end with the process (its files are deleted when the partition's writer next opens):
    /// shutdown does not wait for a day to be rewritten.
    async fn run_quiet_log_merges(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.retention.check_interval) => {}
            }
            for partition in self.stores.logs.quiet_partitions() {
                let logs = Arc::clone(&self.stores.logs);
                let started =
                    tokio::task::spawn_blocking(move || logs.start_quiet_merge(&partition)).await;
                let merge = match started {
                    Ok(Ok(Some(merge))) => merge,
                    // Nothing worth merging; a failure is logged and counted by the store.
                    Ok(Ok(None) | Err(_)) => continue,
                    Err(err) => {
                        warn!(error = %err, "starting a quiet log merge ended abnormally");
                        continue;
                    }
                };
                let ended = tokio::select! {
                    () = self.cancel.cancelled() => return,
                    ended = merge.merged() => ended,
                };
                let logs = Arc::clone(&self.stores.logs);
                if let Err(err) =
                    tokio::task::spawn_blocking(move || logs.finish_quiet_merge(ended)).await
                {
                    warn!(error = %err, "finishing a quiet log merge ended abnormally");
                }
            }
        }
    }

    /// Reloads the shared manifests every refresh interval, so this node reads what other
    /// nodes flushed, merged and removed.
    async fn run_catalog_refresh(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.catalog_refresh_interval) => {}
            }
            let refreshed = async {
                self.stores.spans.refresh().await?;
                self.stores.metrics.refresh().await?;
                if let Some(replicas) = self.stores.logs.replicas() {
                    replicas.refresh().await?;
                }
                if let Some(membership) = &self.membership {
                    let live = membership.beat_and_count().await?;
                    self.ingest_nodes
                        .store(live.max(1), std::sync::atomic::Ordering::Relaxed);
                }
                Ok::<_, StorageError>(())
            };
            match refreshed.await {
                Ok(_) => self.health.set(Component::CatalogRefresh, None),
                Err(err) => {
                    warn!(error = %err, "reloading the manifests failed; will retry");
                    self.health.set(
                        Component::CatalogRefresh,
                        Some(format!("catalog refresh failing: {err}")),
                    );
                }
            }
        }
    }

    /// Uploads this node's log partitions that changed (a commit, a merge), about as often
    /// as logs are committed.
    async fn run_log_upload(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.log_commit_interval) => {}
            }
            match self.upload_logs().await {
                Ok(()) => self.health.set(Component::LogUpload, None),
                Err(err) => {
                    warn!(error = %err, "uploading log partitions failed; will retry");
                    self.health.set(
                        Component::LogUpload,
                        Some(format!("log upload failing: {err}")),
                    );
                }
            }
        }
    }

    /// Uploads what changed in this node's log partitions, when logs are shared.
    pub(super) async fn upload_logs(&self) -> Result<(), StorageError> {
        let Some(uploader) = &self.stores.log_uploader else {
            return Ok(());
        };
        let round = uploader.upload(&self.stores.logs).await?;
        if round.replicas > 0 {
            info!(
                replicas = round.replicas,
                files = round.files,
                bytes = round.bytes,
                "uploaded log partitions"
            );
        }
        Ok(())
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
}

/// Starts the compaction thread: one thread at low priority, so merges yield to ingest and
/// queries; a failed pass is retried after a growing pause.
/// The longest pause between attempts of a failing flush.
const MAX_FLUSH_BACKOFF: Duration = Duration::from_secs(30);

pub(super) fn spawn_compactor(
    stores: Arc<Stores>,
    config: CompactionConfig,
    delete_grace: Duration,
    cancel: CancellationToken,
    health: Arc<Health>,
) -> Result<std::thread::JoinHandle<()>, StorageError> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("skewer-compactor".to_owned())
        .spawn(move || {
            crate::maintenance::mark_compactor_thread();
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
                if pass.is_ok() {
                    health.set(Component::Compaction, None);
                }
                pause = match pass {
                    // Merges can enable more merges (the next tier): look again soon.
                    Ok(merges) if merges > 0 => Duration::from_secs(1),
                    Ok(_) => config.interval,
                    Err(err) => {
                        warn!(error = %err, "compaction failed; backing off");
                        health.set(
                            Component::Compaction,
                            Some(format!("compaction failing: {err}")),
                        );
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
