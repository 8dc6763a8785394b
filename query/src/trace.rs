//! A whole trace by id, with no time range: every stored span, each once, in start order.

use std::collections::HashSet;

use skewer_storage::Storage;
use skewer_storage::model::{Span, TenantId, TraceId};
use skewer_storage::parquet_codec::decode_spans;
use skewer_storage::scan::{ScanLimits, ScanRequest, Truncation};

use crate::QueryError;

/// The spans of a trace as read: all of them, or as many as the read's limits let through.
#[derive(Debug, Clone, Default)]
pub struct TraceRead {
    /// Start-ordered, each span once.
    pub spans: Vec<Span>,
    /// Set when a truncating read stopped at a limit: more spans may exist.
    pub truncated: Option<Truncation>,
}

/// Every span of the trace, deduplicated by span id (a crash between a flush and its WAL
/// checkpoint can store a span twice), sorted by start time. Empty when the trace is unknown.
/// With truncating `limits`, a trace past them is cut there, and the answer says so.
pub async fn trace_by_id(
    storage: &Storage,
    tenant: &TenantId,
    trace_id: TraceId,
    limits: ScanLimits,
) -> Result<TraceRead, QueryError> {
    let mut stream = storage.scan(ScanRequest::trace(tenant.clone(), trace_id, limits))?;
    let mut spans = Vec::new();
    while let Some(batch) = stream.next().await {
        spans.extend(decode_spans(&batch?).map_err(skewer_storage::StorageError::from)?);
    }
    Ok(TraceRead {
        spans: assemble_trace(spans),
        truncated: stream.truncated(),
    })
}

/// Sorts by start time and drops repeated span ids, keeping the first.
pub fn assemble_trace(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| {
        (a.start_time_unix_nano, a.span_id).cmp(&(b.start_time_unix_nano, b.span_id))
    });
    let mut seen = HashSet::with_capacity(spans.len());
    spans.retain(|span| seen.insert(span.span_id));
    spans
}
