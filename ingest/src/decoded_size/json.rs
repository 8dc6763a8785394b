//! The decoded size of an OTLP/JSON export, read in one pass over its text before it is
//! parsed: every array is charged the `Vec` it becomes (by the key that holds it), every string
//! its length. It also says what the slow path (a JSON value tree, for proto field names and
//! `"NaN"` doubles) would hold on top. It never allocates in proportion to the input.

use super::DecodedCost;
use super::schema::{FieldKind, json_field, vec_capacity};

/// serde_json's nesting limit: deeper text fails to parse, so the scan stops there.
const MAX_DEPTH: usize = 128;

/// What one JSON value of a value tree costs besides its text: the `Value` itself, and for an
/// object member its map entry (key `String`, B-tree slot).
const VALUE_TREE_NODE_BYTES: usize = 96;

/// What the scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct JsonCost {
    /// What the decoded message takes.
    pub decoded: DecodedCost,
    /// Bytes a `serde_json::Value` tree of the whole text would take.
    pub value_tree_bytes: usize,
    /// Whether the text may take the decoder's slow path, through such a tree: a key with an
    /// underscore (a proto field name) or a `"NaN"` / `"Infinity"` string (a double).
    pub may_need_value_tree: bool,
}

#[derive(Clone, Copy)]
enum Frame {
    Object,
    Array {
        element: FieldKind,
        commas: usize,
        empty: bool,
    },
}

/// Scans `body` (which may be malformed: the parser that follows says how).
pub(super) fn json_cost(body: &[u8]) -> JsonCost {
    let mut cost = JsonCost::default();
    let mut nodes = 1usize;
    let mut stack = [Frame::Object; MAX_DEPTH];
    let mut depth = 0usize;
    // The field kind of the last key read in the innermost object.
    let mut last_key = FieldKind::Other;
    let mut expect_key = false;
    let mut index = 0;
    while index < body.len() {
        let byte = body[index];
        index += 1;
        if byte.is_ascii_whitespace() {
            continue;
        }
        if let Some(Frame::Array { empty, .. }) = top(&mut stack, depth)
            && byte != b']'
        {
            *empty = false;
        }
        match byte {
            b'"' => {
                let end = string_end(body, index);
                let text = &body[index..end];
                index = (end + 1).min(body.len());
                cost.value_tree_bytes = cost.value_tree_bytes.saturating_add(text.len());
                if expect_key {
                    expect_key = false;
                    last_key = json_field(text);
                    cost.may_need_value_tree |= memchr::memchr(b'_', text).is_some();
                    continue;
                }
                cost.may_need_value_tree |= matches!(text, b"NaN" | b"Infinity" | b"-Infinity");
                let element = match top(&mut stack, depth) {
                    Some(Frame::Array { element, .. }) => *element,
                    _ => FieldKind::Other,
                };
                // Numbers written as strings in scalar arrays cost their slot only.
                if !matches!(element, FieldKind::RepeatedScalar { .. }) {
                    cost.decoded.decoded_bytes =
                        cost.decoded.decoded_bytes.saturating_add(text.len());
                }
            }
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    break;
                }
                stack[depth] = if byte == b'{' {
                    expect_key = true;
                    Frame::Object
                } else {
                    Frame::Array {
                        element: if matches!(stack[..depth].last(), Some(Frame::Object)) {
                            last_key
                        } else {
                            FieldKind::Other
                        },
                        commas: 0,
                        empty: true,
                    }
                };
                depth += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                if let Frame::Array {
                    element,
                    commas,
                    empty,
                } = stack[depth]
                {
                    let elements = if empty { 0 } else { commas + 1 };
                    nodes = nodes.saturating_add(elements);
                    let slot_bytes = match element {
                        FieldKind::Repeated(kind) => {
                            cost.decoded.add_records(kind, elements);
                            kind.decoded_bytes()
                        }
                        FieldKind::RepeatedText => size_of::<String>(),
                        FieldKind::RepeatedScalar { .. } => 8,
                        _ => 0,
                    };
                    let vec_bytes = vec_capacity(elements).saturating_mul(slot_bytes);
                    cost.decoded.add_vec(vec_bytes);
                    cost.decoded.decoded_bytes =
                        cost.decoded.decoded_bytes.saturating_add(vec_bytes);
                    cost.value_tree_bytes = cost.value_tree_bytes.saturating_add(
                        vec_capacity(elements).saturating_mul(size_of::<serde_json::Value>()),
                    );
                }
                last_key = FieldKind::Other;
            }
            b',' => match top(&mut stack, depth) {
                Some(Frame::Array { commas, .. }) => *commas += 1,
                Some(Frame::Object) => {
                    expect_key = true;
                    nodes = nodes.saturating_add(1);
                }
                None => {}
            },
            _ => {}
        }
    }
    cost.value_tree_bytes = cost
        .value_tree_bytes
        .saturating_add(nodes.saturating_mul(VALUE_TREE_NODE_BYTES));
    cost
}

fn top(stack: &mut [Frame; MAX_DEPTH], depth: usize) -> Option<&mut Frame> {
    depth.checked_sub(1).map(|index| &mut stack[index])
}

/// The index of the quote closing the string that starts at `start` (or the end of `body`).
fn string_end(body: &[u8], start: usize) -> usize {
    let mut index = start;
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &body[index..]) {
        let at = index + offset;
        if body[at] == b'"' {
            return at;
        }
        index = at + 2;
        if index >= body.len() {
            return body.len();
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoded_size::schema::MessageKind;

    #[test]
    fn arrays_are_charged_by_the_key_that_holds_them() {
        let one = json_cost(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}"#);
        let many = json_cost(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},{},{},{}]}]}]}"#);
        let span = MessageKind::Span.decoded_bytes();
        assert_eq!(
            many.decoded.decoded_bytes - one.decoded.decoded_bytes,
            4 * span
        );
    }

    #[test]
    fn strings_cost_their_length_and_keys_cost_nothing_decoded() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"0123456789"}}]}]}]}"#;
        let with_text = json_cost(body).decoded.decoded_bytes;
        let without = json_cost(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":""}}]}]}]}"#,
        )
        .decoded
        .decoded_bytes;
        assert_eq!(with_text - without, 10);
    }

    #[test]
    fn escaped_quotes_and_brackets_inside_strings_do_not_confuse_the_scan() {
        let plain = json_cost(br#"{"spans":[{"name":"ab"}]}"#);
        let tricky = json_cost(br#"{"spans":[{"name":"\"[{,}]\\"}]}"#);
        let span = MessageKind::Span.decoded_bytes();
        assert_eq!(plain.decoded.decoded_bytes, 4 * span + 2);
        assert_eq!(tricky.decoded.decoded_bytes, 4 * span + 9);
    }

    #[test]
    fn scalar_arrays_cost_eight_bytes_a_slot_and_truncated_text_is_harmless() {
        let cost = json_cost(br#"{"bucketCounts":["1","2","3","4","5"]}"#);
        assert_eq!(cost.decoded.decoded_bytes, 8 * 8);
        for cut in [
            &b"{\"spans\":[{\"na"[..],
            b"]]]}}}",
            b"\"",
            b"[[[[",
            b"{\"a\\",
        ] {
            let _ = json_cost(cut);
        }
    }

    #[test]
    fn proto_field_names_and_special_doubles_are_noticed() {
        assert!(!json_cost(br#"{"resourceSpans":[{"name":"a_b"}]}"#).may_need_value_tree);
        assert!(json_cost(br#"{"resource_spans":[]}"#).may_need_value_tree);
        assert!(json_cost(br#"{"asDouble":"NaN"}"#).may_need_value_tree);
        assert!(json_cost(br#"{"sum":"-Infinity"}"#).may_need_value_tree);
    }

    #[test]
    fn deep_nesting_stops_at_the_parser_limit() {
        let deep = "[".repeat(10_000);
        let cost = json_cost(deep.as_bytes());
        assert_eq!(cost.decoded.decoded_bytes, 0);
    }
}
