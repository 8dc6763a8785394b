//! The decoded size of an OTLP protobuf export, read from its wire format in one pass over the
//! field tags (lengths are skipped, never copied) before anything is decoded. It must stay much
//! cheaper than decoding and must never allocate in proportion to the input.

use std::mem::size_of;

use super::DecodedCost;
use super::schema::{FieldKind, MessageKind, vec_capacity};

/// The nesting prost accepts (its recursion limit); deeper input is refused by the decoder
/// anyway, so the scan stops there too.
pub(super) const MAX_DEPTH: u32 = 100;

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
    let mut inline_seen = 0u64;
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
                let value = take_delimited(&mut body)?;
                heap = heap.saturating_add(match field {
                    // Attributes and values: most messages of an export, on a lean path.
                    FieldKind::Repeated(MessageKind::KeyValue) => {
                        repeated.add(number, 1, MessageKind::KeyValue);
                        key_value_heap(value, depth + 1, 1, cost)?
                    }
                    FieldKind::Inline(MessageKind::AnyValue) => {
                        note_inline(&mut inline_seen, number, cost);
                        any_value_heap(value, depth + 1, 1, cost)?
                    }
                    FieldKind::Inline(child) => {
                        note_inline(&mut inline_seen, number, cost);
                        heap_bytes(child, value, depth + 1, cost)?
                    }
                    FieldKind::Repeated(child) => {
                        repeated.add(number, 1, child);
                        heap_bytes(child, value, depth + 1, cost)?
                    }
                    FieldKind::Text => value.len(),
                    FieldKind::RepeatedText => {
                        repeated.add_slots(number, 1, size_of::<String>());
                        value.len()
                    }
                    FieldKind::RepeatedScalar { varint } => {
                        let elements = if varint {
                            value.iter().filter(|&&byte| byte < 0x80).count()
                        } else {
                            value.len() / 8
                        };
                        repeated.add_slots(number, elements, 8);
                        0
                    }
                    FieldKind::Other => 0,
                });
            }
            other => return Err(WireError::WireType(other)),
        }
    }
    Ok(heap.saturating_add(repeated.finish(cost)))
}

/// Notes a singular message field; seen twice in one message, the decoder merges the two
/// (their lists joined), which no per-occurrence count sees: the export's shape then says
/// its lists may be past any limit, so the record limits walk it after decoding.
fn note_inline(seen: &mut u64, number: u32, cost: &mut DecodedCost) {
    let bit = 1u64 << number.min(63);
    if *seen & bit != 0 {
        cost.shape.longest_list = usize::MAX;
    }
    *seen |= bit;
}

/// A `KeyValue` (key 1, value 2), whose value sits `value_depth` deep in an attribute.
fn key_value_heap(
    mut body: &[u8],
    depth: u32,
    value_depth: usize,
    cost: &mut DecodedCost,
) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut heap = 0usize;
    let mut values_seen = 0u64;
    while !body.is_empty() {
        let key = read_varint(&mut body)?;
        heap = heap.saturating_add(match key {
            0x0a => take_delimited(&mut body)?.len(),
            0x12 => {
                note_inline(&mut values_seen, 2, cost);
                any_value_heap(take_delimited(&mut body)?, depth + 1, value_depth, cost)?
            }
            _ => skip_field(key, &mut body)?,
        });
    }
    Ok(heap)
}

/// An `AnyValue` `value_depth` deep: text (1) and bytes (7), or an array (5) or key-value list
/// (6) whose elements sit one deeper.
fn any_value_heap(
    mut body: &[u8],
    depth: u32,
    value_depth: usize,
    cost: &mut DecodedCost,
) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut heap = 0usize;
    // An array (5) or list (6) given twice: the decoder merges them.
    let mut containers_seen = 0u64;
    while !body.is_empty() {
        let key = read_varint(&mut body)?;
        heap = heap.saturating_add(match key {
            0x0a | 0x3a => {
                let text = take_delimited(&mut body)?;
                cost.shape.longest_value_bytes = cost.shape.longest_value_bytes.max(text.len());
                text.len()
            }
            0x2a | 0x32 => {
                note_inline(&mut containers_seen, 5, cost);
                // The array or list message itself, even empty, is one level deeper.
                if depth + 1 > MAX_DEPTH {
                    return Err(WireError::TooDeep);
                }
                cost.shape.deepest_value = cost.shape.deepest_value.max(value_depth);
                let (element, element_heap): (MessageKind, ElementHeap) = if key == 0x2a {
                    (MessageKind::AnyValue, any_value_heap)
                } else {
                    (MessageKind::KeyValue, key_value_heap)
                };
                let mut elements_body = take_delimited(&mut body)?;
                let mut elements = 0usize;
                let mut elements_heap = 0usize;
                while !elements_body.is_empty() {
                    let key = read_varint(&mut elements_body)?;
                    if key == 0x0a {
                        let element_body = take_delimited(&mut elements_body)?;
                        elements += 1;
                        elements_heap = elements_heap.saturating_add(element_heap(
                            element_body,
                            depth + 2,
                            value_depth + 1,
                            cost,
                        )?);
                    } else {
                        skip_field(key, &mut elements_body)?;
                    }
                }
                cost.shape.longest_list = cost.shape.longest_list.max(elements);
                let vec_bytes = vec_capacity(elements).saturating_mul(element.decoded_bytes());
                cost.add_vec(vec_bytes);
                elements_heap.saturating_add(vec_bytes)
            }
            _ => skip_field(key, &mut body)?,
        });
    }
    Ok(heap)
}

type ElementHeap = fn(&[u8], u32, usize, &mut DecodedCost) -> Result<usize, WireError>;

/// Skips a field the lean paths do not look into; its heap is nothing (scalars, unknown
/// fields) or counted by the caller.
pub(super) fn skip_field(key: u64, body: &mut &[u8]) -> Result<usize, WireError> {
    match key & 7 {
        0 => read_varint(body).map(|_| 0),
        1 => take(body, 8).map(|_| 0),
        2 => take_delimited(body).map(|_| 0),
        5 => take(body, 4).map(|_| 0),
        other => Err(WireError::WireType(other)),
    }
}

/// Elements of the repeated fields of one message, so each `Vec` is charged the capacity it
/// grows to rather than its length.
#[derive(Default)]
struct RepeatedFields {
    /// (field number, elements, bytes per element, what the elements are); no OTLP message
    /// has more than four repeated fields.
    fields: [(u32, usize, usize, Option<MessageKind>); 4],
    /// Bytes of fields past the fourth, charged at twice their length.
    overflow_bytes: usize,
}

impl RepeatedFields {
    fn count_scalar(&mut self, number: u32, field: FieldKind, elements: usize) {
        if matches!(field, FieldKind::RepeatedScalar { .. }) {
            self.add_slots(number, elements, 8);
        }
    }

    fn add(&mut self, number: u32, elements: usize, kind: MessageKind) {
        self.add_slot(number, elements, kind.decoded_bytes(), Some(kind));
    }

    fn add_slots(&mut self, number: u32, elements: usize, element_bytes: usize) {
        self.add_slot(number, elements, element_bytes, None);
    }

    fn add_slot(
        &mut self,
        number: u32,
        elements: usize,
        element_bytes: usize,
        kind: Option<MessageKind>,
    ) {
        for slot in &mut self.fields {
            if slot.0 == number || slot.1 == 0 {
                *slot = (number, slot.1.saturating_add(elements), element_bytes, kind);
                return;
            }
        }
        self.overflow_bytes = self
            .overflow_bytes
            .saturating_add(elements.saturating_mul(element_bytes).saturating_mul(2));
    }

    /// Bytes of all the `Vec`s; the records, the longest list and the largest `Vec` go to
    /// `cost`.
    fn finish(&self, cost: &mut DecodedCost) -> usize {
        let mut total = self.overflow_bytes;
        for &(_, elements, element_bytes, kind) in &self.fields {
            if elements == 0 {
                continue;
            }
            let vec_bytes = vec_capacity(elements).saturating_mul(element_bytes);
            total = total.saturating_add(vec_bytes);
            cost.add_vec(vec_bytes);
            if let Some(kind) = kind {
                cost.add_records(kind, elements);
                if kind.is_limited_list() {
                    cost.shape.longest_list = cost.shape.longest_list.max(elements);
                }
            }
        }
        total
    }
}

#[inline]
pub(crate) fn read_varint(body: &mut &[u8]) -> Result<u64, WireError> {
    // Tags and most lengths are one byte.
    if let Some((&byte, rest)) = body.split_first()
        && byte < 0x80
    {
        *body = rest;
        return Ok(u64::from(byte));
    }
    let mut value = 0u64;
    for (index, &byte) in body.iter().enumerate().take(10) {
        // The tenth byte holds the 64th bit alone: more is no u64 (prost refuses it too).
        if index == 9 && byte > 1 {
            return Err(WireError::VarintTooLong);
        }
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

/// A length-delimited field's bytes.
#[inline]
pub(crate) fn take_delimited<'a>(body: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = usize::try_from(read_varint(body)?).unwrap_or(usize::MAX);
    take(body, len)
}

#[inline]
pub(crate) fn take<'a>(body: &mut &'a [u8], len: usize) -> Result<&'a [u8], WireError> {
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
        // Ten bytes hold 64 bits only when the last is 0 or 1.
        let mut max: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&mut max), Ok(u64::MAX));
        let mut past: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&mut past), Err(WireError::VarintTooLong));
    }

    #[test]
    fn nesting_is_refused_exactly_where_prost_refuses_it() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
        };
        use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use prost::Message;
        // A resource attribute nesting `levels` key-value lists, ending in an empty key-value
        // or an empty array.
        let export = |levels: usize, innermost: KeyValue| {
            let mut attribute = innermost;
            for _ in 0..levels {
                attribute = KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![attribute],
                        })),
                    }),
                    ..KeyValue::default()
                };
            }
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![attribute],
                        ..Resource::default()
                    }),
                    ..ResourceMetrics::default()
                }],
            }
            .encode_to_vec()
        };
        let empty_array = KeyValue {
            key: "a".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue::default())),
            }),
            ..KeyValue::default()
        };
        let mut refused = 0;
        for levels in 28..36 {
            for innermost in [KeyValue::default(), empty_array.clone()] {
                let body = export(levels, innermost);
                let decodes = ExportMetricsServiceRequest::decode(body.as_slice()).is_ok();
                let scanned = decoded_cost(MessageKind::MetricsRequest, &body).is_ok();
                assert_eq!(scanned, decodes, "{levels} levels");
                refused += usize::from(!decodes);
            }
        }
        // The range straddles the limit.
        assert!(refused > 0 && refused < 16);
    }

    #[test]
    fn malformed_wire_input_is_an_error_not_a_panic() {
        for body in [&[0x0a, 0x05, 0x01][..], &[0x0b][..], &[0x0a][..]] {
            assert!(decoded_cost(MessageKind::TraceRequest, body).is_err());
        }
    }

    #[test]
    fn a_singular_message_given_twice_may_hold_any_list() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use prost::Message;
        let resource = Resource {
            attributes: vec![KeyValue::default(); 3],
            ..Resource::default()
        }
        .encode_to_vec();
        // ResourceSpans { resource, resource }: merged into six attributes.
        let request_with = |times: usize| {
            let mut resource_spans = Vec::new();
            for _ in 0..times {
                resource_spans.push(0x0a);
                resource_spans.push(resource.len() as u8);
                resource_spans.extend_from_slice(&resource);
            }
            let mut request = vec![0x0a, resource_spans.len() as u8];
            request.extend_from_slice(&resource_spans);
            request
        };
        let shape = |times| {
            decoded_cost(MessageKind::TraceRequest, &request_with(times))
                .unwrap()
                .shape
        };
        assert_eq!(shape(1).longest_list, 3);
        assert_eq!(shape(2).longest_list, usize::MAX);

        // An attribute value holding two arrays: merged as well.
        let array = AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue::default(); 2],
                }),
            ),
        }
        .encode_to_vec();
        let mut value = array.clone();
        value.extend_from_slice(&array);
        let attribute = KeyValue {
            key: "k".into(),
            value: Some(AnyValue::decode(value.as_slice()).unwrap()),
            ..KeyValue::default()
        };
        let shape = decoded_cost(MessageKind::TraceRequest, &spans_with(vec![attribute]))
            .unwrap()
            .shape;
        assert!(
            shape.longest_list < usize::MAX,
            "re-encoded, the arrays are one"
        );
        let mut kv = vec![0x0a, 0x01, b'k', 0x12, value.len() as u8];
        kv.extend_from_slice(&value);
        let mut cost = DecodedCost::default();
        key_value_heap(&kv, 0, 1, &mut cost).unwrap();
        assert_eq!(
            cost.shape.longest_list,
            usize::MAX,
            "two arrays in one value"
        );
    }

    fn spans_with(attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>) -> Vec<u8> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        attributes,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn text(key: &str, value: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_scan_reads_the_longest_list_value_and_nesting() {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
        };
        let many: Vec<_> = (0..200).map(|i| text(&format!("k{i}"), "v")).collect();
        let nested = KeyValue {
            key: "nested".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![text("inner", &"x".repeat(70_000))],
                        })),
                    }],
                })),
            }),
            ..Default::default()
        };
        let shape = |attributes| {
            decoded_cost(MessageKind::TraceRequest, &spans_with(attributes))
                .unwrap()
                .shape
        };
        let plain = shape(vec![text("a", "abc")]);
        assert_eq!(
            (
                plain.longest_list,
                plain.longest_value_bytes,
                plain.deepest_value
            ),
            (1, 3, 0)
        );
        assert_eq!(shape(many).longest_list, 200);
        let deep = shape(vec![nested]);
        // The array is an attribute's value (1), the list inside it 2 deep.
        assert_eq!((deep.deepest_value, deep.longest_value_bytes), (2, 70_000));

        let limits = crate::record_limits::RecordLimits::default();
        assert!(!limits.may_cut(&plain));
        assert!(limits.may_cut(&deep), "the 70 kB value is over 64 KiB");
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
