//! The storage facade: opens the WAL and the three stores, replays, takes writes, starts the
//! background work ([`background`]), serves reads, reports health, and shuts down in order.

mod background;
pub mod health;
mod replay;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::budget::{MemoryBudget, Reservation};
use crate::checkpoint::Checkpoint;
use crate::config::StorageConfig;
use crate::layout;
use crate::log_store::LogStore;
use crate::log_store::shared::cache::ReplicaCache;
use crate::log_store::shared::upload::LogUploader;
use crate::logs::{LogIndexConfig, LogQuery};
use crate::metrics::MetricStore;
use crate::model::{LogRecord, Signal, SignalBatch, TenantId};
use crate::spans::SpanStore;
use crate::table::FooterCache;
use crate::wal::{Lsn, Wal, WalConfig, WalEntry, WalError, WalStats};
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
    /// Uploads this node's log partitions, when logs are shared through a bucket.
    pub(crate) log_uploader: Option<LogUploader>,
    /// Clock offsets between hosts, learnt from client/server spans as they are applied.
    pub(crate) skew: crate::skew::SkewEstimator,
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
            SignalBatch::Spans(spans) => {
                self.skew.observe(&tenant, &spans);
                self.spans.apply(lsn, tenant, spans, bytes, reservation)
            }
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
    /// This node's heartbeat in a shared deployment.
    membership: Option<crate::membership::Membership>,
    /// Ingest nodes of the deployment with a live heartbeat (1 alone).
    ingest_nodes: std::sync::atomic::AtomicUsize,
    cancel: CancellationToken,
    flusher: std::sync::Mutex<Option<JoinHandle<()>>>,
    compactor: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    health: Arc<health::Health>,
    /// Held while storage is open: no other process writes the directory.
    _lock: crate::lock::DataDirLock,
}

impl Storage {
    /// Opens everything under the data directory, replays the WAL past the checkpoint and
    /// starts the flusher. Returns when the data is queryable.
    pub async fn open(
        config: StorageConfig,
        decoder: Arc<dyn WalDecoder>,
    ) -> Result<Arc<Self>, StorageError> {
        let lock = crate::lock::DataDirLock::acquire(&config.data_dir)?;
        let wal_dir = layout::wal_dir(&config.data_dir);
        std::fs::create_dir_all(&wal_dir).map_err(|err| StorageError::io(&wal_dir, err))?;
        let crate::deployment::Deployment {
            objects, catalog, ..
        } = crate::deployment::Deployment::open(&config, crate::catalog::database::Schema::Migrate)
            .await?;
        let owner = if config.shares_tables() {
            let owner = crate::node::WalOwner::load_or_create(&config.data_dir)?;
            tracing::info!(node = owner.node_id().unwrap_or_default(), "node id");
            owner
        } else {
            crate::node::WalOwner::data_dir()
        };
        let footers = Arc::new(FooterCache::new(config.footer_cache_bytes));
        let index_config = LogIndexConfig {
            writer_memory_bytes: config.log_writer_memory_bytes,
        };
        let logs_dir = config.data_dir.clone();
        // Logs are shared through the bucket: this node uploads its partitions and reads the
        // other nodes' from a local cache.
        let sharing_logs = config.object_store.is_some().then(|| {
            let node = owner.node_id().unwrap_or_default().to_owned();
            let uploader =
                LogUploader::new(objects.clone(), node.clone(), config.file_delete_grace);
            let cache = (
                objects.clone(),
                node,
                layout::log_cache_dir(&config.data_dir),
                config.log_cache_bytes,
            );
            (uploader, cache)
        });
        // Ingest nodes announce themselves in the bucket; each enforces its share of a
        // tenant's rates.
        let membership = config.object_store.is_some().then(|| {
            crate::membership::Membership::new(
                objects.clone(),
                owner.node_id().unwrap_or_default(),
                config.ingests,
                config.catalog_refresh_interval * 3 + std::time::Duration::from_secs(10),
            )
        });
        let ingest_nodes = match &membership {
            Some(membership) => membership.beat_and_count().await?,
            None => 1,
        };
        let (log_uploader, replica_cache) = match sharing_logs {
            Some((uploader, cache)) => (Some(uploader), Some(cache)),
            None => (None, None),
        };
        let budget = MemoryBudget::new(config.max_buffered_bytes);
        let writer_budget = Arc::clone(&budget);
        let writer_idle = config.log_writer_idle;
        let logs = tokio::task::spawn_blocking(move || {
            let store = LogStore::open(logs_dir, index_config)?
                .with_writer_budget(writer_budget)
                .with_writer_idle(writer_idle);
            Ok::<_, StorageError>(match replica_cache {
                Some((objects, node, dir, capacity)) => store.with_replicas(Arc::new(
                    ReplicaCache::new(objects, Some(node), dir, capacity, index_config)?,
                )),
                None => store,
            })
        })
        .await??;
        if let Some(replicas) = logs.replicas() {
            let listed = replicas.refresh().await?;
            tracing::info!(replicas = listed, "other nodes' log partitions listed");
        }
        let stores = Arc::new(Stores {
            spans: SpanStore::open(objects.clone(), Arc::clone(&catalog), Arc::clone(&footers))
                .await?
                .with_wal_owner(owner.clone()),
            metrics: MetricStore::open(objects.clone(), Arc::clone(&catalog), footers)
                .await?
                .with_wal_owner(owner),
            logs: Arc::new(logs),
            log_uploader,
            skew: crate::skew::SkewEstimator::default(),
        });
        let mut checkpoint = Checkpoint::load(&wal_dir)?;
        let next_lsn = replay::replay(
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
            membership,
            ingest_nodes: std::sync::atomic::AtomicUsize::new(ingest_nodes),
            cancel: CancellationToken::new(),
            flusher: std::sync::Mutex::new(None),
            compactor: std::sync::Mutex::new(None),
            health: Arc::new(health::Health::default()),
            _lock: lock,
        });
        let handle = tokio::spawn(Arc::clone(&storage).run_flusher());
        if let Ok(mut slot) = storage.flusher.lock() {
            *slot = Some(handle);
        }
        if storage.config.compaction.enabled && storage.config.table_maintenance {
            let compactor = background::spawn_compactor(
                Arc::clone(&storage.stores),
                storage.config.compaction.clone(),
                storage.config.file_delete_grace,
                storage.cancel.clone(),
                Arc::clone(&storage.health),
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
        let held = self.hold_log_replicas(tenant, log_range(&query)).await?;
        let stores = Arc::clone(&self.stores);
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            stores.logs.search_blocking(&tenant, &query)
        })
        .await?
    }

    /// Other nodes' log partitions a read of `tenant` over `[start, end)` needs, downloaded
    /// into the cache and held (not evicted) while the caller keeps them.
    async fn hold_log_replicas(
        &self,
        tenant: &TenantId,
        range: (u64, u64),
    ) -> Result<Vec<Arc<crate::log_store::partitions::Partition>>, StorageError> {
        match self.stores.logs.replicas() {
            Some(replicas) => replicas.prepare(tenant, range).await,
            None => Ok(Vec::new()),
        }
    }

    /// Visits every record of `tenant` that `query` matches (its limit ignored) in time
    /// order, until the visitor breaks; it runs on a blocking thread and is handed back.
    pub async fn scan_logs<V: crate::log_store::LogVisitor>(
        &self,
        tenant: &TenantId,
        query: LogQuery,
        direction: crate::log_store::ScanDirection,
        mut visitor: V,
    ) -> Result<V, StorageError> {
        let held = self.hold_log_replicas(tenant, log_range(&query)).await?;
        let stores = Arc::clone(&self.stores);
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            stores
                .logs
                .scan_blocking(&tenant, &query, direction, &mut |record| {
                    visitor.visit(record)
                })
                .map(|()| visitor)
        })
        .await?
    }

    /// Hands the visitor the stream, time and line length of every record of `tenant` that
    /// `query` matches (its limit ignored), in no particular order, reading index columns
    /// where partitions keep stream ids; the visitor runs on a blocking thread.
    pub async fn scan_log_stream_samples<V: crate::log_store::StreamSampleVisitor>(
        &self,
        tenant: &TenantId,
        query: LogQuery,
        mut visitor: V,
    ) -> Result<V, StorageError> {
        let held = self.hold_log_replicas(tenant, log_range(&query)).await?;
        let stores = Arc::clone(&self.stores);
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            stores
                .logs
                .scan_stream_samples_blocking(&tenant, &query, &mut |stream, time, bytes, level| {
                    visitor.visit(stream, time, bytes, level)
                })
                .map(|()| visitor)
        })
        .await?
    }

    /// The clock offset estimated for every host pair of `tenant` seen calling each other.
    pub fn clock_skew(&self, tenant: &TenantId) -> Vec<crate::skew::SkewEstimate> {
        self.stores.skew.estimates(tenant)
    }

    /// Every tenant's clock offset estimates (self-metrics).
    pub fn all_clock_skew(&self) -> Vec<(TenantId, crate::skew::SkewEstimate)> {
        self.stores.skew.all_estimates()
    }

    /// The distinct log streams of `tenant` with records in `[start, end)`, sorted.
    pub async fn log_streams(
        &self,
        tenant: &TenantId,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> Result<Vec<crate::logs::streams::StreamLabels>, StorageError> {
        let held = self
            .hold_log_replicas(tenant, (start_unix_nano, end_unix_nano))
            .await?;
        let stores = Arc::clone(&self.stores);
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            stores
                .logs
                .streams_blocking(&tenant, start_unix_nano, end_unix_nano)
        })
        .await?
    }

    /// The services and operations of a tenant's spans, with span and error counts: every
    /// live file's summary and the buffers'. Reads no span.
    pub async fn span_summary(&self, tenant: &TenantId) -> crate::catalog::FileSummary {
        self.stores.spans.summary(tenant).await
    }

    /// The traces holding a span that links to `trace_id` among a tenant's spans in `range`
    /// (from file summaries and the buffers; reads no span), and whether that is all of them.
    pub async fn traces_linking_to(
        &self,
        tenant: &TenantId,
        trace_id: crate::model::TraceId,
        range: crate::scan::TimeRange,
    ) -> (std::collections::BTreeSet<crate::model::TraceId>, bool) {
        self.stores
            .spans
            .traces_linking_to(tenant, trace_id, range)
            .await
    }

    /// The calls between a tenant's services in the span files of a time range (hour
    /// granularity: a file counts when its time range meets the range).
    pub async fn span_dependencies(
        &self,
        tenant: &TenantId,
        range: crate::scan::TimeRange,
    ) -> crate::catalog::FileSummary {
        self.stores.spans.files_summary_in(tenant, range).await
    }

    /// The metrics a tenant's points in `range` may hold, by OTLP name, from file summaries
    /// and the buffers (reads no point). `None` while some file in the range predates metric
    /// summaries (compaction rewrites such files): then only a scan can tell.
    pub async fn metric_catalog(
        &self,
        tenant: &TenantId,
        range: crate::scan::TimeRange,
    ) -> Option<crate::catalog::MetricCatalog> {
        self.stores
            .metrics
            .summary_in(tenant, range)
            .await
            .map(|summary| summary.metrics)
    }

    /// The tenants with span or metric files (in the data directory or the bucket) or, when
    /// logs are shared, other nodes' log partitions; with shared tables, as of the last
    /// refresh.
    pub fn table_tenants(&self) -> Vec<TenantId> {
        let mut tenants = self.stores.spans.tenants();
        tenants.extend(self.stores.metrics.tenants());
        if let Some(replicas) = self.stores.logs.replicas() {
            tenants.extend(replicas.tenants());
        }
        tenants.sort();
        tenants.dedup();
        tenants
    }

    /// The parts of each trace's summary, from the files' trace summaries and the buffered
    /// spans; traces that may have spans in a file without summaries are named.
    pub async fn trace_summary_parts(
        &self,
        tenant: &TenantId,
        trace_ids: &[crate::model::TraceId],
    ) -> Result<crate::table::TraceSummaryParts, StorageError> {
        self.stores
            .spans
            .trace_summary_parts(tenant, trace_ids)
            .await
    }

    /// The series indexes of one tenant's metrics whose time span meets `range` (files and
    /// buffers); `None` when a file in it has none, so only its points tell its series.
    pub async fn metric_series_indexes(
        &self,
        tenant: &TenantId,
        range: crate::scan::TimeRange,
    ) -> Option<Vec<Arc<crate::table::SharedSeriesIndex>>> {
        self.stores.metrics.series_indexes_in(tenant, range).await
    }

    /// WAL counters.
    pub fn wal_stats(&self) -> &Arc<WalStats> {
        self.wal.stats()
    }

    /// Estimated bytes one signal holds in memory: cheap, for admission on every request
    /// (unlike [`Self::signal_stats`], which also sizes the files).
    pub fn buffered_bytes(&self, signal: Signal) -> usize {
        match signal {
            Signal::Traces => self.stores.spans.buffered().1,
            Signal::Metrics => self.stores.metrics.buffered().1,
            Signal::Logs => self.stores.logs.buffered().1,
        }
    }

    /// Memory, flush, file, compaction and retention figures of one signal (for `/metrics`:
    /// sizing the log partitions reads their directories).
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

    /// What is failing now (empty when healthy): a WAL refusing appends, failing flushes,
    /// failing compaction. Each reason says what and why.
    pub fn health(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(reason) = self.wal.degraded_reason() {
            reasons.push(reason);
        }
        reasons.extend(self.health.reasons());
        reasons
    }

    /// Bytes of parsed Parquet footers held for reads.
    pub fn footer_cache_bytes(&self) -> usize {
        self.stores.spans.footer_cache().bytes()
    }

    /// Ingest nodes of the deployment whose heartbeat is live, as of the last refresh (1 on
    /// a node alone).
    pub fn ingest_nodes(&self) -> usize {
        self.ingest_nodes.load(Ordering::Relaxed)
    }

    /// The cache of other nodes' log partitions, when logs are shared through a bucket.
    pub fn log_cache(&self) -> Option<&Arc<ReplicaCache>> {
        self.stores.logs.replicas()
    }

    /// Bytes of span files' trace-id filters held in memory for lookups by id.
    pub fn id_filter_cache_bytes(&self) -> usize {
        self.stores.spans.id_filter_cache_bytes()
    }

    /// Stops everything without flushing or checkpointing, as a crash would (tests).
    #[cfg(test)]
    pub(crate) async fn crash(self: Arc<Self>) {
        self.cancel.cancel();
        let flusher = self.flusher.lock().ok().and_then(|mut slot| slot.take());
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        let compactor = self.compactor.lock().ok().and_then(|mut slot| slot.take());
        if let Some(compactor) = compactor {
            let _ = tokio::task::spawn_blocking(move || compactor.join()).await;
        }
        self.wal.close().await;
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
        self.flush_all().await?;
        // What the last commit added reaches the bucket before the node stops.
        self.upload_logs().await
    }
}

/// The time range a log query reads.
fn log_range(query: &LogQuery) -> (u64, u64) {
    (
        query.start_unix_nano.unwrap_or(0),
        query.end_unix_nano.unwrap_or(u64::MAX),
    )
}

impl ErrorKind {
    /// Whether a client should retry the same request later.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::ResourceExhausted | Self::Unavailable)
    }
}
