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
//! Version 1 (format 6) is one byte ([`BATCH_V1`]) followed by the [postcard] encoding of a
//! [`Head`], then the records' other fields ([`Rest`], postcard, back to back), then their
//! bodies (postcard [`AttributeValue`]s, back to back); the head holds the byte length of each.
//! postcard is not self-describing: the field order and types of [`Head`] and [`Rest`] are the
//! format, pinned by the test `the_encoding_is_pinned`.
//!
//! Version 2 (format 7, [`v2`]) keeps each column in its own section, compressed apart, the
//! ids uncompressed, and text bodies as [`super::text_columns`]: 77 bytes a record against 105
//! for version 1 on the records measured above.
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
mod v2;

/// The format byte of a version 1 batch (apart from the single records' 1, 2 and `{`).
pub(super) const BATCH_V1: u8 = 0x10;

/// How an index stores its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchVersion {
    /// Format 6: [`BATCH_V1`].
    V1,
    /// Format 7: [`v2::BATCH_V2`].
    V2,
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

/// What precedes the records' fields: the parts every record has, column by column.
/// `G` is the list of (resource, scope) groups, borrowed to encode and owned to decode.
#[derive(Serialize, Deserialize)]
struct Head<G> {
    /// Each distinct (resource, scope) of the batch, once.
    groups: G,
    /// Per record: its group's position in `groups`.
    group: Vec<u32>,
    /// Per record: its event time minus the previous record's (the first's minus 0),
    /// wrapping.
    time_delta: Vec<i64>,
    trace_id: Vec<Option<TraceId>>,
    span_id: Vec<Option<SpanId>>,
    /// Per record: the bytes of its [`Rest`].
    rest_bytes: Vec<u32>,
    /// Per record: the bytes of its body.
    body_bytes: Vec<u32>,
}

type OwnedHead = Head<Vec<(Resource, InstrumentationScope)>>;

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
        BatchVersion::V1 => encode_v1(records, out),
        BatchVersion::V2 => v2::encode(records, out),
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

/// Writes `records` as a version 1 batch.
fn encode_v1(records: &[&LogRecord], out: &mut Vec<u8>) -> Result<(), LogIndexError> {
    let count = records.len();
    let mut head = Head {
        groups: Vec::<(&Resource, &InstrumentationScope)>::new(),
        group: Vec::with_capacity(count),
        time_delta: Vec::with_capacity(count),
        trace_id: Vec::with_capacity(count),
        span_id: Vec::with_capacity(count),
        rest_bytes: Vec::with_capacity(count),
        body_bytes: Vec::with_capacity(count),
    };
    let mut rests = Vec::new();
    let mut bodies = Vec::new();
    let mut previous_time = 0u64;
    for record in records {
        let group = group_of(&mut head.groups, record)?;
        head.group.push(group);
        head.time_delta
            .push(record.time_unix_nano.wrapping_sub(previous_time) as i64);
        previous_time = record.time_unix_nano;
        head.trace_id.push(record.trace_id);
        head.span_id.push(record.span_id);
        let before = rests.len();
        postcard::to_io(&Rest::of(record), &mut rests).map_err(encode_error)?;
        head.rest_bytes.push(length(rests.len() - before)?);
        let before = bodies.len();
        postcard::to_io(&record.body, &mut bodies).map_err(encode_error)?;
        head.body_bytes.push(length(bodies.len() - before)?);
    }
    out.clear();
    out.push(BATCH_V1);
    postcard::to_io(&head, &mut *out).map_err(encode_error)?;
    out.extend_from_slice(&rests);
    out.extend_from_slice(&bodies);
    Ok(())
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

/// One record's place in a parsed batch.
#[derive(Debug)]
struct Row {
    time_unix_nano: u64,
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

/// The columns every record has, as a batch's head holds them, checked and turned into rows.
struct HeadColumns<'a> {
    group_count: usize,
    group: &'a [u32],
    time_delta: &'a [i64],
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
        let columns = [
            self.time_delta.len(),
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
        let mut rows = Vec::with_capacity(count);
        for (index, body) in bodies.enumerate() {
            let group = self.group[index] as usize;
            if group >= self.group_count {
                return Err(LogIndexError::corrupt(format!(
                    "batch group {group} of {}",
                    self.group_count
                )));
            }
            time = time.wrapping_add(self.time_delta[index] as u64);
            let rest_len = self.rest_bytes[index] as usize;
            rows.push(Row {
                time_unix_nano: time,
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
    /// Parses the head of a batch written by [`encode`], of either version.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, LogIndexError> {
        match bytes.first() {
            Some(&BATCH_V1) => Self::parse_v1(bytes),
            Some(&v2::BATCH_V2) => v2::parse(&bytes),
            Some(other) => Err(LogIndexError::corrupt(format!(
                "unknown batch format byte {other:#04x}"
            ))),
            None => Err(LogIndexError::corrupt("an empty batch")),
        }
    }

    fn parse_v1(bytes: Vec<u8>) -> Result<Self, LogIndexError> {
        let (head, tail) = postcard::take_from_bytes::<OwnedHead>(&bytes[1..])
            .map_err(|error| LogIndexError::corrupt(format!("batch head: {error}")))?;
        let (rest_total, body_total) = (total(&head.rest_bytes), total(&head.body_bytes));
        if rest_total + body_total != tail.len() {
            return Err(LogIndexError::corrupt(format!(
                "batch fields of {} bytes where its head names {}",
                tail.len(),
                rest_total + body_total
            )));
        }
        let rest_at = bytes.len() - tail.len();
        let mut body_at = rest_at + rest_total;
        let bodies = head.body_bytes.iter().map(|&len| {
            let range = body_at..body_at + len as usize;
            body_at = range.end;
            BodyPlace::Value(range)
        });
        let rows = HeadColumns {
            group_count: head.groups.len(),
            group: &head.group,
            time_delta: &head.time_delta,
            trace_id: &head.trace_id,
            span_id: &head.span_id,
            rest_bytes: &head.rest_bytes,
            rest_at,
        }
        .rows(bodies)?;
        Ok(Self {
            bytes,
            groups: shared_groups(head.groups),
            rows,
            text: None,
        })
    }

    /// Records in the batch.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Decodes the record at `position`.
    pub(crate) fn record(&self, position: usize) -> Result<LogRecord, LogIndexError> {
        let row = self.rows.get(position).ok_or_else(|| {
            LogIndexError::corrupt(format!(
                "record {position} of a batch of {}",
                self.rows.len()
            ))
        })?;
        let rest: Rest<String, Vec<Attribute>> = take_all(&self.bytes[row.rest.clone()])?;
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
            time_unix_nano: row.time_unix_nano,
            observed_time_unix_nano: row.time_unix_nano.wrapping_add(rest.observed_offset as u64),
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
mod tests {
    use super::*;
    use crate::logs::test_records::{fixture, fixture_with_request_ids};

    const VERSIONS: [BatchVersion; 2] = [BatchVersion::V1, BatchVersion::V2];

    fn encoded(version: BatchVersion, records: &[LogRecord]) -> Vec<u8> {
        let refs: Vec<&LogRecord> = records.iter().collect();
        let mut out = vec![0xee];
        encode(version, &refs, &mut out).unwrap();
        out
    }

    fn read_back(version: BatchVersion, records: &[LogRecord]) -> Vec<LogRecord> {
        let batch = RecordBatch::parse(encoded(version, records)).unwrap();
        assert_eq!(batch.len(), records.len());
        (0..batch.len()).map(|i| batch.record(i).unwrap()).collect()
    }

    #[test]
    fn records_read_back_exactly_one_by_one() {
        let mut records = fixture_with_request_ids();
        records.extend(fixture());
        // Times out of order, at the extremes, observed before the event.
        records[1].time_unix_nano = u64::MAX;
        records[1].observed_time_unix_nano = 0;
        records[2].time_unix_nano = 0;
        records[3].observed_time_unix_nano = records[3].time_unix_nano - 7;
        records[4].trace_id = None;
        records[5].span_id = None;
        records[6].correlation_id = Some("held apart".into());
        records[7].event_name = "order.placed".into();
        records[7].body = AttributeValue::Map(vec![Attribute::string("k", "v")]);
        // Text bodies the text columns refuse, or that are mostly ids and numbers.
        records[8].body = AttributeValue::String("nul \0 inside".into());
        records[9].body = AttributeValue::String(String::new());
        records[10].body =
            AttributeValue::String("order=3fa2b1c4 took=0087ms 18446744073709551615".into());
        records[11].body = AttributeValue::Bytes(vec![0, 1, 2]);
        for version in VERSIONS {
            assert_eq!(read_back(version, &records), records, "{version:?}");
            // Any one record reads alone.
            let batch = RecordBatch::parse(encoded(version, &records)).unwrap();
            assert_eq!(batch.record(7).unwrap(), records[7]);
            assert_eq!(batch.record(10).unwrap(), records[10]);
            assert!(batch.record(records.len()).is_err());
        }
    }

    #[test]
    fn resources_and_scopes_are_kept_once_per_batch() {
        let records = fixture_with_request_ids();
        let distinct = {
            let mut groups: Vec<(&Resource, &InstrumentationScope)> = Vec::new();
            for record in &records {
                let group = (&*record.resource, &*record.scope);
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
            groups.len()
        };
        assert!(distinct < records.len());
        // Equal by value though not shared: still one group.
        let mut copies = records.clone();
        for record in &mut copies {
            record.resource = Arc::new((*record.resource).clone());
        }
        for version in VERSIONS {
            let batch = RecordBatch::parse(encoded(version, &records)).unwrap();
            assert_eq!(batch.groups.len(), distinct);
            let batch = RecordBatch::parse(encoded(version, &copies)).unwrap();
            assert_eq!(batch.groups.len(), distinct);
            assert_eq!(read_back(version, &copies), records);
        }
    }

    #[test]
    fn an_empty_batch_reads_back_empty() {
        for version in VERSIONS {
            assert!(read_back(version, &[]).is_empty());
        }
    }

    #[test]
    fn damaged_batches_are_reported_not_misread() {
        for version in VERSIONS {
            let bytes = encoded(version, &fixture());
            let mut wrong_byte = bytes.clone();
            wrong_byte[0] = 2;
            let mut extra = bytes.clone();
            extra.push(0);
            let mut damaged = vec![
                bytes[..bytes.len() - 1].to_vec(),
                bytes[..3].to_vec(),
                Vec::new(),
                wrong_byte,
                extra,
            ];
            if version == BatchVersion::V2 {
                // Any one byte changed: the sections' lengths, packings, checksums and the
                // columns' own checks find it, or it is a byte of an id, a hex id or a
                // stored section's value, which reads back changed, never a panic.
                for at in 1..bytes.len() {
                    let mut flipped = bytes.clone();
                    flipped[at] ^= 0x5a;
                    if let Ok(batch) = RecordBatch::parse(flipped) {
                        for row in 0..batch.len() {
                            let _ = batch.record(row);
                        }
                    }
                }
                damaged.push(bytes[..bytes.len() / 2].to_vec());
            }
            for damaged in damaged {
                let error = RecordBatch::parse(damaged).unwrap_err();
                assert!(
                    matches!(error, LogIndexError::CorruptRecord { .. }),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn the_encoding_is_pinned() {
        // If this fails, the batch format changed: batches already on disk would no longer
        // read. Add a new format byte and keep decoding the old one instead.
        let records = fixture_with_request_ids()[..2].to_vec();
        let bytes = encoded(BatchVersion::V1, &records);
        assert_eq!(hex::encode(&bytes), PINNED_BATCH);
        let pinned = hex::decode(PINNED_BATCH).unwrap();
        assert_eq!(read_back_bytes(pinned), records);
        // Version 2 is pinned by its sections decompressed: zstd may compress the same bytes
        // differently from one release to the next.
        let bytes = encoded(BatchVersion::V2, &records);
        let pinned = hex::decode(PINNED_BATCH_V2).unwrap();
        assert_eq!(bytes[0], pinned[0]);
        assert_eq!(v2::plain_sections(&bytes), v2::plain_sections(&pinned));
        assert_eq!(read_back_bytes(pinned), records);
    }

    fn read_back_bytes(bytes: Vec<u8>) -> Vec<LogRecord> {
        let batch = RecordBatch::parse(bytes).unwrap();
        (0..batch.len()).map(|i| batch.record(i).unwrap()).collect()
    }

    const PINNED_BATCH_V2: &str = concat!(
        "117101800128b52ffd2480250300740502020c736572766963652e6e616d650108636865636b6f757409686f",
        "7374057765622d3100000b736b657765722e7465737403312e300000000104636172740200010280a8fecfe7",
        "8588a62f80a8d6b90702444402000003004c3f4d10a4f3b0e904a9b3c265320003a5a5a5a5a5a5a5a5000000",
        "0000000001a5a5a5a5a5a5a5a5000000000000000203800000000000000180000000000000025d01880128b5",
        "2ffd248885020054040a1204494e464f030b687474702e6d6574686f640103474554107374617475735f636f",
        "64650390030a726571756573742e696401057265712d3100010001023200010001020200dd11e449ed1c032a",
        "de80aa00004200057573657220066c6f67696e200a7375636365656465642004666f722006616c6963650005",
        "63617274200875706461746564200777697468200220066974656d7300090000010203040506070801000300",
        "00",
    );

    const PINNED_BATCH: &str = concat!(
        "1002020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
        "000b736b657765722e7465737403312e30000000010c736572766963652e6e616d6501046361727400000b73",
        "6b657765722e7465737403312e300000000200010280a8fecfe78588a62f80a8d6b907020110a5a5a5a5a5a5",
        "a5a500000000000000010110a5a5a5a5a5a5a5a5000000000000000202010880000000000000010108800000",
        "000000000202444402201b0a1204494e464f030b687474702e6d6574686f64010347455410687474702e7374",
        "617475735f636f64650390030a726571756573742e696401057265712d3100010001020a1204494e464f030b",
        "687474702e6d6574686f64010347455410687474702e7374617475735f636f64650390030a72657175657374",
        "2e696401057265712d320001000102011e75736572206c6f67696e2073756363656564656420666f7220616c",
        "696365011963617274207570646174656420776974682033206974656d73",
    );
}
