//! Trace search: the traces of one service (and operation) in a time range whose spans match
//! tag and duration filters, newest first, and the services and operations to search by.
//!
//! A span matches when it belongs to the service (and operation), starts in the range, lasts
//! within the duration bounds, and carries every tag asked for: tags are its attributes, its
//! resource's attributes, its events' fields and the fields Jaeger derives from OTLP
//! (`span.kind`, `error`, `otel.status_code`, `otel.status_description`, `otel.scope.name`,
//! `otel.scope.version`, `w3c.tracestate`), compared as text. Storage prunes by time range,
//! by each file's summary (files without the service are never opened) and by the service
//! and operation columns inside the Parquet reader; tags and durations are checked here.

use std::collections::HashMap;

use skewer_storage::Storage;
use skewer_storage::catalog::FileSummary;
use skewer_storage::model::{Attribute, Span, SpanKind, StatusCode, TenantId, TraceId};
use skewer_storage::parquet_codec::{
    END_TIME_COLUMN, SERVICE_NAME_COLUMN, SPAN_NAME_COLUMN, START_TIME_COLUMN, TRACE_ID_COLUMN,
    decode_spans,
};
use skewer_storage::scan::{Predicate, ScanLimits, ScanRequest, TimeRange, Value};

use crate::QueryError;
use crate::trace::assemble_trace;

/// The windows a search scans one at a time, newest first (the span files' partition).
const WINDOW_NANOS: u64 = 3_600 * 1_000_000_000;

/// What a trace search asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSearch {
    /// The service a matching span belongs to.
    pub service: String,
    /// Its operation (span name), when given.
    pub operation: Option<String>,
    /// Tags a matching span carries, all of them (key, value as text).
    pub tags: Vec<(String, String)>,
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
            && self
                .tags
                .iter()
                .all(|(key, value)| span_has_tag(span, key, value))
    }
}

/// Whether `span` carries tag `key` with `value` (as text), the way Jaeger shows its tags.
pub fn span_has_tag(span: &Span, key: &str, value: &str) -> bool {
    let in_attributes = |attributes: &[Attribute]| {
        attributes
            .iter()
            .any(|a| a.key == key && a.value.to_text() == value)
    };
    let derived = match key {
        "span.kind" => span.kind != SpanKind::Unspecified && span.kind.name() == value,
        "error" => span.status_code == StatusCode::Error && value == "true",
        "otel.status_code" => match span.status_code {
            StatusCode::Error => value == "ERROR",
            StatusCode::Ok => value == "OK",
            StatusCode::Unset => false,
        },
        "otel.status_description" => {
            !span.status_message.is_empty() && span.status_message == value
        }
        "otel.scope.name" => !span.scope.name.is_empty() && span.scope.name == value,
        "otel.scope.version" => !span.scope.version.is_empty() && span.scope.version == value,
        "w3c.tracestate" => !span.trace_state.is_empty() && span.trace_state == value,
        "event" => span.events.iter().any(|event| event.name == value),
        _ => false,
    };
    derived
        || in_attributes(&span.attributes)
        || in_attributes(&span.resource.attributes)
        || span
            .events
            .iter()
            .any(|event| in_attributes(&event.attributes))
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
    let mut predicate = Predicate::eq(SERVICE_NAME_COLUMN, Value::Text(search.service.clone()));
    if let Some(operation) = &search.operation {
        predicate = predicate.and(Predicate::eq(
            SPAN_NAME_COLUMN,
            Value::Text(operation.clone()),
        ));
    }
    // Without tags only ids and times are needed; tags need whole spans.
    let columns = search.tags.is_empty().then(|| {
        [TRACE_ID_COLUMN, START_TIME_COLUMN, END_TIME_COLUMN]
            .map(str::to_owned)
            .to_vec()
    });
    // The scan's rows are examined, not returned: what is kept is one entry per matching
    // trace, so only the deadline bounds a search (row and byte limits bound answers).
    let limits = ScanLimits {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
        deadline: limits.deadline,
    };
    // Hour by hour, newest first: every span of an older window starts before any of a newer
    // one, so once `limit` traces are found the rest cannot rank among them.
    let mut latest: HashMap<TraceId, u64> = HashMap::new();
    let mut window_end = search.time_range.end_unix_nano;
    while window_end > search.time_range.start_unix_nano && latest.len() < search.limit {
        let window_start =
            ((window_end - 1) / WINDOW_NANOS * WINDOW_NANOS).max(search.time_range.start_unix_nano);
        let request = ScanRequest {
            tenant: tenant.clone(),
            signal: skewer_storage::model::Signal::Traces,
            time_range: TimeRange {
                start_unix_nano: window_start,
                end_unix_nano: window_end,
            },
            columns: columns.clone(),
            predicate: predicate.clone(),
            limits,
        };
        let mut stream = storage.scan(request)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if columns.is_some() {
                for (trace_id, start, end) in id_times(&batch)? {
                    let duration = end.saturating_sub(start);
                    let span_matches = search.min_duration_nanos.is_none_or(|min| duration >= min)
                        && search.max_duration_nanos.is_none_or(|max| duration <= max);
                    if span_matches {
                        note_latest(&mut latest, trace_id, start);
                    }
                }
            } else {
                for span in decode_spans(&batch).map_err(skewer_storage::StorageError::from)? {
                    if search.span_matches(&span) {
                        note_latest(&mut latest, span.trace_id, span.start_time_unix_nano);
                    }
                }
            }
        }
        window_end = window_start;
    }
    let mut found: Vec<(TraceId, u64)> = latest.into_iter().collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    found.truncate(search.limit);
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

fn note_latest(latest: &mut HashMap<TraceId, u64>, trace_id: TraceId, start: u64) {
    let entry = latest.entry(trace_id).or_insert(start);
    *entry = (*entry).max(start);
}

/// (trace id, start, end) of every row of a batch projected to those three columns.
fn id_times(batch: &arrow_array::RecordBatch) -> Result<Vec<(TraceId, u64, u64)>, QueryError> {
    use arrow_array::{Array, FixedSizeBinaryArray, UInt64Array};
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
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..ids.len() {
        let id: [u8; 16] = ids
            .value(row)
            .try_into()
            .map_err(|_| malformed(TRACE_ID_COLUMN))?;
        rows.push((TraceId(id), starts.value(row), ends.value(row)));
    }
    Ok(rows)
}

/// Traces by id, in the order asked, each whole; unknown ids are left out. One scan for all
/// of them: each file's id filter and page index are consulted once for the set.
pub async fn find_traces(
    storage: &Storage,
    tenant: &TenantId,
    trace_ids: &[TraceId],
    limits: ScanLimits,
) -> Result<Vec<(TraceId, Vec<Span>)>, QueryError> {
    let mut unique: Vec<TraceId> = Vec::with_capacity(trace_ids.len());
    for id in trace_ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let mut stream = storage.scan(ScanRequest::traces(tenant.clone(), &unique, limits))?;
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(unique.len());
    while let Some(batch) = stream.next().await {
        for span in decode_spans(&batch?).map_err(skewer_storage::StorageError::from)? {
            by_trace.entry(span.trace_id).or_default().push(span);
        }
    }
    Ok(unique
        .into_iter()
        .filter_map(|id| {
            by_trace
                .remove(&id)
                .map(|spans| (id, assemble_trace(spans)))
        })
        .collect())
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
    use std::sync::Arc;

    use skewer_storage::model::{
        AttributeValue, InstrumentationScope, Resource, SpanEvent, SpanId,
    };

    use super::*;

    fn span() -> Span {
        Span {
            resource: Arc::new(Resource {
                attributes: vec![
                    Attribute::string("service.name", "api"),
                    Attribute::string("host.name", "h1"),
                ],
                ..Resource::default()
            }),
            scope: Arc::new(InstrumentationScope {
                name: "lib".into(),
                ..InstrumentationScope::default()
            }),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000,
            attributes: vec![
                Attribute {
                    key: "http.status_code".into(),
                    value: AttributeValue::Int(500),
                },
                Attribute {
                    key: "retry".into(),
                    value: AttributeValue::Bool(true),
                },
            ],
            dropped_attributes_count: 0,
            events: vec![SpanEvent {
                time_unix_nano: 2_000,
                name: "exception".into(),
                attributes: vec![Attribute::string("exception.type", "Timeout")],
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
        }
    }

    #[test]
    fn tags_match_attributes_resource_events_and_derived_fields_as_text() {
        let span = span();
        for (key, value) in [
            ("http.status_code", "500"),
            ("retry", "true"),
            ("host.name", "h1"),
            ("exception.type", "Timeout"),
            ("event", "exception"),
            ("span.kind", "server"),
            ("error", "true"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", "boom"),
            ("otel.scope.name", "lib"),
        ] {
            assert!(span_has_tag(&span, key, value), "{key}={value}");
        }
        for (key, value) in [
            ("http.status_code", "200"),
            ("span.kind", "client"),
            ("error", "false"),
            ("otel.scope.version", ""),
            ("missing", "x"),
        ] {
            assert!(!span_has_tag(&span, key, value), "{key}={value}");
        }
    }

    #[test]
    fn duration_bounds_are_inclusive_and_tags_are_anded() {
        let span = span(); // lasts 4,000 ns
        let search = |min, max, tags: &[(&str, &str)]| TraceSearch {
            service: "api".into(),
            operation: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            min_duration_nanos: min,
            max_duration_nanos: max,
            time_range: TimeRange::ALL,
            limit: 20,
        };
        assert!(search(Some(4_000), Some(4_000), &[]).span_matches(&span));
        assert!(!search(Some(4_001), None, &[]).span_matches(&span));
        assert!(!search(None, Some(3_999), &[]).span_matches(&span));
        assert!(search(None, None, &[("retry", "true"), ("error", "true")]).span_matches(&span));
        assert!(!search(None, None, &[("retry", "true"), ("error", "false")]).span_matches(&span));
    }
}
