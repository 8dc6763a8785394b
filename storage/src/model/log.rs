//! The log model: one log record with its resource, scope and trace context.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attributes::{
    Attribute, AttributeValue, InstrumentationScope, Resource, attributes_bytes, heap_bytes,
};
use super::ids::{SpanId, TraceId};

/// One log record as stored: every OTLP field, plus the correlation id found at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The service instance that produced the record.
    pub resource: Arc<Resource>,
    /// The instrumentation library.
    pub scope: Arc<InstrumentationScope>,
    /// When the event happened, Unix nanoseconds (0 if unknown).
    pub time_unix_nano: u64,
    /// When the collector saw it, Unix nanoseconds.
    pub observed_time_unix_nano: u64,
    /// OTLP severity number (1–24, 0 unspecified).
    pub severity_number: i32,
    /// Severity as the source wrote it (`ERROR`, `warn`...).
    pub severity_text: String,
    /// The body, usually a string.
    pub body: AttributeValue,
    /// Record attributes.
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags.
    pub flags: u32,
    /// The trace this record belongs to, if any.
    pub trace_id: Option<TraceId>,
    /// The span this record belongs to, if any.
    pub span_id: Option<SpanId>,
    /// OTLP event name, if the record is an event.
    #[serde(default)]
    pub event_name: String,
    /// Request correlation id, taken from the first configured attribute present.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl LogRecord {
    /// The time used for ordering and range filters: event time, else observed time.
    pub fn effective_time_unix_nano(&self) -> u64 {
        if self.time_unix_nano != 0 {
            self.time_unix_nano
        } else {
            self.observed_time_unix_nano
        }
    }

    /// Rough heap size of this record (resource and scope excluded: they are shared).
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Self>()
            + heap_bytes(self.severity_text.len())
            + self.body.estimated_bytes()
            + attributes_bytes(&self.attributes)
            + heap_bytes(self.event_name.len())
            + self
                .correlation_id
                .as_ref()
                .map_or(0, |id| heap_bytes(id.len()))
    }
}
