//! The newest `limit` records a query matches, read range by range: the newest end of every
//! segment first, then further back. A segment's documents are in arrival order, roughly time
//! order (merges keep each segment's order and put neighbours together), so the newest
//! matches of a segment sit at its end: a range of documents is read only while the
//! documents before it may still hold a record newer than the oldest of those kept (each
//! segment's newest time before every block of documents is kept, [`BlockTimes`]). A page of
//! a common word over a day reads a few thousand documents at the end of the newest segment
//! instead of ranking every match of the day.
//!
//! Ranking: newer first; equal times, the later arrival first (the higher segment ordinal,
//! then the higher document id), as the backward scan that serves the next pages orders them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Cardinality, Column};
use tantivy::index::SegmentId;
use tantivy::query::{Scorer, Weight};
use tantivy::{DocAddress, DocId, DocSet, SegmentOrdinal, SegmentReader, TERMINATED};

use super::LogIndexError;
use super::record_source::RecordSource;
use super::schema::{SEVERITY_NUMBER, TIMESTAMP};
use super::timed_matches::TimedHit;
use crate::model::LogRecord;

/// Documents per block of [`BlockTimes`], and the fewest read from a segment's end at first
/// ([`first_range_docs`]); each further range read of a segment takes twice the one before.
const BLOCK_DOCS: DocId = 4_096;
/// Segments whose block times an index keeps at most; past it they are forgotten (and read
/// again when next needed): merged segments leave the cache this way.
const BLOCK_TIMES_SEGMENTS: usize = 512;

/// What a newest-first read checks on each match's columns itself, left out of the query it
/// runs: tantivy builds a range query's scorer by scanning the column from the segment's
/// first document to the first match, which a read by ranges would repeat for every range.
#[derive(Debug, Clone, Copy)]
pub(super) struct ColumnFilter {
    /// Times from the first (included) to the second (excluded; `u64::MAX`: no end).
    pub(super) times: (u64, u64),
    /// The lowest severity number, if any.
    pub(super) min_severity: Option<i64>,
}

/// The newest `limit` records among the matches of `weight` in `source`'s searcher that pass
/// `filter`, newest first. When `source` checks its hits (the index found a superset),
/// candidates are checked newest first until `limit` pass.
pub(super) fn newest_records(
    weight: &dyn Weight,
    limit: usize,
    filter: ColumnFilter,
    source: &RecordSource,
    block_times: &BlockTimes,
) -> Result<Vec<LogRecord>, LogIndexError> {
    let range = filter.times;
    let mut kept: Vec<TimedHit> = Vec::new();
    let mut loaded: HashMap<DocAddress, LogRecord> = HashMap::new();
    let mut pending = segment_ends(source, range)?;
    while let Some(next) = pending.pop() {
        let newest_possible = (next.newest, DocAddress::new(next.ordinal, DocId::MAX));
        if kept.len() >= limit && kept.last().is_some_and(|&oldest| oldest >= newest_possible) {
            // This range and every one still pending hold nothing newer than the oldest kept.
            break;
        }
        let segment = source.searcher.segment_reader(next.ordinal);
        let scorer = weight.scorer(segment, 1.0)?;
        let read = next
            .docs
            .unwrap_or_else(|| first_range_docs(limit, segment.max_doc(), scorer.size_hint()));
        // Ranges start on a block, so the block times bound exactly what is left before.
        let start = next.end.saturating_sub(read) / BLOCK_DOCS * BLOCK_DOCS;
        let docs = (start, next.end);
        let found = if source.checks() {
            let mut hits = Vec::new();
            visit_range(scorer, segment, docs, filter, |key| hits.push(key))?;
            hits.sort_unstable_by_key(|&hit| Reverse(hit));
            let mut passed = Vec::new();
            for (time, doc) in hits {
                let hit = (time, DocAddress::new(next.ordinal, doc));
                let outranked = kept.len() >= limit && kept.last().is_some_and(|&o| hit <= o);
                if passed.len() >= limit || outranked {
                    break;
                }
                if let Some(record) = source.record(hit.1)? {
                    passed.push(hit);
                    loaded.insert(hit.1, record);
                }
            }
            passed
        } else {
            let mut newest = NewestKeys::new(limit);
            visit_range(scorer, segment, docs, filter, |key| newest.offer(key))?;
            let ordinal = next.ordinal;
            newest
                .into_newest_first()
                .into_iter()
                .map(|(time, doc)| (time, DocAddress::new(ordinal, doc)))
                .collect()
        };
        for (_, dropped) in merge_newest(&mut kept, found, limit) {
            loaded.remove(&dropped);
        }
        let Some(last_before) = start.checked_sub(1) else {
            continue;
        };
        let block_newest = match next.block_newest {
            Some(block_newest) => block_newest,
            None => block_times.of(segment, &segment.fast_fields().u64(TIMESTAMP)?),
        };
        // Documents before `start` are worth reading only if some may be in the time range.
        let newest = block_newest[block_of(last_before)];
        if newest >= range.0 {
            pending.push(PendingRange {
                newest: newest.min(range.1.saturating_sub(1)),
                ordinal: next.ordinal,
                end: start,
                docs: Some(read.saturating_mul(2)),
                block_newest: Some(block_newest),
            });
        }
    }
    let mut records = Vec::with_capacity(kept.len());
    for (_, address) in kept {
        match loaded.remove(&address) {
            Some(record) => records.push(record),
            None => records.extend(source.record(address)?),
        }
    }
    Ok(records)
}

/// The documents of a segment not read yet: those before `end`, none newer than `newest`.
struct PendingRange {
    newest: u64,
    ordinal: SegmentOrdinal,
    end: DocId,
    /// How many documents before `end` to read next (`None`: none read yet, as many as the
    /// query's matches in the segment suggest, [`first_range_docs`]).
    docs: Option<DocId>,
    /// The segment's [`BlockTimes`], once a range before its end is to be read.
    block_newest: Option<Arc<[u64]>>,
}

impl PendingRange {
    fn key(&self) -> (u64, SegmentOrdinal) {
        (self.newest, self.ordinal)
    }
}

impl PartialEq for PendingRange {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for PendingRange {}

impl PartialOrd for PendingRange {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingRange {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Every segment that may hold a record in `range`, none of it read yet, the segment with
/// the newest record first.
fn segment_ends(
    source: &RecordSource,
    (start, end): (u64, u64),
) -> Result<BinaryHeap<PendingRange>, LogIndexError> {
    let mut pending = BinaryHeap::new();
    for (ordinal, segment) in source.searcher.segment_readers().iter().enumerate() {
        let Ok(ordinal) = SegmentOrdinal::try_from(ordinal) else {
            break;
        };
        if segment.num_docs() == 0 {
            continue;
        }
        // The column's bounds cover every document written to the segment (deleted ones too).
        let times = segment.fast_fields().u64(TIMESTAMP)?;
        if times.max_value() < start || times.min_value() >= end {
            continue;
        }
        pending.push(PendingRange {
            newest: times.max_value().min(end.saturating_sub(1)),
            ordinal,
            end: segment.max_doc(),
            docs: None,
            block_newest: None,
        });
    }
    Ok(pending)
}

/// The documents to read first from a segment's end: twice as many as hold `limit` matches
/// when the scorer's `size_hint` (its estimate of the matches among `max_doc`) is spread
/// evenly, at least a block. A rare term's segment is read in one pass, with one scorer.
fn first_range_docs(limit: usize, max_doc: DocId, size_hint: u32) -> DocId {
    let wanted = u64::try_from(limit)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_mul(u64::from(max_doc))
        / u64::from(size_hint.max(1));
    DocId::try_from(wanted)
        .unwrap_or(DocId::MAX)
        .clamp(BLOCK_DOCS.min(max_doc), max_doc)
}

/// Visits the live matches of `scorer` (fresh: on its first match) that pass `filter` among
/// the documents `docs` (start included, end excluded) of `segment`, as (time, document), in
/// document order.
fn visit_range(
    mut scorer: Box<dyn Scorer>,
    segment: &SegmentReader,
    (start, end): (DocId, DocId),
    filter: ColumnFilter,
    mut visit: impl FnMut((u64, DocId)),
) -> Result<(), LogIndexError> {
    let times = segment.fast_fields().u64(TIMESTAMP)?;
    let severities = match filter.min_severity {
        Some(min) => Some((segment.fast_fields().i64(SEVERITY_NUMBER)?, min)),
        None => None,
    };
    let (from, until) = filter.times;
    let alive = segment.alive_bitset();
    let mut doc = scorer.doc();
    if doc < start {
        doc = scorer.seek(start);
    }
    while doc < end && doc != TERMINATED {
        // Every document has a timestamp; a missing one ranks last rather than vanishing.
        let time = times.first(doc).unwrap_or(0);
        let severe_enough = || {
            severities
                .as_ref()
                .is_none_or(|(column, min)| column.first(doc).is_some_and(|s| s >= *min))
        };
        let in_range = time >= from && (until == u64::MAX || time < until);
        if in_range && alive.is_none_or(|alive| alive.is_alive(doc)) && severe_enough() {
            visit((time, doc));
        }
        doc = scorer.advance();
    }
    Ok(())
}

/// The block of [`BlockTimes`] a document is in.
fn block_of(doc: DocId) -> usize {
    usize::try_from(doc / BLOCK_DOCS).unwrap_or(usize::MAX)
}

/// Per segment, the newest time among its documents up to the end of each block of
/// [`BLOCK_DOCS`] (entry `i` covers documents `0..(i + 1) * BLOCK_DOCS`): what a range read
/// newest first knows of the documents before it. Read once per segment (one pass over its
/// time column) and kept, as segments never change.
#[derive(Default)]
pub(super) struct BlockTimes {
    segments: Mutex<HashMap<SegmentId, Arc<[u64]>>>,
}

impl BlockTimes {
    /// The block times of `segment`, whose time column is `times`.
    fn of(&self, segment: &SegmentReader, times: &Column<u64>) -> Arc<[u64]> {
        let id = segment.segment_id();
        let cached = self
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(cached) = cached {
            return cached;
        }
        let newest = Arc::<[u64]>::from(newest_up_to_each_block(segment.max_doc(), times));
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        if segments.len() >= BLOCK_TIMES_SEGMENTS {
            segments.clear();
        }
        segments.insert(id, Arc::clone(&newest));
        newest
    }
}

/// Entry `i`: the newest of `times` among documents `0..(i + 1) * BLOCK_DOCS` (of
/// `max_doc`).
fn newest_up_to_each_block(max_doc: DocId, times: &Column<u64>) -> Vec<u64> {
    let mut newest_so_far = Vec::with_capacity(block_of(max_doc) + 1);
    let mut newest = 0;
    let mut values = Vec::new();
    let mut start = 0;
    while start < max_doc {
        let end = start.saturating_add(BLOCK_DOCS).min(max_doc);
        if times.get_cardinality() == Cardinality::Full {
            values.resize(usize::try_from(end - start).unwrap_or(0), 0);
            times.values.get_range(u64::from(start), &mut values);
            newest = values.iter().copied().fold(newest, u64::max);
        } else {
            newest = (start..end)
                .filter_map(|doc| times.first(doc))
                .fold(newest, u64::max);
        }
        newest_so_far.push(newest);
        start = end;
    }
    newest_so_far
}

/// Merges `found` (newest first) into `kept` (newest first), keeping the newest `limit`;
/// returns what fell out.
fn merge_newest(kept: &mut Vec<TimedHit>, found: Vec<TimedHit>, limit: usize) -> Vec<TimedHit> {
    let mut merged = Vec::with_capacity((kept.len() + found.len()).min(limit));
    let mut dropped = Vec::new();
    let mut older_kept = std::mem::take(kept).into_iter().peekable();
    let mut older_found = found.into_iter().peekable();
    loop {
        let next = match (older_kept.peek(), older_found.peek()) {
            (Some(a), Some(b)) if a >= b => older_kept.next(),
            (Some(_), Some(_)) | (None, Some(_)) => older_found.next(),
            (Some(_), None) => older_kept.next(),
            (None, None) => break,
        };
        let Some(hit) = next else { break };
        if merged.len() < limit {
            merged.push(hit);
        } else {
            dropped.push(hit);
        }
    }
    *kept = merged;
    dropped
}

/// The `limit` greatest (time, doc) keys offered, in amortised constant time per offer: keys
/// gather in a buffer of twice the limit, cut back to the limit whenever it fills, and keys
/// not above the smallest kept at the last cut are turned away at once.
struct NewestKeys {
    limit: usize,
    keys: Vec<(u64, DocId)>,
    floor: Option<(u64, DocId)>,
}

impl NewestKeys {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            keys: Vec::new(),
            floor: None,
        }
    }

    fn offer(&mut self, key: (u64, DocId)) {
        if self.limit == 0 || self.floor.is_some_and(|floor| key <= floor) {
            return;
        }
        self.keys.push(key);
        if self.keys.len() >= self.limit.saturating_mul(2) {
            self.cut();
        }
    }

    /// Keeps the newest `limit` keys (in no order) and raises the floor to the oldest of them.
    fn cut(&mut self) {
        if self.keys.len() > self.limit {
            self.keys
                .select_nth_unstable_by_key(self.limit - 1, |&key| Reverse(key));
            self.keys.truncate(self.limit);
            self.floor = self.keys.iter().min().copied();
        }
    }

    fn into_newest_first(mut self) -> Vec<(u64, DocId)> {
        self.cut();
        self.keys.sort_unstable_by_key(|&key| Reverse(key));
        self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(keys: &[(u64, u32, u32)]) -> Vec<TimedHit> {
        keys.iter()
            .map(|&(time, segment, doc)| (time, DocAddress::new(segment, doc)))
            .collect()
    }

    #[test]
    fn keys_keep_the_newest_with_later_documents_first_on_ties() {
        let mut newest = NewestKeys::new(3);
        for key in [
            (5, 0),
            (9, 1),
            (1, 2),
            (9, 3),
            (7, 4),
            (6, 5),
            (7, 6),
            (2, 7),
            (9, 8),
        ] {
            newest.offer(key);
        }
        assert_eq!(newest.into_newest_first(), vec![(9, 8), (9, 3), (9, 1)]);
        let mut none = NewestKeys::new(0);
        none.offer((1, 1));
        assert!(none.into_newest_first().is_empty());
    }

    #[test]
    fn keys_match_a_full_sort_whatever_the_order_offered() {
        for limit in [1, 2, 5, 17, 100] {
            let keys: Vec<(u64, DocId)> = (0..200u32)
                .map(|doc| ((doc * 7919 % 61) as u64, doc))
                .collect();
            let mut newest = NewestKeys::new(limit);
            keys.iter().for_each(|&key| newest.offer(key));
            let mut expected = keys.clone();
            expected.sort_unstable_by_key(|&key| Reverse(key));
            expected.truncate(limit);
            assert_eq!(newest.into_newest_first(), expected, "limit {limit}");
        }
    }

    #[test]
    fn a_first_range_holds_twice_the_matches_wanted_at_least_a_block_at_most_the_segment() {
        // A word in one record of 50: 100 wanted, 10,000 documents read.
        assert_eq!(first_range_docs(100, 1_000_000, 20_000), 10_000);
        // Dense matches: one block.
        assert_eq!(first_range_docs(100, 1_000_000, 1_000_000), BLOCK_DOCS);
        // A rare term, or none: the whole segment at once.
        assert_eq!(first_range_docs(100, 1_000_000, 3), 1_000_000);
        assert_eq!(first_range_docs(100, 1_000_000, 0), 1_000_000);
        // A segment smaller than a block.
        assert_eq!(first_range_docs(100, 1_000, 1_000), 1_000);
        assert_eq!(first_range_docs(usize::MAX, 5, 5), 5);
    }

    #[test]
    fn merging_keeps_the_newest_and_returns_the_rest() {
        let mut kept = hits(&[(9, 0, 1), (5, 0, 0)]);
        let dropped = merge_newest(&mut kept, hits(&[(9, 1, 4), (7, 1, 3), (1, 1, 0)]), 3);
        assert_eq!(kept, hits(&[(9, 1, 4), (9, 0, 1), (7, 1, 3)]));
        assert_eq!(dropped, hits(&[(5, 0, 0), (1, 1, 0)]));
        let dropped = merge_newest(&mut kept, Vec::new(), 2);
        assert_eq!(dropped, hits(&[(7, 1, 3)]));
    }
}
