//! The summary of a span file, built from its rows in file order (sorted by time slice, then
//! trace id) by a flush or a merge: services and operations, and the calls between services.
//!
//! Calls are found per trace, the way Jaeger's dependency job finds them: a span whose parent
//! belongs to another service is a call from the parent's service to its own. A client or
//! producer span with no child in another service called something uninstrumented, named by
//! its `peer.service`, `server.address` or database system. A trace split across files counts
//! its calls where parent and child meet: after the flush that holds both, or once compaction
//! merges the hour (the merged file's summary is rebuilt from its rows).
//!
//! A trace that crosses a slice boundary comes in two groups of rows, one per slice. A group
//! that may continue (a span whose parent it lacks, or a client span without a child that
//! ends past the slice) is carried to the next slice and matched with the trace's rows there;
//! what is still unmatched after that slice is counted as above.
//!
//! Each trace's group, once complete, is also summarised for the file's trace summaries
//! ([`super::trace_summaries`]): a trace carried across a slice boundary is summarised once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{FixedSizeBinaryArray, ListArray, RecordBatch, StringArray, UInt8Array};

use crate::catalog::FileSummary;
use crate::model::{Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
use crate::parquet_codec::{
    CodecError, END_TIME_COLUMN, SERVICE_NAME_COLUMN, SPAN_KIND_COLUMN, SPAN_NAME_COLUMN,
    SPAN_SLICE_NANOS, START_TIME_COLUMN, STATUS_CODE_COLUMN, TRACE_ID_COLUMN, span_slice,
};
use crate::table::{FileSidecars, Summarizer};

use super::trace_summaries::{TraceEntry, TraceSummariesBuilder};

/// Attributes naming what a client span called, most specific first.
pub const PEER_KEYS: [&str; 4] = [
    "peer.service",
    "server.address",
    "db.system.name",
    "db.system",
];

/// Traces up to this many spans find parents by scanning the group; bigger ones by a table.
const SMALL_TRACE_SPANS: usize = 32;
/// Spans carried to the next slice at most (memory bound); beyond it groups are counted
/// where they are.
const MAX_CARRIED_SPANS: usize = 65_536;

/// One span as call matching needs it.
struct GroupSpan {
    span_id: SpanId,
    parent: Option<SpanId>,
    service: u32,
    kind: SpanKind,
    error: bool,
    duration_nanos: u64,
    /// What a client or producer span names as its callee, interned like services.
    peer: Option<u32>,
    /// The operation of a span without parent (a root), interned like services.
    root_operation: Option<u32>,
    start_unix_nano: u64,
    end_unix_nano: u64,
}

/// A group carried to the next slice.
struct Carried {
    slice: u64,
    spans: Vec<GroupSpan>,
}

/// Builds a span file's [`FileSummary`] from rows sorted by slice and trace id. Allocates per
/// new name, not per span or trace: names are interned and the per-trace tables are reused.
pub struct SpanFileSummarizer {
    summary: FileSummary,
    /// The resource whose keys were noted last (rows share resources).
    last_resource: Option<Arc<Resource>>,
    /// Service, peer and root operation names by id.
    services: Vec<String>,
    service_ids: HashMap<String, u32>,
    trace: Option<TraceId>,
    /// The slice of the group's rows.
    slice: u64,
    group: Vec<GroupSpan>,
    /// Groups that may continue in the next slice, by trace.
    carried: HashMap<TraceId, Carried>,
    carried_spans: usize,
    /// Position of each span of the group by id (reused across traces).
    positions: HashMap<SpanId, usize>,
    /// Whether each span of the group has a child in another service (reused).
    called_remotely: Vec<bool>,
    /// The summary of each trace of the file.
    trace_summaries: TraceSummariesBuilder,
    /// (service, spans, error spans) of the group being summarised (reused).
    group_services: Vec<(u32, u32, u32)>,
}

impl Default for SpanFileSummarizer {
    fn default() -> Self {
        Self {
            summary: FileSummary::tracking_nested_keys(),
            last_resource: None,
            services: Vec::new(),
            service_ids: HashMap::new(),
            trace: None,
            slice: 0,
            group: Vec::new(),
            carried: HashMap::new(),
            carried_spans: 0,
            positions: HashMap::new(),
            called_remotely: Vec::new(),
            trace_summaries: TraceSummariesBuilder::default(),
            group_services: Vec::new(),
        }
    }
}

impl SpanFileSummarizer {
    /// Notes the attribute keys of a span's resource, once per distinct resource in a row.
    fn note_resource(&mut self, resource: &Arc<Resource>) {
        if self
            .last_resource
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, resource))
        {
            return;
        }
        self.summary
            .add_nested_keys(resource.attributes.iter().map(|a| a.key.as_str()));
        self.last_resource = Some(Arc::clone(resource));
    }

    fn service_id(&mut self, service: &str) -> u32 {
        if let Some(&id) = self.service_ids.get(service) {
            return id;
        }
        let id = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        self.services.push(service.to_owned());
        self.service_ids.insert(service.to_owned(), id);
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        parent: Option<SpanId>,
        service: &str,
        operation: &str,
        kind: SpanKind,
        error: bool,
        (start_unix_nano, end_unix_nano): (u64, u64),
        peer: Option<&str>,
    ) {
        self.summary.add_span(service, operation, kind, error);
        let slice = span_slice(start_unix_nano);
        if self.trace != Some(trace_id) || self.slice != slice {
            self.close_trace();
            if slice != self.slice {
                self.count_carried_before(slice.saturating_sub(1));
                self.slice = slice;
            }
            self.trace = Some(trace_id);
            if let Some(carried) = self.carried.remove(&trace_id) {
                self.carried_spans -= carried.spans.len();
                self.group.extend(carried.spans);
            }
        }
        let service = self.service_id(service);
        let peer = peer.map(|peer| self.service_id(peer));
        let root_operation = parent.is_none().then(|| self.service_id(operation));
        self.group.push(GroupSpan {
            span_id,
            parent,
            service,
            kind,
            error,
            duration_nanos: end_unix_nano.saturating_sub(start_unix_nano),
            peer,
            root_operation,
            start_unix_nano,
            end_unix_nano,
        });
    }

    /// Counts the carried groups of slices before `slice`: their traces did not continue.
    fn count_carried_before(&mut self, slice: u64) {
        if self.carried.is_empty() {
            return;
        }
        let done: Vec<TraceId> = self
            .carried
            .iter()
            .filter(|(_, carried)| carried.slice < slice)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(carried) = self.carried.remove(&id) {
                self.carried_spans -= carried.spans.len();
                self.group = carried.spans;
                self.mark_remote_calls();
                self.finish_group(id);
            }
        }
    }

    /// Where the span `id` is in the group (its first place): a scan for a small trace, a table
    /// for a big one.
    fn position_of(&self, id: SpanId) -> Option<usize> {
        if self.group.len() <= SMALL_TRACE_SPANS {
            self.group.iter().position(|span| span.span_id == id)
        } else {
            self.positions.get(&id).copied()
        }
    }

    /// Counts the calls of the group gathered, or carries it to the next slice when the trace
    /// may go on there.
    fn close_trace(&mut self) {
        let Some(trace) = self.trace.take() else {
            return;
        };
        if self.group.is_empty() {
            return;
        }
        // Marked once here; counting below reuses the marks.
        let parents_missing = self.mark_remote_calls();
        if self.carried_spans + self.group.len() <= MAX_CARRIED_SPANS
            && self.may_continue(parents_missing)
        {
            self.carried_spans += self.group.len();
            self.carried.insert(
                trace,
                Carried {
                    slice: self.slice,
                    spans: std::mem::take(&mut self.group),
                },
            );
            return;
        }
        self.finish_group(trace);
    }

    /// Counts the calls of the group gathered (its remote calls marked) and summarises it.
    fn finish_group(&mut self, trace: TraceId) {
        self.count_marked_calls();
        self.summarize_group(trace);
        self.group.clear();
    }

    /// Adds the group's trace summary: each span id once, spans whose parent is not in the
    /// group, the earliest span without parent as the root. Needs `positions` built for a
    /// big group (as marking remote calls does).
    fn summarize_group(&mut self, trace: TraceId) {
        self.group_services.clear();
        let mut entry = TraceEntry {
            trace_id: trace,
            start_unix_nano: u64::MAX,
            end_unix_nano: 0,
            error_spans: 0,
            spans_missing_parent: 0,
            root: None,
        };
        for (at, span) in self.group.iter().enumerate() {
            if self.position_of(span.span_id) != Some(at) {
                continue;
            }
            entry.start_unix_nano = entry.start_unix_nano.min(span.start_unix_nano);
            entry.end_unix_nano = entry
                .end_unix_nano
                .max(span.end_unix_nano.max(span.start_unix_nano));
            entry.error_spans += u32::from(span.error);
            if let Some(parent) = span.parent {
                entry.spans_missing_parent += u32::from(self.position_of(parent).is_none());
            } else if let Some(operation) = span.root_operation
                && entry
                    .root
                    .is_none_or(|(_, _, start)| span.start_unix_nano < start)
            {
                entry.root = Some((span.service, operation, span.start_unix_nano));
            }
            match self
                .group_services
                .iter_mut()
                .find(|(service, _, _)| *service == span.service)
            {
                Some(counts) => {
                    counts.1 += 1;
                    counts.2 += u32::from(span.error);
                }
                None => self
                    .group_services
                    .push((span.service, 1, u32::from(span.error))),
            }
        }
        if !self.group_services.is_empty() {
            self.trace_summaries.add(entry, &self.group_services);
        }
    }

    /// Whether the group lacks a parent, or has a span that ends after its slice (its
    /// children may start in the next one): then the rest of the trace may be in the next
    /// slice.
    fn may_continue(&self, parents_missing: bool) -> bool {
        let slice_end = (self.slice + 1).saturating_mul(SPAN_SLICE_NANOS);
        parents_missing
            || self
                .group
                .iter()
                .any(|span| span.end_unix_nano >= slice_end)
    }

    /// Marks in `called_remotely` the spans of the group with a child in another service;
    /// true when some span's parent is not in the group.
    fn mark_remote_calls(&mut self) -> bool {
        if self.group.len() > SMALL_TRACE_SPANS {
            self.positions.clear();
            // In reverse, so a repeated span id maps to its first place.
            self.positions.extend(
                self.group
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(position, span)| (span.span_id, position)),
            );
        }
        self.called_remotely.clear();
        self.called_remotely.resize(self.group.len(), false);
        let mut parents_missing = false;
        for span in &self.group {
            let Some(parent_id) = span.parent else {
                continue;
            };
            match self.position_of(parent_id) {
                Some(parent) => {
                    if self.group[parent].service != span.service {
                        self.called_remotely[parent] = true;
                    }
                }
                None => parents_missing = true,
            }
        }
        parents_missing
    }

    /// Counts the calls of the group gathered, its remote calls already marked.
    fn count_marked_calls(&mut self) {
        for span in &self.group {
            let Some(parent) = span.parent.and_then(|id| self.position_of(id)) else {
                continue;
            };
            let caller = &self.group[parent];
            if caller.service != span.service {
                self.summary.add_call(
                    &self.services[caller.service as usize],
                    &self.services[span.service as usize],
                    span.error,
                    span.duration_nanos,
                );
            }
        }
        for (span, called) in self.group.iter().zip(&self.called_remotely) {
            let calls_out = matches!(span.kind, SpanKind::Client | SpanKind::Producer);
            if let Some(peer) = span.peer
                && calls_out
                && !called
                && peer != span.service
            {
                self.summary.add_call(
                    &self.services[span.service as usize],
                    &self.services[peer as usize],
                    span.error,
                    span.duration_nanos,
                );
            }
        }
    }
}

fn peer_of(span: &Span) -> Option<&str> {
    if !matches!(span.kind, SpanKind::Client | SpanKind::Producer) {
        return None;
    }
    // One pass over the attributes, keeping the most specific key seen.
    let mut best: Option<(usize, &str)> = None;
    for attribute in &span.attributes {
        if let crate::model::AttributeValue::String(text) = &attribute.value
            && let Some(rank) = PEER_KEYS.iter().position(|key| *key == attribute.key)
            && best.is_none_or(|(best_rank, _)| rank < best_rank)
        {
            best = Some((rank, text));
        }
    }
    best.map(|(_, text)| text)
}

impl Summarizer<Span> for SpanFileSummarizer {
    fn add_records(&mut self, spans: &[&Span]) {
        for span in spans {
            self.note_resource(&span.resource);
            for event in &span.events {
                self.summary
                    .add_nested_keys(event.attributes.iter().map(|a| a.key.as_str()));
            }
            for link in &span.links {
                self.summary.add_link(link.trace_id, span.trace_id);
            }
            self.add(
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                span.resource.service_name(),
                &span.name,
                span.kind,
                span.status_code == StatusCode::Error,
                (span.start_time_unix_nano, span.end_time_unix_nano),
                peer_of(span),
            );
        }
    }

    fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), CodecError> {
        use crate::parquet_codec::columns::{column, optional_id, required_id};
        let trace_ids = column::<FixedSizeBinaryArray>(batch, TRACE_ID_COLUMN)?;
        let span_ids = column::<FixedSizeBinaryArray>(batch, "span_id")?;
        let parents = column::<FixedSizeBinaryArray>(batch, "parent_span_id")?;
        let services = column::<StringArray>(batch, SERVICE_NAME_COLUMN)?;
        let names = column::<StringArray>(batch, SPAN_NAME_COLUMN)?;
        let kinds = column::<UInt8Array>(batch, SPAN_KIND_COLUMN)?;
        let statuses = column::<UInt8Array>(batch, STATUS_CODE_COLUMN)?;
        let starts = column::<arrow_array::UInt64Array>(batch, START_TIME_COLUMN)?;
        let ends = column::<arrow_array::UInt64Array>(batch, END_TIME_COLUMN)?;
        let attributes = column::<ListArray>(batch, "attributes")?;
        let attributes =
            crate::parquet_codec::attributes::AttributesReader::new(attributes, "attributes")?;
        let mut resources =
            crate::parquet_codec::SharedJsonReader::<Resource>::new(batch, "resource")?;
        let events =
            crate::parquet_codec::EventsReader::new(column::<ListArray>(batch, "events")?)?;
        let links = crate::parquet_codec::LinksReader::new(column::<ListArray>(batch, "links")?)?;
        for row in 0..batch.num_rows() {
            let resource = resources.get(row)?;
            self.note_resource(&resource);
            events.visit_attribute_keys(row, |key| self.summary.add_nested_keys([key]));
            let trace_id = TraceId(required_id(trace_ids, row, TRACE_ID_COLUMN)?);
            links.visit_trace_ids(row, |linked| self.summary.add_link(linked, trace_id))?;
            let kind = SpanKind::from_number(i32::from(kinds.value(row)));
            let peer = matches!(kind, SpanKind::Client | SpanKind::Producer)
                .then(|| attributes.find_string(row, &PEER_KEYS))
                .flatten();
            self.add(
                trace_id,
                SpanId(required_id(span_ids, row, "span_id")?),
                optional_id(parents, row, "parent_span_id")?.map(SpanId),
                services.value(row),
                names.value(row),
                kind,
                statuses.value(row) == StatusCode::Error as u8,
                (starts.value(row), ends.value(row)),
                peer,
            );
        }
        Ok(())
    }

    fn finish(mut self) -> Result<FileSidecars, CodecError> {
        self.close_trace();
        self.count_carried_before(u64::MAX);
        let index = self.trace_summaries.finish(&self.services)?;
        Ok(FileSidecars {
            summary: Some(self.summary),
            index: index.map(bytes::Bytes::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::summary::EdgeSummary;
    use crate::model::Attribute;
    use crate::parquet_codec::spans_batch;
    use crate::parquet_codec::test_fixtures::tree_span as span;
    use crate::spans::trace_summaries::{PartialTraceSummary, SpanFacts};

    /// Two traces: web → api (client span 2 → server span 3, which fails), api → the
    /// uninstrumented `postgres` (client span 4 naming it); in trace 2 web calls api again
    /// and a producer names `queue` through `peer.service`.
    fn spans() -> Vec<Span> {
        let mut failing = span(1, 3, Some(2), "api", SpanKind::Server);
        failing.status_code = StatusCode::Error;
        let mut db = span(1, 4, Some(3), "api", SpanKind::Client);
        db.attributes = vec![Attribute::string("db.system", "postgres")];
        let mut producer = span(2, 9, Some(6), "web", SpanKind::Producer);
        producer.attributes = vec![
            Attribute::string("server.address", "10.0.0.1"),
            Attribute::string("peer.service", "queue"),
        ];
        vec![
            span(1, 1, None, "web", SpanKind::Server),
            span(1, 2, Some(1), "web", SpanKind::Client),
            failing,
            db,
            span(2, 6, None, "web", SpanKind::Client),
            span(2, 7, Some(6), "api", SpanKind::Server),
            producer,
        ]
    }

    fn edge(calls: u64, errors: u64, sum: u64, max: u64) -> EdgeSummary {
        EdgeSummary {
            calls,
            errors,
            duration_sum_nanos: sum,
            duration_max_nanos: max,
        }
    }

    fn check(summary: &FileSummary) {
        let deps = &summary.dependencies;
        assert_eq!(deps["web"]["api"], edge(2, 1, 300 + 700, 700));
        assert_eq!(deps["api"]["postgres"], edge(1, 0, 400, 400));
        assert_eq!(deps["web"]["queue"], edge(1, 0, 900, 900));
        assert_eq!(deps.len(), 2, "{deps:?}");
        assert_eq!(
            deps["web"].len(),
            2,
            "a client with an instrumented child is no peer call"
        );
        assert_eq!(summary.services["api"].spans, 3);
    }

    #[test]
    fn calls_between_services_and_to_uninstrumented_peers_from_records() {
        let spans = spans();
        let mut summarizer = SpanFileSummarizer::default();
        summarizer.add_records(&spans.iter().collect::<Vec<_>>());
        check(&summarizer.finish().unwrap().summary.unwrap());
    }

    #[test]
    fn resource_and_event_keys_are_noted_from_records_and_batches() {
        let mut spans = spans();
        spans[0].events.push(crate::model::SpanEvent {
            time_unix_nano: 1,
            name: "exception".into(),
            attributes: vec![Attribute::string("exception.type", "Timeout")],
            dropped_attributes_count: 0,
        });
        let refs: Vec<&Span> = spans.iter().collect();
        let mut from_records = SpanFileSummarizer::default();
        from_records.add_records(&refs);
        let mut from_batch = SpanFileSummarizer::default();
        from_batch.add_batch(&spans_batch(&refs).unwrap()).unwrap();
        for summary in [
            from_records.finish().unwrap().summary.unwrap(),
            from_batch.finish().unwrap().summary.unwrap(),
        ] {
            let keys = summary.nested_keys.clone().unwrap();
            assert_eq!(
                keys.into_iter().collect::<Vec<_>>(),
                ["exception.type", "service.name"]
            );
            assert!(summary.may_nest("service.name") && !summary.may_nest("db.system"));
        }
    }

    #[test]
    fn a_big_trace_finds_parents_through_its_table() {
        let mut spans = vec![span(9, 0, None, "web", SpanKind::Client)];
        spans.extend((1..=40).map(|id| span(9, id, Some(0), "api", SpanKind::Server)));
        let mut summarizer = SpanFileSummarizer::default();
        summarizer.add_records(&spans.iter().collect::<Vec<_>>());
        let summary = summarizer.finish().unwrap().summary.unwrap();
        assert_eq!(summary.dependencies["web"]["api"].calls, 40);
        assert_eq!(summary.dependencies.len(), 1);
    }

    #[test]
    fn a_trace_across_a_slice_boundary_counts_its_call_once() {
        let boundary = SPAN_SLICE_NANOS;
        let mut client = span(5, 1, None, "web", SpanKind::Client);
        client.attributes = vec![Attribute::string("server.address", "api.internal")];
        (client.start_time_unix_nano, client.end_time_unix_nano) = (boundary - 100, boundary + 900);
        let mut other = span(3, 7, None, "web", SpanKind::Server);
        (other.start_time_unix_nano, other.end_time_unix_nano) = (boundary + 5, boundary + 50);
        let mut server = span(5, 2, Some(1), "api", SpanKind::Server);
        (server.start_time_unix_nano, server.end_time_unix_nano) = (boundary + 10, boundary + 800);
        // File order: slice 0, then slice 1 sorted by trace id.
        let mut summarizer = SpanFileSummarizer::default();
        summarizer.add_records(&[&client, &other, &server]);
        let summary = summarizer.finish().unwrap().summary.unwrap();
        assert_eq!(summary.dependencies["web"]["api"], edge(1, 0, 790, 790));
        assert_eq!(summary.dependencies["web"].len(), 1, "{summary:?}");
    }

    #[test]
    fn a_carried_call_that_does_not_continue_is_counted_to_its_peer() {
        let boundary = SPAN_SLICE_NANOS;
        let mut client = span(5, 1, None, "web", SpanKind::Client);
        client.attributes = vec![Attribute::string("db.system", "postgres")];
        (client.start_time_unix_nano, client.end_time_unix_nano) = (boundary - 100, boundary + 900);
        let mut later = span(6, 2, None, "web", SpanKind::Server);
        (later.start_time_unix_nano, later.end_time_unix_nano) = (3 * boundary, 3 * boundary + 10);
        let mut summarizer = SpanFileSummarizer::default();
        summarizer.add_records(&[&client, &later]);
        let summary = summarizer.finish().unwrap().summary.unwrap();
        assert_eq!(summary.dependencies["web"]["postgres"].calls, 1);
        let mut alone = SpanFileSummarizer::default();
        alone.add_records(&[&client]);
        assert_eq!(
            alone.finish().unwrap().summary.unwrap().dependencies["web"]["postgres"].calls,
            1
        );
    }

    fn trace_summaries(sidecars: FileSidecars, ids: &[TraceId]) -> Vec<PartialTraceSummary> {
        let bytes = sidecars.index.expect("trace summaries");
        super::super::trace_summaries::read_all(&bytes, ids).unwrap()
    }

    fn summary_of(spans: &[&Span]) -> PartialTraceSummary {
        let facts: Vec<SpanFacts<'_>> = spans.iter().map(|span| SpanFacts::of(span)).collect();
        PartialTraceSummary::of_spans(spans[0].trace_id, &facts)
    }

    #[test]
    fn each_trace_is_summarised_once_from_records_and_batches() {
        let boundary = SPAN_SLICE_NANOS;
        let mut root = span(5, 1, None, "web", SpanKind::Server);
        (root.start_time_unix_nano, root.end_time_unix_nano) = (boundary - 100, boundary + 900);
        let mut child = span(5, 2, Some(1), "api", SpanKind::Server);
        (child.start_time_unix_nano, child.end_time_unix_nano) = (boundary + 10, boundary + 800);
        child.status_code = StatusCode::Error;
        let mut orphan = span(5, 3, Some(8), "api", SpanKind::Client);
        (orphan.start_time_unix_nano, orphan.end_time_unix_nano) = (boundary + 20, boundary + 30);
        let mut other = span(3, 7, None, "web", SpanKind::Server);
        (other.start_time_unix_nano, other.end_time_unix_nano) = (boundary + 5, boundary + 50);
        // File order: slice 0, then slice 1 sorted by trace id; the child is repeated (a
        // replay after a crash stores a span twice).
        let rows = [&root, &other, &child, &child, &orphan];
        let mut from_records = SpanFileSummarizer::default();
        from_records.add_records(&rows);
        let mut from_batch = SpanFileSummarizer::default();
        from_batch.add_batch(&spans_batch(&rows).unwrap()).unwrap();
        let ids = [TraceId([3; 16]), TraceId([5; 16])];
        let expected = vec![summary_of(&[&other]), summary_of(&[&root, &child, &orphan])];
        assert_eq!(expected[1].spans, 3);
        assert_eq!(expected[1].spans_missing_parent, 1);
        assert_eq!(expected[1].error_spans, 1);
        assert_eq!(expected[1].root.as_ref().unwrap().operation, "op1");
        for summarizer in [from_records, from_batch] {
            assert_eq!(
                trace_summaries(summarizer.finish().unwrap(), &ids),
                expected
            );
        }
    }

    #[test]
    fn batches_summarise_like_records_across_batch_boundaries() {
        let spans = spans();
        let refs: Vec<&Span> = spans.iter().collect();
        let mut summarizer = SpanFileSummarizer::default();
        // Trace 1 split across two batches.
        summarizer
            .add_batch(&spans_batch(&refs[..2]).unwrap())
            .unwrap();
        summarizer
            .add_batch(&spans_batch(&refs[2..]).unwrap())
            .unwrap();
        check(&summarizer.finish().unwrap().summary.unwrap());
    }
}
