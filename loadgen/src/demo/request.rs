//! One demo request as its services record it: HTTP server spans, the client spans of the
//! calls between them (each answered by a server span of the service it names, on the route
//! it asks for), database and outside calls, and log records that all carry the request's id.
//!
//! Times are kept on one true clock while the request is built; each service's spans and
//! records are written on its own clock (shifted by its offset), as a skewed host would.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, status};

use crate::common::{int, string, text};
use crate::rng::Random;

/// The attribute every demo log record and server span carries the request id in (one of
/// skewer's default correlation keys).
pub const REQUEST_ID_KEY: &str = "request.id";

/// A service of the demo: its name, resource and clock offset.
#[derive(Debug, Clone)]
pub struct ShopService {
    /// `service.name`.
    pub name: &'static str,
    /// The OTLP resource its spans, records and metrics carry.
    pub resource: Resource,
    /// Added to every time it writes (its host's clock error).
    pub clock_offset_nanos: i64,
}

/// An HTTP request as the server sees it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `http.request.method`.
    pub method: &'static str,
    /// `http.route` (the server's template, `url.template` on the client).
    pub route: &'static str,
    /// The concrete path.
    pub path: String,
}

impl HttpRequest {
    /// A request for `path`, which the server matches to `route`.
    pub fn new(method: &'static str, route: &'static str, path: impl Into<String>) -> Self {
        Self {
            method,
            route,
            path: path.into(),
        }
    }
}

/// Where work happens: a service inside one of its spans, from a time on.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    /// The service's index.
    pub service: usize,
    /// The span the work is part of.
    pub span_id: [u8; 8],
    /// When the span started (true time).
    pub start: u64,
}

/// How a server handler ended.
#[derive(Debug, Clone)]
pub struct Handled {
    /// When it answered (true time).
    pub end: u64,
    /// The HTTP status it answered.
    pub status: u16,
    /// An exception it recorded: type and message.
    pub exception: Option<(&'static str, String)>,
}

impl Handled {
    /// An answer with `status` at `end`.
    pub fn answer(end: u64, status: u16) -> Self {
        Self {
            end,
            status,
            exception: None,
        }
    }
}

/// What the caller of a server got back.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// When the answer arrived (true time).
    pub end: u64,
    /// Its HTTP status.
    pub status: u16,
}

/// One server span's figures, for the demo's request-duration metric.
#[derive(Debug, Clone)]
pub struct Served {
    /// The serving service.
    pub service: usize,
    /// `http.request.method`.
    pub method: &'static str,
    /// `http.route`.
    pub route: &'static str,
    /// The answered status.
    pub status: u16,
    /// Its duration, seconds.
    pub seconds: f64,
    /// When it ended, on the service's clock.
    pub end_unix_nano: u64,
    /// The span, for exemplars.
    pub span_id: [u8; 8],
}

/// Log severities the demo writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `INFO` (9).
    Info,
    /// `WARN` (13).
    Warn,
    /// `ERROR` (17).
    Error,
}

impl Level {
    /// The level an answer with `status` is logged at.
    pub fn of_status(status: u16) -> Self {
        match status {
            500.. => Self::Error,
            400.. => Self::Warn,
            _ => Self::Info,
        }
    }

    fn severity(self) -> (i32, &'static str) {
        match self {
            Self::Info => (9, "INFO"),
            Self::Warn => (13, "WARN"),
            Self::Error => (17, "ERROR"),
        }
    }
}

/// Collects the spans, records and figures of one request.
pub struct RequestBuilder<'a> {
    services: &'a [ShopService],
    /// The request's trace.
    pub trace_id: [u8; 16],
    /// The request's id, on every record and server span.
    pub request_id: String,
    /// Spans with the index of the service that wrote each.
    pub spans: Vec<(usize, Span)>,
    /// Log records with the index of the service that wrote each.
    pub logs: Vec<(usize, LogRecord)>,
    /// Every server span's figures.
    pub served: Vec<Served>,
}

/// `ms` milliseconds in nanoseconds.
pub fn millis(ms: f64) -> u64 {
    (ms * 1_000_000.0) as u64
}

/// A duration drawn uniformly from `[low_ms, high_ms)`, nanoseconds.
pub fn between(rng: &mut Random, low_ms: f64, high_ms: f64) -> u64 {
    millis(low_ms + rng.unit() * (high_ms - low_ms))
}

impl<'a> RequestBuilder<'a> {
    /// A new request over `services`.
    pub fn new(services: &'a [ShopService], rng: &mut Random) -> Self {
        Self {
            services,
            trace_id: rng.id(),
            request_id: format!("req-{:016x}", rng.next_u64()),
            spans: Vec::new(),
            logs: Vec::new(),
            served: Vec::new(),
        }
    }

    /// The name of service `index`.
    pub fn service_name(&self, index: usize) -> &'static str {
        self.services[index].name
    }

    /// `time` on service `index`'s clock.
    fn local(&self, index: usize, time: u64) -> u64 {
        time.saturating_add_signed(self.services[index].clock_offset_nanos)
    }

    /// A server span of `service` handling `request` from `start`; `handle` does the work
    /// (calls, queries, logs) and says how it ended.
    pub fn serve(
        &mut self,
        rng: &mut Random,
        service: usize,
        parent: Option<[u8; 8]>,
        request: &HttpRequest,
        start: u64,
        handle: impl FnOnce(&mut Self, &mut Random, Hop) -> Handled,
    ) -> Reply {
        let span_id = rng.id::<8>();
        let handled = handle(
            self,
            rng,
            Hop {
                service,
                span_id,
                start,
            },
        );
        let name = self.service_name(service);
        let mut span = self.span(
            service,
            span_id,
            parent,
            format!("{} {}", request.method, request.route),
            SpanKind::Server,
            start,
            handled.end,
        );
        span.attributes = vec![
            string("http.request.method", request.method),
            string("http.route", request.route),
            string("url.path", &request.path),
            string("url.scheme", "http"),
            string("server.address", name),
            int("server.port", 8080),
            int("http.response.status_code", i64::from(handled.status)),
            string(REQUEST_ID_KEY, &self.request_id),
        ];
        // Server spans are errors on 5xx only (OpenTelemetry's HTTP conventions).
        if handled.status >= 500 {
            span.attributes
                .push(string("error.type", &handled.status.to_string()));
            span.status = Some(error_status(
                handled
                    .exception
                    .as_ref()
                    .map(|(_, message)| message.clone())
                    .unwrap_or_default(),
            ));
        }
        if let Some((kind, message)) = handled.exception {
            span.events.push(Event {
                time_unix_nano: span.end_time_unix_nano,
                name: "exception".into(),
                attributes: vec![
                    string("exception.type", kind),
                    string("exception.message", &message),
                ],
                dropped_attributes_count: 0,
            });
        }
        self.served.push(Served {
            service,
            method: request.method,
            route: request.route,
            status: handled.status,
            seconds: handled.end.saturating_sub(start) as f64 / 1e9,
            end_unix_nano: span.end_time_unix_nano,
            span_id,
        });
        self.spans.push((service, span));
        Reply {
            end: handled.end,
            status: handled.status,
        }
    }

    /// `from` calls service `callee` with `request` a moment after `after`: a client span in
    /// `from`'s service and, below it, the callee's server span (after a network hop each way).
    pub fn call(
        &mut self,
        rng: &mut Random,
        from: Hop,
        callee: usize,
        request: &HttpRequest,
        after: u64,
        handle: impl FnOnce(&mut Self, &mut Random, Hop) -> Handled,
    ) -> Reply {
        let start = after + between(rng, 0.2, 1.5);
        let client_id = rng.id::<8>();
        let there = between(rng, 0.3, 1.5);
        let back = between(rng, 0.3, 1.5);
        let reply = self.serve(rng, callee, Some(client_id), request, start + there, handle);
        let end = reply.end + back;
        let callee_name = self.service_name(callee);
        let mut span = self.span(
            from.service,
            client_id,
            Some(from.span_id),
            format!("{} {}", request.method, request.route),
            SpanKind::Client,
            start,
            end,
        );
        span.attributes = vec![
            string("http.request.method", request.method),
            string("server.address", callee_name),
            int("server.port", 8080),
            string(
                "url.full",
                &format!("http://{callee_name}:8080{}", request.path),
            ),
            string("url.template", request.route),
            int("http.response.status_code", i64::from(reply.status)),
        ];
        // Client spans are errors on 4xx and 5xx.
        if reply.status >= 400 {
            span.attributes
                .push(string("error.type", &reply.status.to_string()));
            span.status = Some(error_status(String::new()));
        }
        self.spans.push((from.service, span));
        Reply {
            end,
            status: reply.status,
        }
    }

    /// A database query of `from`'s service a moment after `after`; returns when it ended.
    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &mut self,
        rng: &mut Random,
        from: Hop,
        system: &str,
        operation: &str,
        collection: &str,
        text: &str,
        after: u64,
    ) -> u64 {
        let start = after + between(rng, 0.2, 1.0);
        let end = start + between(rng, 0.4, 6.0);
        let mut span = self.span(
            from.service,
            rng.id(),
            Some(from.span_id),
            format!("{operation} {collection}"),
            SpanKind::Client,
            start,
            end,
        );
        span.attributes = vec![
            string("db.system.name", system),
            string("db.namespace", "shop"),
            string("db.operation.name", operation),
            string("db.collection.name", collection),
            string("db.query.text", text),
            string("server.address", &format!("{system}.shop.internal")),
        ];
        self.spans.push((from.service, span));
        end
    }

    /// A call from `from`'s service to a system outside the shop (no span of its own there),
    /// from `start` to `end`; `status` is `None` when no answer came.
    #[allow(clippy::too_many_arguments)]
    pub fn outside_call(
        &mut self,
        rng: &mut Random,
        from: Hop,
        method: &'static str,
        host: &str,
        path: &str,
        start: u64,
        end: u64,
        status: Option<u16>,
    ) {
        let mut span = self.span(
            from.service,
            rng.id(),
            Some(from.span_id),
            method.to_owned(),
            SpanKind::Client,
            start,
            end,
        );
        span.attributes = vec![
            string("http.request.method", method),
            string("server.address", host),
            int("server.port", 443),
            string("url.full", &format!("https://{host}{path}")),
        ];
        match status {
            Some(status) => span
                .attributes
                .push(int("http.response.status_code", i64::from(status))),
            None => {
                span.attributes.push(string("error.type", "timeout"));
                span.status = Some(error_status(format!("no answer from {host}")));
            }
        }
        self.spans.push((from.service, span));
    }

    /// A log record of `hop`'s service at `time`, inside its span.
    pub fn log(&mut self, hop: Hop, time: u64, level: Level, body: String) {
        self.record(hop.service, Some(hop.span_id), time, level, body);
    }

    /// A log record of `service` at `time` outside any span (background work): it carries the
    /// request id only.
    pub fn log_untraced(&mut self, service: usize, time: u64, level: Level, body: String) {
        self.record(service, None, time, level, body);
    }

    fn record(
        &mut self,
        service: usize,
        span_id: Option<[u8; 8]>,
        time: u64,
        level: Level,
        body: String,
    ) {
        let (severity_number, severity_text) = level.severity();
        let time = self.local(service, time);
        let (trace_id, span_id) = match span_id {
            Some(span_id) => (self.trace_id.to_vec(), span_id.to_vec()),
            None => (Vec::new(), Vec::new()),
        };
        let attributes: Vec<KeyValue> = vec![string(REQUEST_ID_KEY, &self.request_id)];
        self.logs.push((
            service,
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: time + 200_000,
                severity_number,
                severity_text: severity_text.into(),
                body: text(body),
                attributes,
                flags: u32::from(!trace_id.is_empty()),
                trace_id,
                span_id,
                ..LogRecord::default()
            },
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        service: usize,
        span_id: [u8; 8],
        parent: Option<[u8; 8]>,
        name: String,
        kind: SpanKind,
        start: u64,
        end: u64,
    ) -> Span {
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.map(|id| id.to_vec()).unwrap_or_default(),
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: self.local(service, start),
            end_time_unix_nano: self.local(service, end),
            ..Span::default()
        }
    }
}

fn error_status(message: String) -> Status {
    Status {
        message,
        code: status::StatusCode::Error as i32,
    }
}
