//! Trace summaries by trace id: each span file's from its sidecar (the footer cached, one
//! block read per file and trace), the buffers' summarised from their spans now.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use tracing::warn;

use super::live_file::LiveFile;
use super::{TableSignal, TableStore};
use crate::StorageError;
use crate::model::{Span, TenantId, TraceId};
use crate::parquet_codec::CodecError;
use crate::spans::trace_summaries::{
    FOOTER_PROBE_BYTES, Footer, FooterAt, PartialTraceSummary, SpanFacts,
};

/// Memory for the footers of trace summaries: about 0.3 bytes per trace.
pub(super) const FOOTER_CACHE_BYTES: usize = 32 << 20;

/// Bytes a footer is weighed at in the cache.
pub(super) fn footer_weight(footer: &Arc<Footer>) -> usize {
    footer.memory_size()
}

/// What storage holds of some traces' summaries.
#[derive(Debug, Default)]
pub struct TraceSummaryParts {
    /// For each trace found, one part per file that holds some of its spans and one for the
    /// buffers; they add up to the trace's summary.
    pub parts: HashMap<TraceId, Vec<PartialTraceSummary>>,
    /// Traces that may have spans in a file without readable summaries (written before
    /// them, too big, or damaged): only their spans tell their summary.
    pub unsummarized: HashSet<TraceId>,
}

impl<S: TableSignal<Record = Span>> TableStore<S> {
    /// The summary parts of `trace_ids` in one tenant's files and buffers, at one snapshot.
    pub async fn trace_summary_parts(
        &self,
        tenant: &TenantId,
        trace_ids: &[TraceId],
    ) -> Result<TraceSummaryParts, StorageError> {
        let mut wanted = trace_ids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = TraceSummaryParts::default();
        if wanted.is_empty() {
            return Ok(found);
        }
        let snapshot = self.snapshot(tenant);
        let mut buffered: HashMap<TraceId, Vec<SpanFacts<'_>>> = HashMap::new();
        for chunks in &snapshot.buffered {
            for span in chunks.iter() {
                if wanted.binary_search(&span.trace_id).is_ok() {
                    buffered
                        .entry(span.trace_id)
                        .or_default()
                        .push(SpanFacts::of(span));
                }
            }
        }
        for (id, spans) in buffered {
            found
                .parts
                .entry(id)
                .or_default()
                .push(PartialTraceSummary::of_spans(id, &spans));
        }
        let keys: Vec<[u8; 16]> = wanted.iter().map(|id| id.0).collect();
        for file in snapshot.files.iter() {
            let may_hold = self.may_hold_ids(file, &keys).await?;
            let candidates: Vec<TraceId> = wanted
                .iter()
                .zip(&may_hold)
                .filter(|(_, may)| **may)
                .map(|(id, _)| *id)
                .collect();
            if candidates.is_empty() {
                continue;
            }
            match self.file_trace_summaries(file, &candidates).await {
                Some(parts) => {
                    for part in parts {
                        found.parts.entry(part.trace_id).or_default().push(part);
                    }
                }
                None => found.unsummarized.extend(candidates),
            }
        }
        Ok(found)
    }

    /// The summaries of `wanted` (sorted) in one file; `None` when it has no readable ones.
    async fn file_trace_summaries(
        &self,
        file: &LiveFile,
        wanted: &[TraceId],
    ) -> Option<Vec<PartialTraceSummary>> {
        let path = ObjectPath::from(file.meta.index_path.as_deref()?);
        match self.read_trace_summaries(file, &path, wanted).await {
            Ok(found) => Some(found),
            Err(err) => {
                warn!(path = %path, error = %err, "trace summaries unreadable; the traces' spans are summarised instead");
                None
            }
        }
    }

    async fn read_trace_summaries(
        &self,
        file: &LiveFile,
        path: &ObjectPath,
        wanted: &[TraceId],
    ) -> Result<Vec<PartialTraceSummary>, StorageError> {
        let footer = self.trace_summary_footer(file, path).await?;
        // The blocks the wanted traces may be in, each once, with the traces it may hold.
        let mut blocks: Vec<(usize, Range<u64>, Vec<TraceId>)> = Vec::new();
        for id in wanted {
            let Some((at, range)) = footer.block_of(id) else {
                continue;
            };
            match blocks.last_mut() {
                Some((last, _, ids)) if *last == at => ids.push(*id),
                _ => blocks.push((at, range, vec![*id])),
            }
        }
        let ranges: Vec<Range<u64>> = blocks.iter().map(|(_, range, _)| range.clone()).collect();
        let bytes = self.objects.get_ranges(path, &ranges).await?;
        let mut found = Vec::new();
        for ((at, _, ids), bytes) in blocks.iter().zip(&bytes) {
            found.extend(
                footer
                    .read_block(*at, bytes, ids)
                    .map_err(CodecError::from)?,
            );
        }
        Ok(found)
    }

    /// The footer of a file's trace summaries, from the cache or read now.
    async fn trace_summary_footer(
        &self,
        file: &LiveFile,
        path: &ObjectPath,
    ) -> Result<Arc<Footer>, StorageError> {
        if let Some(footer) = self.trace_summary_footers.get(&file.path) {
            return Ok(footer);
        }
        let (tail, whole) = self.objects.get_suffix(path, FOOTER_PROBE_BYTES).await?;
        let footer_bytes = match Footer::locate(&tail, whole).map_err(CodecError::from)? {
            FooterAt::Within(at) => tail.slice(at..),
            FooterAt::Suffix(len) => self.objects.get_suffix(path, len).await?.0,
        };
        let footer = Arc::new(Footer::from_bytes(&footer_bytes).map_err(CodecError::from)?);
        self.trace_summary_footers
            .insert(file.path.clone(), Arc::clone(&footer));
        Ok(footer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::budget::Reservation;
    use crate::model::{SpanKind, StatusCode};
    use crate::parquet_codec::test_fixtures::tree_span;
    use crate::spans::SpanStore;

    fn tenant() -> TenantId {
        "t".parse().unwrap()
    }

    /// A server span starting at 2023-11-14 plus `id` µs and lasting 500 ns; every fourth
    /// fails.
    fn span(trace: u8, id: u8, parent: Option<u8>, service: &str) -> Span {
        let mut span = tree_span(trace, id, parent, service, SpanKind::Server);
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + u64::from(id) * 1_000;
        span.end_time_unix_nano = span.start_time_unix_nano + 500;
        if id % 4 == 3 {
            span.status_code = StatusCode::Error;
        }
        span
    }

    /// Trace `t`: a root in `web` and `children` spans below it in `api`, the root last (as
    /// exporters send them: a span when it ends).
    fn trace(t: u8, children: u8) -> Vec<Span> {
        let mut spans: Vec<Span> = (1..=children)
            .map(|id| span(t, id + 1, Some(1), "api"))
            .collect();
        spans.push(span(t, 1, None, "web"));
        spans
    }

    fn whole(spans: &[Span]) -> PartialTraceSummary {
        let facts: Vec<SpanFacts<'_>> = spans.iter().map(SpanFacts::of).collect();
        PartialTraceSummary::of_spans(spans[0].trace_id, &facts)
    }

    async fn parts(store: &SpanStore, ids: &[TraceId]) -> TraceSummaryParts {
        store.trace_summary_parts(&tenant(), ids).await.unwrap()
    }

    #[tokio::test]
    async fn summaries_come_from_buffers_flushed_files_and_merged_files() {
        let dir = tempfile::tempdir().unwrap();
        let store: SpanStore = TableStore::open_local(dir.path()).await;
        let traces: Vec<Vec<Span>> = (1..=3).map(|t| trace(t, 2 + t * 20)).collect();
        let ids: Vec<TraceId> = traces.iter().map(|t| t[0].trace_id).collect();
        let (children, roots): (Vec<Span>, Vec<Span>) = traces
            .iter()
            .flatten()
            .cloned()
            .partition(|span| span.parent_span_id.is_some());
        store.apply(1, tenant(), children, 1, Reservation::default());
        let buffered = parts(&store, &ids).await;
        assert_eq!(buffered.parts[&ids[0]].len(), 1);
        assert_eq!(
            buffered.parts[&ids[0]][0].spans_missing_parent, 22,
            "the root is not in yet"
        );
        store.flush().await.unwrap();
        store.apply(2, tenant(), roots, 1, Reservation::default());
        let split = parts(&store, &ids).await;
        assert!(split.unsummarized.is_empty());
        for (trace, id) in traces.iter().zip(&ids) {
            let found = &split.parts[id];
            assert_eq!(found.len(), 2, "the file's part and the buffer's");
            let [buffer, file] = [&found[0], &found[1]];
            assert_eq!(buffer.spans, 1);
            assert_eq!(buffer.root.as_ref().unwrap().operation, "op1");
            assert_eq!(file.spans, trace.len() as u64 - 1);
            assert_eq!(file.spans_missing_parent, file.spans);
        }
        store.flush().await.unwrap();
        assert_eq!(parts(&store, &ids).await.parts[&ids[2]].len(), 2);
        let inputs = store.table_files(&tenant()).unwrap().files;
        store
            .merge(
                &tenant(),
                &inputs,
                1 << 30,
                Duration::ZERO,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let merged = parts(&store, &ids).await;
        for (trace, id) in traces.iter().zip(&ids) {
            assert_eq!(merged.parts[id], [whole(trace)], "one part, no orphan");
        }
        let unknown = parts(&store, &[TraceId([99; 16])]).await;
        assert!(unknown.parts.is_empty() && unknown.unsummarized.is_empty());
        // A damaged sidecar: the traces it may hold are named, not guessed.
        let file = &store.table_files(&tenant()).unwrap().files[0];
        let sidecar = dir.path().join(file.meta.index_path.as_deref().unwrap());
        std::fs::write(&sidecar, b"garbage").unwrap();
        let store: SpanStore = TableStore::open_local(dir.path()).await;
        let damaged = parts(&store, &ids).await;
        assert!(damaged.parts.is_empty());
        assert_eq!(damaged.unsummarized, ids.iter().copied().collect());
    }
}
