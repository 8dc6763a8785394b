//! What an export costs in memory once decoded, read from its encoded form before decoding, so
//! the memory budget is charged the real cost: a small body can decode to far more (two bytes
//! of protobuf make a 56-byte attribute; `{}` in JSON makes a whole span). It must stay a cheap
//! pass over the input that allocates nothing in proportion to it.

mod json;
mod protobuf;
mod schema;
mod wire_cut;

pub use protobuf::WireError;
pub(crate) use protobuf::{read_varint, take, take_delimited};
pub use wire_cut::cut_lists;

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
    /// The extremes the record limits bound.
    pub shape: ValueShape,
}

/// The largest lists and values of an export: when none reaches a record limit, the limits
/// need not walk the decoded export at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValueShape {
    /// The most attributes, events, links, array or list elements in one list.
    pub longest_list: usize,
    /// The most bytes of one string or bytes value.
    pub longest_value_bytes: usize,
    /// The deepest array or key-value list value (1 for one that is an attribute's value).
    pub deepest_value: usize,
}

/// What decoding an export will take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodingCost {
    /// Bytes of memory at the peak of decoding and converting (the body not included).
    pub bytes: usize,
    /// The export's extremes, when the scan reads them (protobuf); `None` means unknown.
    pub shape: Option<ValueShape>,
}

impl DecodedCost {
    fn add_vec(&mut self, vec_bytes: usize) {
        self.largest_vec_bytes = self.largest_vec_bytes.max(vec_bytes);
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

/// What decoding `body` and converting it into records may hold at its peak (the body itself
/// not included), with the export's extremes when they are read. An error means the body is
/// not protobuf at all.
pub fn decoding_cost(
    signal: Signal,
    format: PayloadFormat,
    body: &[u8],
) -> Result<DecodingCost, WireError> {
    Ok(match format {
        PayloadFormat::Protobuf => {
            let cost = protobuf::decoded_cost(MessageKind::request(signal), body)?;
            DecodingCost {
                bytes: cost.peak_bytes(),
                shape: Some(cost.shape),
            }
        }
        PayloadFormat::Json => {
            let cost = json::json_cost(body);
            let value_tree_bytes = if cost.may_need_value_tree {
                cost.value_tree_bytes
            } else {
                0
            };
            DecodingCost {
                bytes: cost.decoded.peak_bytes().saturating_add(value_tree_bytes),
                shape: None,
            }
        }
        // Measured on Prometheus batches; not scanned (yet).
        PayloadFormat::RemoteWrite => DecodingCost {
            bytes: format.decoded_size_estimate(body.len()),
            shape: None,
        },
    })
}
