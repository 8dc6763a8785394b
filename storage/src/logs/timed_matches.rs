//! Every committed record a query matches, as (time, address) pairs read from the timestamp
//! column, for scans that visit matches in time order and load each record only when reached.
//!
//! The collector reads one fast-field value per match and nothing else; records are decoded
//! one by one by [`TimedMatches::record`] (through a [`RecordSource`]), so a scan that stops
//! early (a page of a log query) loads only what it returns.

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use super::LogIndexError;
use super::record_source::RecordSource;
use super::schema::{LEVEL, LINE_BYTES, STREAM_ID, TIMESTAMP};
use crate::model::LogRecord;

/// One matching record: its effective time and where it is stored.
pub type TimedHit = (u64, DocAddress);

/// The matches of one query against one searcher, unordered.
pub struct TimedMatches {
    pub(super) source: RecordSource,
    /// The matches, in the order segments were visited: a superset of the query's answer
    /// when the source checks its records.
    pub hits: Vec<TimedHit>,
}

impl TimedMatches {
    /// Loads and decodes the record at `address` (one of [`Self::hits`]); `None` when the
    /// record fails the query (a hit of a superset).
    pub fn record(&self, address: DocAddress) -> Result<Option<LogRecord>, LogIndexError> {
        self.source.record(address)
    }
}

/// Collects (timestamp, address) for every matching document.
pub(super) struct TimedDocs;

impl Collector for TimedDocs {
    type Fruit = Vec<TimedHit>;
    type Child = TimedSegmentDocs;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<TimedSegmentDocs> {
        Ok(TimedSegmentDocs {
            segment_ord,
            times: segment.fast_fields().u64(TIMESTAMP)?,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<TimedHit>>) -> tantivy::Result<Vec<TimedHit>> {
        Ok(fruits.concat())
    }
}

pub(super) struct TimedSegmentDocs {
    segment_ord: SegmentOrdinal,
    times: Column<u64>,
    hits: Vec<TimedHit>,
}

impl SegmentCollector for TimedSegmentDocs {
    type Fruit = Vec<TimedHit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        // Every document has a timestamp; a missing one sorts first rather than vanishing.
        let time = self.times.first(doc).unwrap_or(0);
        self.hits
            .push((time, DocAddress::new(self.segment_ord, doc)));
    }

    fn harvest(self) -> Vec<TimedHit> {
        self.hits
    }
}

/// One matching record as the stream-level readers see it: (time, stream id, line bytes,
/// level code).
pub type StreamHit = (u64, u64, u64, u64);

/// Collects (timestamp, stream id, line bytes, level) of every matching document of a format
/// 2 index: four fast-field reads per match, no record loaded.
pub(super) struct StreamDocs;

impl Collector for StreamDocs {
    type Fruit = Vec<StreamHit>;
    type Child = StreamSegmentDocs;

    fn for_segment(
        &self,
        _segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<StreamSegmentDocs> {
        let fast = segment.fast_fields();
        Ok(StreamSegmentDocs {
            times: fast.u64(TIMESTAMP)?,
            streams: fast.u64(STREAM_ID)?,
            bytes: fast.u64(LINE_BYTES)?,
            levels: fast.u64(LEVEL)?,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<StreamHit>>) -> tantivy::Result<Vec<StreamHit>> {
        Ok(fruits.concat())
    }
}

pub(super) struct StreamSegmentDocs {
    times: Column<u64>,
    streams: Column<u64>,
    bytes: Column<u64>,
    levels: Column<u64>,
    hits: Vec<StreamHit>,
}

impl SegmentCollector for StreamSegmentDocs {
    type Fruit = Vec<StreamHit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.hits.push((
            self.times.first(doc).unwrap_or(0),
            self.streams.first(doc).unwrap_or(u64::MAX),
            self.bytes.first(doc).unwrap_or(0),
            self.levels.first(doc).unwrap_or(0),
        ));
    }

    fn harvest(self) -> Vec<StreamHit> {
        self.hits
    }
}
