//! Traces in the Jaeger v1 JSON shape (`spans`, `processes`, `warnings`), mapped from OTLP
//! the way the OpenTelemetry Jaeger translator does it.

use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use skewer_query::skew::{KnownOffsets, SkewOptions, adjust_trace};
use skewer_storage::model::{
    Attribute, AttributeValue, InstrumentationScope, Resource, Span, SpanKind,
    StatusCode as SpanStatus, TraceId,
};

/// A Jaeger trace.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerTrace {
    #[serde(rename = "traceID")]
    trace_id: String,
    spans: Vec<JaegerSpan>,
    processes: serde_json::Map<String, Value>,
    warnings: Option<Vec<String>>,
}

/// A Jaeger span.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerSpan {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    references: Vec<Value>,
    flags: u32,
    start_time: u64,
    duration: u64,
    tags: Vec<Value>,
    logs: Vec<Value>,
    #[serde(rename = "processID")]
    process_id: String,
    warnings: Option<Vec<String>>,
}

impl JaegerTrace {
    /// Adds a trace-level warning (a cut trace says so), if any.
    pub fn with_warning(mut self, warning: Option<String>) -> Self {
        if let Some(warning) = warning {
            self.warnings.get_or_insert_with(Vec::new).push(warning);
        }
        self
    }
}

/// Converts a trace's spans (start-ordered) to Jaeger's shape, their times adjusted for clock
/// skew as `skew` says; each span whose clock was found off carries the finding in `warnings`
/// (as Jaeger's adjuster reports it), applied or not.
pub fn to_jaeger_trace(
    trace_id: TraceId,
    spans: &[Span],
    skew: &SkewOptions,
    known: &KnownOffsets,
) -> JaegerTrace {
    let timings = adjust_trace(spans, skew, known);
    let mut processes: Vec<Arc<Resource>> = Vec::new();
    let mut jaeger_spans = Vec::with_capacity(spans.len());
    for (span, timing) in spans.iter().zip(&timings) {
        let process_index = match processes.iter().position(|p| **p == *span.resource) {
            Some(index) => index,
            None => {
                processes.push(Arc::clone(&span.resource));
                processes.len() - 1
            }
        };
        let mut jaeger_span = to_jaeger_span(span, format!("p{}", process_index + 1));
        jaeger_span.start_time = timing.start_unix_nano / 1_000;
        if let Some(finding) = &timing.finding {
            jaeger_span.warnings = Some(vec![format!("clock skew: {}", finding.reason)]);
        }
        jaeger_spans.push(jaeger_span);
    }
    let processes = processes
        .iter()
        .enumerate()
        .map(|(index, resource)| {
            let tags: Vec<Value> = resource
                .attributes
                .iter()
                .filter(|a| a.key != Resource::SERVICE_NAME)
                .map(tag)
                .collect();
            (
                format!("p{}", index + 1),
                json!({ "serviceName": resource.service_name(), "tags": tags }),
            )
        })
        .collect();
    JaegerTrace {
        trace_id: trace_id.to_string(),
        spans: jaeger_spans,
        processes,
        warnings: None,
    }
}

fn to_jaeger_span(span: &Span, process_id: String) -> JaegerSpan {
    let trace_id = span.trace_id.to_string();
    let mut references = Vec::new();
    if let Some(parent) = span.parent_span_id {
        references.push(
            json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": parent.to_string() }),
        );
    }
    for link in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM",
            "traceID": link.trace_id.to_string(),
            "spanID": link.span_id.to_string(),
        }));
    }
    let mut tags: Vec<Value> = span.attributes.iter().map(tag).collect();
    tags.extend(scope_tags(&span.scope));
    if span.kind != SpanKind::Unspecified {
        tags.push(string_tag("span.kind", span.kind.name()));
    }
    match span.status_code {
        SpanStatus::Error => {
            tags.push(json!({ "key": "error", "type": "bool", "value": true }));
            tags.push(string_tag("otel.status_code", "ERROR"));
        }
        SpanStatus::Ok => tags.push(string_tag("otel.status_code", "OK")),
        SpanStatus::Unset => {}
    }
    if !span.status_message.is_empty() {
        tags.push(string_tag("otel.status_description", &span.status_message));
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    let logs = span
        .events
        .iter()
        .map(|event| {
            let mut fields = vec![string_tag("event", &event.name)];
            fields.extend(event.attributes.iter().map(tag));
            json!({ "timestamp": event.time_unix_nano / 1_000, "fields": fields })
        })
        .collect();
    JaegerSpan {
        trace_id,
        span_id: span.span_id.to_string(),
        operation_name: span.name.clone(),
        references,
        flags: span.flags & 0xff,
        start_time: span.start_time_unix_nano / 1_000,
        duration: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano)
            / 1_000,
        tags,
        logs,
        process_id,
        warnings: None,
    }
}

fn scope_tags(scope: &InstrumentationScope) -> Vec<Value> {
    let mut tags = Vec::new();
    if !scope.name.is_empty() {
        tags.push(string_tag("otel.scope.name", &scope.name));
    }
    if !scope.version.is_empty() {
        tags.push(string_tag("otel.scope.version", &scope.version));
    }
    tags
}

fn string_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

/// An attribute as a Jaeger tag with its type (arrays and maps as JSON text, as Jaeger does).
fn tag(attribute: &Attribute) -> Value {
    let (kind, value) = match &attribute.value {
        AttributeValue::String(text) => ("string", json!(text)),
        AttributeValue::Bool(value) => ("bool", json!(value)),
        // JavaScript reads numbers as doubles: beyond 2^53 an int64 goes as text, exact.
        AttributeValue::Int(value) if value.unsigned_abs() > 1 << 53 => {
            ("int64", json!(value.to_string()))
        }
        AttributeValue::Int(value) => ("int64", json!(value)),
        // JSON has no NaN or infinities: text, as protobuf's JSON mapping writes them.
        AttributeValue::Double(value) if value.is_nan() => ("float64", json!("NaN")),
        AttributeValue::Double(value) if value.is_infinite() => (
            "float64",
            json!(if *value > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }),
        ),
        AttributeValue::Double(value) => ("float64", json!(value)),
        AttributeValue::Bytes(bytes) => (
            "binary",
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
        AttributeValue::Empty => ("string", json!("")),
        AttributeValue::Array(_) | AttributeValue::Map(_) => {
            ("string", json!(attribute.value.to_text()))
        }
    };
    json!({ "key": attribute.key, "type": kind, "value": value })
}

#[cfg(test)]
mod tests {
    use skewer_storage::model::{SpanEvent, SpanId, SpanLink};

    use super::*;

    fn attribute(key: &str, value: AttributeValue) -> Attribute {
        Attribute {
            key: key.to_owned(),
            value,
        }
    }

    fn span(id: u8, kind: SpanKind, status: SpanStatus) -> Span {
        Span {
            resource: Arc::new(Resource {
                attributes: vec![
                    Attribute::string("service.name", "api"),
                    Attribute::string("host.name", "h1"),
                ],
                ..Resource::default()
            }),
            scope: Arc::new(InstrumentationScope {
                name: "io.opentelemetry.http".into(),
                version: "1.2.0".into(),
                ..InstrumentationScope::default()
            }),
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: (id > 1).then_some(SpanId([1; 8])),
            flags: 0x301,
            name: format!("op {id}"),
            kind,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1_000,
            end_time_unix_nano: 1_700_000_000_000_500_000 + u64::from(id) * 1_000,
            status_code: status,
            ..Span::default()
        }
    }

    /// The Jaeger JSON of `spans`, nothing moved.
    fn jaeger(spans: &[Span]) -> Value {
        let raw = SkewOptions {
            adjust: false,
            ..SkewOptions::default()
        };
        serde_json::to_value(to_jaeger_trace(
            TraceId([0xab; 16]),
            spans,
            &raw,
            &KnownOffsets::new(),
        ))
        .unwrap()
    }

    #[test]
    fn a_span_maps_as_the_opentelemetry_jaeger_translator_maps_it() {
        let mut root = span(1, SpanKind::Server, SpanStatus::Error);
        root.status_message = "boom".into();
        root.trace_state = "vendor=1".into();
        root.attributes = vec![
            attribute("s", AttributeValue::String("x".into())),
            attribute("b", AttributeValue::Bool(true)),
            attribute("i", AttributeValue::Int(-7)),
            attribute("safe", AttributeValue::Int(1 << 53)),
            attribute("big", AttributeValue::Int((1 << 53) + 1)),
            attribute("small", AttributeValue::Int(-(1 << 53) - 1)),
            attribute("d", AttributeValue::Double(0.5)),
            attribute("nan", AttributeValue::Double(f64::NAN)),
            attribute("inf", AttributeValue::Double(f64::NEG_INFINITY)),
            attribute("bytes", AttributeValue::Bytes(vec![1, 2, 255])),
            attribute("empty", AttributeValue::Empty),
            attribute(
                "array",
                AttributeValue::Array(vec![
                    AttributeValue::Int(1),
                    AttributeValue::String("a".into()),
                ]),
            ),
            attribute(
                "map",
                AttributeValue::Map(vec![Attribute::string("k", "v")]),
            ),
        ];
        root.events = vec![SpanEvent {
            time_unix_nano: 1_700_000_000_000_200_999,
            name: "exception".into(),
            attributes: vec![Attribute::string("exception.type", "IOError")],
            dropped_attributes_count: 0,
        }];
        root.links = vec![SpanLink {
            trace_id: TraceId([0xcd; 16]),
            span_id: SpanId([9; 8]),
            trace_state: String::new(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
        }];
        let child = span(2, SpanKind::Client, SpanStatus::Ok);
        let trace_id = "ab".repeat(16);
        assert_eq!(
            jaeger(&[root, child]),
            json!({
                "traceID": trace_id,
                "spans": [
                    {
                        "traceID": trace_id,
                        "spanID": "0101010101010101",
                        "operationName": "op 1",
                        "references": [
                            {"refType": "FOLLOWS_FROM", "traceID": "cd".repeat(16), "spanID": "0909090909090909"}
                        ],
                        "flags": 1,
                        "startTime": 1_700_000_000_000_001u64,
                        "duration": 500,
                        "tags": [
                            {"key": "s", "type": "string", "value": "x"},
                            {"key": "b", "type": "bool", "value": true},
                            {"key": "i", "type": "int64", "value": -7},
                            {"key": "safe", "type": "int64", "value": 9_007_199_254_740_992i64},
                            {"key": "big", "type": "int64", "value": "9007199254740993"},
                            {"key": "small", "type": "int64", "value": "-9007199254740993"},
                            {"key": "d", "type": "float64", "value": 0.5},
                            {"key": "nan", "type": "float64", "value": "NaN"},
                            {"key": "inf", "type": "float64", "value": "-Infinity"},
                            {"key": "bytes", "type": "binary", "value": "AQL/"},
                            {"key": "empty", "type": "string", "value": ""},
                            {"key": "array", "type": "string", "value": "[1,\"a\"]"},
                            {"key": "map", "type": "string", "value": "{\"k\":\"v\"}"},
                            {"key": "otel.scope.name", "type": "string", "value": "io.opentelemetry.http"},
                            {"key": "otel.scope.version", "type": "string", "value": "1.2.0"},
                            {"key": "span.kind", "type": "string", "value": "server"},
                            {"key": "error", "type": "bool", "value": true},
                            {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                            {"key": "otel.status_description", "type": "string", "value": "boom"},
                            {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"}
                        ],
                        "logs": [
                            {"timestamp": 1_700_000_000_000_200u64, "fields": [
                                {"key": "event", "type": "string", "value": "exception"},
                                {"key": "exception.type", "type": "string", "value": "IOError"}
                            ]}
                        ],
                        "processID": "p1",
                        "warnings": null
                    },
                    {
                        "traceID": trace_id,
                        "spanID": "0202020202020202",
                        "operationName": "op 2",
                        "references": [
                            {"refType": "CHILD_OF", "traceID": trace_id, "spanID": "0101010101010101"}
                        ],
                        "flags": 1,
                        "startTime": 1_700_000_000_000_002u64,
                        "duration": 500,
                        "tags": [
                            {"key": "otel.scope.name", "type": "string", "value": "io.opentelemetry.http"},
                            {"key": "otel.scope.version", "type": "string", "value": "1.2.0"},
                            {"key": "span.kind", "type": "string", "value": "client"},
                            {"key": "otel.status_code", "type": "string", "value": "OK"}
                        ],
                        "logs": [],
                        "processID": "p1",
                        "warnings": null
                    }
                ],
                "processes": {
                    "p1": {"serviceName": "api", "tags": [{"key": "host.name", "type": "string", "value": "h1"}]}
                },
                "warnings": null
            })
        );
    }

    #[test]
    fn every_kind_has_its_tag_and_unset_status_none() {
        let kinds = [
            (SpanKind::Unspecified, None),
            (SpanKind::Internal, Some("internal")),
            (SpanKind::Server, Some("server")),
            (SpanKind::Client, Some("client")),
            (SpanKind::Producer, Some("producer")),
            (SpanKind::Consumer, Some("consumer")),
        ];
        for (kind, expected) in kinds {
            let mut one = span(1, kind, SpanStatus::Unset);
            one.scope = Arc::new(InstrumentationScope::default());
            let tags = jaeger(&[one])["spans"][0]["tags"].clone();
            let expected: Vec<Value> = expected
                .map(|name| json!({"key": "span.kind", "type": "string", "value": name}))
                .into_iter()
                .collect();
            assert_eq!(tags, json!(expected), "{kind:?}");
        }
    }

    #[test]
    fn spans_of_other_resources_get_their_own_processes() {
        let a = span(1, SpanKind::Server, SpanStatus::Unset);
        let mut b = span(2, SpanKind::Server, SpanStatus::Unset);
        b.resource = Arc::new(Resource {
            attributes: vec![Attribute::string("service.name", "db")],
            ..Resource::default()
        });
        let c = span(3, SpanKind::Client, SpanStatus::Unset);
        let trace = jaeger(&[a, b, c]);
        let ids: Vec<&str> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["processID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["p1", "p2", "p1"]);
        assert_eq!(
            trace["processes"]["p2"],
            json!({"serviceName": "db", "tags": []})
        );
    }
}
