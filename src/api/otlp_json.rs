//! Stored spans back in OTLP's shape (`TracesData`: resource spans, scope spans, spans), which
//! serialises as OTLP/JSON: camelCase keys, hex ids, 64-bit integers and times as strings.
//! The reverse of the ingest conversion, for api_v3 answers.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope as OtlpScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, TracesData,
};
use skewer_storage::model::{Attribute, AttributeValue, InstrumentationScope, Resource, Span};

/// A resource and its spans by scope, in arrival order.
type ResourceGroup = (Arc<Resource>, Vec<ScopeGroup>);
/// A scope and its spans.
type ScopeGroup = (Arc<InstrumentationScope>, Vec<OtlpSpan>);

/// Spans as OTLP `TracesData`, grouped by resource and scope in the order they come.
pub fn traces_data<'a>(spans: impl IntoIterator<Item = &'a Span>) -> TracesData {
    let mut groups: Vec<ResourceGroup> = Vec::new();
    for span in spans {
        let resource_index = match groups.iter().position(|(r, _)| **r == *span.resource) {
            Some(index) => index,
            None => {
                groups.push((Arc::clone(&span.resource), Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[resource_index].1;
        let scope_index = match scopes.iter().position(|(s, _)| **s == *span.scope) {
            Some(index) => index,
            None => {
                scopes.push((Arc::clone(&span.scope), Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[scope_index].1.push(otlp_span(span));
    }
    TracesData {
        resource_spans: groups
            .into_iter()
            .map(|(resource, scopes)| ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: key_values(&resource.attributes),
                    dropped_attributes_count: resource.dropped_attributes_count,
                    ..OtlpResource::default()
                }),
                schema_url: resource.schema_url.clone(),
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| ScopeSpans {
                        scope: Some(OtlpScope {
                            name: scope.name.clone(),
                            version: scope.version.clone(),
                            attributes: key_values(&scope.attributes),
                            dropped_attributes_count: scope.dropped_attributes_count,
                        }),
                        spans,
                        schema_url: scope.schema_url.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// [`traces_data`] as OTLP/JSON, a root span's empty `parentSpanId` left out as OTLP/JSON
/// writers do (clients validate it as 16 hex digits when present).
pub fn traces_json<'a>(spans: impl IntoIterator<Item = &'a Span>) -> serde_json::Value {
    let mut json = serde_json::to_value(traces_data(spans)).unwrap_or_default();
    let resource_spans = json
        .get_mut("resourceSpans")
        .and_then(serde_json::Value::as_array_mut);
    for resource in resource_spans.into_iter().flatten() {
        let scope_spans = resource
            .get_mut("scopeSpans")
            .and_then(serde_json::Value::as_array_mut);
        for scope in scope_spans.into_iter().flatten() {
            let spans = scope
                .get_mut("spans")
                .and_then(serde_json::Value::as_array_mut);
            for span in spans.into_iter().flatten() {
                if let Some(object) = span.as_object_mut()
                    && object.get("parentSpanId").and_then(|v| v.as_str()) == Some("")
                {
                    object.remove("parentSpanId");
                }
            }
        }
    }
    json
}

fn otlp_span(span: &Span) -> OtlpSpan {
    OtlpSpan {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        trace_state: span.trace_state.clone(),
        parent_span_id: span
            .parent_span_id
            .map(|id| id.0.to_vec())
            .unwrap_or_default(),
        flags: span.flags,
        name: span.name.clone(),
        kind: span.kind as i32,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: key_values(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: event.time_unix_nano,
                name: event.name.clone(),
                attributes: key_values(&event.attributes),
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links: span
            .links
            .iter()
            .map(|link| Link {
                trace_id: link.trace_id.0.to_vec(),
                span_id: link.span_id.0.to_vec(),
                trace_state: link.trace_state.clone(),
                attributes: key_values(&link.attributes),
                dropped_attributes_count: link.dropped_attributes_count,
                flags: link.flags,
            })
            .collect(),
        dropped_links_count: span.dropped_links_count,
        status: Some(Status {
            message: span.status_message.clone(),
            code: span.status_code as i32,
        }),
    }
}

fn key_values(attributes: &[Attribute]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|attribute| KeyValue {
            key: attribute.key.clone(),
            value: Some(any_value(&attribute.value)),
            ..KeyValue::default()
        })
        .collect()
}

fn any_value(value: &AttributeValue) -> AnyValue {
    use any_value::Value;
    let value = match value {
        AttributeValue::Empty => None,
        AttributeValue::String(text) => Some(Value::StringValue(text.clone())),
        AttributeValue::Bool(flag) => Some(Value::BoolValue(*flag)),
        AttributeValue::Int(number) => Some(Value::IntValue(*number)),
        AttributeValue::Double(number) => Some(Value::DoubleValue(*number)),
        AttributeValue::Bytes(bytes) => Some(Value::BytesValue(bytes.clone())),
        AttributeValue::Array(values) => Some(Value::ArrayValue(ArrayValue {
            values: values.iter().map(any_value).collect(),
        })),
        AttributeValue::Map(entries) => Some(Value::KvlistValue(KeyValueList {
            values: key_values(entries),
        })),
    };
    AnyValue { value }
}
