//! The newest `limit` records a query matches, read segment by segment, the segment with the
//! newest record first. A segment is searched only while it may still hold a record newer than
//! the oldest of those kept: records arrive roughly in time order, so segments (and the merges
//! of neighbouring ones) cover roughly disjoint stretches of time, and a page of a common word
//! over a day reads the few newest segments instead of ranking every match of the day.
//!
//! Ranking: newer first; equal times, the later arrival first (the higher segment ordinal,
//! then the higher document id), as the backward scan that serves the next pages orders them.

use std::cmp::Reverse;
use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::Weight;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use super::LogIndexError;
use super::record_source::RecordSource;
use super::schema::TIMESTAMP;
use super::timed_matches::{TimedDocs, TimedHit};
use crate::model::LogRecord;

/// The newest `limit` records among the matches of `weight` in `source`'s searcher whose
/// time lies in `range` (start included, end excluded: the query says so too; the range only
/// bounds which segments are worth reading), newest first. When `source` checks its hits (the
/// index found a superset), candidates are checked newest first until `limit` pass.
pub(super) fn newest_records(
    weight: &dyn Weight,
    limit: usize,
    range: (u64, u64),
    source: &RecordSource,
) -> Result<Vec<LogRecord>, LogIndexError> {
    let mut kept: Vec<TimedHit> = Vec::new();
    let mut loaded: HashMap<DocAddress, LogRecord> = HashMap::new();
    for (ordinal, newest_time) in segments_newest_first(source, range)? {
        let newest_possible = (newest_time, DocAddress::new(ordinal, DocId::MAX));
        if kept.len() >= limit && kept.last().is_some_and(|&oldest| oldest >= newest_possible) {
            // This segment and every one after it hold nothing newer than the oldest kept.
            break;
        }
        let segment = source.searcher.segment_reader(ordinal);
        let found = if source.checks() {
            let mut hits = TimedDocs.collect_segment(weight, ordinal, segment)?;
            hits.sort_unstable_by_key(|&hit| Reverse(hit));
            let mut passed = Vec::new();
            for hit in hits {
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
            NewestDocs { limit }.collect_segment(weight, ordinal, segment)?
        };
        for (_, dropped) in merge_newest(&mut kept, found, limit) {
            loaded.remove(&dropped);
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

/// The segments that may hold a record in `range`, by the newest time they may hold there,
/// newest first.
fn segments_newest_first(
    source: &RecordSource,
    (start, end): (u64, u64),
) -> Result<Vec<(SegmentOrdinal, u64)>, LogIndexError> {
    let mut segments = Vec::new();
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
        segments.push((ordinal, times.max_value().min(end.saturating_sub(1))));
    }
    segments.sort_unstable_by_key(|&(ordinal, time)| Reverse((time, ordinal)));
    Ok(segments)
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

/// Collects the newest `limit` matches of a segment, newest first: equal times rank the
/// higher document id (the later arrival) first. tantivy's `TopDocs` keeps the lower one.
struct NewestDocs {
    limit: usize,
}

impl Collector for NewestDocs {
    type Fruit = Vec<TimedHit>;
    type Child = NewestSegmentDocs;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<NewestSegmentDocs> {
        Ok(NewestSegmentDocs {
            segment_ord,
            times: segment.fast_fields().u64(TIMESTAMP)?,
            newest: NewestKeys::new(self.limit),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<TimedHit>>) -> tantivy::Result<Vec<TimedHit>> {
        let mut kept = Vec::new();
        for fruit in fruits {
            merge_newest(&mut kept, fruit, self.limit);
        }
        Ok(kept)
    }
}

struct NewestSegmentDocs {
    segment_ord: SegmentOrdinal,
    times: Column<u64>,
    newest: NewestKeys,
}

impl SegmentCollector for NewestSegmentDocs {
    type Fruit = Vec<TimedHit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        // Every document has a timestamp; a missing one ranks last rather than vanishing.
        self.newest.offer((self.times.first(doc).unwrap_or(0), doc));
    }

    fn harvest(self) -> Vec<TimedHit> {
        let segment_ord = self.segment_ord;
        self.newest
            .into_newest_first()
            .into_iter()
            .map(|(time, doc)| (time, DocAddress::new(segment_ord, doc)))
            .collect()
    }
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
    fn merging_keeps_the_newest_and_returns_the_rest() {
        let mut kept = hits(&[(9, 0, 1), (5, 0, 0)]);
        let dropped = merge_newest(&mut kept, hits(&[(9, 1, 4), (7, 1, 3), (1, 1, 0)]), 3);
        assert_eq!(kept, hits(&[(9, 1, 4), (9, 0, 1), (7, 1, 3)]));
        assert_eq!(dropped, hits(&[(5, 0, 0), (1, 1, 0)]));
        let dropped = merge_newest(&mut kept, Vec::new(), 2);
        assert_eq!(dropped, hits(&[(7, 1, 3)]));
    }
}
