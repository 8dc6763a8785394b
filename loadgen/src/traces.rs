//! Trace generation: multi-service request trees with client/server span pairs, realistic
//! attributes, errors at a set rate, and an optional clock offset for one service.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};

use super::common::{int, scope, string};
use super::rng::Random;
use super::vocabulary::{DB_SYSTEMS, METHODS, ROUTES};

/// The shape of generated requests.
#[derive(Debug, Clone)]
pub struct TraceShape {
    /// Services, the first being the entry point.
    pub services: Vec<Service>,
    /// Levels of calls below the entry service.
    pub depth: usize,
    /// Calls each service makes to the next level.
    pub fan_out: usize,
    /// Share of traces that fail.
    pub error_rate: f64,
}

/// A generated service: its name, resource and clock offset.
#[derive(Debug, Clone)]
pub struct Service {
    /// `service.name`.
    pub name: String,
    /// The OTLP resource (5 attributes).
    pub resource: Resource,
    /// Added to every timestamp of this service's spans (a skewed host clock).
    pub clock_offset_nanos: i64,
}

impl Service {
    /// A service with realistic resource attributes.
    pub fn new(name: &str, index: usize, rng: &mut Random) -> Self {
        let instance: [u8; 8] = rng.id();
        Self {
            name: name.to_owned(),
            resource: Resource {
                attributes: vec![
                    string("service.name", name),
                    string("service.instance.id", &hex(&instance)),
                    string("host.name", &format!("{name}-host-{}", index % 3)),
                    string("service.version", &format!("1.{}.{}", index % 5, index % 7)),
                    string("deployment.environment.name", "production"),
                ],
                ..Resource::default()
            },
            clock_offset_nanos: 0,
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct TraceBuilder<'a> {
    shape: &'a TraceShape,
    rng: &'a mut Random,
    trace_id: [u8; 16],
    spans: Vec<(usize, Span)>,
    failing: bool,
    user_id: String,
    order_id: String,
}

impl TraceBuilder<'_> {
    /// Adds the server span of `service` and, below it, its calls; returns the span id.
    fn server(
        &mut self,
        service: usize,
        level: usize,
        start: u64,
        duration: u64,
        parent: Vec<u8>,
    ) -> Vec<u8> {
        let span_id = self.rng.id::<8>().to_vec();
        let route = *self.rng.pick(ROUTES);
        let method = *self.rng.pick(METHODS);
        let leaf = level >= self.shape.depth;
        let fails_here = self.failing && leaf;
        let mut children_failed = false;
        if !leaf {
            let calls = self.shape.fan_out.max(1);
            let slot = duration / (calls as u64 + 1);
            for call in 0..calls {
                let callee = self.callee(service, level, call);
                let call_start = start + slot / 2 + call as u64 * slot;
                let call_duration = slot * 9 / 10;
                let failed = self.client(
                    service,
                    callee,
                    level,
                    call_start,
                    call_duration,
                    span_id.clone(),
                );
                children_failed |= failed;
            }
        } else if self.rng.chance(0.7) {
            self.database(
                service,
                start + duration / 10,
                duration * 7 / 10,
                span_id.clone(),
            );
        }
        let failed = fails_here || children_failed;
        let status_code = if failed { 500 } else { 200 };
        let mut span = self.span(
            service,
            span_id.clone(),
            parent,
            format!("{method} {route}"),
            SpanKind::Server,
            start,
            duration,
        );
        span.attributes = vec![
            string("http.request.method", method),
            string("http.route", route),
            int("http.response.status_code", status_code),
            string("url.scheme", "https"),
            string(
                "server.address",
                &format!("{}.internal", self.shape.services[service].name),
            ),
            int("server.port", 8080),
            string("network.protocol.version", "1.1"),
            string("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
            string("user.id", &self.user_id),
            string("order.id", &self.order_id),
        ];
        if failed {
            span.status = Some(Status {
                message: if fails_here {
                    "inventory lookup failed".into()
                } else {
                    String::new()
                },
                code: status::StatusCode::Error as i32,
            });
        }
        if fails_here {
            // On the service's own clock, as the span's times are.
            let midpoint = span.start_time_unix_nano + duration / 2;
            span.events.push(Event {
                time_unix_nano: midpoint,
                name: "exception".into(),
                attributes: vec![
                    string("exception.type", "TimeoutError"),
                    string("exception.message", "deadline exceeded after 2000ms"),
                ],
                dropped_attributes_count: 0,
            });
        }
        self.spans.push((service, span));
        span_id
    }

    /// A client span in `caller` and the callee's server span below it; true if it failed.
    fn client(
        &mut self,
        caller: usize,
        callee: usize,
        level: usize,
        start: u64,
        duration: u64,
        parent: Vec<u8>,
    ) -> bool {
        let span_id = self.rng.id::<8>().to_vec();
        let before = self.spans.len();
        self.server(
            callee,
            level + 1,
            start + duration / 20,
            duration * 9 / 10,
            span_id.clone(),
        );
        let failed = self.spans[before..].iter().any(|(_, s)| {
            s.status
                .as_ref()
                .is_some_and(|st| st.code == status::StatusCode::Error as i32)
        });
        let callee_name = self.shape.services[callee].name.clone();
        let method = *self.rng.pick(METHODS);
        let mut span = self.span(
            caller,
            span_id,
            parent,
            format!("{method} {callee_name}"),
            SpanKind::Client,
            start,
            duration,
        );
        span.attributes = vec![
            string("http.request.method", method),
            string("server.address", &format!("{callee_name}.internal")),
            int("server.port", 8080),
            int("http.response.status_code", if failed { 500 } else { 200 }),
            string(
                "url.full",
                &format!(
                    "https://{callee_name}.internal:8080{}",
                    self.rng.pick(ROUTES)
                ),
            ),
            string(
                "network.peer.address",
                &format!("10.0.{}.{}", callee % 250, level + 10),
            ),
            string("network.protocol.version", "1.1"),
            string("user.id", &self.user_id),
            string("order.id", &self.order_id),
            int("http.request.resend_count", 0),
        ];
        if failed {
            span.status = Some(Status {
                message: String::new(),
                code: status::StatusCode::Error as i32,
            });
        }
        self.spans.push((caller, span));
        failed
    }

    fn database(&mut self, service: usize, start: u64, duration: u64, parent: Vec<u8>) {
        let span_id = self.rng.id::<8>().to_vec();
        let system = *self.rng.pick(DB_SYSTEMS);
        let mut span = self.span(
            service,
            span_id,
            parent,
            format!("SELECT {system}.orders"),
            SpanKind::Client,
            start,
            duration,
        );
        span.attributes = vec![
            string("db.system.name", system),
            string("db.namespace", "shop"),
            string("db.operation.name", "SELECT"),
            string("db.collection.name", "orders"),
            string(
                "db.query.text",
                "SELECT id, status, total FROM orders WHERE user_id = ?",
            ),
            string("server.address", &format!("{system}.internal")),
            int("server.port", 5432),
            int("db.response.returned_rows", self.rng.below(50) as i64),
            string("user.id", &self.user_id),
            string("order.id", &self.order_id),
        ];
        self.spans.push((service, span));
    }

    fn callee(&mut self, caller: usize, level: usize, call: usize) -> usize {
        let n = self.shape.services.len();
        if n <= 1 {
            return 0;
        }
        let candidate = (caller * self.shape.fan_out.max(1) + call + level + 1) % n;
        if candidate == caller {
            (candidate + 1) % n
        } else {
            candidate
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        service: usize,
        span_id: Vec<u8>,
        parent: Vec<u8>,
        name: String,
        kind: SpanKind,
        start: u64,
        duration: u64,
    ) -> Span {
        let offset = self.shape.services[service].clock_offset_nanos;
        let shift = |t: u64| t.saturating_add_signed(offset);
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id,
            parent_span_id: parent,
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: shift(start),
            end_time_unix_nano: shift(start + duration),
            ..Span::default()
        }
    }
}

/// One trace: spans with the index of the service that produced each.
pub fn generate_trace(
    rng: &mut Random,
    shape: &TraceShape,
    start_unix_nano: u64,
) -> ([u8; 16], Vec<(usize, Span)>) {
    let trace_id = rng.id::<16>();
    let failing = rng.chance(shape.error_rate);
    let user_id = format!("user-{}", rng.below(100_000));
    let order_id = format!("order-{:08x}", rng.next_u64() as u32);
    let duration = 50_000_000 + rng.below(400) as u64 * 1_000_000;
    let mut builder = TraceBuilder {
        shape,
        rng,
        trace_id,
        spans: Vec::new(),
        failing,
        user_id,
        order_id,
    };
    builder.server(0, 0, start_unix_nano, duration, Vec::new());
    (trace_id, builder.spans)
}

/// Every span id of a request (spans and their parents), rewritten on each replay.
pub fn span_ids(request: &ExportTraceServiceRequest) -> Vec<[u8; 8]> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        .filter_map(|span| span.span_id.as_slice().try_into().ok())
        .collect()
}

/// An export of whole traces holding at least `min_spans` spans, grouped by service.
pub fn traces_request(
    rng: &mut Random,
    shape: &TraceShape,
    min_spans: usize,
    base_unix_nano: u64,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); shape.services.len()];
    let mut trace_ids = Vec::new();
    let mut total = 0;
    while total < min_spans.max(1) {
        let start = base_unix_nano + rng.below(1_000) as u64 * 1_000_000;
        let (trace_id, spans) = generate_trace(rng, shape, start);
        trace_ids.push(trace_id);
        total += spans.len();
        for (service, span) in spans {
            by_service[service].push(span);
        }
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(index, spans)| ResourceSpans {
            resource: Some(shape.services[index].resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    (ExportTraceServiceRequest { resource_spans }, trace_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rng: &mut Random) -> TraceShape {
        TraceShape {
            services: ["a", "b", "c", "d"]
                .iter()
                .enumerate()
                .map(|(i, n)| Service::new(n, i, rng))
                .collect(),
            depth: 2,
            fan_out: 2,
            error_rate: 0.5,
        }
    }

    #[test]
    fn traces_are_trees_across_services_and_deterministic() {
        let mut rng = Random::new(7);
        let shape = shape(&mut rng);
        let (trace_id, spans) = generate_trace(&mut rng, &shape, 1_000_000_000);
        let ids: std::collections::HashSet<Vec<u8>> =
            spans.iter().map(|(_, s)| s.span_id.clone()).collect();
        assert_eq!(ids.len(), spans.len(), "span ids unique");
        let roots: Vec<_> = spans
            .iter()
            .filter(|(_, s)| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1);
        assert!(
            spans
                .iter()
                .all(|(_, s)| s.parent_span_id.is_empty() || ids.contains(&s.parent_span_id))
        );
        assert!(spans.iter().all(|(_, s)| s.trace_id == trace_id.to_vec()));
        let services: std::collections::HashSet<usize> = spans.iter().map(|(i, _)| *i).collect();
        assert!(services.len() >= 3);
        assert!(spans.iter().all(|(_, s)| s.attributes.len() == 10));

        let mut again = Random::new(7);
        let shape_again = self::shape(&mut again);
        let (same_id, _) = generate_trace(&mut again, &shape_again, 1_000_000_000);
        assert_eq!(same_id, trace_id, "same seed, same data");
    }

    #[test]
    fn skewed_services_are_shifted() {
        let mut rng = Random::new(1);
        let mut shape = shape(&mut rng);
        shape.services[1].clock_offset_nanos = 5_000_000_000;
        let (_, spans) = generate_trace(&mut rng, &shape, 1_000_000_000);
        let skewed = spans
            .iter()
            .find(|(i, _)| *i == 1)
            .expect("service b has spans");
        assert!(skewed.1.start_time_unix_nano > 5_000_000_000);
    }
}
