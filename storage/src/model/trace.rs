//! The span model: one finished span with its resource, scope, events, links and status.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attributes::{Attribute, InstrumentationScope, Resource, attributes_bytes, heap_bytes};
use super::ids::{SpanId, TraceId};

/// What role a span plays in a request (OTLP `SpanKind`, same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum SpanKind {
    /// Not specified by the sender.
    #[default]
    Unspecified = 0,
    /// An internal operation.
    Internal = 1,
    /// The server side of a synchronous call.
    Server = 2,
    /// The client side of a synchronous call.
    Client = 3,
    /// The sender of an asynchronous message.
    Producer = 4,
    /// The receiver of an asynchronous message.
    Consumer = 5,
}

impl SpanKind {
    /// Maps the OTLP number; unknown numbers become `Unspecified`.
    pub fn from_number(number: i32) -> Self {
        match number {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// Lowercase name as Jaeger's `span.kind` tag uses it (`server`, `client`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// Outcome of a span (OTLP `Status.StatusCode`, same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum StatusCode {
    /// Not set by the instrumentation.
    #[default]
    Unset = 0,
    /// Explicitly marked successful.
    Ok = 1,
    /// Failed.
    Error = 2,
}

impl StatusCode {
    /// Maps the OTLP number; unknown numbers become `Unset`.
    pub fn from_number(number: i32) -> Self {
        match number {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

/// A timestamped event inside a span (an exception, a retry...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanEvent {
    /// When it happened, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Event name, e.g. `exception`.
    pub name: String,
    /// Event attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    #[serde(default)]
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span, possibly in another trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    /// The linked trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// W3C trace state of the link.
    #[serde(default)]
    pub trace_state: String,
    /// Link attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    #[serde(default)]
    pub dropped_attributes_count: u32,
    /// W3C trace flags of the link.
    #[serde(default)]
    pub flags: u32,
}

/// One span as stored: every OTLP field, with the resource and scope of its export group shared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Span {
    /// The service instance that produced the span.
    pub resource: Arc<Resource>,
    /// The instrumentation library.
    pub scope: Arc<InstrumentationScope>,
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's id.
    pub span_id: SpanId,
    /// The parent span, `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C trace state.
    pub trace_state: String,
    /// W3C trace flags plus OTLP's extra flag bits.
    pub flags: u32,
    /// Operation name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Span attributes.
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// Events in time order as sent.
    pub events: Vec<SpanEvent>,
    /// Events the sender dropped.
    pub dropped_events_count: u32,
    /// Links to other spans.
    pub links: Vec<SpanLink>,
    /// Links the sender dropped.
    pub dropped_links_count: u32,
    /// Status code.
    pub status_code: StatusCode,
    /// Status message (meaningful for errors).
    pub status_message: String,
}

impl Span {
    /// Rough heap size of this span (resource and scope excluded: they are shared).
    pub fn estimated_bytes(&self) -> usize {
        let events: usize = self
            .events
            .iter()
            .map(|e| {
                size_of::<SpanEvent>() + heap_bytes(e.name.len()) + attributes_bytes(&e.attributes)
            })
            .sum();
        let links: usize = self
            .links
            .iter()
            .map(|l| {
                size_of::<SpanLink>()
                    + heap_bytes(l.trace_state.len())
                    + attributes_bytes(&l.attributes)
            })
            .sum();
        size_of::<Self>()
            + heap_bytes(self.name.len())
            + heap_bytes(self.trace_state.len())
            + heap_bytes(self.status_message.len())
            + attributes_bytes(&self.attributes)
            + events
            + links
    }
}
