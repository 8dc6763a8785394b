//! The newest `limit` records a query matches, read segment by segment, the segment with the
//! newest record first. A segment is searched only while it may still hold a record newer than
//! the oldest of those kept: records arrive roughly in time order, so segments (and the merges
//! of neighbouring ones) cover roughly disjoint stretches of time, and a page of a common word
//! over a day reads the few newest segments instead of ranking every match of the day.

use std::cmp::Reverse;

use tantivy::collector::{Collector, TopDocs};
use tantivy::query::Weight;
use tantivy::{DocAddress, Order, SegmentOrdinal, SegmentReader};

use super::LogIndexError;
use super::schema::TIMESTAMP;
use super::timed_matches::{TimedDocs, TimedMatches};
use crate::model::LogRecord;

/// The newest `limit` records among the matches of `weight` in `source`'s searcher, newest
/// first (equal times: the later arrival first). When `source` checks its hits (the index
/// found a superset), every candidate is checked, newest first, until `limit` pass.
pub(super) fn newest_records(
    weight: &dyn Weight,
    limit: usize,
    source: &TimedMatches,
) -> Result<Vec<LogRecord>, LogIndexError> {
    let mut kept = NewestKept::new(limit);
    if limit == 0 {
        return Ok(Vec::new());
    }
    for (ordinal, newest_time) in segments_newest_first(source.searcher.segment_readers()) {
        if kept.excludes(newest_time, DocAddress::new(ordinal, u32::MAX)) {
            // This segment and every one after it hold nothing newer than the oldest kept.
            break;
        }
        let segment = source.searcher.segment_reader(ordinal);
        if source.checks() {
            let mut hits = TimedDocs.collect_segment(weight, ordinal, segment)?;
            hits.sort_unstable_by_key(|&hit| Reverse(hit));
            for (time, address) in hits {
                if kept.excludes(time, address) {
                    break;
                }
                if let Some(record) = source.record(address)? {
                    kept.offer(time, address, Some(record));
                }
            }
        } else {
            let newest =
                TopDocs::with_limit(limit).order_by_fast_field::<u64>(TIMESTAMP, Order::Desc);
            // The segment's own fruit is opaque: merging it alone yields the hits.
            let fruit = newest.collect_segment(weight, ordinal, segment)?;
            for (time, address) in newest.merge_fruits(vec![fruit])? {
                // Every document has a timestamp; a missing one sorts last rather than vanishing.
                kept.offer(time.unwrap_or(0), address, None);
            }
        }
    }
    kept.into_records(source)
}

/// Ordinals of the segments holding documents, by their newest record time, newest first.
fn segments_newest_first(segments: &[SegmentReader]) -> Vec<(SegmentOrdinal, u64)> {
    let mut newest: Vec<(SegmentOrdinal, u64)> = segments
        .iter()
        .enumerate()
        .filter(|(_, segment)| segment.num_docs() > 0)
        .filter_map(|(ordinal, segment)| {
            let ordinal = SegmentOrdinal::try_from(ordinal).ok()?;
            // A segment without the column (none is written so) is read last.
            let newest_time = segment
                .fast_fields()
                .u64(TIMESTAMP)
                .map_or(0, |column| column.max_value());
            Some((ordinal, newest_time))
        })
        .collect();
    newest.sort_unstable_by_key(|&(ordinal, time)| Reverse((time, ordinal)));
    newest
}

/// The newest hits offered so far, at most `limit`, newest first, each with its record when
/// it was loaded to be checked.
struct NewestKept {
    limit: usize,
    hits: Vec<(u64, DocAddress, Option<LogRecord>)>,
}

impl NewestKept {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            hits: Vec::with_capacity(limit.saturating_add(1).min(4096)),
        }
    }

    /// Whether a hit at `time` (and `address`, which breaks ties: later arrivals rank first)
    /// can no longer be among the newest `limit`.
    fn excludes(&self, time: u64, address: DocAddress) -> bool {
        self.hits.len() >= self.limit
            && self
                .hits
                .last()
                .is_some_and(|&(oldest, oldest_address, _)| {
                    (time, address) <= (oldest, oldest_address)
                })
    }

    fn offer(&mut self, time: u64, address: DocAddress, record: Option<LogRecord>) {
        if self.excludes(time, address) {
            return;
        }
        let position = self
            .hits
            .partition_point(|&(kept, kept_address, _)| (kept, kept_address) > (time, address));
        self.hits.insert(position, (time, address, record));
        self.hits.truncate(self.limit);
    }

    /// The kept records, newest first; those not loaded yet are loaded now.
    fn into_records(self, source: &TimedMatches) -> Result<Vec<LogRecord>, LogIndexError> {
        let mut records = Vec::with_capacity(self.hits.len());
        for (_, address, record) in self.hits {
            match record {
                Some(record) => records.push(record),
                None => records.extend(source.record(address)?),
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(doc: u32) -> DocAddress {
        DocAddress::new(0, doc)
    }

    fn kept_times(kept: &NewestKept) -> Vec<(u64, u32)> {
        kept.hits
            .iter()
            .map(|&(time, address, _)| (time, address.doc_id))
            .collect()
    }

    #[test]
    fn keeps_the_newest_hits_with_later_arrivals_first_on_ties() {
        let mut kept = NewestKept::new(3);
        for (time, doc) in [(5, 0), (9, 1), (1, 2), (9, 3), (7, 4), (6, 5)] {
            kept.offer(time, address(doc), None);
        }
        assert_eq!(kept_times(&kept), vec![(9, 3), (9, 1), (7, 4)]);
        assert!(kept.excludes(7, address(4)));
        assert!(kept.excludes(6, address(99)));
        assert!(!kept.excludes(7, address(5)));
        assert!(!kept.excludes(8, address(0)));
    }

    #[test]
    fn excludes_nothing_until_full() {
        let mut kept = NewestKept::new(2);
        kept.offer(10, address(0), None);
        assert!(!kept.excludes(0, address(0)));
        kept.offer(3, address(1), None);
        assert!(kept.excludes(2, address(9)));
    }
}
