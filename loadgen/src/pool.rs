//! Pre-encoded requests, so the generator stays cheap next to the server. Each request
//! remembers where its trace ids, span ids, log request ids and timestamps sit in the
//! encoded bytes; replaying it in a later cycle rewrites those in place (new ids, later times)
//! instead of generating and encoding again. Span ids change with every replay too, as in real
//! traffic: a compacted file holding many replays must not compress them away.

use std::collections::HashSet;

use bytes::Bytes;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// OTLP protobuf (gRPC and `application/x-protobuf`).
    Protobuf,
    /// OTLP JSON.
    Json,
}

#[derive(Debug, Clone, Copy)]
enum PatchKind {
    /// The low 8 bytes of a binary trace id.
    TraceIdBytes,
    /// The low 16 hex digits of a hex trace id.
    TraceIdHex,
    /// A binary span id (all 8 bytes).
    SpanIdBytes,
    /// The 16 hex digits of a hex span id.
    SpanIdHex,
    /// A little-endian fixed64 timestamp.
    TimeFixed64,
    /// A decimal timestamp of fixed width.
    TimeDecimal,
    /// The 16 hex digits of a generated request id (`req-` + hex), in either encoding.
    RequestIdHex,
}

/// The prefix of the request ids the log generator writes (see `logs::log_record`).
const REQUEST_ID_PREFIX: &[u8] = b"req-";
/// Tags of the fixed64 times rewritten on replay: a data point's `time_unix_nano` (field 3),
/// a log record's `time_unix_nano` (field 1) and `observed_time_unix_nano` (field 11).
const TIME_TAGS: [u8; 3] = [0x19, 0x09, 0x59];
/// Hex digits after the prefix.
const REQUEST_ID_HEX_DIGITS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Patch {
    offset: usize,
    kind: PatchKind,
    original: u64,
}

/// One encoded export, replayable with fresh ids and times.
#[derive(Debug, Clone)]
pub struct Prepared {
    body: Bytes,
    /// Records (spans, log records or points) in the export.
    pub records: usize,
    patches: Vec<Patch>,
    trace_ids: Vec<[u8; 16]>,
}

/// A mixing function: distinct cycles give unrelated id suffixes.
fn mix(cycle: u64) -> u64 {
    let mut z = cycle.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What cycle `cycle` XORs into the low half of ids: nothing for the encoded cycle 0.
fn salt(cycle: u64) -> u64 {
    if cycle == 0 { 0 } else { mix(cycle) }
}

/// What cycle `cycle` XORs into span ids (unrelated to the trace-id salt).
fn span_salt(cycle: u64) -> u64 {
    if cycle == 0 {
        0
    } else {
        mix(cycle ^ 0x5bd1_e995_7f4a_7c15)
    }
}

impl Prepared {
    /// Encodes `body` and finds the trace ids and timestamps (those in `times`: metric point
    /// times, backfilled log record times) to rewrite per cycle.
    pub fn new(
        encoding: Encoding,
        body: Vec<u8>,
        records: usize,
        trace_ids: Vec<[u8; 16]>,
        span_ids: &[[u8; 8]],
        times: &[u64],
    ) -> Self {
        let mut patches = Vec::new();
        match encoding {
            Encoding::Protobuf => {
                let ids: HashSet<[u8; 16]> = trace_ids.iter().copied().collect();
                let spans: HashSet<[u8; 8]> = span_ids.iter().copied().collect();
                let wanted_times: HashSet<u64> = times.iter().copied().collect();
                let mut i = 0;
                while i + 8 <= body.len() {
                    let mut span_window = [0u8; 8];
                    span_window.copy_from_slice(&body[i..i + 8]);
                    let mut window = [0u8; 16];
                    if i + 16 <= body.len() {
                        window.copy_from_slice(&body[i..i + 16]);
                    }
                    if i + 16 <= body.len() && ids.contains(&window) {
                        patches.push(Patch {
                            offset: i + 8,
                            kind: PatchKind::TraceIdBytes,
                            original: u64::from_be_bytes(
                                window[8..].try_into().unwrap_or_default(),
                            ),
                        });
                        i += 16;
                        continue;
                    }
                    if spans.contains(&span_window) {
                        patches.push(Patch {
                            offset: i,
                            kind: PatchKind::SpanIdBytes,
                            original: u64::from_be_bytes(span_window),
                        });
                        i += 8;
                        continue;
                    }
                    if TIME_TAGS.contains(&body[i]) && i + 9 <= body.len() {
                        let value =
                            u64::from_le_bytes(body[i + 1..i + 9].try_into().unwrap_or_default());
                        if wanted_times.contains(&value) {
                            patches.push(Patch {
                                offset: i + 1,
                                kind: PatchKind::TimeFixed64,
                                original: value,
                            });
                            i += 9;
                            continue;
                        }
                    }
                    i += 1;
                }
            }
            Encoding::Json => {
                let ids: HashSet<String> =
                    trace_ids.iter().map(|id| super::traces::hex(id)).collect();
                let text = String::from_utf8_lossy(&body).into_owned();
                for (position, _) in text.match_indices("\"traceId\":\"") {
                    let start = position + "\"traceId\":\"".len();
                    if let Some(hex) = text.get(start..start + 32)
                        && ids.contains(hex)
                    {
                        let original = u64::from_str_radix(&hex[16..], 16).unwrap_or(0);
                        patches.push(Patch {
                            offset: start + 16,
                            kind: PatchKind::TraceIdHex,
                            original,
                        });
                    }
                }
                let span_hex: HashSet<String> = span_ids.iter().map(hex::encode).collect();
                for key in ["\"spanId\":\"", "\"parentSpanId\":\""] {
                    for (position, _) in text.match_indices(key) {
                        let start = position + key.len();
                        if let Some(hex) = text.get(start..start + 16)
                            && span_hex.contains(hex)
                        {
                            patches.push(Patch {
                                offset: start,
                                kind: PatchKind::SpanIdHex,
                                original: u64::from_str_radix(hex, 16).unwrap_or(0),
                            });
                        }
                    }
                }
                let time_keys = ["\"timeUnixNano\":\"", "\"observedTimeUnixNano\":\""];
                let time_keys = time_keys.iter().flat_map(|key| {
                    text.match_indices(key)
                        .map(move |(position, _)| position + key.len())
                });
                for start in time_keys {
                    let digits: String = text[start..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(value) = digits.parse::<u64>()
                        && digits.len() == 19
                        && times.contains(&value)
                    {
                        patches.push(Patch {
                            offset: start,
                            kind: PatchKind::TimeDecimal,
                            original: value,
                        });
                    }
                }
            }
        }
        patches.extend(request_id_patches(&body));
        Self {
            body: Bytes::from(body),
            records,
            patches,
            trace_ids,
        }
    }

    /// The body for `cycle`: cycle 0 as encoded, later cycles with new trace ids and times
    /// moved on by `cycle * time_step_nanos`.
    pub fn materialize(&self, cycle: u64, time_step_nanos: u64) -> Bytes {
        if cycle == 0 || self.patches.is_empty() {
            return self.body.clone();
        }
        let salt = salt(cycle);
        let span_salt = span_salt(cycle);
        let shift = cycle.saturating_mul(time_step_nanos);
        let mut body = self.body.to_vec();
        for patch in &self.patches {
            match patch.kind {
                PatchKind::SpanIdBytes => {
                    body[patch.offset..patch.offset + 8]
                        .copy_from_slice(&(patch.original ^ span_salt).to_be_bytes());
                }
                PatchKind::SpanIdHex => {
                    let digits = &mut body[patch.offset..patch.offset + 16];
                    if hex::encode_to_slice((patch.original ^ span_salt).to_be_bytes(), digits)
                        .is_err()
                    {
                        debug_assert!(false, "a hex patch is 16 digits");
                    }
                }
                PatchKind::TraceIdBytes => {
                    body[patch.offset..patch.offset + 8]
                        .copy_from_slice(&(patch.original ^ salt).to_be_bytes());
                }
                PatchKind::TraceIdHex | PatchKind::RequestIdHex => {
                    let digits = &mut body[patch.offset..patch.offset + 16];
                    // 8 bytes always fit the 16 digits the patch covers.
                    if hex::encode_to_slice((patch.original ^ salt).to_be_bytes(), digits).is_err()
                    {
                        debug_assert!(false, "a hex patch is 16 digits");
                    }
                }
                PatchKind::TimeFixed64 => {
                    body[patch.offset..patch.offset + 8]
                        .copy_from_slice(&(patch.original + shift).to_le_bytes());
                }
                PatchKind::TimeDecimal => {
                    let text = format!("{:019}", patch.original + shift);
                    if text.len() == 19 {
                        body[patch.offset..patch.offset + 19].copy_from_slice(text.as_bytes());
                    }
                }
            }
        }
        Bytes::from(body)
    }

    /// The request (correlation) ids this export carries in `cycle`.
    pub fn request_ids(&self, cycle: u64) -> Vec<String> {
        let salt = salt(cycle);
        self.patches
            .iter()
            .filter(|patch| matches!(patch.kind, PatchKind::RequestIdHex))
            .map(|patch| format!("req-{:016x}", patch.original ^ salt))
            .collect()
    }

    /// The trace ids this export carries in `cycle`.
    pub fn trace_ids(&self, cycle: u64) -> Vec<[u8; 16]> {
        let salt = salt(cycle);
        self.trace_ids
            .iter()
            .map(|id| {
                let mut id = *id;
                let low = u64::from_be_bytes(id[8..].try_into().unwrap_or_default()) ^ salt;
                id[8..].copy_from_slice(&low.to_be_bytes());
                id
            })
            .collect()
    }
}

/// Every `req-` followed by 16 lowercase hex digits: the same bytes in protobuf and JSON.
fn request_id_patches(body: &[u8]) -> Vec<Patch> {
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let mut patches = Vec::new();
    let mut i = 0;
    while i + REQUEST_ID_PREFIX.len() + REQUEST_ID_HEX_DIGITS <= body.len() {
        let start = i + REQUEST_ID_PREFIX.len();
        let digits = &body[start..start + REQUEST_ID_HEX_DIGITS];
        if body[i..start] == *REQUEST_ID_PREFIX
            && digits.iter().all(is_hex)
            && let Some(original) = std::str::from_utf8(digits)
                .ok()
                .and_then(|text| u64::from_str_radix(text, 16).ok())
        {
            patches.push(Patch {
                offset: start,
                kind: PatchKind::RequestIdHex,
                original,
            });
            i = start + REQUEST_ID_HEX_DIGITS;
        } else {
            i += 1;
        }
    }
    patches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Random;
    use crate::traces::{Service, TraceShape, traces_request};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn request() -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
        let mut rng = Random::new(9);
        let shape = TraceShape {
            services: vec![
                Service::new("a", 0, &mut rng),
                Service::new("b", 1, &mut rng),
            ],
            depth: 1,
            fan_out: 2,
            error_rate: 0.0,
        };
        traces_request(&mut rng, &shape, 50, 1_700_000_000_000_000_000)
    }

    #[test]
    fn protobuf_cycles_get_new_trace_ids_and_stay_decodable() {
        let (message, ids) = request();
        let prepared = Prepared::new(
            Encoding::Protobuf,
            message.encode_to_vec(),
            50,
            ids.clone(),
            &crate::traces::span_ids(&message),
            &[],
        );
        assert_eq!(
            prepared.materialize(0, 0),
            Bytes::from(message.encode_to_vec())
        );
        let later = ExportTraceServiceRequest::decode(prepared.materialize(3, 0)).unwrap();
        let expected: HashSet<[u8; 16]> = prepared.trace_ids(3).into_iter().collect();
        let seen: HashSet<[u8; 16]> = later
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
            .map(|s| s.trace_id.as_slice().try_into().unwrap())
            .collect();
        assert_eq!(seen, expected);
        assert!(seen.is_disjoint(&ids.into_iter().collect()));
    }

    #[test]
    fn json_cycles_get_new_trace_ids() {
        let (message, ids) = request();
        let json = serde_json::to_vec(&message).unwrap();
        let prepared = Prepared::new(
            Encoding::Json,
            json,
            50,
            ids,
            &crate::traces::span_ids(&message),
            &[],
        );
        let later: ExportTraceServiceRequest =
            serde_json::from_slice(&prepared.materialize(2, 0)).unwrap();
        let expected: HashSet<[u8; 16]> = prepared.trace_ids(2).into_iter().collect();
        for span in later
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        {
            assert!(expected.contains(span.trace_id.as_slice()));
        }
    }

    #[test]
    fn log_cycles_get_new_request_ids_in_both_encodings() {
        use crate::logs::logs_request;
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use prost::Message;

        let mut rng = Random::new(9);
        let services = vec![Service::new("a", 0, &mut rng)];
        let (message, ids) = logs_request(&mut rng, &services, 40, 1_000);
        let request_ids_of = |request: &ExportLogsServiceRequest| -> Vec<String> {
            request
                .resource_logs
                .iter()
                .flat_map(|r| r.scope_logs.iter().flat_map(|s| s.log_records.iter()))
                .flat_map(|record| record.attributes.iter())
                .filter(|kv| kv.key == "request.id")
                .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                        Some(s.clone())
                    }
                    _ => None,
                })
                .collect()
        };
        let original = request_ids_of(&message);
        assert_eq!(original.len(), 40);

        let protobuf = Prepared::new(
            Encoding::Protobuf,
            message.encode_to_vec(),
            40,
            ids.clone(),
            &crate::logs::span_ids(&message),
            &[],
        );
        assert_eq!(protobuf.request_ids(0), original);
        let later = ExportLogsServiceRequest::decode(protobuf.materialize(3, 0)).unwrap();
        let replayed = request_ids_of(&later);
        assert_eq!(replayed, protobuf.request_ids(3));
        assert!(replayed.iter().all(|id| !original.contains(id)));

        let json = Prepared::new(
            Encoding::Json,
            serde_json::to_vec(&message).unwrap(),
            40,
            ids,
            &crate::logs::span_ids(&message),
            &[],
        );
        let later: ExportLogsServiceRequest =
            serde_json::from_slice(&json.materialize(3, 0)).unwrap();
        assert_eq!(request_ids_of(&later), protobuf.request_ids(3));
    }

    #[test]
    fn backfilled_log_times_move_on_with_each_replay_in_both_encodings() {
        use crate::logs::{logs_request, record_times};
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use prost::Message;

        let mut rng = Random::new(9);
        let services = vec![Service::new("a", 0, &mut rng)];
        let base = 1_704_067_200_000_000_000;
        let (message, ids) = logs_request(&mut rng, &services, 20, base);
        let times = record_times(&message);
        assert_eq!(times.len(), 40);
        let step = 3_600_000_000_000;
        let moved: Vec<u64> = times.iter().map(|time| time + 3 * step).collect();
        let span_ids = crate::logs::span_ids(&message);
        let protobuf = Prepared::new(
            Encoding::Protobuf,
            message.encode_to_vec(),
            20,
            ids.clone(),
            &span_ids,
            &times,
        );
        let later = ExportLogsServiceRequest::decode(protobuf.materialize(3, step)).unwrap();
        assert_eq!(record_times(&later), moved);
        let json = Prepared::new(
            Encoding::Json,
            serde_json::to_vec(&message).unwrap(),
            20,
            ids,
            &span_ids,
            &times,
        );
        let later: ExportLogsServiceRequest =
            serde_json::from_slice(&json.materialize(3, step)).unwrap();
        assert_eq!(record_times(&later), moved);
    }

    /// Span ids and parent ids of a decoded trace export.
    fn span_links(request: &ExportTraceServiceRequest) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let spans: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
            .collect();
        (
            spans.iter().map(|s| s.span_id.clone()).collect(),
            spans
                .iter()
                .map(|s| s.parent_span_id.clone())
                .filter(|p| !p.is_empty())
                .collect(),
        )
    }

    #[test]
    fn replays_get_new_span_ids_with_parents_kept_consistent() {
        let (message, ids) = request();
        let span_ids = crate::traces::span_ids(&message);
        let (original, _) = span_links(&message);
        for (encoding, body) in [
            (Encoding::Protobuf, message.encode_to_vec()),
            (Encoding::Json, serde_json::to_vec(&message).unwrap()),
        ] {
            let prepared = Prepared::new(encoding, body, 50, ids.clone(), &span_ids, &[]);
            let bytes = prepared.materialize(5, 0);
            let later = match encoding {
                Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes).unwrap(),
                Encoding::Json => serde_json::from_slice(&bytes).unwrap(),
            };
            let (replayed, parents) = span_links(&later);
            assert_eq!(replayed.len(), original.len());
            assert!(
                replayed.iter().all(|id| !original.contains(id)),
                "{encoding:?}: every span id is new"
            );
            assert!(!parents.is_empty());
            assert!(
                parents.iter().all(|parent| replayed.contains(parent)),
                "{encoding:?}: every parent is a span of the replay"
            );
        }
    }
}
