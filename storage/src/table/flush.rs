//! Flushing a table store: freeze the active buffer, encode one file per tenant and hour (with
//! a trace-id filter for spans), write them durably, and commit each tenant's files to its
//! manifest together with the flushed WAL position.
//!
//! A flush that fails part-way keeps the frozen buffer for a retry; tenants already committed
//! are remembered so the retry writes none of their records twice, and files written for a
//! tenant whose commit failed are deleted.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use tracing::{info, warn};

use super::id_filter::IdFilter;
use super::{FileSidecars, Frozen, Summarizer, TableSignal, TableStore, file_meta};
use crate::StorageError;
use crate::buffer::{Buffer, Chunks};
use crate::catalog::{IdFilterMeta, ManifestChange};
use crate::layout;
use crate::model::TenantId;
use crate::parquet_codec::EncodedFile;
use crate::wal::Lsn;

/// One encoded file and, for spans, the filter of its trace ids.
pub(super) struct EncodedTableFile {
    pub file: EncodedFile,
    pub filter: Option<IdFilter>,
    pub sidecars: FileSidecars,
}

impl<S: TableSignal> TableStore<S> {
    /// Writes the buffer to files and returns the LSN up to which this signal is now in files.
    /// A failed flush keeps the data buffered (and in the WAL) for the next attempt.
    pub async fn flush(&self) -> Result<Lsn, StorageError> {
        let _serial = self.flush_lock.lock().await;
        let started = Instant::now();
        let (frozen, committed) = {
            let mut state = self.lock();
            match &state.frozen {
                Some(frozen) => (Arc::clone(&frozen.buffer), frozen.committed.clone()),
                None => {
                    let buffer = Arc::new(std::mem::take(&mut state.active));
                    // The next buffer continues from the same LSN even if it stays empty.
                    state.active.last_lsn = buffer.last_lsn;
                    state.frozen = Some(Frozen {
                        buffer: Arc::clone(&buffer),
                        committed: HashSet::new(),
                    });
                    (buffer, HashSet::new())
                }
            }
        };
        if frozen.is_empty() {
            self.lock().frozen = None;
            return Ok(frozen.last_lsn);
        }
        match self.write_frozen(&frozen, &committed).await {
            Ok(num_files) => {
                self.lock().frozen = None;
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

    async fn write_frozen(
        &self,
        frozen: &Arc<Buffer<S::Record>>,
        committed: &HashSet<TenantId>,
    ) -> Result<usize, StorageError> {
        let mut tenants: Vec<TenantId> = frozen
            .records_by_tenant
            .keys()
            .filter(|tenant| !committed.contains(*tenant))
            .cloned()
            .collect();
        // A fixed order, so a failing tenant fails at the same point on every retry.
        tenants.sort();
        let mut num_files = 0;
        for tenant in tenants {
            if self.flushed_lsn(&tenant) >= frozen.last_lsn {
                // An earlier attempt's commit landed although it reported an error.
                if let Some(frozen) = self.lock().frozen.as_mut() {
                    frozen.committed.insert(tenant.clone());
                }
                continue;
            }
            let to_encode = Arc::clone(frozen);
            let encoding_tenant = tenant.clone();
            let encoded = tokio::task::spawn_blocking(move || {
                let records = to_encode.tenant_chunks(&encoding_tenant);
                encode_by_window::<S>(&records)
            })
            .await??;
            num_files += encoded.len();
            self.write_and_commit(&tenant, encoded, frozen.last_lsn)
                .await?;
        }
        Ok(num_files)
    }

    async fn write_and_commit(
        &self,
        tenant: &TenantId,
        encoded: Vec<EncodedTableFile>,
        last_lsn: Lsn,
    ) -> Result<(), StorageError> {
        if self.table_files(tenant).is_none() {
            // A new table gets its (empty) manifest before its first files: files found later
            // under a table without a manifest are then always from before manifests existed
            // (adopted at start), never a first flush cut short (whose records the WAL holds).
            self.commit(tenant, ManifestChange::default(), Duration::ZERO, |_| {})
                .await?;
        }
        let mut written: Vec<ObjectPath> = Vec::new();
        let mut metas = Vec::with_capacity(encoded.len());
        let mut result = Ok(());
        for EncodedTableFile {
            file,
            filter,
            sidecars,
        } in encoded
        {
            let path = self.new_file_path(tenant, file.min_time_unix_nano);
            let size_bytes = file.bytes.len() as u64;
            let mut meta = file_meta(&path, &file, size_bytes, 0);
            written.push(path.clone());
            if let Err(err) = self.objects.put(&path, file.bytes.clone()).await {
                result = Err(err);
                break;
            }
            if let Some(filter) = filter {
                let filter_path = layout::trace_id_filter_path(&path);
                written.push(filter_path.clone());
                let put = self
                    .objects
                    .put(&filter_path, Bytes::from(filter.to_bytes()))
                    .await;
                if let Err(err) = put {
                    result = Err(err);
                    break;
                }
                meta.trace_id_filter = Some(IdFilterMeta {
                    path: filter_path.to_string(),
                    num_blocks: filter.num_blocks(),
                    num_ids: filter.num_ids(),
                });
            }
            if let Err(err) = self
                .put_sidecars(&path, sidecars, &mut meta, &mut written)
                .await
            {
                result = Err(err);
                break;
            }
            self.stats.files_written.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_written
                .fetch_add(size_bytes, Ordering::Relaxed);
            metas.push(meta);
        }
        if result.is_ok() {
            let change = ManifestChange {
                add: metas,
                remove: Vec::new(),
                flushed: Some(self.wal_owner.position(last_lsn)),
            };
            result = self
                .commit(tenant, change, Duration::ZERO, |view| view.mark_committed())
                .await
                .map(|_| ());
        }
        if result.is_err() && !matches!(result, Err(StorageError::CommitOutcomeUnknown { .. })) {
            // Undo this attempt's files so the retry does not duplicate rows.
            for path in written {
                if let Err(err) = self.objects.delete(&path).await {
                    warn!(path = %path, error = %err, "could not remove a file of a failed flush");
                }
            }
        }
        result
    }
}

/// Encodes one tenant's records into one file per hour window, each with its trace-id filter
/// when the signal has one.
pub(super) fn encode_by_window<S: TableSignal>(
    records: &Chunks<S::Record>,
) -> Result<Vec<EncodedTableFile>, StorageError> {
    // References, not copies: the frozen buffer stays readable while it is encoded.
    let mut windows: BTreeMap<u64, Vec<&S::Record>> = BTreeMap::new();
    for record in records.iter() {
        let window = S::time_unix_nano(record) / layout::WINDOW_NANOS;
        windows.entry(window).or_default().push(record);
    }
    let mut files = Vec::with_capacity(windows.len());
    for (_, mut window_records) in windows {
        if let Some(file) = S::encode(&mut window_records)? {
            let filter = trace_id_filter::<S>(&window_records);
            // Sorted as the file is (encoding sorted them).
            let mut summarizer = S::Summarizer::default();
            summarizer.add_records(&window_records);
            files.push(EncodedTableFile {
                file,
                filter,
                sidecars: summarizer.finish()?,
            });
        }
    }
    Ok(files)
}

/// The filter of the records' distinct trace ids, for signals that have them.
pub(super) fn trace_id_filter<S: TableSignal>(records: &[&S::Record]) -> Option<IdFilter> {
    let mut ids: Vec<[u8; 16]> = records
        .iter()
        .filter_map(|record| S::trace_id(record).map(|id| id.0))
        .collect();
    if ids.is_empty() {
        return None;
    }
    ids.sort_unstable();
    ids.dedup();
    let mut filter = IdFilter::with_capacity(ids.len());
    for id in &ids {
        filter.insert(id);
    }
    Some(filter)
}
