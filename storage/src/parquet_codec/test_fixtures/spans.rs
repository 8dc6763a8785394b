//! Span fixtures: realistic traces of a small web shop, and a proptest strategy for any span.

use std::sync::Arc;

use proptest::prelude::*;

use super::{Rng, any_attributes, any_resource, attribute, resource, scope};
use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, Resource, Span, SpanEvent, SpanId, SpanKind,
    SpanLink, StatusCode, TraceId,
};

pub(crate) fn id<const N: usize>(rng: &mut Rng) -> [u8; N] {
    let mut bytes = [0u8; N];
    for chunk in bytes.chunks_mut(8) {
        let random = rng.next().to_le_bytes();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    bytes[0] |= 1; // never all zeros
    bytes
}

/// Span `id` of trace `trace` (ids repeat the byte) in `service`, under `parent`, named
/// `op{id}`, from 1,000 ns to 1,000 + 100 × id ns, status unset; tests move what they need.
pub(crate) fn tree_span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &str,
    kind: SpanKind,
) -> Span {
    Span {
        resource: Arc::new(Resource {
            attributes: vec![Attribute::string("service.name", service)],
            ..Resource::default()
        }),
        scope: Arc::default(),
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        flags: 0,
        name: format!("op{id}"),
        kind,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 1_000 + u64::from(id) * 100,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status_code: StatusCode::Unset,
        status_message: String::new(),
    }
}

/// Spans shaped like a web service's: traces of 4–16 spans over 5 services, HTTP and DB
/// attributes, occasional exception events and links. Deterministic for `seed`.
pub(crate) fn realistic_spans(num_spans: usize, seed: u64) -> Vec<Span> {
    let mut rng = Rng::new(seed);
    let services = ["frontend", "checkout", "cart", "payment", "inventory"];
    let resources: Vec<Arc<Resource>> = services.iter().map(|s| resource(s)).collect();
    let scopes = [scope("opentelemetry-http"), scope("sqlx")];
    let routes = [
        "/api/orders/{id}",
        "/api/cart",
        "/api/checkout",
        "/health",
        "/api/items",
    ];
    let tables = ["orders", "items", "carts", "payments"];
    let mut spans = Vec::with_capacity(num_spans);
    let mut time = 1_750_000_000_000_000_000u64;
    while spans.len() < num_spans {
        let trace_id = TraceId(id(&mut rng));
        let trace_len = 4 + rng.below(13) as usize;
        let mut parent: Option<SpanId> = None;
        time += rng.below(50_000_000);
        for position in 0..trace_len.min(num_spans - spans.len()) {
            let span_id = SpanId(id(&mut rng));
            let service = rng.below(resources.len() as u64) as usize;
            let is_db = position > 0 && rng.below(3) == 0;
            let start = time + position as u64 * 1_000_000 + rng.below(1_000_000);
            let mut attributes = Vec::with_capacity(8);
            let (name, kind) = if is_db {
                let table = rng.pick(&tables);
                attributes.push(Attribute::string("db.system.name", "postgresql"));
                attributes.push(Attribute::string(
                    "db.query.text",
                    format!("SELECT id, status, total FROM {table} WHERE id = $1"),
                ));
                attributes.push(Attribute::string("server.address", "db.internal"));
                attributes.push(attribute("server.port", AttributeValue::Int(5432)));
                (format!("SELECT {table}"), SpanKind::Client)
            } else {
                let route = rng.pick(&routes);
                let status = *rng.pick(&[200, 200, 200, 201, 404, 500]);
                attributes.push(Attribute::string("http.request.method", "GET"));
                attributes.push(Attribute::string("http.route", *route));
                attributes.push(Attribute::string(
                    "url.path",
                    route.replace("{id}", &rng.below(100_000).to_string()),
                ));
                attributes.push(attribute(
                    "http.response.status_code",
                    AttributeValue::Int(status),
                ));
                attributes.push(Attribute::string(
                    "network.peer.address",
                    format!("10.0.{}.{}", rng.below(4), rng.below(255)),
                ));
                attributes.push(Attribute::string(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
                ));
                (
                    format!("GET {route}"),
                    if position == 0 {
                        SpanKind::Server
                    } else {
                        SpanKind::Internal
                    },
                )
            };
            let failed = rng.below(20) == 0;
            let events = if failed {
                vec![SpanEvent {
                    time_unix_nano: start + 500,
                    name: "exception".into(),
                    attributes: vec![
                        Attribute::string("exception.type", "ConnectionReset"),
                        Attribute::string("exception.message", "connection reset by peer"),
                        Attribute::string(
                            "exception.stacktrace",
                            "at checkout::pay (src/pay.rs:42)\nat tokio::runtime (src/rt.rs:88)",
                        ),
                    ],
                    dropped_attributes_count: 0,
                }]
            } else {
                vec![]
            };
            let links = if rng.below(50) == 0 {
                vec![SpanLink {
                    trace_id: TraceId(id(&mut rng)),
                    span_id: SpanId(id(&mut rng)),
                    trace_state: "vendor=1".into(),
                    attributes: vec![Attribute::string("link.kind", "follows_from")],
                    dropped_attributes_count: 0,
                    flags: 1,
                }]
            } else {
                vec![]
            };
            spans.push(Span {
                resource: Arc::clone(&resources[service]),
                scope: Arc::clone(&scopes[usize::from(is_db)]),
                trace_id,
                span_id,
                parent_span_id: parent,
                trace_state: String::new(),
                flags: 0x101,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 10_000 + rng.below(5_000_000),
                attributes,
                dropped_attributes_count: 0,
                events,
                dropped_events_count: 0,
                links,
                dropped_links_count: 0,
                status_code: if failed {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: if failed {
                    "connection reset".into()
                } else {
                    String::new()
                },
            });
            parent = Some(span_id);
        }
    }
    spans
}

/// Any span: every field drawn independently, ids included (all-zero ones too).
pub(crate) fn any_span() -> impl Strategy<Value = Span> {
    let event = (any::<u64>(), ".{0,8}", any_attributes(), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| SpanEvent {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    );
    let link = (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        ".{0,8}",
        any_attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped, flags)| SpanLink {
                trace_id: TraceId(trace_id),
                span_id: SpanId(span_id),
                trace_state,
                attributes,
                dropped_attributes_count: dropped,
                flags,
            },
        );
    let ids = (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        proptest::option::of(any::<[u8; 8]>()),
    );
    let texts = (".{0,12}", ".{0,12}", ".{0,12}", ".{0,6}");
    let numbers = (
        any::<u32>(),
        0..6i32,
        0..3i32,
        any::<(u64, u64)>(),
        any::<[u32; 3]>(),
    );
    let nested = (
        any_attributes(),
        proptest::collection::vec(event, 0..3),
        proptest::collection::vec(link, 0..2),
        any_resource(),
    );
    (ids, texts, numbers, nested).prop_map(
        |(
            (trace_id, span_id, parent),
            (name, trace_state, status_message, scope_name),
            (flags, kind, status, (start, end), dropped),
            (attributes, events, links, resource),
        )| Span {
            resource,
            scope: Arc::new(InstrumentationScope {
                name: scope_name,
                ..InstrumentationScope::default()
            }),
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            parent_span_id: parent.map(SpanId),
            trace_state,
            flags,
            name,
            kind: SpanKind::from_number(kind),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: dropped[0],
            events,
            dropped_events_count: dropped[1],
            links,
            dropped_links_count: dropped[2],
            status_code: StatusCode::from_number(status),
            status_message,
        },
    )
}
