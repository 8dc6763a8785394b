//! The summary of one trace, as result lists show it: root service and operation, start and
//! end, span, error and orphan counts, and each service with its span and error counts.

use std::collections::{BTreeMap, HashMap};

use skewer_storage::Storage;
use skewer_storage::model::{Span, TenantId, TraceId};
use skewer_storage::scan::{ScanLimits, ScanRequest};
use skewer_storage::spans::trace_summaries::{
    PartialTraceSummary, SUMMARY_COLUMNS, SpanFacts, summarize_rows,
};

use crate::QueryError;

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
    /// The summary of a trace's spans (a span id seen twice counts once).
    pub fn of(trace_id: TraceId, spans: &[Span]) -> Self {
        let facts: Vec<SpanFacts<'_>> = spans.iter().map(SpanFacts::of).collect();
        Self::from_whole(PartialTraceSummary::of_spans(trace_id, &facts))
    }

    /// The summary of a trace from a part that covers all its spans: the spans it misses a
    /// parent of are the orphans.
    fn from_whole(part: PartialTraceSummary) -> Self {
        let (root_service, root_operation) = part
            .root
            .map(|root| (root.service, root.operation))
            .unwrap_or_default();
        Self {
            trace_id: part.trace_id,
            root_service,
            root_operation,
            start_unix_nano: part.start_unix_nano,
            end_unix_nano: part.end_unix_nano,
            spans: part.spans,
            error_spans: part.error_spans,
            orphan_spans: part.spans_missing_parent,
            services: part
                .services
                .into_iter()
                .map(|service| (service.name, (service.spans, service.error_spans)))
                .collect(),
        }
    }
}

/// The summaries of `trace_ids`, in their order (each once, unknown traces left out), from
/// the summaries kept at ingest: no span is read for a trace stored in one file (or only
/// buffered). A trace in several parts (files not merged yet, or hours apart) is summarised
/// from its spans' summary columns, as is one in a file without summaries: parts cannot
/// tell whether another part holds their spans' parents, or the same span again (a retried
/// request). Those reads stay within `limits` (refused past them, never cut: a cut trace
/// miscounts).
pub async fn trace_summaries(
    storage: &Storage,
    tenant: &TenantId,
    trace_ids: &[TraceId],
    limits: ScanLimits,
) -> Result<Vec<TraceSummary>, QueryError> {
    let unique = crate::trace_search::each_once(trace_ids);
    let mut stored = storage.trace_summary_parts(tenant, &unique).await?;
    let mut summaries: HashMap<TraceId, TraceSummary> = HashMap::with_capacity(unique.len());
    let mut from_rows = Vec::new();
    for id in &unique {
        let parts = stored.parts.remove(id).unwrap_or_default();
        if stored.unsummarized.contains(id) || parts.len() > 1 {
            from_rows.push(*id);
        } else if let Some(part) = parts.into_iter().next() {
            summaries.insert(*id, TraceSummary::from_whole(part));
        }
    }
    if !from_rows.is_empty() {
        let request = ScanRequest {
            columns: Some(SUMMARY_COLUMNS.map(str::to_owned).to_vec()),
            ..ScanRequest::traces(tenant.clone(), &from_rows, limits)
        };
        let mut stream = storage.scan(request)?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        let parts = summarize_rows(&batches).map_err(skewer_storage::StorageError::from)?;
        for (id, part) in parts {
            summaries.insert(id, TraceSummary::from_whole(part));
        }
    }
    Ok(unique
        .iter()
        .filter_map(|id| summaries.remove(id))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{Attribute, Resource, Signal, SignalBatch, SpanId, StatusCode};

    use super::*;
    use crate::test_storage::{open, write};
    use crate::trace::trace_by_id;

    /// Span `id` of trace `t` in `service`, under `parent`; every fifth fails.
    fn span(t: u8, id: u8, parent: Option<u8>, service: &str) -> Span {
        let mut span = crate::trace_filter::tests::span();
        span.resource = Arc::new(Resource {
            attributes: vec![Attribute::string("service.name", service)],
            ..Resource::default()
        });
        span.trace_id = TraceId([t; 16]);
        span.span_id = SpanId([id; 8]);
        span.parent_span_id = parent.map(|p| SpanId([p; 8]));
        span.name = format!("op{id}");
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + u64::from(id) * 1_000;
        span.end_time_unix_nano = span.start_time_unix_nano + 700;
        span.status_code = match id % 5 {
            0 => StatusCode::Error,
            _ => StatusCode::Ok,
        };
        span
    }

    /// What summarising each trace's loaded spans gives.
    async fn from_loaded_traces(storage: &Storage, ids: &[TraceId]) -> Vec<TraceSummary> {
        let mut summaries: Vec<TraceSummary> = Vec::new();
        for id in ids {
            if summaries.iter().any(|summary| summary.trace_id == *id) {
                continue;
            }
            let read = trace_by_id(
                storage,
                &TenantId::default_tenant(),
                *id,
                ScanLimits::default(),
            )
            .await
            .unwrap();
            if !read.spans.is_empty() {
                summaries.push(TraceSummary::of(*id, &read.spans));
            }
        }
        summaries
    }

    async fn check(storage: &Storage, ids: &[TraceId], stage: &str) {
        let stored = trace_summaries(
            storage,
            &TenantId::default_tenant(),
            ids,
            ScanLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(stored, from_loaded_traces(storage, ids).await, "{stage}");
    }

    /// Trace 1 whole in one request; trace 2's children first and its root later (as
    /// exporters send spans when they end); trace 3 with a span whose parent never comes,
    /// in two requests; trace 4 sent twice (a retried request).
    #[tokio::test]
    async fn stored_summaries_equal_summaries_of_the_loaded_traces() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path()).await;
        let first = vec![
            span(1, 1, None, "web"),
            span(1, 2, Some(1), "api"),
            span(1, 5, Some(2), "db"),
            span(2, 2, Some(1), "api"),
            span(2, 3, Some(2), "api"),
            span(3, 1, None, "web"),
            span(3, 4, Some(9), "api"),
            span(4, 1, None, "web"),
            span(4, 2, Some(1), "api"),
        ];
        let second = vec![
            span(2, 1, None, "web"),
            span(3, 5, Some(1), "api"),
            span(3, 6, Some(9), "db"),
            span(4, 1, None, "web"),
            span(4, 2, Some(1), "api"),
        ];
        let ids: Vec<TraceId> = [4, 2, 7, 1, 3, 2].map(|t| TraceId([t; 16])).to_vec();
        write(&storage, Signal::Traces, SignalBatch::Spans(first)).await;
        check(&storage, &ids, "buffered").await;
        storage.flush_all().await.unwrap();
        write(&storage, Signal::Traces, SignalBatch::Spans(second)).await;
        check(&storage, &ids, "a file and the buffer").await;
        storage.flush_all().await.unwrap();
        check(&storage, &ids, "two files").await;
        let summaries = trace_summaries(
            &storage,
            &TenantId::default_tenant(),
            &ids,
            ScanLimits::default(),
        )
        .await
        .unwrap();
        let order: Vec<u8> = summaries.iter().map(|s| s.trace_id.0[0]).collect();
        assert_eq!(
            order,
            [4, 2, 1, 3],
            "asked order, each once, unknown left out"
        );
        let counts: Vec<(u64, u64, u64)> = summaries
            .iter()
            .map(|s| (s.spans, s.error_spans, s.orphan_spans))
            .collect();
        assert_eq!(counts, [(2, 0, 0), (3, 0, 0), (3, 1, 0), (4, 1, 2)]);
        assert_eq!(summaries[1].root_operation, "op1");
        // Without their summaries, files are summarised from their spans' columns.
        for entry in walk(dir.path()) {
            if entry.extension().is_some_and(|ext| ext == "traces") {
                std::fs::remove_file(entry).unwrap();
            }
        }
        storage.shutdown().await.unwrap();
        drop(storage);
        let storage = open(dir.path()).await;
        check(&storage, &ids, "no trace summaries").await;
        storage.shutdown().await.unwrap();
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }
}
