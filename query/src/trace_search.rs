//! Trace search: the traces of one service (or any) and operation in a time range whose spans match
//! tag and duration filters, newest first, and the services and operations to search by.
//!
//! A span matches when it belongs to the service (and operation), starts in the range, lasts
//! within the duration bounds, and meets every tag filter ([`crate::trace_filter`]). Storage prunes by time range,
//! by each file's summary (files without the service are never opened) and by the service
//! and operation columns inside the Parquet reader; tags and durations are checked here.

use std::collections::HashMap;

use skewer_storage::Storage;
use skewer_storage::catalog::FileSummary;
use skewer_storage::model::{Span, SpanKind, StatusCode, TenantId, TraceId};
use skewer_storage::parquet_codec::{
    END_TIME_COLUMN, SERVICE_NAME_COLUMN, SPAN_NAME_COLUMN, START_TIME_COLUMN, STATUS_CODE_COLUMN,
    TRACE_ID_COLUMN, decode_spans,
};
use skewer_storage::scan::{
    Predicate, ScanLimits, ScanOrder, ScanRequest, TimeRange, Truncation, Value,
};

use crate::QueryError;
use crate::trace::assemble_trace;
use crate::trace_filter::TagFilter;

/// What a trace search asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSearch {
    /// The service a matching span belongs to; any service when `None`.
    pub service: Option<String>,
    /// Its operation (span name), when given.
    pub operation: Option<String>,
    /// Conditions a matching span meets, all of them (Jaeger's tags are equalities).
    pub filters: Vec<TagFilter>,
    /// Shortest matching span duration, ns.
    pub min_duration_nanos: Option<u64>,
    /// Longest matching span duration, ns.
    pub max_duration_nanos: Option<u64>,
    /// When a matching span starts.
    pub time_range: TimeRange,
    /// Traces returned at most.
    pub limit: usize,
}

impl TraceSearch {
    /// Whether `span` matches every filter except service, operation and time (which storage
    /// checks).
    pub fn span_matches(&self, span: &Span) -> bool {
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        self.min_duration_nanos.is_none_or(|min| duration >= min)
            && self.max_duration_nanos.is_none_or(|max| duration <= max)
            && self.filters.iter().all(|filter| filter.matches(span))
    }
}

/// The ids of the traces with a matching span, the one with the latest matching span first,
/// at most `search.limit`.
pub async fn search_trace_ids(
    storage: &Storage,
    tenant: &TenantId,
    search: &TraceSearch,
    limits: ScanLimits,
) -> Result<Vec<TraceId>, QueryError> {
    if search.limit == 0 {
        return Ok(Vec::new());
    }
    // Newest row groups first: once `limit` traces have a matching span newer than anything
    // still to come, the rest cannot rank among them.
    let mut newest = NewestTraces {
        latest: HashMap::new(),
        limit: search.limit,
        checked_bound: u64::MAX,
    };
    let scan = (search.time_range, ScanOrder::NewestFirst, limits);
    visit_matches(storage, tenant, search, scan, &mut newest).await?;
    let mut found: Vec<(TraceId, u64)> = newest.latest.into_iter().collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    found.truncate(search.limit);
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

/// What a search needs of a matching span.
#[derive(Debug, Clone, Copy)]
struct MatchedSpan {
    trace_id: TraceId,
    start_unix_nano: u64,
    duration_nanos: u64,
    error: bool,
}

/// What a search does with the matching spans it reads.
trait SpanVisitor {
    /// Takes one matching span.
    fn visit(&mut self, span: MatchedSpan);

    /// Whether to stop reading, given the newest time a span still to come can start at.
    fn enough(&mut self, _time_bound: u64) -> bool {
        false
    }
}

/// The latest matching start of each trace, until `limit` traces are newer than anything
/// still to come.
struct NewestTraces {
    latest: HashMap<TraceId, u64>,
    limit: usize,
    /// The bound `enough` last looked at (it looks again only when the bound drops).
    checked_bound: u64,
}

impl SpanVisitor for NewestTraces {
    fn visit(&mut self, span: MatchedSpan) {
        let entry = self
            .latest
            .entry(span.trace_id)
            .or_insert(span.start_unix_nano);
        *entry = (*entry).max(span.start_unix_nano);
    }

    fn enough(&mut self, time_bound: u64) -> bool {
        if self.limit == 0 || self.latest.len() < self.limit || time_bound >= self.checked_bound {
            return false;
        }
        self.checked_bound = time_bound;
        let mut starts: Vec<u64> = self.latest.values().copied().collect();
        let (_, kth, _) = starts.select_nth_unstable_by(self.limit - 1, |a, b| b.cmp(a));
        // Strictly newer: a span at the bound could tie and outrank by trace id.
        *kth > time_bound
    }
}

/// Durations and errors of every matching span.
#[derive(Default)]
struct Durations {
    durations: Vec<u64>,
    errors: u64,
}

impl SpanVisitor for Durations {
    fn visit(&mut self, span: MatchedSpan) {
        self.durations.push(span.duration_nanos);
        self.errors += u64::from(span.error);
    }
}

/// Hands every span matching `search` that starts in `range`, read in `order`, to `visitor`
/// until it has enough.
async fn visit_matches(
    storage: &Storage,
    tenant: &TenantId,
    search: &TraceSearch,
    (range, order, limits): (TimeRange, ScanOrder, ScanLimits),
    visitor: &mut impl SpanVisitor,
) -> Result<(), QueryError> {
    let mut predicate = match &search.service {
        Some(service) => Predicate::eq(SERVICE_NAME_COLUMN, Value::Text(service.clone())),
        None => Predicate::All,
    };
    if let Some(operation) = &search.operation {
        predicate = predicate.and(Predicate::eq(
            SPAN_NAME_COLUMN,
            Value::Text(operation.clone()),
        ));
    }
    // Conditions storage checks exactly need no span decoded: then only ids, times and
    // status are read. Any other condition needs whole spans, checked below.
    let mut exact = true;
    for filter in &search.filters {
        match filter.pushdown() {
            Some(pushed) => predicate = predicate.and(pushed),
            None => exact = false,
        }
    }
    let columns = exact.then(|| {
        [
            TRACE_ID_COLUMN,
            START_TIME_COLUMN,
            END_TIME_COLUMN,
            STATUS_CODE_COLUMN,
        ]
        .map(str::to_owned)
        .to_vec()
    });
    // The scan's rows are examined, not returned: a search keeps one entry per trace (or one
    // duration per span), so only the deadline bounds it (row and byte limits bound answers).
    let limits = ScanLimits {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
        ..limits
    };
    let request = ScanRequest {
        tenant: tenant.clone(),
        signal: skewer_storage::model::Signal::Traces,
        time_range: range,
        columns: columns.clone(),
        predicate,
        limits,
        order,
    };
    let in_bounds = |duration: u64| {
        search.min_duration_nanos.is_none_or(|min| duration >= min)
            && search.max_duration_nanos.is_none_or(|max| duration <= max)
    };
    let mut stream = storage.scan(request)?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if columns.is_some() {
            for span in projected_spans(&batch)? {
                if in_bounds(span.duration_nanos) {
                    visitor.visit(span);
                }
            }
        } else {
            for span in decode_spans(&batch).map_err(skewer_storage::StorageError::from)? {
                if search.span_matches(&span) {
                    visitor.visit(MatchedSpan {
                        trace_id: span.trace_id,
                        start_unix_nano: span.start_time_unix_nano,
                        duration_nanos: span
                            .end_time_unix_nano
                            .saturating_sub(span.start_time_unix_nano),
                        error: span.status_code == StatusCode::Error,
                    });
                }
            }
        }
        if visitor.enough(stream.time_bound()) {
            break;
        }
    }
    Ok(())
}

/// How long the matching spans lasted: the spread a latency alert or a UI chart needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationStats {
    /// Matching spans.
    pub spans: u64,
    /// Of them, spans with status `ERROR`.
    pub error_spans: u64,
    /// Median duration, ns (0 without spans).
    pub p50_nanos: u64,
    /// 90th percentile, ns.
    pub p90_nanos: u64,
    /// 99th percentile, ns.
    pub p99_nanos: u64,
    /// Longest, ns.
    pub max_nanos: u64,
}

impl DurationStats {
    /// The statistics of some durations (sorted here) with `error_spans` failures.
    pub fn of(mut durations: Vec<u64>, error_spans: u64) -> Self {
        durations.sort_unstable();
        // Nearest rank: the smallest duration at or above the fraction of spans.
        let rank = |q: f64| {
            let n = durations.len();
            let index = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            durations.get(index).copied().unwrap_or(0)
        };
        Self {
            spans: durations.len() as u64,
            error_spans,
            p50_nanos: rank(0.5),
            p90_nanos: rank(0.9),
            p99_nanos: rank(0.99),
            max_nanos: durations.last().copied().unwrap_or(0),
        }
    }
}

/// Duration percentiles and the error count of the spans matching `search` (its `limit` is
/// ignored: every matching span counts).
pub async fn duration_stats(
    storage: &Storage,
    tenant: &TenantId,
    search: &TraceSearch,
    limits: ScanLimits,
) -> Result<DurationStats, QueryError> {
    let mut durations = Durations::default();
    let scan = (search.time_range, ScanOrder::Any, limits);
    visit_matches(storage, tenant, search, scan, &mut durations).await?;
    Ok(DurationStats::of(durations.durations, durations.errors))
}

/// The spans of a batch projected to trace id, start, end and status.
fn projected_spans(batch: &arrow_array::RecordBatch) -> Result<Vec<MatchedSpan>, QueryError> {
    use arrow_array::{Array, FixedSizeBinaryArray, UInt8Array, UInt64Array};
    let malformed = |column: &str| QueryError::Internal(format!("scan returned no {column}"));
    let ids = batch
        .column_by_name(TRACE_ID_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| malformed(TRACE_ID_COLUMN))?;
    let times = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| malformed(name))
    };
    let (starts, ends) = (times(START_TIME_COLUMN)?, times(END_TIME_COLUMN)?);
    let statuses = batch
        .column_by_name(STATUS_CODE_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<UInt8Array>())
        .ok_or_else(|| malformed(STATUS_CODE_COLUMN))?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..ids.len() {
        let id: [u8; 16] = ids
            .value(row)
            .try_into()
            .map_err(|_| malformed(TRACE_ID_COLUMN))?;
        rows.push(MatchedSpan {
            trace_id: TraceId(id),
            start_unix_nano: starts.value(row),
            duration_nanos: ends.value(row).saturating_sub(starts.value(row)),
            error: statuses.value(row) == StatusCode::Error as u8,
        });
    }
    Ok(rows)
}

/// Traces found by id, in the order asked.
#[derive(Debug, Clone, Default)]
pub struct FoundTraces {
    /// Each trace with its start-ordered spans.
    pub traces: Vec<(TraceId, Vec<Span>)>,
    /// Set when a truncating read stopped at a limit: any trace may miss spans.
    pub truncated: Option<Truncation>,
}

/// Traces by id, in the order asked, each whole (or as much of them as truncating `limits`
/// let through, together); unknown ids are left out. One scan for all of them: each file's id
/// filter and page index are consulted once for the set.
pub async fn find_traces(
    storage: &Storage,
    tenant: &TenantId,
    trace_ids: &[TraceId],
    limits: ScanLimits,
) -> Result<FoundTraces, QueryError> {
    let unique = each_once(trace_ids);
    if unique.is_empty() {
        return Ok(FoundTraces::default());
    }
    let mut stream = storage.scan(ScanRequest::traces(tenant.clone(), &unique, limits))?;
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(unique.len());
    while let Some(batch) = stream.next().await {
        for span in decode_spans(&batch?).map_err(skewer_storage::StorageError::from)? {
            by_trace.entry(span.trace_id).or_default().push(span);
        }
    }
    let traces = unique
        .into_iter()
        .filter_map(|id| {
            by_trace
                .remove(&id)
                .map(|spans| (id, assemble_trace(spans)))
        })
        .collect();
    Ok(FoundTraces {
        traces,
        truncated: stream.truncated(),
    })
}

/// `trace_ids` in their order, each once (a result list or a multi-get).
pub fn each_once(trace_ids: &[TraceId]) -> Vec<TraceId> {
    let mut unique: Vec<TraceId> = Vec::with_capacity(trace_ids.len());
    for id in trace_ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    unique
}

/// The services with spans stored or buffered, sorted.
pub async fn services(storage: &Storage, tenant: &TenantId) -> Vec<String> {
    storage
        .span_summary(tenant)
        .await
        .services
        .into_keys()
        .collect()
}

/// Calls from one service to another in a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The calling service.
    pub parent: String,
    /// The called service (or uninstrumented peer).
    pub child: String,
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Mean call duration, ns.
    pub mean_duration_nanos: u64,
    /// Longest call, ns.
    pub max_duration_nanos: u64,
}

/// The calls between services whose spans were stored in `range`, by caller and callee.
pub async fn dependencies(
    storage: &Storage,
    tenant: &TenantId,
    range: TimeRange,
) -> Vec<Dependency> {
    let summary = storage.span_dependencies(tenant, range).await;
    let mut dependencies = Vec::new();
    for (parent, children) in summary.dependencies {
        for (child, edge) in children {
            dependencies.push(Dependency {
                parent: parent.clone(),
                child,
                calls: edge.calls,
                errors: edge.errors,
                mean_duration_nanos: edge.duration_sum_nanos / edge.calls.max(1),
                max_duration_nanos: edge.duration_max_nanos,
            });
        }
    }
    dependencies
}

/// One operation of a service with one span kind it was seen with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The span name.
    pub name: String,
    /// The kind.
    pub kind: SpanKind,
}

/// The operations of `service` (of `kind`, when given), sorted by name; an operation seen
/// with several kinds appears once per kind.
pub async fn operations(
    storage: &Storage,
    tenant: &TenantId,
    service: &str,
    kind: Option<SpanKind>,
) -> Vec<Operation> {
    let summary: FileSummary = storage.span_summary(tenant).await;
    let Some(found) = summary.services.get(service) else {
        return Vec::new();
    };
    let mut operations = Vec::new();
    for (name, seen) in &found.operations {
        for seen_kind in seen.kinds() {
            if kind.is_none_or(|kind| kind == seen_kind) {
                operations.push(Operation {
                    name: name.clone(),
                    kind: seen_kind,
                });
            }
        }
    }
    operations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_filter::tests::span;

    #[test]
    fn duration_bounds_are_inclusive_and_filters_are_anded() {
        let span = span(); // lasts 4,000 ns
        let search = |min, max, filters: &[&str]| TraceSearch {
            service: Some("api".into()),
            operation: None,
            filters: filters.iter().map(|f| f.parse().unwrap()).collect(),
            min_duration_nanos: min,
            max_duration_nanos: max,
            time_range: TimeRange::ALL,
            limit: 20,
        };
        assert!(search(Some(4_000), Some(4_000), &[]).span_matches(&span));
        assert!(!search(Some(4_001), None, &[]).span_matches(&span));
        assert!(!search(None, Some(3_999), &[]).span_matches(&span));
        assert!(search(None, None, &["retry=true", "error=true"]).span_matches(&span));
        assert!(!search(None, None, &["retry=true", "error=false"]).span_matches(&span));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let stats = DurationStats::of((1..=100).rev().collect(), 3);
        assert_eq!(
            stats,
            DurationStats {
                spans: 100,
                error_spans: 3,
                p50_nanos: 50,
                p90_nanos: 90,
                p99_nanos: 99,
                max_nanos: 100
            }
        );
        assert_eq!(DurationStats::of(vec![7], 0).p99_nanos, 7);
        assert_eq!(DurationStats::of(Vec::new(), 0), DurationStats::default());
    }
}
