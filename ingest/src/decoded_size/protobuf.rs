//! The decoded size of an OTLP protobuf export, read from its wire format in one pass over the
//! field tags (lengths are skipped, never copied) before anything is decoded. It must stay much
//! cheaper than decoding and must never allocate in proportion to the input.

use std::mem::size_of;

use super::DecodedCost;
use super::schema::{FieldKind, MessageKind, vec_capacity};

/// The nesting prost accepts (its recursion limit); deeper input is refused by the decoder
/// anyway, so the scan stops there too.
const MAX_DEPTH: u32 = 100;

/// Why the wire format cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A varint, length or fixed-size value runs past the end of its message.
    #[error("truncated protobuf field")]
    Truncated,
    /// A varint longer than ten bytes.
    #[error("protobuf varint too long")]
    VarintTooLong,
    /// A wire type protobuf does not define (or groups, which OTLP never uses).
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    /// Nested deeper than the decoder allows.
    #[error("protobuf nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// What the `kind` message in `body` takes decoded, and the model records it converts into.
pub(super) fn decoded_cost(kind: MessageKind, body: &[u8]) -> Result<DecodedCost, WireError> {
    let mut cost = DecodedCost::default();
    let heap = heap_bytes(kind, body, 0, &mut cost)?;
    cost.decoded_bytes = kind.decoded_bytes().saturating_add(heap);
    Ok(cost)
}

/// Bytes the fields of one `kind` message in `body` add to the heap; model records it holds
/// are added to `cost`.
fn heap_bytes(
    kind: MessageKind,
    mut body: &[u8],
    depth: u32,
    cost: &mut DecodedCost,
) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut heap = 0usize;
    let mut repeated = RepeatedFields::default();
    while !body.is_empty() {
        let key = read_varint(&mut body)?;
        let number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let field = kind.field(number);
        match key & 7 {
            0 => {
                read_varint(&mut body)?;
                repeated.count_scalar(number, field, 1);
            }
            1 => {
                take(&mut body, 8)?;
                repeated.count_scalar(number, field, 1);
            }
            5 => {
                take(&mut body, 4)?;
            }
            2 => {
                let len = usize::try_from(read_varint(&mut body)?).unwrap_or(usize::MAX);
                let value = take(&mut body, len)?;
                heap = heap.saturating_add(match field {
                    FieldKind::Inline(child) => heap_bytes(child, value, depth + 1, cost)?,
                    FieldKind::Repeated(child) => {
                        repeated.add(number, 1, child.decoded_bytes());
                        cost.add_record(child);
                        heap_bytes(child, value, depth + 1, cost)?
                    }
                    FieldKind::Text => len,
                    FieldKind::RepeatedText => {
                        repeated.add(number, 1, size_of::<String>());
                        len
                    }
                    FieldKind::RepeatedScalar { varint } => {
                        let elements = if varint {
                            value.iter().filter(|&&byte| byte < 0x80).count()
                        } else {
                            len / 8
                        };
                        repeated.add(number, elements, 8);
                        0
                    }
                    FieldKind::Other => 0,
                });
            }
            other => return Err(WireError::WireType(other)),
        }
    }
    let (vecs_bytes, largest_vec_bytes) = repeated.heap_bytes();
    cost.add_vec(largest_vec_bytes);
    Ok(heap.saturating_add(vecs_bytes))
}

/// Elements of the repeated fields of one message, so each `Vec` is charged the capacity it
/// grows to rather than its length.
#[derive(Default)]
struct RepeatedFields {
    /// (field number, elements, bytes per element); no OTLP message has more than four
    /// repeated fields.
    fields: [(u32, usize, usize); 4],
    /// Bytes of fields past the fourth, charged at twice their length.
    overflow_bytes: usize,
}

impl RepeatedFields {
    fn count_scalar(&mut self, number: u32, field: FieldKind, elements: usize) {
        if matches!(field, FieldKind::RepeatedScalar { .. }) {
            self.add(number, elements, 8);
        }
    }

    fn add(&mut self, number: u32, elements: usize, element_bytes: usize) {
        for slot in &mut self.fields {
            if slot.0 == number || slot.1 == 0 {
                slot.0 = number;
                slot.1 = slot.1.saturating_add(elements);
                slot.2 = element_bytes;
                return;
            }
        }
        self.overflow_bytes = self
            .overflow_bytes
            .saturating_add(elements.saturating_mul(element_bytes).saturating_mul(2));
    }

    /// Bytes of all the `Vec`s, and of the largest.
    fn heap_bytes(&self) -> (usize, usize) {
        self.fields
            .iter()
            .map(|&(_, elements, element_bytes)| {
                vec_capacity(elements).saturating_mul(element_bytes)
            })
            .fold(
                (self.overflow_bytes, self.overflow_bytes),
                |(sum, largest), bytes| (sum.saturating_add(bytes), largest.max(bytes)),
            )
    }
}

fn read_varint(body: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for (index, &byte) in body.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            *body = &body[index + 1..];
            return Ok(value);
        }
    }
    Err(if body.len() >= 10 {
        WireError::VarintTooLong
    } else {
        WireError::Truncated
    })
}

fn take<'a>(body: &mut &'a [u8], len: usize) -> Result<&'a [u8], WireError> {
    if len > body.len() {
        return Err(WireError::Truncated);
    }
    let (value, rest) = body.split_at(len);
    *body = rest;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_read_and_refuse_overlong_or_cut_input() {
        let mut body: &[u8] = &[0x96, 0x01, 0x05];
        assert_eq!(read_varint(&mut body), Ok(150));
        assert_eq!(body, [0x05]);
        let mut cut: &[u8] = &[0x96];
        assert_eq!(read_varint(&mut cut), Err(WireError::Truncated));
        let mut overlong: &[u8] = &[0xff; 11];
        assert_eq!(read_varint(&mut overlong), Err(WireError::VarintTooLong));
    }

    #[test]
    fn malformed_wire_input_is_an_error_not_a_panic() {
        for body in [&[0x0a, 0x05, 0x01][..], &[0x0b][..], &[0x0a][..]] {
            assert!(decoded_cost(MessageKind::TraceRequest, body).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_scanned_without_panicking(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            for kind in [MessageKind::TraceRequest, MessageKind::LogsRequest, MessageKind::MetricsRequest] {
                let _ = decoded_cost(kind, &body);
            }
        }
    }

    #[test]
    fn nesting_past_the_decoder_limit_is_refused() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};
        use prost::Message;
        let nested = |levels: usize| {
            let mut value = AnyValue::default();
            for _ in 0..levels {
                value = AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue {
                        values: vec![value],
                    })),
                };
            }
            value.encode_to_vec()
        };
        // Each level is two messages deep (AnyValue, then ArrayValue).
        assert!(decoded_cost(MessageKind::AnyValue, &nested(40)).is_ok());
        assert_eq!(
            decoded_cost(MessageKind::AnyValue, &nested(60)),
            Err(WireError::TooDeep)
        );
    }
}
