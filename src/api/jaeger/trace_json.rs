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
