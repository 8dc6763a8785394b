//! Version 2 batches (index format 7): each column in its own section ([`super::sections`]),
//! compressed apart; and version 3 (format 8), the same without event times.
//!
//! One byte ([`BATCH_V2`] or [`BATCH_V3`]), then eight sections in this order:
//! 1. the head ([`Head`], postcard, zstd): groups, and per record its group, and the byte
//!    lengths of its rest and (unless its body is text) its body; in version 2 each record's
//!    time delta, in version 3 the positions of the records without an event time (a
//!    record's event time is its document's `timestamp`, which the index keeps anyway: 1.2
//!    bytes a record less on the benchmark's load, where times interleave);
//! 2. the ids, as they are: a bit per record for whether it has a trace id, each trace id's 16
//!    bytes, then the same for span ids (8 bytes);
//! 3. the records' [`Rest`]s (postcard, back to back, zstd);
//! 4. bodies that are not text, or text holding a reserved byte (postcard
//!    [`AttributeValue`]s, back to back, zstd);
//! 5. to 8. the text bodies' dictionary, tokens and numbers (zstd) and hex ids (as they are),
//!    see [`crate::logs::text_columns`].
//!
//! Measured on 300,000 records of the benchmark's LogQL hour (zstd level 3 for both): 105
//! bytes a record as version 1 batches compressed whole in 256 KiB blocks (as the document
//! store does), 77 as version 2 batches (bodies 64 → 40, ids 21.7 → 19.5, the rest ~19 → ~17).

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::Rest;
use super::sections::{self, Packing};
use super::{
    BodyPlace, CommonColumns, HeadColumns, HeadTimes, RecordBatch, encode_error, length,
    shared_groups, total,
};
use crate::logs::LogIndexError;
use crate::logs::stored_record::take_all;
use crate::logs::text_columns::{TextColumnBytes, TextColumns, TextColumnsWriter};
use crate::model::{AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId};

/// The format byte of a version 2 batch.
pub(super) const BATCH_V2: u8 = 0x11;
/// The format byte of a version 3 batch.
pub(super) const BATCH_V3: u8 = 0x12;

/// Where a batch keeps its records' event times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Times {
    /// In its head, as deltas (version 2).
    Kept,
    /// In the index's `timestamp` column; the head lists the records without one (version
    /// 3).
    Indexed,
}

/// The head section. `G` is the list of (resource, scope) groups, borrowed to encode and
/// owned to decode; `T` the time column: `Vec<i64>` in version 2, `Vec<u32>` in version 3.
#[derive(Serialize, Deserialize)]
struct Head<G, T> {
    /// Each distinct (resource, scope) of the batch, once.
    groups: G,
    /// Per record: its group's position in `groups`.
    group: Vec<u32>,
    /// Version 2: per record, its event time minus the previous record's (the first's minus
    /// 0), wrapping. Version 3: the positions, ascending, of the records whose event time is
    /// 0 (their `timestamp` is their observed time).
    times: T,
    /// Per record: the bytes of its [`Rest`].
    rest_bytes: Vec<u32>,
    /// Per record: the bytes of its body in the values section; 0 when its body is a text
    /// of the text columns (a postcard value is never empty).
    value_bytes: Vec<u32>,
}

type OwnedGroups = Vec<(Resource, InstrumentationScope)>;

/// Writes `records` as a version 2 or 3 batch (as `times` says) into `out`, which is cleared
/// first.
pub(super) fn encode(
    records: &[&LogRecord],
    times: Times,
    out: &mut Vec<u8>,
) -> Result<(), LogIndexError> {
    let mut common = CommonColumns::with_capacity(records.len());
    let mut values = Vec::new();
    let mut value_bytes = Vec::with_capacity(records.len());
    let mut texts = TextColumnsWriter::default();
    for record in records {
        common.push(record)?;
        let is_text = matches!(&record.body, AttributeValue::String(text) if texts.push(text));
        if is_text {
            value_bytes.push(0);
        } else {
            let before = values.len();
            postcard::to_io(&record.body, &mut values).map_err(encode_error)?;
            value_bytes.push(length(values.len() - before)?);
        }
    }
    let rests = common.rests;
    let head = match times {
        Times::Kept => postcard::to_allocvec(&Head {
            groups: common.groups,
            group: common.group,
            times: common.time_delta,
            rest_bytes: common.rest_bytes,
            value_bytes,
        }),
        Times::Indexed => {
            let mut unset = Vec::new();
            for (position, record) in records.iter().enumerate() {
                if record.time_unix_nano == 0 {
                    unset.push(length(position)?);
                }
            }
            postcard::to_allocvec(&Head {
                groups: common.groups,
                group: common.group,
                times: unset,
                rest_bytes: common.rest_bytes,
                value_bytes,
            })
        }
    }
    .map_err(encode_error)?;
    let ids = ids_section(records);
    let text = texts.finish();
    out.clear();
    out.push(match times {
        Times::Kept => BATCH_V2,
        Times::Indexed => BATCH_V3,
    });
    for (section, packing) in [
        (&head, Packing::Compressed),
        (&ids, Packing::Stored),
        (&rests, Packing::Compressed),
        (&values, Packing::Compressed),
        (&text.dictionary, Packing::Compressed),
        (&text.tokens, Packing::Compressed),
        (&text.numbers, Packing::Compressed),
        (&text.hex, Packing::Stored),
    ] {
        sections::write(out, section, packing)?;
    }
    Ok(())
}

/// A parsed head's time column, of either version.
enum HeadTimesOwned {
    Deltas(Vec<i64>),
    Unset(Vec<u32>),
}

impl<G, T> Head<G, T> {
    fn map_times<U>(self, map: impl FnOnce(T) -> U) -> Head<G, U> {
        Head {
            groups: self.groups,
            group: self.group,
            times: map(self.times),
            rest_bytes: self.rest_bytes,
            value_bytes: self.value_bytes,
        }
    }
}

/// The ids section of `records`.
fn ids_section(records: &[&LogRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * (TraceId::LEN + SpanId::LEN + 1));
    write_ids(&mut out, records.iter().map(|r| r.trace_id.map(|id| id.0)));
    write_ids(&mut out, records.iter().map(|r| r.span_id.map(|id| id.0)));
    out
}

/// Appends a presence bit per id (low bit first), then the ids that are present.
fn write_ids<const N: usize>(
    out: &mut Vec<u8>,
    ids: impl ExactSizeIterator<Item = Option<[u8; N]>> + Clone,
) {
    let start = out.len();
    out.resize(start + ids.len().div_ceil(8), 0);
    for (index, id) in ids.clone().enumerate() {
        if id.is_some() {
            out[start + index / 8] |= 1 << (index % 8);
        }
    }
    for id in ids.flatten() {
        out.extend_from_slice(&id);
    }
}

/// Reads `count` ids written by [`write_ids`] from the front of `input`.
fn read_ids<const N: usize>(
    input: &mut &[u8],
    count: usize,
) -> Result<Vec<Option<[u8; N]>>, LogIndexError> {
    let cut = || LogIndexError::corrupt("batch ids cut");
    let bits = input.get(..count.div_ceil(8)).ok_or_else(cut)?;
    let padding = bits.last().map_or(0, |&last| last >> (count % 8));
    if !count.is_multiple_of(8) && padding != 0 {
        return Err(LogIndexError::corrupt("batch id bits past its records"));
    }
    let mut ids = input[bits.len()..].chunks_exact(N);
    let read = (0..count)
        .map(|index| {
            if bits[index / 8] & (1 << (index % 8)) == 0 {
                return Ok(None);
            }
            let id = ids.next().ok_or_else(cut)?;
            Ok(Some(<[u8; N]>::try_from(id).map_err(|_| cut())?))
        })
        .collect::<Result<Vec<_>, LogIndexError>>()?;
    let used = bits.len() + read.iter().flatten().count() * N;
    *input = &input[used..];
    Ok(read)
}

/// The sections of a version 2 batch, decompressed: what the format pins (zstd may compress
/// the same bytes differently from one release to the next).
#[cfg(test)]
pub(super) fn plain_sections(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut input = &bytes[1..];
    let mut plain = Vec::new();
    while !input.is_empty() {
        plain.push(sections::read(&mut input).unwrap().into_owned());
    }
    plain
}

/// `bytes`, a version 3 batch, with its head's list of records without an event time
/// replaced by `unset`.
#[cfg(test)]
pub(super) fn with_unset(bytes: &[u8], unset: Vec<u32>) -> Vec<u8> {
    let mut sections = plain_sections(bytes);
    let head: Head<OwnedGroups, Vec<u32>> = take_all(&sections[0]).unwrap();
    sections[0] = postcard::to_allocvec(&head.map_times(|_| unset)).unwrap();
    let mut out = vec![bytes[0]];
    for section in &sections {
        sections::write(&mut out, section, Packing::Compressed).unwrap();
    }
    out
}

/// Parses a version 2 or 3 batch (as `times` says).
pub(super) fn parse(bytes: &[u8], times: Times) -> Result<RecordBatch, LogIndexError> {
    let mut input = &bytes[1..];
    let mut next = || sections::read(&mut input);
    let (head, ids, rests, values) = (next()?, next()?, next()?, next()?);
    let (dictionary, tokens, numbers, hex) = (next()?, next()?, next()?, next()?);
    if !input.is_empty() {
        return Err(LogIndexError::corrupt(format!(
            "{} bytes after a batch's sections",
            input.len()
        )));
    }
    let head_error = |error: LogIndexError| LogIndexError::corrupt(format!("batch head: {error}"));
    let head: Head<OwnedGroups, HeadTimesOwned> = match times {
        Times::Kept => {
            let head: Head<OwnedGroups, Vec<i64>> = take_all(&head).map_err(head_error)?;
            head.map_times(HeadTimesOwned::Deltas)
        }
        Times::Indexed => {
            let head: Head<OwnedGroups, Vec<u32>> = take_all(&head).map_err(head_error)?;
            head.map_times(HeadTimesOwned::Unset)
        }
    };
    let count = head.group.len();
    let mut ids = &ids[..];
    let trace_id: Vec<Option<TraceId>> = read_ids(&mut ids, count)?
        .into_iter()
        .map(|id| id.map(TraceId))
        .collect();
    let span_id: Vec<Option<SpanId>> = read_ids(&mut ids, count)?
        .into_iter()
        .map(|id| id.map(SpanId))
        .collect();
    if !ids.is_empty() {
        return Err(LogIndexError::corrupt("bytes after a batch's ids"));
    }
    if total(&head.rest_bytes) != rests.len() || total(&head.value_bytes) != values.len() {
        return Err(LogIndexError::corrupt(
            "batch sections of other lengths than its head names",
        ));
    }
    let text = TextColumns::parse(TextColumnBytes {
        dictionary: dictionary.into_owned(),
        tokens: tokens.into_owned(),
        numbers: numbers.into_owned(),
        hex: hex.into_owned(),
    })?;
    let text_count = head.value_bytes.iter().filter(|&&len| len == 0).count();
    let mut text_places = text.places(text_count)?.into_iter();
    // The batch's bytes: its rests, then its values, in one allocation.
    let mut buffer = Vec::with_capacity(rests.len() + values.len());
    buffer.extend_from_slice(&rests);
    let mut value_at = buffer.len();
    buffer.extend_from_slice(&values);
    let bodies = head.value_bytes.iter().map(|&len| match len {
        0 => text_places.next().map(BodyPlace::Text),
        len => {
            let range = value_at..value_at + len as usize;
            value_at = range.end;
            Some(BodyPlace::Value(range))
        }
    });
    // `places` returned one place per text body.
    let bodies: Vec<BodyPlace> = bodies
        .collect::<Option<_>>()
        .ok_or_else(|| LogIndexError::corrupt("fewer texts than text bodies"))?;
    let rows = HeadColumns {
        group_count: head.groups.len(),
        group: &head.group,
        times: match &head.times {
            HeadTimesOwned::Deltas(deltas) => HeadTimes::Deltas(deltas),
            HeadTimesOwned::Unset(unset) => HeadTimes::Indexed { unset },
        },
        trace_id: &trace_id,
        span_id: &span_id,
        rest_bytes: &head.rest_bytes,
        rest_at: 0,
    }
    .rows(bodies.into_iter())?;
    Ok(RecordBatch {
        bytes: buffer,
        groups: shared_groups(head.groups),
        rows,
        text: Some(text),
    })
}
