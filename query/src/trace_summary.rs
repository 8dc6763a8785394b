//! The summary of one trace, as result lists show it: root service and operation, start and
//! end, span, error and orphan counts, and each service with its span and error counts.

use std::collections::{BTreeMap, HashSet};

use skewer_storage::model::{Span, StatusCode, TraceId};

/// One trace in a few numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Service of the root span (no parent); empty when the root is not stored.
    pub root_service: String,
    /// Operation of the root span.
    pub root_operation: String,
    /// Earliest span start, Unix ns.
    pub start_unix_nano: u64,
    /// Latest span end, Unix ns.
    pub end_unix_nano: u64,
    /// Spans.
    pub spans: u64,
    /// Spans with status `ERROR`.
    pub error_spans: u64,
    /// Spans whose parent is not in the trace.
    pub orphan_spans: u64,
    /// Per service, by name: (spans, error spans).
    pub services: BTreeMap<String, (u64, u64)>,
}

impl TraceSummary {
    /// The summary of a trace's spans (each once).
    pub fn of(trace_id: TraceId, spans: &[Span]) -> Self {
        let ids: HashSet<_> = spans.iter().map(|span| span.span_id).collect();
        let root = spans
            .iter()
            .filter(|span| span.parent_span_id.is_none())
            .min_by_key(|span| span.start_time_unix_nano);
        let mut summary = Self {
            trace_id,
            root_service: root.map_or_else(String::new, |r| r.resource.service_name().to_owned()),
            root_operation: root.map_or_else(String::new, |r| r.name.clone()),
            start_unix_nano: spans
                .iter()
                .map(|s| s.start_time_unix_nano)
                .min()
                .unwrap_or(0),
            end_unix_nano: spans
                .iter()
                .map(|s| s.end_time_unix_nano.max(s.start_time_unix_nano))
                .max()
                .unwrap_or(0),
            spans: spans.len() as u64,
            error_spans: 0,
            orphan_spans: 0,
            services: BTreeMap::new(),
        };
        for span in spans {
            let error = u64::from(span.status_code == StatusCode::Error);
            summary.error_spans += error;
            summary.orphan_spans += u64::from(
                span.parent_span_id
                    .is_some_and(|parent| !ids.contains(&parent)),
            );
            let service = summary
                .services
                .entry(span.resource.service_name().to_owned())
                .or_default();
            service.0 += 1;
            service.1 += error;
        }
        summary
    }
}
