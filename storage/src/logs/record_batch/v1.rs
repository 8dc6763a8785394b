//! Version 1 batches (index format 6): one byte ([`BATCH_V1`]), the postcard [`Head`], then
//! the records' [`Rest`]s back to back, then their bodies (postcard [`AttributeValue`]s) back
//! to back; the document store compresses the whole.

use serde::{Deserialize, Serialize};

use super::{
    BodyPlace, CommonColumns, HeadColumns, HeadTimes, RecordBatch, encode_error, length,
    shared_groups, total,
};
use crate::logs::LogIndexError;
use crate::model::{InstrumentationScope, LogRecord, Resource, SpanId, TraceId};

#[cfg(doc)]
use super::Rest;
#[cfg(doc)]
use crate::model::AttributeValue;

/// The format byte of a version 1 batch (apart from the single records' 1, 2 and `{`).
pub(super) const BATCH_V1: u8 = 0x10;

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

/// Writes `records` as a version 1 batch into `out`, which is cleared first.
pub(super) fn encode(records: &[&LogRecord], out: &mut Vec<u8>) -> Result<(), LogIndexError> {
    let mut common = CommonColumns::with_capacity(records.len());
    let mut bodies = Vec::new();
    let mut body_bytes = Vec::with_capacity(records.len());
    for record in records {
        common.push(record)?;
        let before = bodies.len();
        postcard::to_io(&record.body, &mut bodies).map_err(encode_error)?;
        body_bytes.push(length(bodies.len() - before)?);
    }
    let head = Head {
        groups: common.groups,
        group: common.group,
        time_delta: common.time_delta,
        trace_id: records.iter().map(|record| record.trace_id).collect(),
        span_id: records.iter().map(|record| record.span_id).collect(),
        rest_bytes: common.rest_bytes,
        body_bytes,
    };
    out.clear();
    out.push(BATCH_V1);
    postcard::to_io(&head, &mut *out).map_err(encode_error)?;
    out.extend_from_slice(&common.rests);
    out.extend_from_slice(&bodies);
    Ok(())
}

/// Parses a version 1 batch.
pub(super) fn parse(bytes: Vec<u8>) -> Result<RecordBatch, LogIndexError> {
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
        times: HeadTimes::Deltas(&head.time_delta),
        trace_id: &head.trace_id,
        span_id: &head.span_id,
        rest_bytes: &head.rest_bytes,
        rest_at,
    }
    .rows(bodies)?;
    Ok(RecordBatch {
        bytes,
        groups: shared_groups(head.groups),
        rows,
        text: None,
    })
}
