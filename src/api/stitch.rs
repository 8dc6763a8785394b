//! `GET /api/stitch/{id}`: one request across services by trace id or correlation id: its
//! traces, every span with raw and adjusted times and clock-skew findings, every log record
//! of it (also those with no trace context) moved with its host's clock, and the services
//! involved.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use skewer_query::critical_path::{PathSegment, critical_path};
use skewer_query::skew::{SkewOptions, SpanTiming, host_of};
use skewer_query::stitch::{StitchLimits, Stitched, StitchedBy, stitch};
use skewer_storage::model::{Span, SpanId, StatusCode, TraceId};

use super::logs::LogView;
use super::params::{QueryParams, format_time};
use super::{ApiError, AppState, tenant};

/// Traces one stitch gathers at most.
const MAX_TRACES: usize = 20;

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StitchParams {
    /// Untouched times: findings are reported, nothing is moved.
    raw: Option<bool>,
    /// The largest adjustment applied, ms (default `[query] max_clock_skew_adjustment_ms`).
    max_adjust_ms: Option<u64>,
}

/// The handler.
pub async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StitchParams>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let id = id.trim();
    if id.is_empty() {
        return Err(ApiError::BadParameter {
            parameter: "id",
            reason: "give a trace id or a correlation id".to_owned(),
        });
    }
    let configured = state.skew_options();
    let options = SkewOptions {
        adjust: configured.adjust && !params.raw.unwrap_or(false),
        max_adjust_nanos: params
            .max_adjust_ms
            .map_or(configured.max_adjust_nanos, |ms| {
                ms.saturating_mul(1_000_000)
            }),
    };
    let limits = StitchLimits {
        max_traces: MAX_TRACES,
        scan: state.trace_limits(&tenant),
    };
    let stitched = stitch(state.storage()?, &tenant, id, &options, &limits).await?;
    if stitched.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no trace and no log record found for {id:?} (a trace id, or a correlation id)"
        )));
    }
    Ok(Json(view(id, &stitched, &options)))
}

fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

fn span_view(span: &Span, timing: &SpanTiming, on_critical_path: bool) -> Value {
    let skew = timing.finding.as_ref().map(|finding| {
        json!({
            "relative_to_span_id": finding.relative_to,
            "host": finding.host,
            "other_host": finding.other_host,
            "delta_ns": finding.delta_nanos.to_string(),
            "applied": finding.applied,
            "reason": finding.reason,
        })
    });
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            json!({
                "name": event.name,
                "time_unix_nano": event.time_unix_nano.to_string(),
                "attributes": event.attributes,
            })
        })
        .collect();
    let links: Vec<Value> = span
        .links
        .iter()
        .map(|link| json!({ "trace_id": link.trace_id, "span_id": link.span_id }))
        .collect();
    json!({
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": span.kind.name(),
        "service_name": span.resource.service_name(),
        "host": host_of(&span.resource),
        "status": status_name(span.status_code),
        "status_message": span.status_message,
        "start": format_time(timing.start_unix_nano),
        "start_unix_nano": timing.start_unix_nano.to_string(),
        "end_unix_nano": timing.end_unix_nano.to_string(),
        "duration_ns": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano).to_string(),
        "raw_start_unix_nano": span.start_time_unix_nano.to_string(),
        "raw_end_unix_nano": span.end_time_unix_nano.to_string(),
        "attributes": span.attributes,
        "resource": span.resource.as_ref(),
        "events": events,
        "links": links,
        "skew": skew,
        "on_critical_path": on_critical_path,
    })
}

#[derive(Default)]
struct ServiceCounts {
    spans: u64,
    error_spans: u64,
    logs: u64,
    hosts: std::collections::BTreeSet<String>,
}

fn view(id: &str, stitched: &Stitched, options: &SkewOptions) -> Value {
    let mut services: BTreeMap<String, ServiceCounts> = BTreeMap::new();
    // Each trace's critical path, on adjusted times.
    let paths: Vec<Vec<PathSegment>> = stitched
        .traces
        .iter()
        .map(|trace| critical_path(&trace.spans, &trace.timings))
        .collect();
    let on_path: HashSet<(TraceId, SpanId)> = stitched
        .traces
        .iter()
        .zip(&paths)
        .flat_map(|(trace, path)| {
            path.iter()
                .map(|segment| (trace.trace_id, trace.spans[segment.span].span_id))
        })
        .collect();
    // Spans of every trace, by adjusted start.
    let mut spans: Vec<(&Span, &SpanTiming)> = stitched
        .traces
        .iter()
        .flat_map(|trace| trace.spans.iter().zip(&trace.timings))
        .collect();
    spans.sort_by_key(|(span, timing)| (timing.start_unix_nano, span.span_id));
    let (mut flagged, mut adjusted) = (0, 0);
    for (span, timing) in &spans {
        let counts = services
            .entry(span.resource.service_name().to_owned())
            .or_default();
        counts.spans += 1;
        counts.error_spans += u64::from(span.status_code == StatusCode::Error);
        counts.hosts.insert(host_of(&span.resource));
        if let Some(finding) = &timing.finding {
            flagged += 1;
            adjusted += usize::from(finding.applied);
        }
    }
    let logs: Vec<Value> = stitched
        .logs
        .iter()
        .map(|log| {
            let counts = services
                .entry(log.record.resource.service_name().to_owned())
                .or_default();
            counts.logs += 1;
            counts.hosts.insert(host_of(&log.record.resource));
            let mut view = serde_json::to_value(LogView::new(&log.record)).unwrap_or(Value::Null);
            let adjusted = log
                .record
                .effective_time_unix_nano()
                .saturating_add_signed(log.delta_nanos);
            view["adjusted_time_unix_nano"] = Value::String(adjusted.to_string());
            view["skew_delta_ns"] = Value::String(log.delta_nanos.to_string());
            view
        })
        .collect();
    let services: Vec<Value> = services
        .into_iter()
        .map(|(name, counts)| {
            json!({
                "name": name,
                "spans": counts.spans,
                "error_spans": counts.error_spans,
                "logs": counts.logs,
                "hosts": counts.hosts,
            })
        })
        .collect();
    let mut hosts: Vec<(&String, &i64)> = stitched.host_deltas.iter().collect();
    hosts.sort();
    json!({
        "id": id,
        "id_kind": match stitched.by {
            StitchedBy::TraceId => "trace_id",
            StitchedBy::CorrelationId => "correlation_id",
        },
        "traces": stitched.traces.iter().zip(&paths).map(|(trace, path)| json!({
            "trace_id": trace.trace_id,
            "linked": trace.linked,
            "spans": trace.spans.len(),
            "critical_path": path.iter().map(|segment| json!({
                "span_id": trace.spans[segment.span].span_id,
                "start_unix_nano": segment.start_unix_nano.to_string(),
                "end_unix_nano": segment.end_unix_nano.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "correlation_ids": stitched.correlation_ids,
        "services": services,
        "spans": spans
            .iter()
            .map(|(span, timing)| {
                span_view(span, timing, on_path.contains(&(span.trace_id, span.span_id)))
            })
            .collect::<Vec<_>>(),
        "logs": logs,
        "skew": {
            "adjusting": options.adjust,
            "max_adjust_ms": options.max_adjust_nanos / 1_000_000,
            "spans_flagged": flagged,
            "spans_adjusted": adjusted,
            "hosts": hosts.iter().map(|(host, delta)| json!({ "host": host, "delta_ns": delta.to_string() })).collect::<Vec<_>>(),
        },
        "truncated": stitched.truncated,
        "incoming_links_complete": stitched.incoming_links_complete,
    })
}
