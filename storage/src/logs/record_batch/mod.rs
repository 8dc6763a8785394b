//! Records stored by the batch, field by field (index formats 6 and 7).
//!
//! tantivy's document store compresses blocks of documents. With one record per document a
//! block interleaves each record's body, random ids, attributes and resource, and zstd finds
//! less to share than when like is next to like. A batch holds up to [`MAX_RECORDS`] records
//! of one add (about [`MAX_BYTES`] of them at most) in one stored document, laid out by kind:
//! each distinct resource and scope once, then per record its group, time (as a distance from
//! the previous record's), trace and span ids, then every record's other fields, then every
//! body. Measured on 200,000 records of the benchmark's LogQL hour in arrival order (zstd
//! level 3, as the store compresses): 121 bytes a record as format 2 rows, 100 as batches of
//! 1,024.
//!
//! Version 1 (format 6, [`v1`]) is one format byte followed by the [postcard] encoding of a
//! head, then the records' other fields ([`Rest`], postcard, back to back), then their
//! bodies (postcard [`AttributeValue`]s, back to back); the head holds the byte length of each.
//! postcard is not self-describing: the field order and types of the heads and [`Rest`] are
//! the format, pinned by the test `the_encoding_is_pinned`.
//!
//! Version 2 (format 7, [`v2`]) keeps each column in its own section, compressed apart, the
//! ids uncompressed, and text bodies as [`super::text_columns`]: on 300,000 records of the
//! same hour, 77 bytes a record against 105 for version 1.
//!
//! A record is read by parsing its batch's head once ([`RecordBatch::parse`]: lengths become
//! offsets, the ids and times are decoded) and decoding only that record's slices.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::LogIndexError;
use super::stored_record::{StoredCorrelation, take_all};
use super::text_columns::{TextColumns, TextPlace};
use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

mod sections;
mod v1;
mod v2;

/// How an index stores its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchVersion {
    /// Format 6: [`v1`].
    V1,
    /// Format 7: [`v2`].
    V2,
    /// Format 8: [`v2`]'s layout without event times, which are the documents' `timestamp`.
    V3,
}

impl BatchVersion {
    /// The first byte of a batch of this version.
    fn format_byte(self) -> u8 {
        match self {
            Self::V1 => v1::BATCH_V1,
            Self::V2 => v2::BATCH_V2,
            Self::V3 => v2::BATCH_V3,
        }
    }
}

/// Records a batch holds at most: enough for zstd to find what records share, few enough
/// that reading one record decompresses and parses little besides.
pub(crate) const MAX_RECORDS: usize = 1024;
/// Bytes (as [`LogRecord::estimated_bytes`] counts them: about twice what a batch takes of a
/// record) after which a batch takes no more records, so a batch of large records stays
/// about one document-store block (256 KiB).
pub(crate) const MAX_BYTES: usize = 512 << 10;
/// Groups a new record's resource and scope are compared with (beside the one it shares
/// pointers with), so a batch of all-distinct resources does not cost a quadratic search.
const GROUPS_COMPARED: usize = 16;

/// A record's fields that are not in the head, nor its body: `T` is text and `A` the
/// attribute list, borrowed to encode and owned to decode.
#[derive(Serialize, Deserialize)]
struct Rest<T, A> {
    /// `observed_time_unix_nano - time_unix_nano`, wrapping.
    observed_offset: i64,
    severity_number: i32,
    severity_text: T,
    attributes: A,
    dropped_attributes_count: u32,
    flags: u32,
    event_name: T,
    correlation: StoredCorrelation<T>,
}

fn encode_error(error: postcard::Error) -> LogIndexError {
    LogIndexError::EncodeRecord(error.to_string())
}

fn length(bytes: usize) -> Result<u32, LogIndexError> {
    u32::try_from(bytes).map_err(|_| LogIndexError::EncodeRecord(format!("{bytes} bytes")))
}

/// Writes `records` (in their order) as one batch of `version` into `out`, which is cleared
/// first.
pub(crate) fn encode(
    version: BatchVersion,
    records: &[&LogRecord],
    out: &mut Vec<u8>,
) -> Result<(), LogIndexError> {
    match version {
        BatchVersion::V1 => v1::encode(records, out),
        BatchVersion::V2 => v2::encode(records, v2::Times::Kept, out),
        BatchVersion::V3 => v2::encode(records, v2::Times::Indexed, out),
    }
}

impl<'a> Rest<&'a str, &'a [Attribute]> {
    /// `record`'s fields that are not in the head, nor its body.
    fn of(record: &'a LogRecord) -> Self {
        Self {
            observed_offset: record
                .observed_time_unix_nano
                .wrapping_sub(record.time_unix_nano) as i64,
            severity_number: record.severity_number,
            severity_text: record.severity_text.as_str(),
            attributes: &record.attributes[..],
            dropped_attributes_count: record.dropped_attributes_count,
            flags: record.flags,
            event_name: record.event_name.as_str(),
            correlation: StoredCorrelation::of(record),
        }
    }
}

/// The columns every version keeps per record, built record by record: its group (of the
/// batch's distinct resources and scopes), its time as a distance from the previous
/// record's, and its [`Rest`].
struct CommonColumns<'a> {
    groups: Vec<(&'a Resource, &'a InstrumentationScope)>,
    group: Vec<u32>,
    /// Per record: its event time minus the previous record's (the first's minus 0),
    /// wrapping.
    time_delta: Vec<i64>,
    /// The records' [`Rest`]s, back to back.
    rests: Vec<u8>,
    rest_bytes: Vec<u32>,
    previous_time: u64,
}

impl<'a> CommonColumns<'a> {
    fn with_capacity(count: usize) -> Self {
        Self {
            groups: Vec::new(),
            group: Vec::with_capacity(count),
            time_delta: Vec::with_capacity(count),
            rests: Vec::new(),
            rest_bytes: Vec::with_capacity(count),
            previous_time: 0,
        }
    }

    fn push(&mut self, record: &'a LogRecord) -> Result<(), LogIndexError> {
        let group = group_of(&mut self.groups, record)?;
        self.group.push(group);
        self.time_delta
            .push(record.time_unix_nano.wrapping_sub(self.previous_time) as i64);
        self.previous_time = record.time_unix_nano;
        let before = self.rests.len();
        postcard::to_io(&Rest::of(record), &mut self.rests).map_err(encode_error)?;
        self.rest_bytes.push(length(self.rests.len() - before)?);
        Ok(())
    }
}

/// The position of `record`'s (resource, scope) in `groups`, added if new: found by pointer
/// (records of one export share them), else by value among the last [`GROUPS_COMPARED`].
fn group_of<'a>(
    groups: &mut Vec<(&'a Resource, &'a InstrumentationScope)>,
    record: &'a LogRecord,
) -> Result<u32, LogIndexError> {
    let (resource, scope) = (&*record.resource, &*record.scope);
    let position = groups
        .iter()
        .rposition(|(r, s)| std::ptr::eq(*r, resource) && std::ptr::eq(*s, scope))
        .or_else(|| {
            let compared = groups.len().saturating_sub(GROUPS_COMPARED);
            groups[compared..]
                .iter()
                .rposition(|(r, s)| *r == resource && *s == scope)
                .map(|position| compared + position)
        });
    let position = match position {
        Some(position) => position,
        None => {
            groups.push((resource, scope));
            groups.len() - 1
        }
    };
    length(position)
}

/// A record's event time in a parsed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowTime {
    /// Kept in the batch (versions 1 and 2).
    Kept(u64),
    /// Its document's `timestamp` (version 3): the record has an event time.
    Indexed,
    /// None (0, version 3): its document's `timestamp` is its observed time.
    Unset,
}

/// One record's place in a parsed batch.
#[derive(Debug)]
struct Row {
    time: RowTime,
    group: usize,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    rest: Range<usize>,
    body: BodyPlace,
}

/// Where a record's body is in a parsed batch.
#[derive(Debug)]
enum BodyPlace {
    /// Its postcard [`AttributeValue`] at this range of the batch's bytes.
    Value(Range<usize>),
    /// A text in the batch's text columns (version 2).
    Text(TextPlace),
}

/// A batch read back: its bytes and where each record is in them.
#[derive(Debug)]
pub(crate) struct RecordBatch {
    /// Version 1: the batch as stored; version 2: its rests, then its non-text bodies.
    bytes: Vec<u8>,
    groups: Vec<(Arc<Resource>, Arc<InstrumentationScope>)>,
    rows: Vec<Row>,
    /// Version 2: the text bodies.
    text: Option<TextColumns>,
}

/// How a batch's head holds its records' event times.
#[derive(Clone, Copy)]
enum HeadTimes<'a> {
    /// Per record: its event time minus the previous record's (the first's minus 0),
    /// wrapping (versions 1 and 2).
    Deltas(&'a [i64]),
    /// The positions, ascending, of the records without an event time; the others' are
    /// their documents' `timestamp` (version 3).
    Indexed { unset: &'a [u32] },
}

/// The columns every record has, as a batch's head holds them, checked and turned into rows.
struct HeadColumns<'a> {
    group_count: usize,
    group: &'a [u32],
    times: HeadTimes<'a>,
    trace_id: &'a [Option<TraceId>],
    span_id: &'a [Option<SpanId>],
    /// Each record's [`Rest`] bytes, which lie back to back from `rest_at`.
    rest_bytes: &'a [u32],
    rest_at: usize,
}

impl HeadColumns<'_> {
    /// The rows, with each record's body from `bodies` (one per record).
    fn rows(
        &self,
        bodies: impl ExactSizeIterator<Item = BodyPlace>,
    ) -> Result<Vec<Row>, LogIndexError> {
        let count = self.group.len();
        let times = match self.times {
            HeadTimes::Deltas(deltas) => deltas.len(),
            HeadTimes::Indexed { unset } => {
                let ascending = unset.windows(2).all(|pair| pair[0] < pair[1]);
                if !ascending || unset.last().is_some_and(|&last| last as usize >= count) {
                    return Err(LogIndexError::corrupt(
                        "batch positions without event times out of order or range",
                    ));
                }
                count
            }
        };
        let columns = [
            times,
            self.trace_id.len(),
            self.span_id.len(),
            self.rest_bytes.len(),
            bodies.len(),
        ];
        if columns.iter().any(|&len| len != count) {
            return Err(LogIndexError::corrupt(format!(
                "batch columns of unequal lengths {count} and {columns:?}"
            )));
        }
        let mut rest_at = self.rest_at;
        let mut time = 0u64;
        let mut unset_left = match self.times {
            HeadTimes::Deltas(_) => &[][..],
            HeadTimes::Indexed { unset } => unset,
        };
        let mut rows = Vec::with_capacity(count);
        for (index, body) in bodies.enumerate() {
            let group = self.group[index] as usize;
            if group >= self.group_count {
                return Err(LogIndexError::corrupt(format!(
                    "batch group {group} of {}",
                    self.group_count
                )));
            }
            let row_time = match self.times {
                HeadTimes::Deltas(deltas) => {
                    time = time.wrapping_add(deltas[index] as u64);
                    RowTime::Kept(time)
                }
                HeadTimes::Indexed { .. } => match unset_left.split_first() {
                    Some((&unset, rest)) if unset as usize == index => {
                        unset_left = rest;
                        RowTime::Unset
                    }
                    _ => RowTime::Indexed,
                },
            };
            let rest_len = self.rest_bytes[index] as usize;
            rows.push(Row {
                time: row_time,
                group,
                trace_id: self.trace_id[index],
                span_id: self.span_id[index],
                rest: rest_at..rest_at + rest_len,
                body,
            });
            rest_at += rest_len;
        }
        Ok(rows)
    }
}

/// The sum of `lengths`.
fn total(lengths: &[u32]) -> usize {
    lengths.iter().map(|&len| len as usize).sum()
}

/// `groups` as a parsed batch shares them with its records.
fn shared_groups(
    groups: Vec<(Resource, InstrumentationScope)>,
) -> Vec<(Arc<Resource>, Arc<InstrumentationScope>)> {
    groups
        .into_iter()
        .map(|(resource, scope)| (Arc::new(resource), Arc::new(scope)))
        .collect()
}

impl RecordBatch {
    /// Parses the head of a batch written by [`encode`] in `version`: a batch of another
    /// version is not where the index's format says it is, so it is reported as damage.
    pub(crate) fn parse(bytes: Vec<u8>, version: BatchVersion) -> Result<Self, LogIndexError> {
        match bytes.first() {
            Some(&byte) if byte == version.format_byte() => match version {
                BatchVersion::V1 => v1::parse(bytes),
                BatchVersion::V2 => v2::parse(&bytes, v2::Times::Kept),
                BatchVersion::V3 => v2::parse(&bytes, v2::Times::Indexed),
            },
            Some(other) => Err(LogIndexError::corrupt(format!(
                "batch format byte {other:#04x} where {version:?} was expected"
            ))),
            None => Err(LogIndexError::corrupt("an empty batch")),
        }
    }

    /// Records in the batch.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Decodes the record at `position`; `indexed_time` is its document's `timestamp`, which a
    /// version 3 batch needs (and the others ignore), and checks against what its head says
    /// (a record with an event time has one other than 0; one without has its observed time
    /// indexed), so a damaged head is reported rather than misread.
    pub(crate) fn record(
        &self,
        position: usize,
        indexed_time: Option<u64>,
    ) -> Result<LogRecord, LogIndexError> {
        let row = self.rows.get(position).ok_or_else(|| {
            LogIndexError::corrupt(format!(
                "record {position} of a batch of {}",
                self.rows.len()
            ))
        })?;
        let time_unix_nano = match row.time {
            RowTime::Kept(time) => time,
            RowTime::Unset => 0,
            RowTime::Indexed => match indexed_time {
                Some(time) if time != 0 => time,
                _ => {
                    return Err(LogIndexError::corrupt(format!(
                        "record {position} has no indexed event time"
                    )));
                }
            },
        };
        let rest: Rest<String, Vec<Attribute>> = take_all(&self.bytes[row.rest.clone()])?;
        let observed_time_unix_nano = time_unix_nano.wrapping_add(rest.observed_offset as u64);
        if let (RowTime::Unset, Some(indexed)) = (row.time, indexed_time)
            && indexed != observed_time_unix_nano
        {
            return Err(LogIndexError::corrupt(format!(
                "record {position} without an event time is indexed at {indexed}, \
                 observed at {observed_time_unix_nano}"
            )));
        }
        let body = match &row.body {
            BodyPlace::Value(range) => take_all(&self.bytes[range.clone()])?,
            BodyPlace::Text(place) => match &self.text {
                Some(text) => AttributeValue::String(text.text(*place)?),
                None => return Err(LogIndexError::corrupt("a text body without text columns")),
            },
        };
        let correlation_id = rest.correlation.resolve(&rest.attributes)?;
        let (resource, scope) = &self.groups[row.group];
        Ok(LogRecord {
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
            time_unix_nano,
            observed_time_unix_nano,
            severity_number: rest.severity_number,
            severity_text: rest.severity_text,
            body,
            attributes: rest.attributes,
            dropped_attributes_count: rest.dropped_attributes_count,
            flags: rest.flags,
            trace_id: row.trace_id,
            span_id: row.span_id,
            event_name: rest.event_name,
            correlation_id,
        })
    }
}

#[cfg(test)]
mod tests;
