//! [`LogIndex`]: open, add, commit and search one tantivy log index (one tenant's logs of one
//! day, see the log store's partitions).
//!
//! This file owns the tantivy writer and reader and turns a [`LogQuery`] into a tantivy query;
//! the schema and the document mapping live in [`super::schema`]. It never decides when to
//! commit: that is the caller's flush policy. The writer (and its memory arena) exists only
//! while records are being added: an index that only serves searches holds a reader alone.
//! The writer has its own lock: adding and committing take `&self`, so searches go on while a
//! commit indexes (committed records become visible only at [`LogIndex::reload`]).

use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::indexer::{LogMergePolicy, UserOperation};
use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, QueryParserError, RangeQuery,
    TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
    query_grammar,
};
use tracing::debug;

use super::newest_first::ColumnFilter;
use super::query::{LogMatcher, LogQuery};
use super::record_batch;
use super::record_source::{RecordSource, StoredRecords};
use super::schema::{BatchFields, LogFields, TIMESTAMP};
use super::timed_matches::{StreamDocs, StreamHit, TimedDocs, TimedMatches};
use super::{LogIndexConfig, LogIndexError, newest_first, query_rewrite};
use crate::budget::Reservation;
use crate::model::LogRecord;

/// zstd level of the document store. Level 6 stored ~12% fewer store bytes than level 3 (4% of
/// the whole index, see the size test), but its compressor thread took 18% of the server's CPU
/// under log load: level 3 raised log records per CPU-second from ~27k to ~36k. Format 6's
/// batches (200k records of the LogQL hour, 256 KiB blocks) take 110 / 105 / 103 / 101 bytes
/// a record at levels 1 / 3 / 6 / 9, for 1.2 / 1.5 / 4.1 / 6.2 µs a record: level 3 stays.
/// Format 7's batches come compressed (their sections, apart): the store's zstd finds little
/// more in them.
const DOCSTORE_ZSTD_LEVEL: i32 = 3;
/// Uncompressed bytes per document-store block: a block ends at the first document that
/// takes it past this. Larger blocks compress better, smaller ones make fetching one record
/// cheaper. Format 6 stores records by the batch (a batch of the load generator's records is
/// ~200 KB; ~75 KB from format 7), so a block holds about two batches: measured against 64 KiB
/// blocks (one batch each), 5 bytes a record smaller (zstd finds matches across the two), and
/// the LogQL hour's queries were no faster with the smaller blocks.
/// Records are stored in arrival order, so a newest-first page usually sits in one block.
///
/// From format 7 a batch comes compressed, and what the store adds is the record documents'
/// framing: one byte and a 4-byte position each, which zstd cannot pack in a block of
/// random-looking batch bytes: 4.0 bytes a record (measured on the LogQL hour). 8 KiB blocks
/// did not help: a batch's ~700 record documents (at the byte bound) fit in one block with
/// the next batch, 5.0 bytes a record.
const DOCSTORE_BLOCK_BYTES: usize = 256 * 1024;
/// Decompressed blocks cached per segment (tantivy's default is 100): the cache is per
/// segment, so it is kept to 1 MiB each.
const DOCSTORE_CACHE_BLOCKS: usize = 4;
/// Documents sent to the indexing thread per message by indexes of formats 1 to 5 (formats 6
/// and 7 send a batch and its records per message). tantivy's channel holds 10,000 messages: one
/// document each cost a channel send per record (~3% of the server's CPU under log load); four
/// keep at most 40,000 documents in flight.
const DOCUMENTS_PER_SEND: usize = 4;
/// Segments of one size merged at once. tantivy's default (8) rewrote every record about
/// three times on its way to a full day's segment: with segments of ~50k records (what a
/// 32 MiB arena holds of the load generator's records) a 15 s load of 950k records already
/// merged 400k of them once. Sixteen makes each merge level 16 times the one below, so a
/// record is rewritten about twice in an append-only day, at the cost of up to twice as
/// many segments for a search to visit.
const SEGMENTS_PER_MERGE: usize = 16;
/// tantivy refuses writers with less memory than this.
const MIN_WRITER_MEMORY_BYTES: usize = 15_000_000;
/// A quiet index's segments are merged ([`LogIndex::quiet_merge_candidates`]) when those
/// beside its largest hold at least this fraction of its records: a day that took records
/// until midnight is merged once, a day that gets a late trickle is not rewritten for it.
const MERGE_WHEN_OTHERS_HOLD: (u64, u64) = (1, 16);

/// A quiet merge makes a segment of at most this many documents. Past about a million, a
/// segment's doc ids take more bits in every posting list and term info than one dictionary
/// instead of several saves: a day of 1.1M records of the benchmark's backfill took 148 bytes
/// a record in one segment (160 in ten), a day of 5M in one segment ~154 (~152 as tantivy's
/// merges leave it, segments of ~800k and a tail).
const QUIET_MERGE_MAX_DOCS: u64 = 1_500_000;

/// Of `segments` (with their documents), those a quiet merge makes one: the smallest, as many
/// as fit in [`QUIET_MERGE_MAX_DOCS`] together, if two or more and those beside the largest
/// of them hold at least [`MERGE_WHEN_OTHERS_HOLD`] of their documents (a late trickle does
/// not rewrite what was merged). A day's tail of small segments is merged, with the
/// smallest of its large ones if they fit; large segments are left as they are.
fn quiet_merge_group<T>(mut segments: Vec<(T, u64)>) -> Option<Vec<T>> {
    segments.sort_by_key(|&(_, docs)| docs);
    let mut total = 0u64;
    let mut fitting = 0;
    for &(_, docs) in &segments {
        if total.saturating_add(docs) > QUIET_MERGE_MAX_DOCS {
            break;
        }
        total += docs;
        fitting += 1;
    }
    segments.truncate(fitting);
    let largest = segments.last().map_or(0, |&(_, docs)| docs);
    let (part, whole) = MERGE_WHEN_OTHERS_HOLD;
    let others = total - largest;
    if segments.len() < 2 || others.saturating_mul(whole) < total.saturating_mul(part) {
        return None;
    }
    Some(segments.into_iter().map(|(segment, _)| segment).collect())
}

/// A merge started by [`LogIndex::start_merge`].
pub struct SegmentMerge(tantivy::FutureResult<Option<tantivy::SegmentMeta>>);

impl SegmentMerge {
    /// Blocks until the merge has ended (its segment is committed, not yet searchable: see
    /// [`LogIndex::show_merged`]).
    pub fn wait(self) -> Result<(), LogIndexError> {
        self.0.wait()?;
        Ok(())
    }

    /// Waits until the merge has ended, as [`Self::wait`] without blocking a thread.
    pub async fn finished(self) -> Result<(), LogIndexError> {
        self.0.await?;
        Ok(())
    }
}

/// How a writer merges: [`SEGMENTS_PER_MERGE`] segments of a size at a time.
fn merge_policy() -> Box<dyn tantivy::indexer::MergePolicy> {
    let mut merges = LogMergePolicy::default();
    merges.set_min_num_segments(SEGMENTS_PER_MERGE);
    Box::new(merges)
}

/// One log index. Writes (`add`, `commit_writes`, `rollback`) are serialized by the writer's
/// lock and do not block searches; records added but not committed are lost if the index is
/// dropped (the WAL still has them).
pub struct LogIndex {
    fields: LogFields,
    index: Index,
    writer_memory_bytes: usize,
    writer: Mutex<Option<OpenWriter>>,
    reader: IndexReader,
    query_parser: QueryParser,
    /// What newest-first searches know of each segment's times (`newest_first`).
    block_times: newest_first::BlockTimes,
}

/// The writer with the memory budget's reservations for its arena (none when the caller
/// keeps no budget): all go when the writer is closed or dropped.
struct OpenWriter {
    writer: IndexWriter<TantivyDocument>,
    _arena: Vec<Reservation>,
    /// The caller's tag for what the writer holds added but not committed (see
    /// [`LogIndex::tag_uncommitted`]); it goes with what it describes, at a commit, a
    /// rollback or the writer's close.
    uncommitted_tag: Option<u64>,
}

impl LogIndex {
    /// Opens the index in `dir`, creating dir and index if missing.
    ///
    /// Fails if another writer holds the directory's lock, or if the index on disk has a
    /// different schema.
    pub fn open(dir: &Path, config: &LogIndexConfig) -> Result<Self, LogIndexError> {
        std::fs::create_dir_all(dir).map_err(|source| LogIndexError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let directory = MmapDirectory::open(dir).map_err(|source| LogIndexError::OpenDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let settings = IndexSettings {
            docstore_compression: Compressor::Zstd(ZstdCompressor {
                compression_level: Some(DOCSTORE_ZSTD_LEVEL),
            }),
            docstore_blocksize: DOCSTORE_BLOCK_BYTES,
            ..IndexSettings::default()
        };
        // An existing index keeps its schema (and format); a new one gets the current.
        let index = if Index::exists(&directory).map_err(tantivy::TantivyError::from)? {
            Index::open(directory)?
        } else {
            Index::create(directory, LogFields::new().schema, settings)?
        };
        let fields = LogFields::from_schema(index.schema())?;
        if config.writer_memory_bytes < MIN_WRITER_MEMORY_BYTES {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "log index writer memory {} is below tantivy's minimum of {MIN_WRITER_MEMORY_BYTES}",
                config.writer_memory_bytes
            ))
            .into());
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOCSTORE_CACHE_BLOCKS)
            .try_into()?;
        let mut query_parser = QueryParser::for_index(&index, vec![fields.body]);
        query_parser.set_conjunction_by_default();
        Ok(Self {
            fields,
            index,
            writer_memory_bytes: config.writer_memory_bytes,
            writer: Mutex::new(None),
            reader,
            query_parser,
            block_times: newest_first::BlockTimes::default(),
        })
    }

    /// The writer's lock (a panic while holding it leaves the writer usable: tantivy's own
    /// state is behind its own locks).
    fn writer_slot(&self) -> MutexGuard<'_, Option<OpenWriter>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The memory arena a writer of this index takes.
    pub fn writer_memory_bytes(&self) -> usize {
        self.writer_memory_bytes
    }

    /// Opens the writer now if none is, holding `arena` (the memory budget's reservations
    /// for [`Self::writer_memory_bytes`]) until it closes; an open writer keeps its own.
    pub fn open_writer(&self, arena: Vec<Reservation>) -> Result<(), LogIndexError> {
        let mut slot = self.writer_slot();
        if slot.is_none() {
            *slot = Some(self.new_writer(arena)?);
        }
        Ok(())
    }

    /// Runs `work` on the writer (opened on first use) with its lock held.
    fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut OpenWriter) -> Result<T, LogIndexError>,
    ) -> Result<T, LogIndexError> {
        let mut slot = self.writer_slot();
        if let Some(open) = slot.as_mut() {
            return work(open);
        }
        let open = slot.insert(self.new_writer(Vec::new())?);
        work(open)
    }

    /// Tags what the writer now holds added but not committed, for the caller to know later
    /// whether the writer still holds it: [`Self::uncommitted_tag`] answers `tag` until the
    /// next commit, rollback or close of the writer. Nothing is tagged without a writer.
    pub fn tag_uncommitted(&self, tag: u64) {
        if let Some(open) = self.writer_slot().as_mut() {
            open.uncommitted_tag = Some(tag);
        }
    }

    /// The tag of what the writer holds added but not committed (see
    /// [`Self::tag_uncommitted`]); `None` when untagged or without a writer.
    pub fn uncommitted_tag(&self) -> Option<u64> {
        self.writer_slot()
            .as_ref()
            .and_then(|open| open.uncommitted_tag)
    }

    fn new_writer(&self, arena: Vec<Reservation>) -> Result<OpenWriter, LogIndexError> {
        let writer = self
            .index
            .writer_with_num_threads(1, self.writer_memory_bytes)?;
        writer.set_merge_policy(merge_policy());
        // Files of merges cut short by the last shutdown (or a crash) are unreferenced:
        // drop them now, or they sit on disk until the next merge.
        let collected = writer.garbage_collect_files().wait()?;
        if !collected.deleted_files.is_empty() {
            debug!(
                deleted = collected.deleted_files.len(),
                "removed unreferenced log index files"
            );
        }
        Ok(OpenWriter {
            writer,
            _arena: arena,
            uncommitted_tag: None,
        })
    }

    /// The committed segments searches visit.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// Whether a writer is open (it holds the writer's memory arena and merge thread).
    pub fn has_writer(&self) -> bool {
        self.writer_slot().is_some()
    }

    /// Closes the writer after its merges finish; the index keeps serving searches. Files
    /// of merged segments no searcher holds any longer are deleted first (tantivy deletes
    /// them at the end of a merge or at a commit, and a search may have held them then).
    pub fn close_writer(&self) -> Result<(), LogIndexError> {
        let open = self.writer_slot().take();
        if let Some(open) = open {
            let collected = open.writer.garbage_collect_files().wait();
            open.writer.wait_merging_threads()?;
            collected?;
        }
        Ok(())
    }

    /// The committed segments to merge into one for an index that has stopped taking records
    /// ([`quiet_merge_group`]): one segment keeps each term once (a term dictionary per
    /// segment repeats them, and packs a smaller segment's unique terms less densely).
    /// `None`: nothing worth merging.
    pub fn quiet_merge_candidates(&self) -> Result<Option<Vec<SegmentId>>, LogIndexError> {
        let segments = self.index.searchable_segment_metas()?;
        let sizes: Vec<(SegmentId, u64)> = segments
            .iter()
            .map(|segment| (segment.id(), u64::from(segment.num_docs())))
            .collect();
        Ok(quiet_merge_group(sizes))
    }

    /// Starts merging `segments` into one on the writer (opened if none is, holding `arena`
    /// as [`Self::open_writer`] does) and returns the merge to wait for: the caller need hold
    /// no lock meanwhile, records may be added and committed beside it. Fails if the
    /// writer's own merges hold some of the segments (a writer that was just opened has none).
    pub fn start_merge(
        &self,
        segments: &[SegmentId],
        arena: Vec<Reservation>,
    ) -> Result<SegmentMerge, LogIndexError> {
        self.open_writer(arena)?;
        self.with_writer(|open| Ok(SegmentMerge(open.writer.merge(segments))))
    }

    /// Makes a finished merge searchable (the reader reloaded) and deletes the merged
    /// segments' files: tantivy deletes them at the end of a merge or at a commit when no
    /// searcher holds them, which a quiet index may never see again. Not to be called while
    /// records are committed but meant to stay unsearchable (a commit between its write and
    /// its reload): the reload would show them.
    pub fn show_merged(&self) -> Result<(), LogIndexError> {
        self.reload()?;
        let collected = self
            .writer_slot()
            .as_ref()
            .map(|open| open.writer.garbage_collect_files());
        if let Some(collected) = collected {
            collected.wait()?;
        }
        Ok(())
    }

    /// Adds records with their stream ids (not yet visible; a format 1 index keeps no
    /// stream id). Records carry `correlation_id` already filled in.
    pub fn add<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a LogRecord, u32)>,
    ) -> Result<(), LogIndexError> {
        let fields = &self.fields;
        self.with_writer(|open| {
            let writer = &mut open.writer;
            let mut scratch = Vec::new();
            if let Some(batches) = fields.batches {
                return add_batched(writer, fields, batches, records, &mut scratch);
            }
            let mut batch = Vec::with_capacity(DOCUMENTS_PER_SEND);
            for (record, stream_id) in records {
                let document = fields.to_document(record, stream_id, &mut scratch)?;
                batch.push(UserOperation::Add(document));
                if batch.len() == DOCUMENTS_PER_SEND {
                    writer.run(batch.drain(..))?;
                }
            }
            writer.run(batch)?;
            Ok(())
        })
    }

    /// The index's format (see `schema::CURRENT_FORMAT`): 2 and later keep stream ids and
    /// line lengths per record, 3 and later keep ids as binary terms.
    pub fn format(&self) -> u32 {
        self.fields.format
    }

    /// Commits durably and reloads the reader so committed records are searchable on return.
    #[cfg(test)]
    pub fn commit(&self) -> Result<(), LogIndexError> {
        self.commit_writes("")?;
        self.reload()
    }

    /// Commits added records durably with `payload` stored beside them (the WAL position they
    /// reach); they are searchable after the next [`Self::reload`].
    pub fn commit_writes(&self, payload: &str) -> Result<(), LogIndexError> {
        let opstamp = self.with_writer(|open| {
            let mut prepared = open.writer.prepare_commit()?;
            prepared.set_payload(payload);
            let opstamp = prepared.commit()?;
            open.uncommitted_tag = None;
            Ok(opstamp)
        })?;
        debug!(opstamp, "committed log index");
        Ok(())
    }

    /// The payload of the last commit on disk.
    pub fn committed_payload(&self) -> Result<Option<String>, LogIndexError> {
        Ok(self.index.load_metas()?.payload)
    }

    /// The last commit on disk, for copying the index elsewhere: its `meta.json` and the
    /// names of the segment files it needs, sorted (a name may be of a component the segment
    /// does not have: a copy skips what is missing).
    pub fn committed_files(&self) -> Result<(String, Vec<String>), LogIndexError> {
        let metas = self.index.load_metas()?;
        let meta = serde_json::to_string(&metas)
            .map_err(|err| tantivy::TantivyError::InternalError(err.to_string()))?;
        let mut files: Vec<String> = metas
            .list_segment_files()
            .into_iter()
            .filter_map(|path| path.to_str().map(str::to_owned))
            .collect();
        files.sort();
        Ok((meta, files))
    }

    /// The earliest and latest record time among committed, searchable records.
    pub fn time_range(&self) -> Option<(u64, u64)> {
        time_range_of(&self.reader.searcher())
    }

    /// Makes every committed record searchable.
    pub fn reload(&self) -> Result<(), LogIndexError> {
        self.reader.reload()?;
        Ok(())
    }

    /// Drops every record added since the last commit (after a failed add or commit, so a
    /// retry adds each record once).
    pub fn rollback(&self) -> Result<(), LogIndexError> {
        let mut slot = self.writer_slot();
        if let Some(open) = slot.as_mut() {
            open.uncommitted_tag = None;
            match open.writer.rollback() {
                Ok(opstamp) => {
                    // tantivy's rollback starts a writer anew, with its default merge policy.
                    open.writer.set_merge_policy(merge_policy());
                    debug!(opstamp, "rolled back uncommitted log records");
                }
                Err(err) => {
                    // A writer that could not roll back may still hold the added records:
                    // drop it (its uncommitted records go with it); the next add opens anew.
                    *slot = None;
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// Searches committed records; newest first (by effective time), at most `query.limit`.
    /// Segments are read newest first, each only while it may still hold one of the newest
    /// `limit` matches (see [`newest_first`]).
    pub fn search(&self, query: &LogQuery) -> Result<Vec<LogRecord>, LogIndexError> {
        let searcher = self.reader.searcher();
        // The time range and the lowest severity are checked on the columns by the read.
        let filter = ColumnFilter {
            times: (
                query.start_unix_nano.unwrap_or(0),
                query.end_unix_nano.unwrap_or(u64::MAX),
            ),
            min_severity: query.min_severity_number.map(i64::from),
        };
        let without_columns = LogQuery {
            start_unix_nano: None,
            end_unix_nano: None,
            min_severity_number: None,
            ..query.clone()
        };
        let (tantivy_query, check) = self.to_tantivy_query(&without_columns, &searcher)?;
        // Never keep more slots than there are documents.
        let num_docs = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let limit = query.limit.min(num_docs);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let weight = tantivy_query.weight(EnableScoring::disabled_from_searcher(&searcher))?;
        let source = self.record_source(searcher, check)?;
        newest_first::newest_records(weight.as_ref(), limit, filter, &source, &self.block_times)
    }

    /// Every committed record `query` matches (its limit ignored), as (time, address) pairs
    /// in no particular order, with the searcher to load them from.
    pub fn timed_matches(&self, query: &LogQuery) -> Result<TimedMatches, LogIndexError> {
        let searcher = self.reader.searcher();
        let (tantivy_query, check) = self.to_tantivy_query(query, &searcher)?;
        self.collect_timed(searcher, &*tantivy_query, check)
    }

    /// Every match of `tantivy_query` in `searcher`, with the check its hits must pass.
    fn collect_timed(
        &self,
        searcher: tantivy::Searcher,
        tantivy_query: &dyn Query,
        check: Option<LogMatcher>,
    ) -> Result<TimedMatches, LogIndexError> {
        let hits = searcher.search(tantivy_query, &TimedDocs)?;
        Ok(TimedMatches {
            source: self.record_source(searcher, check)?,
            hits,
        })
    }

    /// Records of `searcher`, loaded one by one, each checked against `check` when set.
    fn record_source(
        &self,
        searcher: tantivy::Searcher,
        check: Option<LogMatcher>,
    ) -> Result<RecordSource, LogIndexError> {
        let stored = match (self.fields.batches, self.fields.record) {
            (Some(batches), _) => StoredRecords::batched(batches),
            (None, Some(field)) => StoredRecords::PerDocument(field),
            (None, None) => {
                return Err(tantivy::TantivyError::SchemaError(
                    "the log index stores no records".to_string(),
                )
                .into());
            }
        };
        Ok(RecordSource {
            searcher,
            stored,
            check,
        })
    }

    /// (time, stream id, line bytes) of every committed record `query` matches, from the
    /// index columns alone; `None` for a format 1 index, which keeps no stream ids, and for
    /// a query the index answers only with a superset (a body phrase on format 4): then the
    /// records must be read.
    pub fn stream_hits(&self, query: &LogQuery) -> Result<Option<Vec<StreamHit>>, LogIndexError> {
        if self.format() < 2 {
            return Ok(None);
        }
        let searcher = self.reader.searcher();
        let (tantivy_query, check) = self.to_tantivy_query(query, &searcher)?;
        if check.is_some() {
            return Ok(None);
        }
        Ok(Some(searcher.search(&tantivy_query, &StreamDocs)?))
    }

    /// Number of committed records (for tests/metrics); batch documents are not counted.
    pub fn num_docs(&self) -> u64 {
        let searcher = self.reader.searcher();
        // `doc_freq` fails only on an I/O error reading the term dictionary: the count then
        // includes batch documents, an upper bound, which is what callers use it as.
        let batches = self
            .fields
            .batches
            .map_or(Ok(0), |batches| searcher.doc_freq(&batches.marker_term()));
        searcher.num_docs().saturating_sub(batches.unwrap_or(0))
    }

    /// Every set filter becomes a required clause; no filter at all matches everything. With
    /// the query comes its matcher when the index finds only a superset (a body phrase on an
    /// index without positions, an id as its digest): each record found must then pass it.
    /// `searcher` is the one the query will run on (which attribute keys its records took
    /// correlation ids from).
    fn to_tantivy_query(
        &self,
        query: &LogQuery,
        searcher: &Searcher,
    ) -> Result<(Box<dyn Query>, Option<LogMatcher>), LogIndexError> {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut require = |term: Term| {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        };
        if let Some(trace_id) = query.trace_id {
            require(fields.id_term(fields.trace_id, &trace_id.0));
        }
        if let Some(span_id) = query.span_id {
            require(fields.id_term(fields.span_id, &span_id.0));
        }
        if let Some(correlation_id) = &query.correlation_id {
            require(fields.correlation_term(correlation_id));
        }
        // An id digest finds a superset of the id's records.
        let mut superset = fields.id_digests()
            && (query.trace_id.is_some()
                || query.span_id.is_some()
                || query.correlation_id.is_some());
        if let Some(service_name) = &query.service_name {
            require(Term::from_field_text(fields.service_name, service_name));
        }
        if query.start_unix_nano.is_some() || query.end_unix_nano.is_some() {
            let lower = query.start_unix_nano.map_or(Bound::Unbounded, |start| {
                Bound::Included(Term::from_field_u64(fields.timestamp, start))
            });
            let upper = query.end_unix_nano.map_or(Bound::Unbounded, |end| {
                Bound::Excluded(Term::from_field_u64(fields.timestamp, end))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        if let Some(min_severity) = query.min_severity_number {
            let lower = Term::from_field_i64(fields.severity_number, i64::from(min_severity));
            let range = RangeQuery::new(Bound::Included(lower), Bound::Unbounded);
            clauses.push((Occur::Must, Box::new(range)));
        }
        // The text and each attribute filter are parsed on their own, each a required clause.
        let attribute_clauses = query.attribute_clauses()?;
        for text in query
            .text_filter()
            .into_iter()
            .chain(attribute_clauses.iter().map(String::as_str))
        {
            let (parsed, relaxed) = self.parse_text(text, searcher)?;
            superset |= relaxed;
            clauses.push((Occur::Must, parsed));
        }
        let check = if superset {
            Some(query.matcher()?)
        } else {
            None
        };
        // Batch documents are no records: no query finds them.
        if let Some(batches) = fields.batches {
            if clauses.is_empty() {
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            let marker = TermQuery::new(batches.marker_term(), IndexRecordOption::Basic);
            clauses.push((Occur::MustNot, Box::new(marker)));
        }
        let tantivy_query: Box<dyn Query> = match clauses.len() {
            0 => Box::new(AllQuery),
            1 => clauses.remove(0).1,
            _ => Box::new(BooleanQuery::new(clauses)),
        };
        Ok((tantivy_query, check))
    }

    /// Parses query text; from format 3 on its id and attribute leaves are rewritten to what
    /// the index holds (from format 5 ids to their digests), and from format 4 on its body
    /// phrases are relaxed to their terms ([`query_rewrite`]). The flag is true when the query
    /// finds a superset.
    fn parse_text(
        &self,
        text: &str,
        searcher: &Searcher,
    ) -> Result<(Box<dyn Query>, bool), LogIndexError> {
        let parsed = if self.fields.binary_ids() {
            query_grammar::parse_query(text)
                .map_err(|_| QueryParserError::SyntaxError(text.to_string()))
                .and_then(|ast| {
                    let is_correlation_key = |key: &str| self.is_correlation_key(searcher, key);
                    let digest_bytes = self
                        .fields
                        .id_digests()
                        .then(|| self.fields.id_digest_bytes());
                    let (ast, ids_relaxed) =
                        query_rewrite::for_binary_ids(ast, digest_bytes, is_correlation_key);
                    let (ast, phrases_relaxed) = if self.fields.body_positions() {
                        (ast, false)
                    } else {
                        query_rewrite::for_body_without_positions(ast)
                    };
                    let query = self.query_parser.build_query_from_user_input_ast(ast)?;
                    Ok((query, ids_relaxed || phrases_relaxed))
                })
        } else {
            self.query_parser
                .parse_query(text)
                .map(|query| (query, false))
        };
        parsed.map_err(|error| LogIndexError::InvalidQuery {
            text: text.to_string(),
            reason: error.to_string(),
        })
    }
}

/// The first and last time of `searcher`'s records (batch documents hold their first
/// record's), from its segments' timestamp columns; `None` when it has none.
fn time_range_of(searcher: &Searcher) -> Option<(u64, u64)> {
    searcher
        .segment_readers()
        .iter()
        .filter(|segment| segment.num_docs() > 0)
        .filter_map(|segment| {
            let column = segment.fast_fields().u64(TIMESTAMP).ok()?;
            Some((column.min_value(), column.max_value()))
        })
        .reduce(|(min_a, max_a), (min_b, max_b)| (min_a.min(min_b), max_a.max(max_b)))
}

/// Adds `records` to a format 6 or later index: each batch of up to [`record_batch::MAX_RECORDS`]
/// (and about [`record_batch::MAX_BYTES`]) as its batch document followed by its records'
/// documents, in one group of operations (so in one segment, in this order).
fn add_batched<'a>(
    writer: &IndexWriter<TantivyDocument>,
    fields: &LogFields,
    batches: BatchFields,
    records: impl IntoIterator<Item = (&'a LogRecord, u32)>,
    scratch: &mut Vec<u8>,
) -> Result<(), LogIndexError> {
    let mut pending: Vec<(&LogRecord, u32)> = Vec::with_capacity(record_batch::MAX_RECORDS);
    let mut pending_bytes = 0usize;
    let mut batch = Vec::new();
    let mut send = |pending: &mut Vec<(&LogRecord, u32)>| -> Result<(), LogIndexError> {
        let records: Vec<&LogRecord> = pending.iter().map(|&(record, _)| record).collect();
        record_batch::encode(batches.version, &records, &mut batch)?;
        let mut operations = Vec::with_capacity(pending.len() + 1);
        if let Some(&first) = pending.first() {
            let batch_document = fields.batch_document(batches, &batch, first);
            operations.push(UserOperation::Add(batch_document));
        }
        for &(record, stream_id) in pending.iter() {
            let document = fields.to_document(record, stream_id, scratch)?;
            operations.push(UserOperation::Add(document));
        }
        writer.run(operations)?;
        pending.clear();
        Ok(())
    };
    for (record, stream_id) in records {
        pending_bytes = pending_bytes.saturating_add(record.estimated_bytes());
        pending.push((record, stream_id));
        if pending.len() == record_batch::MAX_RECORDS || pending_bytes >= record_batch::MAX_BYTES {
            send(&mut pending)?;
            pending_bytes = 0;
        }
    }
    if !pending.is_empty() {
        send(&mut pending)?;
    }
    Ok(())
}

impl LogIndex {
    /// Whether some record in `searcher` took its correlation id from the attribute `key`
    /// (true when that cannot be told, which only costs a check).
    fn is_correlation_key(&self, searcher: &Searcher, key: &str) -> bool {
        let Some(field) = self.fields.correlation_key else {
            return false;
        };
        !matches!(searcher.doc_freq(&Term::from_field_text(field, key)), Ok(0))
    }
}

impl fmt::Debug for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogIndex")
            .field("num_docs", &self.num_docs())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::matches_in_memory;
    use crate::logs::test_records::{
        BASE_UNIX_NANO, fixture_with_request_ids as fixture, span_id, trace_id,
    };

    const SECOND: u64 = 1_000_000_000;

    fn numbers(records: &[LogRecord]) -> Vec<u64> {
        records
            .iter()
            .map(|record| {
                let id = record.correlation_id.as_deref().unwrap();
                id.trim_start_matches("req-").parse().unwrap()
            })
            .collect()
    }

    fn all() -> LogQuery {
        LogQuery {
            limit: 100,
            ..LogQuery::default()
        }
    }

    fn text(text: &str) -> LogQuery {
        LogQuery {
            text: Some(text.into()),
            ..all()
        }
    }

    /// An index holding the fixture, added in two commits.
    fn indexed_fixture(dir: &Path) -> LogIndex {
        let records = fixture();
        let index = LogIndex::open(dir, &LogIndexConfig::default()).unwrap();
        index.add(records[..5].iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        index.add(records[5..].iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        index
    }

    fn found(index: &LogIndex, query: &LogQuery) -> Vec<u64> {
        numbers(&index.search(query).unwrap())
    }

    #[test]
    fn timed_matches_keep_to_their_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let mut times: Vec<u64> = fixture()
            .iter()
            .map(LogRecord::effective_time_unix_nano)
            .collect();
        times.sort_unstable();
        let (first, last) = (times[0], times[times.len() - 1]);
        assert_eq!(index.time_range(), Some((first, last)));
        let matched = |start: u64, end: u64| -> Vec<u64> {
            let query = LogQuery {
                start_unix_nano: Some(start),
                end_unix_nano: Some(end),
                ..all()
            };
            let mut found: Vec<u64> = index
                .timed_matches(&query)
                .unwrap()
                .hits
                .iter()
                .map(|&(time, _)| time)
                .collect();
            found.sort_unstable();
            found
        };
        let within = |start: u64, end: u64| -> Vec<u64> {
            times
                .iter()
                .copied()
                .filter(|&time| start <= time && time < end)
                .collect()
        };
        // Ranges holding every record, and ranges that cut some off at either end.
        for (start, end) in [
            (first, last + 1),
            (0, u64::MAX),
            (first, last),
            (first + 1, last + 1),
            (times[3], times[7]),
        ] {
            assert_eq!(matched(start, end), within(start, end), "{start}..{end}");
        }
        assert_eq!(matched(first, last + 1).len(), times.len());
        assert_eq!(matched(first, last).len(), times.len() - 1);
    }

    #[test]
    fn records_read_back_exactly_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        assert_eq!(index.num_docs(), 10);
        let mut expected = fixture();
        expected.reverse();
        assert_eq!(index.search(&all()).unwrap(), expected);
        let limited = LogQuery { limit: 3, ..all() };
        assert_eq!(found(&index, &limited), [10, 9, 8]);
        assert!(index.search(&LogQuery::default()).unwrap().is_empty());
    }

    #[test]
    fn pages_are_the_newest_matches_across_segments_whose_times_interleave() {
        use crate::logs::test_records::record;
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        // Four commits, four segments: three whose times interleave, one older than them all
        // and one record newer than every other in the first segment.
        let commits: [&[u64]; 4] = [
            &[1, 4, 7, 10, 13, 40],
            &[2, 5, 8, 11, 14],
            &[3, 6, 9, 12],
            &[0],
        ];
        let body = |n: u64| {
            if n.is_multiple_of(2) {
                "alpha beta"
            } else {
                "beta alpha"
            }
        };
        for numbers in commits {
            let records: Vec<LogRecord> = numbers.iter().map(|&n| record(n, body(n))).collect();
            index.add(records.iter().map(|r| (r, 0))).unwrap();
            index.commit().unwrap();
        }
        let mut every: Vec<u64> = commits.concat();
        every.sort_unstable_by(|a, b| b.cmp(a));
        // Plain terms, and a phrase a format 4 index answers with a superset it checks.
        // Each query with the remainder (mod 2) of the numbers it matches, if it is picky.
        let queries = [
            ("", None),
            ("alpha", None),
            ("\"alpha beta\"", Some(0)),
            ("\"beta alpha\"", Some(1)),
        ];
        for (query, remainder) in queries {
            let expected: Vec<u64> = every
                .iter()
                .copied()
                .filter(|n| remainder.is_none_or(|r| n % 2 == r))
                .collect();
            for limit in 0..=expected.len() + 1 {
                let search = LogQuery {
                    text: (!query.is_empty()).then(|| query.into()),
                    limit,
                    ..all()
                };
                let newest: Vec<u64> = expected.iter().copied().take(limit).collect();
                assert_eq!(found(&index, &search), newest, "{query} limit {limit}");
            }
        }
    }

    #[test]
    fn equal_times_rank_the_later_arrival_first_as_the_backward_scan_does() {
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        let mut records = fixture();
        for record in &mut records {
            record.time_unix_nano = BASE_UNIX_NANO;
        }
        index.add(records.iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        for query in [
            LogQuery { limit: 3, ..all() },
            LogQuery {
                limit: 3,
                ..text("\"payment gateway\"")
            },
        ] {
            let expected: Vec<u64> = {
                let mut matching: Vec<u64> = records
                    .iter()
                    .filter(|record| matches_in_memory(&query, record))
                    .map(|record| numbers(std::slice::from_ref(record))[0])
                    .collect();
                matching.reverse();
                matching.truncate(3);
                matching
            };
            assert!(!expected.is_empty());
            assert_eq!(found(&index, &query), expected, "{:?}", query.text);
        }
    }

    #[test]
    fn added_records_are_invisible_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        index.add(fixture().iter().map(|r| (r, 0))).unwrap();
        assert_eq!(index.num_docs(), 0);
        assert!(index.search(&all()).unwrap().is_empty());
        index.commit().unwrap();
        assert_eq!(index.num_docs(), 10);
    }

    #[test]
    fn exact_fields_find_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let by = |query: LogQuery| found(&index, &query);
        assert_eq!(
            by(LogQuery {
                trace_id: Some(trace_id(3)),
                ..all()
            }),
            [3]
        );
        assert_eq!(
            by(LogQuery {
                trace_id: Some(trace_id(4)),
                ..all()
            }),
            [0u64; 0]
        );
        assert_eq!(
            by(LogQuery {
                span_id: Some(span_id(7)),
                ..all()
            }),
            [7]
        );
        assert_eq!(
            by(LogQuery {
                correlation_id: Some("req-9".into()),
                ..all()
            }),
            [9]
        );
        assert_eq!(
            by(LogQuery {
                service_name: Some("cart".into()),
                ..all()
            }),
            [2]
        );
        assert_eq!(
            by(LogQuery {
                service_name: Some("checkout".into()),
                ..all()
            }),
            [10, 9, 8, 7, 6, 5, 4, 3, 1]
        );
        assert_eq!(
            by(LogQuery {
                min_severity_number: Some(13),
                ..all()
            }),
            [6, 3]
        );
        let untraced = index.search(&LogQuery {
            correlation_id: Some("req-4".into()),
            ..all()
        });
        assert_eq!(untraced.unwrap(), [fixture()[3].clone()]);
    }

    #[test]
    fn time_range_is_inclusive_start_exclusive_end_on_effective_time() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let range = |start: Option<u64>, end: Option<u64>| {
            let query = LogQuery {
                start_unix_nano: start,
                end_unix_nano: end,
                ..all()
            };
            found(&index, &query)
        };
        let at = |seconds: u64| Some(BASE_UNIX_NANO + seconds * SECOND);
        assert_eq!(range(at(3), at(6)), [5, 4, 3]);
        assert_eq!(range(at(9), None), [10, 9]);
        assert_eq!(range(None, at(2)), [1]);
        // Record 5 has only an observed time: BASE + 5 s + 5 ns.
        let observed = BASE_UNIX_NANO + 5 * SECOND + 5;
        assert_eq!(range(Some(observed), Some(observed + 1)), [5]);
        assert_eq!(range(Some(observed + 1), at(6)), [0u64; 0]);
    }

    #[test]
    fn full_text_ands_terms_and_matches_phrases() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let by = |query: &str| found(&index, &text(query));
        assert_eq!(by("payment"), [8, 7, 6, 3]);
        assert_eq!(by("PAYMENT gateway"), [8, 6]);
        assert_eq!(by("\"payment gateway\""), [8, 6]);
        assert_eq!(by("\"gateway payment\""), [0u64; 0]);
        assert_eq!(by("\"declined by issuer\""), [10, 3]);
        assert_eq!(by("payment -declined"), [8, 7, 6]);
        assert_eq!(by("reset OR timeout"), [8, 5]);
        assert_eq!(by("severity_text:ERROR"), [3]);
        assert_eq!(
            by("attributes.http.method:GET AND attributes.http.status_code:200").len(),
            10
        );
    }

    #[test]
    fn filters_combine() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let query = LogQuery {
            service_name: Some("checkout".into()),
            text: Some("payment".into()),
            min_severity_number: Some(13),
            ..all()
        };
        assert_eq!(found(&index, &query), [6, 3]);
        let later = LogQuery {
            start_unix_nano: Some(BASE_UNIX_NANO + 4 * SECOND),
            ..query
        };
        assert_eq!(found(&index, &later), [6]);
    }

    #[test]
    fn a_reopened_index_still_finds_everything() {
        let dir = tempfile::tempdir().unwrap();
        drop(indexed_fixture(dir.path()));
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        assert_eq!(index.num_docs(), 10);
        assert_eq!(found(&index, &text("payment")), [8, 7, 6, 3]);
        assert_eq!(
            found(
                &index,
                &LogQuery {
                    trace_id: Some(trace_id(3)),
                    ..all()
                }
            ),
            [3]
        );
    }

    #[test]
    fn ids_and_the_correlation_attribute_are_found_through_query_text() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        assert_eq!(index.format(), 8);
        let by = |query: &str| found(&index, &text(query));
        assert_eq!(by(&format!("trace_id:{}", trace_id(3))), [3]);
        assert_eq!(by(&format!("span_id:{} user", span_id(9))), [9]);
        let upper = trace_id(3).to_string().to_uppercase();
        assert_eq!(by(&format!("trace_id:{upper}")), [0u64; 0]);
        assert_eq!(by("trace_id:abc"), [0u64; 0]);
        // The correlation attribute is indexed once, as the correlation id, yet found by key.
        assert_eq!(by("attributes.request.id:req-3"), [3]);
        assert_eq!(by("attributes.x-request-id:req-7"), [7]);
        assert_eq!(by("attributes.request.id:req-7"), [0u64; 0]);
        assert_eq!(by("attributes.x-request-id:req-3"), [0u64; 0]);
        assert_eq!(by("payment -attributes.request.id:req-3"), [8, 7, 6]);
        assert_eq!(
            by("attributes.request.id:req-3 OR attributes.x-request-id:req-7"),
            [7, 3]
        );
        let attribute_filter = LogQuery {
            attributes: vec![("request.id".into(), "req-9".into())],
            ..all()
        };
        assert_eq!(found(&index, &attribute_filter), [9]);
    }

    #[test]
    fn phrases_without_body_positions_are_checked_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        assert!(!index.fields.body_positions());
        // Records 6 and 8 hold "payment gateway", never "gateway payment"; only 8 holds
        // "timeout to". The index finds both records, the check keeps 8.
        let phrase = text("\"gateway payment\" OR \"timeout to\"");
        assert_eq!(found(&index, &phrase), [8]);
        let matches = index.timed_matches(&phrase).unwrap();
        assert_eq!(matches.hits.len(), 2, "the index finds the superset");
        let kept: Vec<LogRecord> = matches
            .hits
            .iter()
            .filter_map(|&(_, address)| matches.record(address).unwrap())
            .collect();
        assert_eq!(numbers(&kept), [8]);
        // Columns alone cannot tell: the caller reads the records instead.
        assert!(index.stream_hits(&phrase).unwrap().is_none());
        let words = text("payment gateway");
        assert_eq!(index.stream_hits(&words).unwrap().unwrap().len(), 2);
        assert!(!index.timed_matches(&words).unwrap().source.checks());
        // The limit counts matches, not candidates.
        let newest = LogQuery {
            limit: 1,
            ..text("\"declined by\"")
        };
        assert_eq!(found(&index, &newest), [10]);
    }

    /// Two values of `id(n)` (for some n) whose digests (of the current format) are equal: a
    /// birthday search over 24 bits, met within a few thousand values.
    fn digest_collision<T>(id: impl Fn(u64) -> T, bytes: impl Fn(&T) -> Vec<u8>) -> (T, T) {
        let digest_bytes = super::super::schema::LogFields::new().id_digest_bytes();
        let mut seen = std::collections::HashMap::new();
        for n in 0.. {
            let value = id(n);
            let digest = super::super::schema::IdDigest::of(&bytes(&value), digest_bytes);
            let digest = digest.as_ref().to_vec();
            if let Some(earlier) = seen.insert(digest, n) {
                return (id(earlier), value);
            }
        }
        unreachable!()
    }

    #[test]
    fn ids_sharing_a_digest_are_told_apart_on_every_path() {
        let (first_request, second_request) = digest_collision(
            |n| format!("req-{n}"),
            |id: &String| id.clone().into_bytes(),
        );
        let (first_trace, second_trace) =
            digest_collision(trace_id, |id: &crate::model::TraceId| id.0.to_vec());
        let mut records = fixture()[..2].to_vec();
        for (record, (request, trace)) in records.iter_mut().zip([
            (&first_request, first_trace),
            (&second_request, second_trace),
        ]) {
            record.correlation_id = Some(request.clone());
            record.trace_id = Some(trace);
            record.attributes.push(crate::model::Attribute::string(
                "request.id",
                request.clone(),
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        index.add(records.iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        assert!(index.fields.id_digests());

        let by_request = |id: &str| LogQuery {
            correlation_id: Some(id.into()),
            ..all()
        };
        let by_trace = |id| LogQuery {
            trace_id: Some(id),
            ..all()
        };
        // Records are told by their correlation ids: the first record's is `first_request`.
        let found = |query: &LogQuery| -> Vec<String> {
            let records = index.search(query).unwrap();
            records
                .into_iter()
                .filter_map(|r| r.correlation_id)
                .collect()
        };
        let (first, second) = (vec![first_request.clone()], vec![second_request.clone()]);
        assert_eq!(found(&by_request(&first_request)), first);
        assert_eq!(found(&by_request(&second_request)), second);
        assert_eq!(found(&by_trace(first_trace)), first);
        assert_eq!(found(&by_trace(second_trace)), second);
        let by = |query: String| found(&text(&query));
        assert_eq!(by(format!("correlation_id:\"{second_request}\"")), second);
        assert_eq!(
            by(format!("attributes.request.id:\"{first_request}\"")),
            first
        );
        assert_eq!(by(format!("trace_id:{second_trace}")), second);
        // An excluded id excludes its own records only.
        assert_eq!(by(format!("* -trace_id:{first_trace}")), second);
        assert_eq!(
            by(format!("* -attributes.request.id:\"{second_request}\"")),
            first
        );
        // The index finds both records; the check keeps one, and columns alone cannot tell.
        let matches = index.timed_matches(&by_request(&first_request)).unwrap();
        assert_eq!(matches.hits.len(), 2, "the index finds the superset");
        assert!(matches.source.checks());
        assert!(index.stream_hits(&by_trace(first_trace)).unwrap().is_none());
        // Queries without an id still read the columns, attribute filters included, unless
        // the attribute is one some record took its correlation id from.
        assert!(index.stream_hits(&all()).unwrap().is_some());
        let attribute = |key: &str, value: &str| LogQuery {
            attributes: vec![(key.into(), value.into())],
            ..all()
        };
        let by_method = attribute("http.method", "GET");
        assert_eq!(index.stream_hits(&by_method).unwrap().unwrap().len(), 2);
        assert!(
            index
                .stream_hits(&text("* -attributes.http.method:GET"))
                .unwrap()
                .is_some()
        );
        let by_request_attribute = attribute("request.id", &first_request);
        assert!(index.stream_hits(&by_request_attribute).unwrap().is_none());
        assert_eq!(found(&by_request_attribute), first);
    }

    /// The pinned index of `format` (`testdata/log_index_v<format>`, the plain fixture),
    /// copied out.
    fn pinned(dir: &Path, format: u32) -> LogIndex {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(format!("log_index_v{format}"));
        for entry in std::fs::read_dir(source).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let index = LogIndex::open(dir, &LogIndexConfig::default()).unwrap();
        assert_eq!(index.format(), format);
        index
    }

    fn pinned_format_3(dir: &Path) -> LogIndex {
        pinned(dir, 3)
    }

    #[test]
    fn records_are_stored_in_the_form_of_their_index_format() {
        // Format 4 partitions keep taking records in the stored form older binaries read.
        let dir = tempfile::tempdir().unwrap();
        let format_4 = pinned(dir.path(), 4);
        let mut scratch = Vec::new();
        format_4
            .fields
            .to_document(&fixture()[0], 0, &mut scratch)
            .unwrap();
        assert_eq!(scratch[0], 1, "stored format 1");
        let dir = tempfile::tempdir().unwrap();
        let format_5 = pinned(dir.path(), 5);
        let document = format_5
            .fields
            .to_document(&fixture()[0], 0, &mut scratch)
            .unwrap();
        assert_eq!(scratch[0], 2, "stored format 2");
        let record_field = format_5.fields.record.unwrap();
        assert!(document.get_first(record_field).is_some());
        // From format 6 records are stored by the batch: a record's document stores nothing.
        let current = super::super::schema::LogFields::new();
        let document = current.to_document(&fixture()[0], 0, &mut scratch).unwrap();
        assert!(scratch.is_empty());
        let batches = current.batches.unwrap();
        assert!(document.get_first(batches.records).is_none());
    }

    /// Batch documents in the committed index.
    fn batch_documents(index: &LogIndex) -> u64 {
        let marker = index.fields.batches.unwrap().marker_term();
        index.reader.searcher().doc_freq(&marker).unwrap()
    }

    #[test]
    fn newest_first_pages_match_a_full_sort_across_the_ranges_of_large_segments() {
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        // Arrival order only roughly time order: times jitter over ~3,000 records (blocks
        // overlap in time), every 997th record is an hour old, and an early one is the
        // newest of all.
        let mut records = crate::logs::test_records::realistic_records(21_000, 5);
        let mut noise = 0x2545_F491_4F6C_DD1Du64;
        for (n, record) in (0u64..).zip(records.iter_mut()) {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let slot = n + noise % 3_000;
            record.time_unix_nano = BASE_UNIX_NANO + 3_600_000_000_000 + slot * 100_000 + n;
            if n % 997 == 0 {
                record.time_unix_nano -= 3_600_000_000_000;
            }
        }
        records[5].time_unix_nano = BASE_UNIX_NANO + 3_600_000_000_000 * 2;
        // Most of them in one merged segment of several blocks, the rest in a small one.
        for part in records[..18_000].chunks(6_000) {
            index.add(part.iter().map(|r| (r, 0))).unwrap();
            index.commit().unwrap();
        }
        assert!(merge_quiet(&index) >= 3);
        index.add(records[18_000..].iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        let expected = |query: &LogQuery| -> Vec<u64> {
            let mut times: Vec<u64> = records
                .iter()
                .filter(|r| query.trace_id.is_none_or(|id| r.trace_id == Some(id)))
                .filter(|r| {
                    query
                        .min_severity_number
                        .is_none_or(|n| r.severity_number >= n)
                })
                .map(LogRecord::effective_time_unix_nano)
                .filter(|&t| query.start_unix_nano.is_none_or(|start| t >= start))
                .filter(|&t| query.end_unix_nano.is_none_or(|end| t < end))
                .collect();
            times.sort_unstable_by_key(|&t| std::cmp::Reverse(t));
            times.truncate(query.limit);
            times
        };
        let middle = BASE_UNIX_NANO + 3_600_000_000_000 + 9_000 * 100_000;
        let queries = [
            LogQuery { limit: 1, ..all() },
            LogQuery {
                limit: 100,
                ..all()
            },
            LogQuery {
                limit: 5_000,
                ..all()
            },
            LogQuery {
                limit: 30_000,
                ..all()
            },
            LogQuery {
                min_severity_number: Some(13),
                ..all()
            },
            LogQuery {
                start_unix_nano: Some(middle - 2_000 * 100_000),
                end_unix_nano: Some(middle),
                limit: 300,
                ..all()
            },
            LogQuery {
                end_unix_nano: Some(BASE_UNIX_NANO + 3_600_000_000_000),
                ..all()
            },
            LogQuery {
                trace_id: records[9_001].trace_id,
                ..all()
            },
        ];
        for query in &queries {
            let found: Vec<u64> = index
                .search(query)
                .unwrap()
                .iter()
                .map(LogRecord::effective_time_unix_nano)
                .collect();
            assert_eq!(found, expected(query), "{query:?}");
        }
    }

    #[test]
    fn batched_records_read_back_across_batches_segments_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        // Three adds in two commits: batches of at most 1,024 records (fewer when they reach
        // the byte bound), the last of each add smaller, and three segments.
        let records = crate::logs::test_records::realistic_records(3_000, 5);
        let (first, rest) = records.split_at(1_100);
        let (second, third) = rest.split_at(1_300);
        index.add(first.iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        index.add(second.iter().map(|r| (r, 0))).unwrap();
        index.add(third.iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        assert_eq!(index.num_docs(), 3_000);
        // A batch ends at 1,024 records or once its records' estimated bytes reach the bound.
        let batches: u64 = [first, second, third]
            .iter()
            .map(|add| {
                let (mut batches, mut count, mut bytes) = (0, 0, 0);
                for record in add.iter() {
                    count += 1;
                    bytes += record.estimated_bytes();
                    if count == record_batch::MAX_RECORDS || bytes >= record_batch::MAX_BYTES {
                        (batches, count, bytes) = (batches + 1, 0, 0);
                    }
                }
                batches + u64::from(count > 0)
            })
            .sum();
        assert!(batches >= 5);
        assert_eq!(batch_documents(&index), batches);
        let everything = LogQuery {
            limit: 10_000,
            ..all()
        };
        let newest_first = |records: &[LogRecord]| {
            let mut sorted = records.to_vec();
            sorted.sort_by_key(|record| std::cmp::Reverse(record.effective_time_unix_nano()));
            sorted
        };
        let expected = newest_first(&records);
        assert_eq!(index.search(&everything).unwrap(), expected);
        // Merged into one segment: each batch still precedes its records.
        let segments = index.index.searchable_segment_ids().unwrap().len();
        assert!(segments > 1);
        index.close_writer().unwrap();
        assert_eq!(merge_quiet(&index), segments);
        assert_eq!(index.reader.searcher().segment_readers().len(), 1);
        assert_eq!(merge_quiet(&index), 0, "one segment: nothing to merge");
        assert_eq!(index.search(&everything).unwrap(), expected);
        let some = &records[2_345];
        let by_trace = LogQuery {
            trace_id: some.trace_id,
            ..everything.clone()
        };
        let of_trace: Vec<LogRecord> = records
            .iter()
            .filter(|record| record.trace_id == some.trace_id)
            .cloned()
            .collect();
        assert_eq!(index.search(&by_trace).unwrap(), newest_first(&of_trace));
        // A trickle after the merge (under a sixteenth of the records) is not merged in.
        index.add(fixture().iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        index.close_writer().unwrap();
        assert_eq!(merge_quiet(&index), 0);
        assert_eq!(index.segment_count(), 2);
    }

    #[test]
    fn a_quiet_merge_takes_the_small_segments_that_fit_together() {
        let group = |sizes: &[u64]| {
            let named: Vec<(usize, u64)> = sizes.iter().copied().enumerate().collect();
            quiet_merge_group(named)
        };
        // An hour: its tail and its large segment fit in one.
        assert_eq!(
            group(&[785_953, 42_681, 42_675, 24_966, 6_865, 3_797]),
            Some(vec![5, 4, 3, 2, 1, 0])
        );
        // A large day: the tail with the smallest large segment, the others left alone.
        assert_eq!(
            group(&[800_000, 810_000, 805_000, 50_000, 40_000]),
            Some(vec![4, 3, 0])
        );
        // A trickle beside what was merged, under a sixteenth of it; one segment; none.
        assert_eq!(group(&[1_000_000, 20_000]), None);
        assert_eq!(group(&[1_000_000, 70_000]), Some(vec![1, 0]));
        assert_eq!(group(&[5_000]), None);
        assert_eq!(group(&[]), None);
        // Segments too large to merge with anything.
        assert_eq!(group(&[1_400_000, 1_300_000, 100_000]), Some(vec![2, 1]));
        assert_eq!(group(&[2_000_000, 1_600_000]), None);
    }

    /// Merges a quiet index as the store does (candidates, merge, shown, writer closed);
    /// returns how many segments it merged.
    fn merge_quiet(index: &LogIndex) -> usize {
        let Some(ids) = index.quiet_merge_candidates().unwrap() else {
            return 0;
        };
        index.start_merge(&ids, Vec::new()).unwrap().wait().unwrap();
        index.show_merged().unwrap();
        index.close_writer().unwrap();
        ids.len()
    }

    #[test]
    fn no_query_finds_a_batch_document() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        assert_eq!(batch_documents(&index), 2);
        let everything = LogQuery {
            limit: 100,
            ..all()
        };
        // Match-all, in the filters or in the text, with or without exclusions: records only.
        assert_eq!(found(&index, &everything).len(), 10);
        assert_eq!(found(&index, &text("* -payment")), [10, 9, 5, 4, 2, 1]);
        assert_eq!(found(&index, &text("*")).len(), 10);
        let matches = index.timed_matches(&all()).unwrap();
        assert_eq!(matches.hits.len(), 10);
        let streams = index.stream_hits(&all()).unwrap().unwrap();
        assert_eq!(streams.len(), 10);
    }

    #[test]
    fn large_records_make_smaller_batches() {
        let dir = tempfile::tempdir().unwrap();
        let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
        let mut records = fixture();
        for record in &mut records {
            record.body = crate::model::AttributeValue::String("x".repeat(100_000));
        }
        index.add(records.iter().map(|r| (r, 0))).unwrap();
        index.commit().unwrap();
        // Batches end once they reach the byte bound: six records of ~100 kB, then four.
        let per_batch = record_batch::MAX_BYTES.div_ceil(records[0].estimated_bytes());
        assert_eq!(per_batch, 6);
        assert_eq!(batch_documents(&index), 2);
        let everything = LogQuery {
            limit: 100,
            ..all()
        };
        assert_eq!(index.search(&everything).unwrap().len(), 10);
    }

    #[test]
    fn phrases_mean_the_same_with_and_without_positions() {
        let (positions, doc_ids) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let with_positions = pinned_format_3(positions.path());
        let records = crate::logs::test_records::fixture();
        let without = LogIndex::open(doc_ids.path(), &LogIndexConfig::default()).unwrap();
        without.add(records.iter().map(|r| (r, 0))).unwrap();
        without.commit().unwrap();
        let mut newest_first = records.clone();
        newest_first.reverse();
        for query in [
            "\"declined by issuer\"",
            "\"payment gateway\"",
            "\"gateway payment\"",
            "\"gateway payment\"~1",
            "\"gateway payment\"~2",
            "\"issuer declined\"~3",
            "\"connection gateway\"~3",
            "\"connection gateway\"~4",
            "\"payment gat\"*",
            "payment -\"payment gateway\"",
            "\"by peer\" OR \"by issuer\" -bank",
            "user-42 OR \"for bob\"",
            "\"İstanbul timeout\" OR \"user login\"",
        ] {
            let query = text(query);
            let in_memory: Vec<LogRecord> = newest_first
                .iter()
                .filter(|record| matches_in_memory(&query, record))
                .cloned()
                .collect();
            let expected = ids_of(&in_memory);
            assert_eq!(
                ids_of(&without.search(&query).unwrap()),
                expected,
                "{query:?}"
            );
            // tantivy 0.27's phrase scorer trips its own debug assertion (`seek_danger`
            // behind its document) when a phrase is excluded, so those are left out of the
            // comparison with positions; format 4 never hands tantivy a phrase.
            let excludes_a_phrase = query.text.as_deref().is_some_and(|t| t.contains("-\""));
            if !excludes_a_phrase {
                let found = with_positions.search(&query).unwrap();
                assert_eq!(ids_of(&found), expected, "{query:?}");
            }
        }
    }

    fn ids_of(records: &[LogRecord]) -> Vec<String> {
        records
            .iter()
            .map(|record| record.correlation_id.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn invalid_query_text_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        for bad in [
            "(unclosed",
            "nosuchfield:x",
            "-payment",
            "severity_number:high",
        ] {
            let error = index.search(&text(bad)).unwrap_err();
            assert!(error.is_invalid_query(), "{bad}: {error}");
        }
        let too_small = LogIndexConfig {
            writer_memory_bytes: 1 << 20,
        };
        let other = tempfile::tempdir().unwrap();
        let error = LogIndex::open(other.path(), &too_small).unwrap_err();
        assert!(!error.is_invalid_query());
    }

    #[test]
    fn in_memory_matching_agrees_with_search() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed_fixture(dir.path());
        let queries = [
            all(),
            text("payment"),
            text("payment gateway"),
            text("\"declined by\" issuer"),
            text("\"declined bank\"~2"),
            text("\"gateway payment\""),
            text("payment -\"payment gateway\""),
            text("payment -(\"declined by\" OR gateway)"),
            text("\"payment gat\"*"),
            text("\"connection gateway\"~3"),
            text("\"by peer\" OR \"by issuer\""),
            text("connection -reset"),
            text("reset OR timeout"),
            text("user (alice OR bob)"),
            text("severity_text:ERROR OR severity_text:WARN"),
            text("severity_number:[10 TO *]"),
            text("attributes.http.status_code:200 service_name:cart"),
            text("attributes.request.id:req-3 OR attributes.x-request-id:req-7"),
            text("attributes.http\\.method:GET attributes.request\\.id:req-5"),
            text("payment -attributes.request.id:req-8"),
            text(&format!(
                "trace_id:{} OR span_id:{}",
                trace_id(2),
                span_id(5)
            )),
            text("..."),
            LogQuery {
                trace_id: Some(trace_id(2)),
                ..all()
            },
            LogQuery {
                span_id: Some(span_id(4)),
                ..all()
            },
            LogQuery {
                service_name: Some("cart".into()),
                ..all()
            },
            LogQuery {
                min_severity_number: Some(13),
                text: Some("payment".into()),
                ..all()
            },
            LogQuery {
                start_unix_nano: Some(BASE_UNIX_NANO + 5 * SECOND),
                ..all()
            },
            LogQuery {
                end_unix_nano: Some(BASE_UNIX_NANO + 5 * SECOND + 5),
                ..all()
            },
        ];
        let mut newest_first = fixture();
        newest_first.reverse();
        for query in queries {
            let in_memory: Vec<LogRecord> = newest_first
                .iter()
                .filter(|record| matches_in_memory(&query, record))
                .cloned()
                .collect();
            assert_eq!(numbers(&in_memory), found(&index, &query), "{query:?}");
        }
    }
}
