//! Per-file summaries: what a data file holds, small enough to read before the file, so
//! listings (services, operations) answer without touching data and scans skip files that
//! cannot match. A span file's summary names its services with their span and error counts and
//! each service's operations with the span kinds seen; a metric file's, its metrics by name
//! ([`MetricCatalog`]).
//!
//! Summaries are built as records are buffered (so unflushed data lists too), written beside
//! each file as a sidecar object the manifest entry points to, and merged by addition: the
//! summary of a merged file is the sum of its inputs'. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::metric_summary::MetricCatalog;
use crate::model::{Span, SpanKind, StatusCode, TraceId};

/// Operations kept per service and file; past it the summary says the list is incomplete
/// (a span name holding ids or URLs must not grow summaries without bound).
pub const MAX_OPERATIONS_PER_SERVICE: usize = 2_000;

/// Facts about the records of one file (or of a buffer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// Services of a span file, by `service.name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceSummary>,
    /// Calls between services seen in a span file: caller → callee → counts. A callee is
    /// the service of a child span, or for a client or producer span without an instrumented
    /// child, the `peer.service` (or `server.address`, or database system) it names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, BTreeMap<String, EdgeSummary>>,
    /// The attribute keys of a span file's resources and events: a tag whose key is in
    /// neither is looked for in span attributes alone. `None` when unknown (summaries written
    /// before they were kept, or more keys than [`MAX_NESTED_KEYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested_keys: Option<BTreeSet<String>>,
    /// The metrics of a metric file, by OTLP name.
    #[serde(default, skip_serializing_if = "MetricCatalog::is_empty")]
    pub metrics: MetricCatalog,
    /// Links between traces in a span file: a linked trace → the traces holding a span that
    /// links to it (a consumer's trace pointing back at its producer's), so a request is
    /// followed into the traces that link to it without reading spans. `None` when unknown
    /// (summaries written before links were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<BTreeMap<TraceId, BTreeSet<TraceId>>>,
    /// Some links were left out ([`MAX_LINKED_TRACES`], [`MAX_LINKING_TRACES`]): a trace
    /// missing from `links` may still be linked to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub links_truncated: bool,
}

/// Linked traces kept per file; links to further ones are left out and the summary says so (a
/// load in which most spans link elsewhere must not grow summaries without bound).
pub const MAX_LINKED_TRACES: usize = 1_024;

/// Linking traces kept per linked trace; more are left out and the summary says so (a
/// stitched answer holds fewer traces than this).
pub const MAX_LINKING_TRACES: usize = 64;

/// Resource and event attribute keys kept per file; past it they are unknown.
pub const MAX_NESTED_KEYS: usize = 512;

/// Callees kept per caller and file; calls to further ones are not counted (a `server.address`
/// holding client-specific names must not grow summaries without bound).
pub const MAX_CALLEES_PER_CALLER: usize = 1_000;

/// Calls from one service to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeSummary {
    /// Calls.
    pub calls: u64,
    /// Calls whose callee span (or client span, for an uninstrumented callee) failed.
    pub errors: u64,
    /// Sum of the calls' durations, ns (the mean is this over `calls`).
    pub duration_sum_nanos: u64,
    /// The longest call, ns.
    pub duration_max_nanos: u64,
}

impl EdgeSummary {
    fn add(&mut self, other: &EdgeSummary) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.duration_sum_nanos = self
            .duration_sum_nanos
            .saturating_add(other.duration_sum_nanos);
        self.duration_max_nanos = self.duration_max_nanos.max(other.duration_max_nanos);
    }
}

/// One service's spans in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Spans.
    pub spans: u64,
    /// Spans with status `ERROR`.
    pub error_spans: u64,
    /// Operations (span names) and what was seen of them.
    pub operations: BTreeMap<String, OperationSummary>,
    /// Some operations were left out ([`MAX_OPERATIONS_PER_SERVICE`]): a missing name proves
    /// nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operations_truncated: bool,
}

impl ServiceSummary {
    /// Adds spans of one operation; a new operation past the cap only marks the list
    /// incomplete.
    fn add_operation(&mut self, operation: &str, counts: OperationSummary) {
        if let Some(found) = self.operations.get_mut(operation) {
            found.spans += counts.spans;
            found.kinds |= counts.kinds;
        } else if self.operations.len() < MAX_OPERATIONS_PER_SERVICE {
            self.operations.insert(operation.to_owned(), counts);
        } else {
            self.operations_truncated = true;
        }
    }
}

/// One operation of one service in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationSummary {
    /// Spans.
    pub spans: u64,
    /// The span kinds seen, one bit per OTLP kind number.
    pub kinds: u8,
}

impl OperationSummary {
    /// The span kinds seen, in kind-number order.
    pub fn kinds(&self) -> impl Iterator<Item = SpanKind> + '_ {
        (0..=5u8)
            .filter(|bit| self.kinds & (1 << bit) != 0)
            .map(|bit| SpanKind::from_number(i32::from(bit)))
    }
}

impl FileSummary {
    /// Counts some spans and notes their links.
    pub fn add_spans<'a>(&mut self, spans: impl IntoIterator<Item = &'a Span>) {
        for span in spans {
            self.add_span(
                span.resource.service_name(),
                &span.name,
                span.kind,
                span.status_code == StatusCode::Error,
            );
            for link in &span.links {
                self.add_link(link.trace_id, span.trace_id);
            }
        }
    }

    /// A summary that keeps links from the start (of new spans; see [`Self::links`]).
    pub fn keeping_links() -> Self {
        Self {
            links: Some(BTreeMap::new()),
            ..Self::default()
        }
    }

    /// Notes that a span of trace `from` links to trace `to` (links within a trace are not
    /// kept).
    pub fn add_link(&mut self, to: TraceId, from: TraceId) {
        if to == from {
            return;
        }
        let Some(links) = &mut self.links else {
            return;
        };
        let full = links.len() >= MAX_LINKED_TRACES;
        match links.get_mut(&to) {
            Some(linking) if linking.len() < MAX_LINKING_TRACES || linking.contains(&from) => {
                linking.insert(from);
            }
            None if !full => {
                links.insert(to, BTreeSet::from([from]));
            }
            _ => self.links_truncated = true,
        }
    }

    /// The traces holding a span that links to `trace`, and whether that is all of them (not
    /// when the links are unknown or some were left out).
    pub fn traces_linking_to(&self, trace: TraceId) -> (Vec<TraceId>, bool) {
        let Some(links) = &self.links else {
            return (Vec::new(), false);
        };
        let found = links
            .get(&trace)
            .map(|linking| linking.iter().copied().collect())
            .unwrap_or_default();
        (found, !self.links_truncated)
    }

    /// Counts one span. Allocates only for a service or operation not seen before.
    pub fn add_span(&mut self, service: &str, operation: &str, kind: SpanKind, error: bool) {
        let service = match self.services.get_mut(service) {
            Some(found) => found,
            None => self.services.entry(service.to_owned()).or_default(),
        };
        service.spans += 1;
        service.error_spans += u64::from(error);
        service.add_operation(
            operation,
            OperationSummary {
                spans: 1,
                kinds: 1 << (kind as u8),
            },
        );
    }

    /// Counts one call from `caller` to `callee`.
    pub fn add_call(&mut self, caller: &str, callee: &str, error: bool, duration_nanos: u64) {
        self.add_edge(
            caller,
            callee,
            &EdgeSummary {
                calls: 1,
                errors: u64::from(error),
                duration_sum_nanos: duration_nanos,
                duration_max_nanos: duration_nanos,
            },
        );
    }

    fn add_edge(&mut self, caller: &str, callee: &str, edge: &EdgeSummary) {
        let callees = match self.dependencies.get_mut(caller) {
            Some(found) => found,
            None => self.dependencies.entry(caller.to_owned()).or_default(),
        };
        if let Some(found) = callees.get_mut(callee) {
            found.add(edge);
        } else if callees.len() < MAX_CALLEES_PER_CALLER {
            callees.insert(callee.to_owned(), *edge);
        }
    }

    /// Notes attribute keys of a resource or an event (see [`Self::nested_keys`]); a summary
    /// starts knowing none.
    pub fn add_nested_keys<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        let Some(known) = &mut self.nested_keys else {
            return;
        };
        for key in keys {
            if !known.contains(key) {
                if known.len() >= MAX_NESTED_KEYS {
                    self.nested_keys = None;
                    return;
                }
                known.insert(key.to_owned());
            }
        }
    }

    /// Whether `key` may be a resource or event attribute of the summarised spans.
    pub fn may_nest(&self, key: &str) -> bool {
        self.nested_keys
            .as_ref()
            .is_none_or(|known| known.contains(key))
    }

    /// A summary that tracks resource and event keys and links from the start (a new
    /// file's).
    pub fn tracking_nested_keys() -> Self {
        Self {
            nested_keys: Some(BTreeSet::new()),
            ..Self::keeping_links()
        }
    }

    /// Adds another summary's counts to this one.
    pub fn merge(&mut self, other: &FileSummary) {
        self.metrics.merge(&other.metrics);
        if self.links.is_some() {
            self.links_truncated |= other.links_truncated;
            match &other.links {
                Some(links) => {
                    for (to, linking) in links {
                        for from in linking {
                            self.add_link(*to, *from);
                        }
                    }
                }
                None => self.links = None,
            }
        }
        match &other.nested_keys {
            Some(keys) => self.add_nested_keys(keys.iter().map(String::as_str)),
            None => self.nested_keys = None,
        }
        for (caller, callees) in &other.dependencies {
            for (callee, edge) in callees {
                self.add_edge(caller, callee, edge);
            }
        }
        for (name, theirs) in &other.services {
            let ours = match self.services.get_mut(name) {
                Some(found) => found,
                None => self.services.entry(name.clone()).or_default(),
            };
            ours.spans += theirs.spans;
            ours.error_spans += theirs.error_spans;
            ours.operations_truncated |= theirs.operations_truncated;
            for (operation, counts) in &theirs.operations {
                ours.add_operation(operation, *counts);
            }
        }
    }

    /// Whether the summarised records may hold a span of `service` (and of `operation`, when
    /// given): `false` only when they certainly do not.
    pub fn may_hold(&self, service: &str, operation: Option<&str>) -> bool {
        let Some(found) = self.services.get(service) else {
            return false;
        };
        match operation {
            Some(operation) => {
                found.operations_truncated || found.operations.contains_key(operation)
            }
            None => true,
        }
    }

    /// True when nothing was summarised.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.dependencies.is_empty() && self.metrics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(spans: &[(&str, &str, SpanKind, bool)]) -> FileSummary {
        let mut summary = FileSummary::default();
        for (service, operation, kind, error) in spans {
            summary.add_span(service, operation, *kind, *error);
        }
        summary
    }

    #[test]
    fn counts_spans_errors_and_kinds_per_service_and_operation() {
        let s = summary(&[
            ("api", "GET /", SpanKind::Server, false),
            ("api", "GET /", SpanKind::Client, true),
            ("db", "query", SpanKind::Client, false),
        ]);
        let api = &s.services["api"];
        assert_eq!((api.spans, api.error_spans), (2, 1));
        let get = api.operations["GET /"];
        assert_eq!(get.spans, 2);
        assert_eq!(
            get.kinds().collect::<Vec<_>>(),
            vec![SpanKind::Server, SpanKind::Client]
        );
        assert_eq!(s.services["db"].operations["query"].spans, 1);
        assert!(s.may_hold("api", Some("GET /")));
        assert!(!s.may_hold("api", Some("POST /")));
        assert!(!s.may_hold("web", None));
    }

    #[test]
    fn merging_adds_counts_and_unites_operations() {
        let mut a = summary(&[("api", "GET /", SpanKind::Server, true)]);
        let b = summary(&[
            ("api", "GET /", SpanKind::Internal, false),
            ("api", "POST /", SpanKind::Server, false),
            ("db", "query", SpanKind::Client, false),
        ]);
        a.add_call("api", "db", false, 10);
        let mut b = b;
        b.add_call("api", "db", true, 30);
        b.add_call("api", "cache", false, 5);
        a.merge(&b);
        let mut both = summary(&[
            ("api", "GET /", SpanKind::Server, true),
            ("api", "GET /", SpanKind::Internal, false),
            ("api", "POST /", SpanKind::Server, false),
            ("db", "query", SpanKind::Client, false),
        ]);
        both.add_call("api", "db", false, 10);
        both.add_call("api", "db", true, 30);
        both.add_call("api", "cache", false, 5);
        assert_eq!(a, both, "merging equals summarising everything at once");
        assert_eq!(
            a.dependencies["api"]["db"],
            EdgeSummary {
                calls: 2,
                errors: 1,
                duration_sum_nanos: 40,
                duration_max_nanos: 30
            }
        );
    }

    #[test]
    fn operations_beyond_the_cap_mark_the_list_incomplete() {
        let mut s = FileSummary::default();
        for i in 0..=MAX_OPERATIONS_PER_SERVICE {
            s.add_span("api", &format!("GET /user/{i}"), SpanKind::Server, false);
        }
        let api = &s.services["api"];
        assert_eq!(api.operations.len(), MAX_OPERATIONS_PER_SERVICE);
        assert!(api.operations_truncated);
        assert_eq!(api.spans, MAX_OPERATIONS_PER_SERVICE as u64 + 1);
        assert!(
            s.may_hold("api", Some("never seen")),
            "an incomplete list proves nothing"
        );
    }

    fn trace(n: u8) -> TraceId {
        TraceId([n; 16])
    }

    #[test]
    fn links_are_kept_by_linked_trace_and_past_the_caps_the_summary_says_so() {
        let mut s = FileSummary::keeping_links();
        s.add_link(trace(1), trace(2));
        s.add_link(trace(1), trace(3));
        s.add_link(trace(1), trace(2));
        s.add_link(trace(4), trace(4));
        assert_eq!(
            s.traces_linking_to(trace(1)),
            (vec![trace(2), trace(3)], true)
        );
        assert_eq!(
            s.traces_linking_to(trace(4)),
            (vec![], true),
            "within a trace"
        );
        // Merging unites; an unknown side makes the whole unknown.
        let mut other = FileSummary::keeping_links();
        other.add_link(trace(1), trace(5));
        s.merge(&other);
        assert_eq!(
            s.traces_linking_to(trace(1)),
            (vec![trace(2), trace(3), trace(5)], true)
        );
        let mut unknown = s.clone();
        unknown.merge(&FileSummary::default());
        assert_eq!(unknown.traces_linking_to(trace(1)), (vec![], false));
        // Summaries written before links were kept read as unknown.
        let old: FileSummary = serde_json::from_str("{}").unwrap();
        assert_eq!(old.traces_linking_to(trace(1)), (vec![], false));
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains(&format!("\"{}\":[\"{}\"", trace(1), trace(2))),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<FileSummary>(&text).unwrap(), s);
        // Past either cap the links kept stay, and the summary says some were left out.
        let mut full = FileSummary::keeping_links();
        for n in 0..=MAX_LINKING_TRACES as u32 {
            let mut id = [7u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            full.add_link(TraceId([9; 16]), TraceId(id));
        }
        let (linking, complete) = full.traces_linking_to(TraceId([9; 16]));
        assert_eq!((linking.len(), complete), (MAX_LINKING_TRACES, false));
        let mut wide = FileSummary::keeping_links();
        for n in 0..=MAX_LINKED_TRACES as u32 {
            let mut id = [9u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            wide.add_link(TraceId(id), trace(1));
        }
        let mut first = [9u8; 16];
        first[..4].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            wide.traces_linking_to(TraceId(first)),
            (vec![trace(1)], false)
        );
        let mut merged = FileSummary::keeping_links();
        merged.merge(&wide);
        assert!(merged.links_truncated, "merging keeps the mark");
    }

    #[test]
    fn serialises_compactly_and_reads_back() {
        let s = summary(&[("api", "GET /", SpanKind::Server, false)]);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"services":{"api":{"spans":1,"error_spans":0,"operations":{"GET /":{"spans":1,"kinds":4}}}}}"#
        );
        assert_eq!(serde_json::from_str::<FileSummary>(&text).unwrap(), s);
        assert_eq!(
            serde_json::from_str::<FileSummary>("{}").unwrap(),
            FileSummary::default()
        );
    }
}
