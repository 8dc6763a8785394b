//! A store of immutable Parquet files fed from an in-memory buffer: the shape spans and metric
//! points share. Records are applied from the WAL into the active buffer, frozen and encoded
//! into files per tenant and hour on flush, and committed to the tenant's manifest (see
//! [`crate::catalog`]) in the same step that hides them from the frozen buffer, so a query never
//! sees a record twice or misses one.
//!
//! Every change of the live files goes through [`TableStore::commit`]: flushes add files,
//! compaction replaces them, retention removes them. A removed file is deleted once no reader
//! snapshot holds it and its grace period is over.

mod byte_lru;
mod commit;
pub mod compaction;
mod flush;
pub mod id_filter;
pub mod live_file;
pub mod merge;
pub mod open;
mod refresh;
mod series_indexes;
mod summaries;
mod trace_summary_reads;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

use self::byte_lru::ByteLru;
use crate::StorageError;
use crate::budget::Reservation;
use crate::buffer::{Buffer, Chunks};
use crate::catalog::{Catalog, DataFileMeta, FileSummary, Manifest};
use crate::layout;
use crate::model::{Signal, TenantId, TraceId};
use crate::objects::Objects;
use crate::parquet_codec::{CodecError, EncodedFile};
use crate::wal::Lsn;
pub use commit::FrozenView;
pub use live_file::{FooterCache, LiveFile};
pub use series_indexes::SharedSeriesIndex;
pub use trace_summary_reads::TraceSummaryParts;

/// What differs between the Parquet-backed signals.
pub trait TableSignal: Send + Sync + 'static {
    /// One row.
    type Record: Clone + Send + Sync + 'static;
    /// The signal, for paths and logs.
    const SIGNAL: Signal;
    /// The file format this version writes.
    const FORMAT: &'static str;
    /// The column a record's time lives in (what a scan's time range filters on).
    const TIME_COLUMN: &'static str;
    /// The id column files keep a per-file filter of (spans: the trace id).
    const ID_FILTER_COLUMN: Option<&'static str> = None;
    /// The Parquet leaf of attribute text values with a bloom filter per row group (spans).
    const ATTRIBUTE_TEXT_LEAF: Option<&'static str> = None;
    /// Sorts and encodes records into one Parquet file.
    fn encode(records: &mut [&Self::Record]) -> Result<Option<EncodedFile>, CodecError>;
    /// Records as one Arrow batch of the file schema, in the given order (buffered records
    /// answering a scan).
    fn to_batch(records: &[&Self::Record]) -> Result<RecordBatch, CodecError>;
    /// Decodes rows read back from a file.
    fn decode(batch: &RecordBatch) -> Result<Vec<Self::Record>, CodecError>;
    /// The time a record is partitioned by.
    fn time_unix_nano(record: &Self::Record) -> u64;
    /// A cheap check on a buffered record before it is converted for a scan: `false` only
    /// when the record certainly fails the predicate or the time range.
    fn record_may_match(
        record: &Self::Record,
        predicate: &crate::scan::Predicate,
        time_range: crate::scan::TimeRange,
    ) -> bool;
    /// The trace id a record is found by, for signals with a trace-id filter.
    fn trace_id(_record: &Self::Record) -> Option<TraceId> {
        None
    }
    /// Writer settings for a file of `format` of about `expected_rows` rows (compaction
    /// output).
    fn writer_properties(
        expected_rows: usize,
        format: &'static str,
    ) -> Result<WriterProperties, CodecError>;
    /// The order files are sorted in.
    type SortKey: Ord + Send + 'static;
    /// The sort key of every row of a batch read from a file.
    fn sort_keys(batch: &RecordBatch) -> Result<Vec<Self::SortKey>, CodecError>;
    /// The time range a file holding these rows covers (as its manifest entry states it).
    fn batch_time_range(batch: &RecordBatch) -> Result<Option<(u64, u64)>, CodecError>;
    /// Whether a file must be rewritten by the next merge whatever its size (it lacks what
    /// this version's files have).
    fn needs_rewrite(_file: &DataFileMeta) -> bool {
        false
    }
    /// The trace ids of a batch's rows, for signals with a trace-id filter.
    fn batch_trace_ids(_batch: &RecordBatch) -> Result<Vec<[u8; 16]>, CodecError> {
        Ok(Vec::new())
    }
    /// Whether files of this signal carry a [`FileSummary`].
    const SUMMARIZED: bool = false;
    /// Adds records to a summary (signals that keep one).
    fn summarize<'a>(
        _records: impl IntoIterator<Item = &'a Self::Record>,
        _summary: &mut FileSummary,
    ) {
    }
    /// Builds the summary of a file from its rows in file order (flushes and merges).
    type Summarizer: Summarizer<Self::Record>;
    /// Whether a file with this summary may hold rows matching `predicate`: `false` only when
    /// it certainly holds none.
    fn summary_may_match(_summary: &FileSummary, _predicate: &crate::scan::Predicate) -> bool {
        true
    }
    /// Whether rows of files of `format` leave their series' identity to the file's series
    /// index (metric files of format 2): reads restore it from there.
    fn rows_leave_identity(_format: &str) -> bool {
        false
    }
    /// Whether merges take files of `format` as inputs (files of other formats are left as
    /// they are).
    fn merges_format(format: &str) -> bool {
        format == Self::FORMAT
    }
    /// The format a merge writes, given the format and series index of each input (`None`
    /// for an input without a readable one), for signals whose files leave identities to
    /// their indexes.
    fn merge_format(_inputs: &[(&str, Option<Arc<SharedSeriesIndex>>)]) -> &'static str {
        Self::FORMAT
    }
    /// The schema of files of `format` when it is not the full one a merge reads rows in.
    fn file_schema(_format: &str) -> Option<arrow_schema::SchemaRef> {
        None
    }
    /// `predicate` as a file of schema `file_schema` checks it best (the same rows match).
    fn file_predicate(
        predicate: crate::scan::Predicate,
        _file_schema: &arrow_schema::Schema,
    ) -> crate::scan::Predicate {
        predicate
    }
}

/// Builds a file's [`FileSummary`] from its rows in file order: records for a flush, Arrow
/// batches for a merge.
pub trait Summarizer<R>: Default + Send {
    /// Adds records (sorted as the file is).
    fn add_records(&mut self, records: &[&R]);
    /// Adds rows read back from files (sorted as the file is).
    fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), CodecError>;
    /// The sidecars of the file.
    fn finish(self) -> Result<FileSidecars, CodecError>;
}

/// What a file's summarizer gives to be written beside it.
#[derive(Debug, Default)]
pub struct FileSidecars {
    /// Its summary; `None` for a signal without summaries.
    pub summary: Option<FileSummary>,
    /// The stored form of its index: the series index of a metric file, the trace summaries
    /// of a span file.
    pub index: Option<bytes::Bytes>,
}

/// The summarizer of a signal without summaries.
impl<R> Summarizer<R> for () {
    fn add_records(&mut self, _records: &[&R]) {}
    fn add_batch(&mut self, _batch: &RecordBatch) -> Result<(), CodecError> {
        Ok(())
    }
    fn finish(self) -> Result<FileSidecars, CodecError> {
        Ok(FileSidecars::default())
    }
}

/// Counters for self-metrics.
#[derive(Debug, Default)]
pub struct TableStats {
    /// Completed flushes.
    pub flushes: AtomicU64,
    /// Total flush time, microseconds.
    pub flush_micros: AtomicU64,
    /// Files written by flushes.
    pub files_written: AtomicU64,
    /// Bytes written to files by flushes.
    pub bytes_written: AtomicU64,
    /// Flushes that failed (retried later).
    pub flush_failures: AtomicU64,
    /// Files deleted from storage after leaving the manifest.
    pub files_deleted: AtomicU64,
    /// Completed merges.
    pub merges: AtomicU64,
    /// Failed merges (retried on a later pass).
    pub merge_failures: AtomicU64,
    /// Files read by merges.
    pub merged_files_read: AtomicU64,
    /// Files written by merges.
    pub merged_files_written: AtomicU64,
    /// Bytes read by merges.
    pub merged_bytes_read: AtomicU64,
    /// Bytes written by merges.
    pub merged_bytes_written: AtomicU64,
    /// Time spent merging, microseconds.
    pub merge_micros: AtomicU64,
    /// Files removed by retention.
    pub retention_files_removed: AtomicU64,
    /// Bytes removed by retention.
    pub retention_bytes_removed: AtomicU64,
}

/// The live files of one tenant at one manifest version.
#[derive(Debug, Clone)]
pub struct TableFiles {
    /// The manifest they come from.
    pub manifest: Arc<Manifest>,
    /// The files, oldest first.
    pub files: Arc<Vec<Arc<LiveFile>>>,
    /// The summaries of every file added up, built on first use for this version.
    summary: Arc<tokio::sync::OnceCell<Arc<FileSummary>>>,
}

impl TableFiles {
    /// The files of `manifest` at its version, sorted oldest first.
    pub fn new(manifest: Arc<Manifest>, mut files: Vec<Arc<LiveFile>>) -> Self {
        files.sort_by_key(|file| file.meta.min_time_unix_nano);
        Self {
            manifest,
            files: Arc::new(files),
            summary: Arc::default(),
        }
    }
}

struct Frozen<R> {
    buffer: Arc<Buffer<R>>,
    /// Tenants whose part of the buffer is committed to their manifest: a retry skips them
    /// and queries read their files instead of the buffer.
    committed: HashSet<TenantId>,
}

struct State<R> {
    active: Buffer<R>,
    frozen: Option<Frozen<R>>,
    tables: HashMap<TenantId, TableFiles>,
}

struct PendingDelete {
    file: Arc<LiveFile>,
    not_before: Instant,
}

/// Memory for trace-id filters kept whole: about 2 bytes per trace, so 64 MiB holds the
/// filters of some 30M traces and a lookup by id reads no filter from disk. Filters past it
/// are read a block per id, as without the cache.
const ID_FILTER_CACHE_BYTES: usize = 64 << 20;

/// The buffers and live files of one Parquet-backed signal.
pub struct TableStore<S: TableSignal> {
    objects: Objects,
    footers: Arc<FooterCache>,
    /// Trace-id filters of recently read files, whole (files of signals that have them).
    id_filters: ByteLru<bytes::Bytes>,
    /// Series indexes of recently read files (metric files).
    series_indexes: ByteLru<Arc<SharedSeriesIndex>>,
    /// The footers of recently read span files' trace summaries.
    trace_summary_footers: ByteLru<Arc<crate::spans::trace_summaries::Footer>>,
    catalog: Arc<dyn Catalog>,
    state: Mutex<State<S::Record>>,
    flush_lock: tokio::sync::Mutex<()>,
    commit_locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
    pending_deletes: Mutex<Vec<PendingDelete>>,
    next_file_id: AtomicU64,
    /// Whose WAL positions this store reads and moves in manifests.
    wal_owner: crate::node::WalOwner,
    stats: TableStats,
}

/// What a query sees of one tenant: buffered records and the live files, consistent with each
/// other (every record is in exactly one of them).
pub struct TableSnapshot<R> {
    /// Buffered records: the active buffer, and the frozen one unless its files are committed.
    pub buffered: Vec<Chunks<R>>,
    /// Live files, oldest first.
    pub files: Arc<Vec<Arc<LiveFile>>>,
}

impl<S: TableSignal> TableStore<S> {
    /// Opens the store: loads every tenant's manifest (building one from the files of a data
    /// directory written before manifests existed) and removes files no manifest lists.
    pub async fn open(
        objects: Objects,
        catalog: Arc<dyn Catalog>,
        footers: Arc<FooterCache>,
    ) -> Result<Self, StorageError> {
        let tables = open::load_tables::<S>(&objects, catalog.as_ref()).await?;
        // Random high bits: nodes writing the same bucket never make the same path.
        let mut random = [0u8; 4];
        getrandom::fill(&mut random)
            .map_err(|err| StorageError::Task(format!("no randomness for file names: {err}")))?;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let file_id_seed = (u64::from(u32::from_be_bytes(random)) << 32) | (micros & 0xffff_ffff);
        Ok(Self {
            objects,
            footers,
            id_filters: ByteLru::new(ID_FILTER_CACHE_BYTES, bytes::Bytes::len),
            series_indexes: ByteLru::new(
                series_indexes::SERIES_INDEX_CACHE_BYTES,
                SharedSeriesIndex::weight,
            ),
            trace_summary_footers: ByteLru::new(
                trace_summary_reads::FOOTER_CACHE_BYTES,
                trace_summary_reads::footer_weight,
            ),
            catalog,
            state: Mutex::new(State {
                active: Buffer::default(),
                frozen: None,
                tables,
            }),
            flush_lock: tokio::sync::Mutex::new(()),
            commit_locks: Mutex::new(HashMap::new()),
            pending_deletes: Mutex::new(Vec::new()),
            next_file_id: AtomicU64::new(file_id_seed),
            wal_owner: crate::node::WalOwner::data_dir(),
            stats: TableStats::default(),
        })
    }

    /// The store with its flushes recorded as `owner`'s WAL positions (a node sharing its
    /// tables with other nodes); the data directory's single writer otherwise.
    pub fn with_wal_owner(mut self, owner: crate::node::WalOwner) -> Self {
        self.wal_owner = owner;
        self
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
        // Summarised outside the lock the WAL writer and queries share; merged under it.
        let summary = S::SUMMARIZED.then(|| {
            let mut summary = FileSummary::keeping_links();
            S::summarize(&records, &mut summary);
            let times = records.iter().map(S::time_unix_nano);
            let first = times.clone().min().unwrap_or(0);
            let last = times.max().unwrap_or(0);
            (summary, (first, last))
        });
        let mut state = self.lock();
        if let Some((summary, times)) = summary {
            state.active.add_summary(&tenant, &summary, times);
        }
        state.active.push(lsn, tenant, records, bytes, reservation);
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

    /// Every record of `tenant` at or below this LSN is in files (replay skips them).
    pub fn flushed_lsn(&self, tenant: &TenantId) -> Lsn {
        self.lock()
            .tables
            .get(tenant)
            .map_or(0, |table| self.wal_owner.flushed_lsn(&table.manifest))
    }

    /// The highest WAL position any tenant's manifest says is in files.
    pub fn max_flushed_lsn(&self) -> Lsn {
        self.lock()
            .tables
            .values()
            .map(|table| self.wal_owner.flushed_lsn(&table.manifest))
            .max()
            .unwrap_or(0)
    }

    /// (records, bytes) held in memory.
    pub fn buffered(&self) -> (usize, usize) {
        let state = self.lock();
        state
            .active
            .held_with(state.frozen.as_ref().map(|f| f.buffer.as_ref()))
    }

    /// Number of live files and their total bytes.
    pub fn files(&self) -> (usize, u64) {
        let state = self.lock();
        state.tables.values().fold((0, 0), |(n, bytes), table| {
            (
                n + table.files.len(),
                bytes + table.files.iter().map(|f| f.meta.size_bytes).sum::<u64>(),
            )
        })
    }

    /// The parsed footer of a live file (cached, bounded).
    pub async fn footer(
        &self,
        file: &LiveFile,
    ) -> Result<Arc<parquet::arrow::arrow_reader::ArrowReaderMetadata>, StorageError> {
        self.footers.footer(&self.objects, file).await
    }

    /// The footer cache reads share.
    pub fn footer_cache(&self) -> &Arc<FooterCache> {
        &self.footers
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// The object store the files live in.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Tenants with live files.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = self.lock().tables.keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// The live files of one tenant.
    pub fn table_files(&self, tenant: &TenantId) -> Option<TableFiles> {
        self.lock().tables.get(tenant).cloned()
    }

    /// A consistent view of one tenant: its buffered records and live files. Cheap: no record
    /// is copied and the lock is held only to clone a few `Arc`s.
    pub fn snapshot(&self, tenant: &TenantId) -> TableSnapshot<S::Record> {
        let state = self.lock();
        let mut buffered = vec![state.active.tenant_chunks(tenant)];
        if let Some(frozen) = &state.frozen
            && !frozen.committed.contains(tenant)
        {
            buffered.push(frozen.buffer.tenant_chunks(tenant));
        }
        let files = state
            .tables
            .get(tenant)
            .map(|table| Arc::clone(&table.files))
            .unwrap_or_default();
        TableSnapshot { buffered, files }
    }

    /// A fresh, unique path for a new file of `tenant` whose earliest record is at `min_time`.
    pub fn new_file_path(
        &self,
        tenant: &TenantId,
        min_time_unix_nano: u64,
    ) -> object_store::path::Path {
        let file_id = self.next_file_id.fetch_add(1, Ordering::Relaxed);
        layout::data_file_path(tenant, S::SIGNAL, min_time_unix_nano, file_id)
    }

    /// Whether a file may hold rows with each of `ids` in its filtered id column: its filter
    /// says so, or it has no filter. A filter is read whole once and kept while the cache has
    /// room; past that (more filters in use than fit), the blocks the ids need are read, one
    /// ranged read of the filter for all of them, as before the cache: never worse.
    pub async fn may_hold_ids(
        &self,
        file: &LiveFile,
        ids: &[[u8; 16]],
    ) -> Result<Vec<bool>, StorageError> {
        let Some(meta) = &file.meta.trace_id_filter else {
            return Ok(vec![true; ids.len()]);
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ranges: Vec<std::ops::Range<u64>> = ids
            .iter()
            .map(|id| id_filter::block_range(id, meta.num_blocks))
            .collect();
        let path = object_store::path::Path::from(meta.path.as_str());
        let filter_bytes = meta.num_blocks as usize * id_filter::BLOCK_BYTES;
        let cached = match self.id_filters.get(&file.path) {
            Some(filter) => Some(filter),
            None if self.id_filters.has_room(filter_bytes) => {
                let filter = self.objects.get(&path).await?;
                self.id_filters
                    .insert_if_room(file.path.clone(), filter.clone());
                Some(filter)
            }
            None => None,
        };
        let blocks: Vec<bytes::Bytes> = match cached {
            Some(filter) => ranges
                .iter()
                .map(|range| {
                    usize::try_from(range.start)
                        .ok()
                        .zip(usize::try_from(range.end).ok())
                        .and_then(|(start, end)| filter.get(start..end))
                        .map_or_else(bytes::Bytes::new, |block| filter.slice_ref(block))
                })
                .collect(),
            None => self.objects.get_ranges(&path, &ranges).await?,
        };
        // A block that is missing or short proves nothing: never rule a file out.
        Ok(ids
            .iter()
            .zip(&blocks)
            .map(|(id, block)| id_filter::stored_block_may_contain(block, id))
            .collect())
    }

    /// This store with room for `bytes` of trace-id filters (tests).
    #[cfg(test)]
    pub(crate) fn with_id_filter_cache_bytes(mut self, bytes: usize) -> Self {
        self.id_filters = ByteLru::new(bytes, bytes::Bytes::len);
        self
    }

    /// Bytes of trace-id filters held in memory.
    pub fn id_filter_cache_bytes(&self) -> usize {
        self.id_filters.bytes()
    }
}

impl<S: TableSignal> TableStore<S> {
    /// A store over a local directory with its own catalog and a small footer cache (tests).
    #[cfg(test)]
    pub(crate) async fn open_local(dir: &std::path::Path) -> Self {
        let objects = Objects::local(dir).unwrap_or_else(|err| panic!("{err}"));
        let catalog = Arc::new(crate::catalog::ObjectCatalog::new(objects.clone()));
        Self::open(objects, catalog, Arc::new(FooterCache::new(64 << 20)))
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

/// The manifest entry of a file a flush or compaction just wrote.
pub fn file_meta(
    path: &object_store::path::Path,
    file: &EncodedFile,
    size_bytes: u64,
    level: u32,
) -> DataFileMeta {
    DataFileMeta {
        path: path.to_string(),
        format: file.format.to_owned(),
        size_bytes,
        num_rows: file.num_rows as u64,
        min_time_unix_nano: file.min_time_unix_nano,
        max_time_unix_nano: file.max_time_unix_nano,
        partition_hour: file.min_time_unix_nano / layout::WINDOW_NANOS,
        level,
        created_unix_ms: now_unix_ms(),
        trace_id_filter: None,
        summary_path: None,
        index_path: None,
    }
}

/// Wall-clock time, Unix ms.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod metric_format_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
