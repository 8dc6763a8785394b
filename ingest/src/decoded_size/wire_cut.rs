//! The record limits' list bounds applied to a protobuf export on the wire, before it is
//! decoded: attributes, span events and links, array and key-value list elements past the
//! limits are left out of a copy of the body, and what each record lost is added to its
//! `dropped_*_count` (written once at the record's end: for a scalar the last one wins). An
//! export whose decoding alone would take more memory than the budget (millions of empty
//! attributes in 16 MiB) is cut to what the limits keep, decodes small and is accepted.
//!
//! One pass into one output buffer, never longer than the body: a nested message keeps the
//! width of its length prefix (a varint padded with continuation bytes, which every protobuf
//! decoder reads), so nothing is moved once written.

use skewer_storage::model::Signal;

use super::protobuf::{MAX_DEPTH, WireError, read_varint, skip_field, take_delimited};
use super::schema::{FieldKind, MessageKind};
use crate::record_limits::{LimitedCounts, RecordLimits};

/// The lists a message's limits count, each with its own counter.
#[derive(Clone, Copy)]
enum List {
    Attributes = 0,
    Events = 1,
    Links = 2,
    Elements = 3,
}

/// The export `body` of `signal` with its lists cut to `limits`, and what was cut.
pub fn cut_lists(
    signal: Signal,
    body: &[u8],
    limits: &RecordLimits,
) -> Result<(Vec<u8>, LimitedCounts), WireError> {
    // Usually far smaller than the body (what was cut is what made it huge): grown as needed.
    let mut out = Vec::with_capacity(body.len().min(64 << 10));
    let mut counts = LimitedCounts::default();
    cut_message(
        MessageKind::request(signal),
        body,
        0,
        limits,
        &mut out,
        &mut counts,
    )?;
    Ok((out, counts))
}

fn cut_message(
    kind: MessageKind,
    mut body: &[u8],
    depth: u32,
    limits: &RecordLimits,
    out: &mut Vec<u8>,
    counts: &mut LimitedCounts,
) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut seen = [0usize; 4];
    let mut dropped = [0u64; 4];
    // The message's own dropped counts, held back to be written with what is cut here.
    let mut received = [0u64; 3];
    while !body.is_empty() {
        let field_start = body;
        let key = read_varint(&mut body)?;
        let number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        if key & 7 == 0
            && let Some(list) = dropped_count_of(kind, number)
        {
            received[list as usize] = read_varint(&mut body)?;
            continue;
        }
        let child = match (key & 7, kind.field(number)) {
            (2, FieldKind::Inline(child) | FieldKind::Repeated(child)) => child,
            _ => {
                skip_field(key, &mut body)?;
                out.extend_from_slice(&field_start[..field_start.len() - body.len()]);
                continue;
            }
        };
        let key_len = field_start.len() - body.len();
        let length_start = body;
        let value = take_delimited(&mut body)?;
        let length_width = length_start.len() - body.len() - value.len();
        if let Some((list, max)) = list_limit(kind, child, limits) {
            seen[list as usize] += 1;
            if seen[list as usize] > max {
                dropped[list as usize] += 1;
                continue;
            }
        }
        out.extend_from_slice(&field_start[..key_len]);
        let length_at = out.len();
        out.resize(length_at + length_width, 0);
        cut_message(child, value, depth + 1, limits, out, counts)?;
        let written = out.len() - length_at - length_width;
        write_padded_varint(&mut out[length_at..length_at + length_width], written)?;
    }
    for list in [List::Attributes, List::Events, List::Links] {
        let total = received[list as usize].saturating_add(dropped[list as usize]);
        if let Some(number) = dropped_count_field(kind, list)
            && total > 0
        {
            write_varint(out, u64::from(number) << 3);
            write_varint(out, total.min(u64::from(u32::MAX)));
        }
    }
    counts.attributes += dropped[List::Attributes as usize];
    counts.events += dropped[List::Events as usize];
    counts.links += dropped[List::Links as usize];
    counts.values += u64::from(dropped[List::Elements as usize] > 0);
    Ok(())
}

/// Which list of a `parent` message a `child` element belongs to, and its limit.
fn list_limit(
    parent: MessageKind,
    child: MessageKind,
    limits: &RecordLimits,
) -> Option<(List, usize)> {
    use MessageKind as M;
    match (parent, child) {
        (M::KeyValueList, M::KeyValue) | (M::ArrayValue, M::AnyValue) => {
            Some((List::Elements, limits.max_value_elements))
        }
        (_, M::KeyValue) => Some((List::Attributes, limits.max_attributes)),
        (M::Span, M::SpanEvent) => Some((List::Events, limits.max_events_per_span)),
        (M::Span, M::SpanLink) => Some((List::Links, limits.max_links_per_span)),
        _ => None,
    }
}

/// The field number of a message's count of dropped `list` elements, where OTLP has one.
fn dropped_count_field(kind: MessageKind, list: List) -> Option<u32> {
    use MessageKind as M;
    match (kind, list) {
        (M::Span, List::Attributes) => Some(10),
        (M::Span, List::Events) => Some(12),
        (M::Span, List::Links) => Some(14),
        (M::SpanEvent | M::Scope, List::Attributes) => Some(4),
        (M::SpanLink, List::Attributes) => Some(5),
        (M::LogRecord, List::Attributes) => Some(7),
        (M::Resource, List::Attributes) => Some(2),
        _ => None,
    }
}

/// The list whose dropped count field `number` of `kind` is.
fn dropped_count_of(kind: MessageKind, number: u32) -> Option<List> {
    [List::Attributes, List::Events, List::Links]
        .into_iter()
        .find(|&list| dropped_count_field(kind, list) == Some(number))
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes `value` as a varint filling `slot` exactly (continuation bytes padding it out).
fn write_padded_varint(slot: &mut [u8], value: usize) -> Result<(), WireError> {
    let mut value = value as u64;
    let last = slot.len().saturating_sub(1);
    for (index, byte) in slot.iter_mut().enumerate() {
        let continues = if index < last { 0x80 } else { 0 };
        *byte = (value & 0x7f) as u8 | continues;
        value >>= 7;
    }
    // A cut message is never longer than the one received, so its length always fits.
    if value == 0 && !slot.is_empty() {
        Ok(())
    } else {
        Err(WireError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, KeyValue, any_value::Value,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn attribute(n: usize) -> KeyValue {
        KeyValue {
            key: format!("k{n}"),
            value: Some(AnyValue {
                value: Some(Value::IntValue(n as i64)),
            }),
            ..KeyValue::default()
        }
    }

    fn limits() -> RecordLimits {
        RecordLimits {
            max_attributes: 3,
            max_events_per_span: 2,
            max_links_per_span: 1,
            max_value_elements: 4,
            ..RecordLimits::default()
        }
    }

    #[test]
    fn lists_past_the_limits_are_cut_and_counted_on_their_records() {
        let array = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: (0..300)
                    .map(|n| AnyValue {
                        value: Some(Value::IntValue(n)),
                    })
                    .collect(),
            })),
        };
        let span = Span {
            name: "s".into(),
            attributes: (0..1000)
                .map(attribute)
                .chain([KeyValue {
                    key: "list".into(),
                    value: Some(array.clone()),
                    ..KeyValue::default()
                }])
                .collect(),
            dropped_attributes_count: 7,
            events: (0..5)
                .map(|_| Event {
                    name: "e".into(),
                    attributes: (0..4).map(attribute).collect(),
                    ..Event::default()
                })
                .collect(),
            links: vec![Link::default(); 3],
            dropped_links_count: 1,
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: (0..5).map(attribute).collect(),
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span.clone(), span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let body = request.encode_to_vec();
        let (cut, counts) = cut_lists(Signal::Traces, &body, &limits()).unwrap();
        assert!(
            cut.len() < body.len() / 10,
            "{} of {}",
            cut.len(),
            body.len()
        );
        let cut = ExportTraceServiceRequest::decode(cut.as_slice()).unwrap();
        let resource = cut.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 3);
        assert_eq!(resource.dropped_attributes_count, 2);
        for span in &cut.resource_spans[0].scope_spans[0].spans {
            assert_eq!(span.name, "s");
            assert_eq!(span.attributes, (0..3).map(attribute).collect::<Vec<_>>());
            assert_eq!(span.dropped_attributes_count, 7 + 998);
            assert_eq!(span.events.len(), 2);
            assert_eq!(span.dropped_events_count, 3);
            assert!(span.events.iter().all(|e| e.attributes.len() == 3));
            assert!(span.events.iter().all(|e| e.dropped_attributes_count == 1));
            assert_eq!((span.links.len(), span.dropped_links_count), (1, 3));
        }
        assert_eq!(counts.attributes, 2 + 2 * (998 + 2));
        assert_eq!((counts.events, counts.links), (6, 4));

        // Elements of an array value are cut too (counted as values cut).
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(array),
                        ..LogRecord::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let (cut, counts) = cut_lists(Signal::Logs, &logs.encode_to_vec(), &limits()).unwrap();
        let cut = ExportLogsServiceRequest::decode(cut.as_slice()).unwrap();
        let body = cut.resource_logs[0].scope_logs[0].log_records[0]
            .body
            .clone()
            .unwrap();
        let Some(Value::ArrayValue(array)) = body.value else {
            panic!("{body:?}")
        };
        assert_eq!(array.values.len(), 4);
        assert_eq!(counts.values, 1);
    }

    #[test]
    fn an_export_within_the_limits_comes_out_as_it_went_in() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "s".into(),
                        attributes: (0..3).map(attribute).collect(),
                        dropped_attributes_count: 2,
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let body = request.encode_to_vec();
        let (cut, counts) = cut_lists(Signal::Traces, &body, &limits()).unwrap();
        assert_eq!(
            ExportTraceServiceRequest::decode(cut.as_slice()).unwrap(),
            request
        );
        assert_eq!(counts, LimitedCounts::default());
    }

    #[test]
    fn padded_lengths_fill_their_slot_and_refuse_what_does_not_fit() {
        let mut slot = [0u8; 3];
        write_padded_varint(&mut slot, 5).unwrap();
        assert_eq!(slot, [0x85, 0x80, 0x00]);
        let mut body: &[u8] = &slot;
        assert_eq!(read_varint(&mut body).unwrap(), 5);
        assert!(write_padded_varint(&mut [0u8; 1], 200).is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(cut_lists(Signal::Traces, &[0x0a, 0x05, 0x01], &limits()).is_err());
    }
}
