//! Records stored by the batch, field by field (index format 6).
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
//! A batch is written as one byte ([`BATCH_V1`]) followed by the [postcard] encoding of a
//! [`Head`], then the records' other fields ([`Rest`], postcard, back to back), then their
//! bodies (postcard [`AttributeValue`]s, back to back); the head holds the byte length of each.
//! postcard is not self-describing: the field order and types of [`Head`] and [`Rest`] are the
//! format, pinned by the test `the_encoding_is_pinned`.
//!
//! A record is read by parsing its batch's head once ([`RecordBatch::parse`]: lengths become
//! offsets, the ids and times are decoded) and decoding only that record's two slices.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::LogIndexError;
use super::stored_record::{StoredCorrelation, take_all};
use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

/// The format byte of a batch (apart from the single records' 1, 2 and `{`).
pub(super) const BATCH_V1: u8 = 0x10;
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

/// Writes `records` (in their order) as one batch into `out`, which is cleared first.
pub(crate) fn encode(records: &[&LogRecord], out: &mut Vec<u8>) -> Result<(), LogIndexError> {
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
        let rest = Rest {
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
        };
        let before = rests.len();
        postcard::to_io(&rest, &mut rests).map_err(encode_error)?;
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
    body: Range<usize>,
}

/// A batch read back: its bytes and where each record is in them.
#[derive(Debug)]
pub(crate) struct RecordBatch {
    bytes: Vec<u8>,
    groups: Vec<(Arc<Resource>, Arc<InstrumentationScope>)>,
    rows: Vec<Row>,
}

impl RecordBatch {
    /// Parses the head of a batch written by [`encode`].
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, LogIndexError> {
        match bytes.first() {
            Some(&BATCH_V1) => {}
            Some(other) => {
                return Err(LogIndexError::corrupt(format!(
                    "unknown batch format byte {other:#04x}"
                )));
            }
            None => return Err(LogIndexError::corrupt("an empty batch")),
        }
        let (head, tail) = postcard::take_from_bytes::<OwnedHead>(&bytes[1..])
            .map_err(|error| LogIndexError::corrupt(format!("batch head: {error}")))?;
        let count = head.group.len();
        let columns = [
            head.time_delta.len(),
            head.trace_id.len(),
            head.span_id.len(),
            head.rest_bytes.len(),
            head.body_bytes.len(),
        ];
        if columns.iter().any(|&len| len != count) {
            return Err(LogIndexError::corrupt(format!(
                "batch columns of unequal lengths {count} and {columns:?}"
            )));
        }
        let sum = |lengths: &[u32]| lengths.iter().map(|&len| len as usize).sum::<usize>();
        let (rest_total, body_total) = (sum(&head.rest_bytes), sum(&head.body_bytes));
        if rest_total + body_total != tail.len() {
            return Err(LogIndexError::corrupt(format!(
                "batch fields of {} bytes where its head names {}",
                tail.len(),
                rest_total + body_total
            )));
        }
        let mut rest_at = bytes.len() - tail.len();
        let mut body_at = rest_at + rest_total;
        let mut time = 0u64;
        let mut rows = Vec::with_capacity(count);
        for index in 0..count {
            let group = head.group[index] as usize;
            if group >= head.groups.len() {
                return Err(LogIndexError::corrupt(format!(
                    "batch group {group} of {}",
                    head.groups.len()
                )));
            }
            time = time.wrapping_add(head.time_delta[index] as u64);
            let (rest_len, body_len) = (
                head.rest_bytes[index] as usize,
                head.body_bytes[index] as usize,
            );
            rows.push(Row {
                time_unix_nano: time,
                group,
                trace_id: head.trace_id[index],
                span_id: head.span_id[index],
                rest: rest_at..rest_at + rest_len,
                body: body_at..body_at + body_len,
            });
            rest_at += rest_len;
            body_at += body_len;
        }
        let groups = head
            .groups
            .into_iter()
            .map(|(resource, scope)| (Arc::new(resource), Arc::new(scope)))
            .collect();
        Ok(Self {
            bytes,
            groups,
            rows,
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
        let body: AttributeValue = take_all(&self.bytes[row.body.clone()])?;
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

    fn encoded(records: &[LogRecord]) -> Vec<u8> {
        let refs: Vec<&LogRecord> = records.iter().collect();
        let mut out = vec![0xee];
        encode(&refs, &mut out).unwrap();
        out
    }

    fn read_back(records: &[LogRecord]) -> Vec<LogRecord> {
        let batch = RecordBatch::parse(encoded(records)).unwrap();
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
        assert_eq!(read_back(&records), records);
        // Any one record reads alone.
        let batch = RecordBatch::parse(encoded(&records)).unwrap();
        assert_eq!(batch.record(7).unwrap(), records[7]);
        assert!(batch.record(records.len()).is_err());
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
        let batch = RecordBatch::parse(encoded(&records)).unwrap();
        assert_eq!(batch.groups.len(), distinct);
        assert!(distinct < records.len());
        // Equal by value though not shared: still one group.
        let mut copies = records.clone();
        for record in &mut copies {
            record.resource = Arc::new((*record.resource).clone());
        }
        let batch = RecordBatch::parse(encoded(&copies)).unwrap();
        assert_eq!(batch.groups.len(), distinct);
        assert_eq!(read_back(&copies), records);
    }

    #[test]
    fn an_empty_batch_reads_back_empty() {
        assert!(read_back(&[]).is_empty());
    }

    #[test]
    fn damaged_batches_are_reported_not_misread() {
        let bytes = encoded(&fixture());
        let mut wrong_byte = bytes.clone();
        wrong_byte[0] = 2;
        let mut extra = bytes.clone();
        extra.push(0);
        for damaged in [
            bytes[..bytes.len() - 1].to_vec(),
            bytes[..3].to_vec(),
            Vec::new(),
            wrong_byte,
            extra,
        ] {
            let error = RecordBatch::parse(damaged).unwrap_err();
            assert!(
                matches!(error, LogIndexError::CorruptRecord { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn the_encoding_is_pinned() {
        // If this fails, the batch format changed: batches already on disk would no longer
        // read. Add a new format byte and keep decoding the old one instead.
        let records = fixture_with_request_ids()[..2].to_vec();
        let bytes = encoded(&records);
        assert_eq!(hex::encode(&bytes), PINNED_BATCH);
        let pinned = hex::decode(PINNED_BATCH).unwrap();
        assert_eq!(read_back_bytes(pinned), records);
    }

    fn read_back_bytes(bytes: Vec<u8>) -> Vec<LogRecord> {
        let batch = RecordBatch::parse(bytes).unwrap();
        (0..batch.len()).map(|i| batch.record(i).unwrap()).collect()
    }

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
