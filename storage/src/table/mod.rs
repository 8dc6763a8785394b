//! A store of immutable Parquet files fed from an in-memory buffer: the shape spans and metric
//! points share. Records are applied from the WAL into the active buffer, frozen and encoded
//! into one file per tenant and hour window on flush, written through `object_store`, and
//! published to the catalog in the same step that retires the frozen buffer, so a query never
//! sees a record twice or misses one.

pub mod catalog;
pub mod reader;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{info, warn};

use crate::StorageError;
use crate::budget::Reservation;
use crate::buffer::Buffer;
use crate::layout;
use crate::model::{Signal, TenantId};
use crate::parquet_codec::{CodecError, EncodedFile};
use crate::wal::Lsn;
use catalog::{Catalog, FileEntry};

/// What differs between the Parquet-backed signals.
pub trait TableSignal: Send + Sync + 'static {
    /// One row.
    type Record: Clone + Send + Sync + 'static;
    /// The signal, for paths and logs.
    const SIGNAL: Signal;
    /// The column with a bloom filter worth loading into the catalog.
    const BLOOM_COLUMN: Option<&'static str>;
    /// Sorts and encodes records into one Parquet file.
    fn encode(records: &mut [&Self::Record]) -> Result<Option<EncodedFile>, CodecError>;
    /// Decodes rows read back from a file.
    fn decode(batch: &RecordBatch) -> Result<Vec<Self::Record>, CodecError>;
    /// The time a record is partitioned by.
    fn time_unix_nano(record: &Self::Record) -> u64;
}

/// Counters for self-metrics.
#[derive(Debug, Default)]
pub struct TableStats {
    /// Completed flushes.
    pub flushes: AtomicU64,
    /// Total flush time, microseconds.
    pub flush_micros: AtomicU64,
    /// Files written.
    pub files_written: AtomicU64,
    /// Bytes written to files.
    pub bytes_written: AtomicU64,
    /// Flushes that failed (retried later).
    pub flush_failures: AtomicU64,
}

struct State<R> {
    active: Buffer<R>,
    frozen: Option<Arc<Buffer<R>>>,
    catalog: Catalog,
}

/// The buffer, frozen buffer and file catalog of one Parquet-backed signal.
pub struct TableStore<S: TableSignal> {
    object_store: Arc<dyn ObjectStore>,
    /// Local directory behind the object store, whose files are fsynced before a checkpoint
    /// may drop their WAL records; `None` for remote stores, whose `put` is durable.
    local_root: Option<PathBuf>,
    state: Mutex<State<S::Record>>,
    flush_lock: tokio::sync::Mutex<()>,
    next_flush_id: AtomicU64,
    stats: TableStats,
}

/// What a query sees of one tenant: buffered records that matched and the files to read.
pub struct TableSnapshot<R> {
    /// Buffered records accepted by the query's filter.
    pub buffered: Vec<R>,
    /// Files of the tenant, oldest first.
    pub files: Vec<Arc<FileEntry>>,
}

impl<S: TableSignal> TableStore<S> {
    /// Opens the store, loading the catalog from the object store (rooted at `local_root`
    /// when it is a local file system).
    pub async fn open(
        object_store: Arc<dyn ObjectStore>,
        local_root: Option<PathBuf>,
    ) -> Result<Self, StorageError> {
        let catalog = catalog::load_catalog(&object_store, S::SIGNAL, S::BLOOM_COLUMN).await?;
        let num_files: usize = catalog.values().map(Vec::len).sum();
        info!(signal = S::SIGNAL.name(), num_files, "catalog loaded");
        let flush_id_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Ok(Self {
            object_store,
            local_root,
            state: Mutex::new(State {
                active: Buffer::default(),
                frozen: None,
                catalog,
            }),
            flush_lock: tokio::sync::Mutex::new(()),
            next_flush_id: AtomicU64::new(flush_id_seed),
            stats: TableStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<S::Record>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds records applied from the WAL at `lsn`.
    pub fn apply(
        &self,
        lsn: Lsn,
        tenant: TenantId,
        records: Vec<S::Record>,
        bytes: usize,
        reservation: Reservation,
    ) {
        self.lock()
            .active
            .push(lsn, tenant, records, bytes, reservation);
    }

    /// Whether a flush is due: the active buffer is big or old enough, or a failed flush
    /// waits for its retry.
    pub fn is_due(&self, max_bytes: usize, max_age: Duration) -> bool {
        let state = self.lock();
        state.frozen.is_some() || state.active.is_due(max_bytes, max_age)
    }

    /// Notes that the WAL reached `lsn` with a record of another signal: nothing of this
    /// signal is pending up to there, so its checkpoint may move on even while it is idle.
    pub fn advance_lsn(&self, lsn: Lsn) {
        let mut state = self.lock();
        state.active.last_lsn = state.active.last_lsn.max(lsn);
    }

    /// The LSN this signal is fully flushed up to, when nothing of it is in memory.
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

    /// Number of files and their total bytes.
    pub fn files(&self) -> (usize, u64) {
        let state = self.lock();
        state
            .catalog
            .values()
            .flatten()
            .fold((0, 0), |(n, bytes), f| (n + 1, bytes + f.size_bytes))
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// The object store the files live in.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.object_store
    }

    /// A consistent view of one tenant: matching buffered records and the file list.
    pub fn snapshot(
        &self,
        tenant: &TenantId,
        mut keep: impl FnMut(&S::Record) -> bool,
    ) -> TableSnapshot<S::Record> {
        let (mut buffered, frozen, files) = {
            let state = self.lock();
            (
                state.active.matching(tenant, &mut keep),
                state.frozen.clone(),
                state.catalog.get(tenant).cloned().unwrap_or_default(),
            )
        };
        // The frozen buffer is immutable and leaves the state together with the arrival of its
        // files, which this file list does not hold yet: matching it outside the lock keeps the
        // view consistent without making ingest wait for the scan.
        if let Some(frozen) = frozen {
            buffered.extend(frozen.matching(tenant, &mut keep));
        }
        TableSnapshot { buffered, files }
    }

    /// Writes the buffer to files and returns the LSN up to which this signal is now in files.
    /// A failed flush keeps the data buffered (and in the WAL) for the next attempt.
    pub async fn flush(&self) -> Result<Lsn, StorageError> {
        let _serial = self.flush_lock.lock().await;
        let started = Instant::now();
        let frozen = {
            let mut state = self.lock();
            match &state.frozen {
                Some(frozen) => Arc::clone(frozen), // retry of a failed flush
                None => {
                    let frozen = Arc::new(std::mem::take(&mut state.active));
                    // The next buffer continues from the same LSN even if it stays empty.
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
        match self.write_files(&frozen).await {
            Ok(entries) => {
                let num_files = entries.len();
                let mut state = self.lock();
                for (tenant, entry) in entries {
                    state
                        .catalog
                        .entry(tenant)
                        .or_default()
                        .push(Arc::new(entry));
                }
                state.frozen = None;
                drop(state);
                let elapsed = started.elapsed();
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .flush_micros
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                info!(
                    signal = S::SIGNAL.name(),
                    num_records = frozen.num_records,
                    num_files,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "flushed"
                );
                Ok(frozen.last_lsn)
            }
            Err(err) => {
                self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    async fn write_files(
        &self,
        frozen: &Arc<Buffer<S::Record>>,
    ) -> Result<Vec<(TenantId, FileEntry)>, StorageError> {
        let to_encode = Arc::clone(frozen);
        let encoded =
            tokio::task::spawn_blocking(move || encode_by_window::<S>(&to_encode)).await??;
        let mut written: Vec<(TenantId, FileEntry)> = Vec::with_capacity(encoded.len());
        for (tenant, file) in encoded {
            let flush_id = self.next_flush_id.fetch_add(1, Ordering::Relaxed);
            let path =
                layout::data_file_path(&tenant, S::SIGNAL, file.min_time_unix_nano, flush_id);
            let size_bytes = file.bytes.len() as u64;
            let put = self
                .object_store
                .put(&path, PutPayload::from_bytes(file.bytes))
                .await;
            let loaded = match put {
                Ok(_) => match self.sync_local(&path).await {
                    Ok(()) => {
                        FileEntry::load(
                            &self.object_store,
                            path.clone(),
                            size_bytes,
                            S::BLOOM_COLUMN,
                        )
                        .await
                    }
                    Err(err) => Err(err),
                },
                Err(source) => Err(StorageError::ObjectStore {
                    path: path.to_string(),
                    source,
                }),
            };
            match loaded {
                Ok(entry) => {
                    self.stats.files_written.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_written
                        .fetch_add(size_bytes, Ordering::Relaxed);
                    written.push((tenant, entry));
                }
                Err(err) => {
                    // Undo the files of this attempt (the failed one included, if it was
                    // written) so the retry does not duplicate rows.
                    let attempted = written.iter().map(|(_, e)| e.path.clone()).chain([path]);
                    for attempted_path in attempted {
                        match self.object_store.delete(&attempted_path).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(delete_err) => {
                                warn!(path = %attempted_path, error = %delete_err, "could not remove a file of a failed flush");
                            }
                        }
                    }
                    return Err(err);
                }
            }
        }
        Ok(written)
    }
}

impl<S: TableSignal> TableStore<S> {
    /// fsyncs a freshly written local file and the directories up to the root, so the file
    /// survives a power loss once the WAL records behind it are gone.
    async fn sync_local(&self, path: &object_store::path::Path) -> Result<(), StorageError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || {
            crate::checkpoint::sync_file(&file)?;
            let mut dir = file.parent();
            while let Some(current) = dir {
                crate::checkpoint::sync_file(current)?;
                if current == root {
                    break;
                }
                dir = current.parent();
            }
            Ok(())
        })
        .await?
    }
}

/// Encodes a frozen buffer into one file per tenant and hour window.
fn encode_by_window<S: TableSignal>(
    frozen: &Buffer<S::Record>,
) -> Result<Vec<(TenantId, EncodedFile)>, StorageError> {
    let mut files = Vec::new();
    for (tenant, records) in &frozen.records_by_tenant {
        // References, not copies: the frozen buffer stays readable while it is encoded.
        let mut windows: BTreeMap<u64, Vec<&S::Record>> = BTreeMap::new();
        for record in records {
            let window = S::time_unix_nano(record) / layout::WINDOW_NANOS;
            windows.entry(window).or_default().push(record);
        }
        for (_, mut window_records) in windows {
            if let Some(file) = S::encode(&mut window_records)? {
                files.push((tenant.clone(), file));
            }
        }
    }
    Ok(files)
}
