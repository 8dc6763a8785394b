//! What an export costs in memory once decoded, read from its encoded form before decoding, so
//! the memory budget is charged the real cost: a small body can decode to far more (two bytes
//! of protobuf make a 56-byte attribute; `{}` in JSON makes a whole span). It must stay a cheap
//! pass over the input that allocates nothing in proportion to it.

mod json;
mod protobuf;
mod schema;

pub use protobuf::WireError;

use skewer_storage::model::Signal;

use crate::payload::PayloadFormat;
use schema::MessageKind;

/// Margin on the estimate, in quarters: what the estimate does not model (allocator size
/// classes, strings copied during conversion) stays inside it.
const MARGIN_QUARTERS: usize = 5;

/// What decoding an export takes, read from its encoded form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DecodedCost {
    /// Bytes the decoded message takes, in place and on the heap.
    pub decoded_bytes: usize,
    /// Records (spans, log records, data points) it converts into.
    pub records: usize,
    /// Bytes of one converted record.
    pub record_bytes: usize,
    /// Bytes of the largest `Vec` of the message: while it grows, it leaves behind blocks
    /// of half, a quarter… its final size, which the allocator may not hand back or reuse
    /// before the decode ends (about its size again).
    pub largest_vec_bytes: usize,
}

impl DecodedCost {
    fn add_vec(&mut self, vec_bytes: usize) {
        self.largest_vec_bytes = self.largest_vec_bytes.max(vec_bytes);
    }

    fn add_record(&mut self, kind: MessageKind) {
        self.add_records(kind, 1);
    }

    fn add_records(&mut self, kind: MessageKind, records: usize) {
        let record_bytes = kind.converted_record_bytes();
        if record_bytes > 0 {
            self.records = self.records.saturating_add(records);
            self.record_bytes = self.record_bytes.max(record_bytes);
        }
    }

    /// The peak while decoding and converting: the decoded message and the records' `Vec`
    /// are both alive (the records' text is moved out of the message, not copied), with the
    /// blocks the largest `Vec` left behind as it grew.
    fn peak_bytes(&self) -> usize {
        let records_bytes = schema::vec_capacity(self.records).saturating_mul(self.record_bytes);
        let growing_bytes = self.largest_vec_bytes.max(records_bytes);
        self.decoded_bytes
            .saturating_add(records_bytes)
            .saturating_add(growing_bytes)
            .saturating_mul(MARGIN_QUARTERS)
            / 4
    }
}

/// Bytes of memory decoding `body` and converting it into records may hold at its peak (the
/// body itself not included). An error means the body is not protobuf at all.
pub fn decoding_cost_bytes(
    signal: Signal,
    format: PayloadFormat,
    body: &[u8],
) -> Result<usize, WireError> {
    Ok(match format {
        PayloadFormat::Protobuf => {
            protobuf::decoded_cost(MessageKind::request(signal), body)?.peak_bytes()
        }
        PayloadFormat::Json => {
            let cost = json::json_cost(body);
            let slow_path = crate::json_floats::may_hold_special_floats(body)
                || crate::json_names::has_snake_case_key(body);
            let value_tree_bytes = if slow_path { cost.value_tree_bytes } else { 0 };
            cost.decoded.peak_bytes().saturating_add(value_tree_bytes)
        }
        // Measured on Prometheus batches; not scanned (yet).
        PayloadFormat::RemoteWrite => format.decoded_size_estimate(body.len()),
    })
}
