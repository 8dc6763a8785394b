//! OTLP spans to model spans, refusing individually invalid spans with a reason.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use skewer_storage::model::{Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId};

use super::common::{Converted, Rejections, convert_attributes, convert_resource, convert_scope};

/// Converts an export, keeping valid spans and counting the rest.
pub fn convert_traces(request: ExportTraceServiceRequest) -> Converted<Span> {
    let mut records = Vec::new();
    let mut rejections = Rejections::default();
    for resource_spans in request.resource_spans {
        let resource = convert_resource(resource_spans.resource, resource_spans.schema_url);
        for scope_spans in resource_spans.scope_spans {
            let scope = convert_scope(scope_spans.scope, scope_spans.schema_url);
            records.reserve(scope_spans.spans.len());
            for span in scope_spans.spans {
                let trace_id = match TraceId::from_slice(&span.trace_id) {
                    Ok(id) => id,
                    Err(err) => {
                        rejections.reject(|| format!("span {:?}: {err}", span.name));
                        continue;
                    }
                };
                let span_id = match SpanId::from_slice(&span.span_id) {
                    Ok(id) => id,
                    Err(err) => {
                        rejections.reject(|| format!("span {:?}: {err}", span.name));
                        continue;
                    }
                };
                let parent_span_id = match optional_span_id(&span.parent_span_id) {
                    Ok(id) => id,
                    Err(err) => {
                        rejections.reject(|| format!("span {:?}: parent {err}", span.name));
                        continue;
                    }
                };
                let links = match span.links.into_iter().map(convert_link).collect() {
                    Ok(links) => links,
                    Err(err) => {
                        rejections.reject(|| format!("span {:?}: link {err}", span.name));
                        continue;
                    }
                };
                let status = span.status.unwrap_or_default();
                records.push(Span {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    trace_id,
                    span_id,
                    parent_span_id,
                    trace_state: span.trace_state,
                    flags: span.flags,
                    name: span.name,
                    kind: SpanKind::from_number(span.kind),
                    start_time_unix_nano: span.start_time_unix_nano,
                    end_time_unix_nano: span.end_time_unix_nano,
                    attributes: convert_attributes(span.attributes),
                    dropped_attributes_count: span.dropped_attributes_count,
                    events: span.events.into_iter().map(convert_event).collect(),
                    dropped_events_count: span.dropped_events_count,
                    links,
                    dropped_links_count: span.dropped_links_count,
                    status_code: StatusCode::from_number(status.code),
                    status_message: status.message,
                });
            }
        }
    }
    Converted {
        records,
        rejections,
    }
}

/// An absent id is empty or all zeros; anything else must be a valid 8-byte id.
pub fn optional_span_id(bytes: &[u8]) -> Result<Option<SpanId>, skewer_storage::model::IdError> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) && bytes.len() == SpanId::LEN {
        return Ok(None);
    }
    SpanId::from_slice(bytes).map(Some)
}

/// An absent trace id is empty or all zeros; anything else must be a valid 16-byte id.
pub fn optional_trace_id(bytes: &[u8]) -> Result<Option<TraceId>, skewer_storage::model::IdError> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) && bytes.len() == TraceId::LEN {
        return Ok(None);
    }
    TraceId::from_slice(bytes).map(Some)
}

fn convert_event(event: Event) -> SpanEvent {
    SpanEvent {
        time_unix_nano: event.time_unix_nano,
        name: event.name,
        attributes: convert_attributes(event.attributes),
        dropped_attributes_count: event.dropped_attributes_count,
    }
}

fn convert_link(link: Link) -> Result<SpanLink, skewer_storage::model::IdError> {
    Ok(SpanLink {
        trace_id: TraceId::from_slice(&link.trace_id)?,
        span_id: SpanId::from_slice(&link.span_id)?,
        trace_state: link.trace_state,
        attributes: convert_attributes(link.attributes),
        dropped_attributes_count: link.dropped_attributes_count,
        flags: link.flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
    };

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>, parent: Vec<u8>) -> OtlpSpan {
        OtlpSpan {
            trace_id,
            span_id,
            parent_span_id: parent,
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            events: vec![Event {
                time_unix_nano: 15,
                name: "exception".into(),
                ..Event::default()
            }],
            ..OtlpSpan::default()
        }
    }

    #[test]
    fn valid_spans_kept_invalid_ones_counted() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(vec![1; 16], vec![2; 8], vec![]),
                        span(vec![1; 15], vec![2; 8], vec![]),
                        span(vec![1; 16], vec![0; 8], vec![]),
                        span(vec![1; 16], vec![3; 8], vec![2; 8]),
                        span(vec![1; 16], vec![4; 8], vec![2; 3]),
                    ],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let converted = convert_traces(request);
        assert_eq!(converted.records.len(), 2);
        assert_eq!(converted.rejections.count, 3);
        assert!(
            converted
                .rejections
                .first_message
                .unwrap()
                .contains("16 bytes")
        );
        let first = &converted.records[0];
        assert_eq!(first.kind, SpanKind::Server);
        assert_eq!(first.status_code, StatusCode::Error);
        assert_eq!(first.parent_span_id, None);
        assert_eq!(first.events[0].name, "exception");
        assert_eq!(converted.records[1].parent_span_id, Some(SpanId([2; 8])));
    }
}
