//! `GET /api/logs`: log records by trace id, span id, correlation id, service, full text,
//! exact attribute values and time range; newest first (or oldest first), a page at a time, every field; optionally the
//! counts of all matches per level and service and over time (`facets`).
//! `GET /api/logs/services`: the services with logs in a range, with their counts per level.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use skewer_storage::logs::LogQuery;
use skewer_storage::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

use skewer_query::log_facets::{LevelCounts, LogFacets, log_facets};
use skewer_query::logs::{
    DEFAULT_LOG_LIMIT, LogCursor, LogPage, MAX_LOG_LIMIT, search_logs, search_logs_page,
};
use skewer_storage::log_store::ScanDirection;
use skewer_storage::logs::streams::LEVELS;

use super::log_attribute_filter::attribute_filters;
use super::params::{QueryParams, format_time, now_unix_nano, optional_time, parse_severity};
use super::{ApiError, AppState, tenant};

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    trace_id: Option<String>,
    span_id: Option<String>,
    correlation_id: Option<String>,
    service: Option<String>,
    q: Option<String>,
    attributes: Option<String>,
    start: Option<String>,
    end: Option<String>,
    min_severity: Option<String>,
    limit: Option<usize>,
    direction: Option<String>,
    cursor: Option<String>,
    facets: Option<bool>,
    step: Option<String>,
}

/// One record as the API returns it. Nanosecond times are strings (JSON numbers lose them).
#[derive(Debug, Serialize)]
pub struct LogView<'a> {
    time: String,
    time_unix_nano: String,
    observed_time_unix_nano: String,
    severity_number: i32,
    severity_text: &'a str,
    body: &'a AttributeValue,
    attributes: &'a [Attribute],
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    correlation_id: Option<&'a str>,
    event_name: &'a str,
    service_name: &'a str,
    resource: &'a Resource,
    scope: &'a InstrumentationScope,
}

impl<'a> LogView<'a> {
    pub(crate) fn new(record: &'a LogRecord) -> Self {
        Self {
            time: format_time(record.effective_time_unix_nano()),
            time_unix_nano: record.time_unix_nano.to_string(),
            observed_time_unix_nano: record.observed_time_unix_nano.to_string(),
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: &record.body,
            attributes: &record.attributes,
            dropped_attributes_count: record.dropped_attributes_count,
            flags: record.flags,
            trace_id: record.trace_id,
            span_id: record.span_id,
            correlation_id: record.correlation_id.as_deref(),
            event_name: &record.event_name,
            service_name: record.resource.service_name(),
            resource: &record.resource,
            scope: &record.scope,
        }
    }
}

fn parse_id<T: std::str::FromStr<Err = skewer_storage::model::IdError>>(
    parameter: &'static str,
    text: Option<String>,
) -> Result<Option<T>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            t.parse().map_err(
                |err: skewer_storage::model::IdError| ApiError::BadParameter {
                    parameter,
                    reason: err.to_string(),
                },
            )
        })
        .transpose()
}

/// The handler.
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<LogParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let query = LogQuery {
        trace_id: parse_id("trace_id", params.trace_id)?,
        span_id: parse_id("span_id", params.span_id)?,
        correlation_id: params.correlation_id.filter(|c| !c.is_empty()),
        service_name: params.service.filter(|s| !s.is_empty()),
        text: params.q.filter(|q| !q.trim().is_empty()),
        attributes: attribute_filters(params.attributes.as_deref()).map_err(|reason| {
            ApiError::BadParameter {
                parameter: "attributes",
                reason,
            }
        })?,
        start_unix_nano: optional_time("start", params.start.as_deref())?,
        end_unix_nano: optional_time("end", params.end.as_deref())?,
        min_severity_number: params
            .min_severity
            .filter(|s| !s.is_empty())
            .map(|s| parse_severity("min_severity", &s))
            .transpose()?,
        limit: match params.limit {
            Some(0) => {
                return Err(ApiError::BadParameter {
                    parameter: "limit",
                    reason: "must be at least 1 (leave it out for 100)".to_owned(),
                });
            }
            limit => limit.unwrap_or(0),
        },
    };
    // Without any range a search reaches back as far as it must for its page (a lookup by id);
    // a ranged one is held to the tenant's query_max_range_hours.
    if query.start_unix_nano.is_some() || query.end_unix_nano.is_some() {
        state.check_log_range(
            &tenant,
            query.start_unix_nano.unwrap_or(0),
            query.end_unix_nano.unwrap_or_else(now_unix_nano),
        )?;
    }
    let direction = match params.direction.as_deref() {
        None | Some("") | Some("backward") => ScanDirection::Backward,
        Some("forward") => ScanDirection::Forward,
        Some(other) => {
            return Err(ApiError::BadParameter {
                parameter: "direction",
                reason: format!("{other:?}: use backward (newest first, the default) or forward"),
            });
        }
    };
    let cursor = params
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<LogCursor>()
                .map_err(|reason| ApiError::BadParameter {
                    parameter: "cursor",
                    reason,
                })
        })
        .transpose()?;
    let step = params
        .step
        .filter(|s| !s.is_empty())
        .map(|s| parse_step(&s))
        .transpose()?;
    let storage = state.storage()?;
    let facets = if params.facets.unwrap_or(false) {
        let step = step.unwrap_or_else(|| default_step(&query));
        let facets = log_facets(storage, &tenant, query.clone(), step).await?;
        Some(facets_view(&facets, step))
    } else {
        None
    };
    // The first page newest first is the index's top-N search; later pages and oldest-first
    // ones are scans after the cursor.
    let page = if cursor.is_none() && direction == ScanDirection::Backward {
        let limit = match query.limit {
            0 => DEFAULT_LOG_LIMIT,
            limit => limit.min(MAX_LOG_LIMIT),
        };
        // One more than the page says whether another follows (at the largest page, one
        // full page says so).
        let mut records = search_logs(
            storage,
            &tenant,
            LogQuery {
                limit: limit + 1,
                ..query
            },
        )
        .await?;
        let more = records.len() > limit || records.len() == MAX_LOG_LIMIT;
        records.truncate(limit);
        let next = more
            .then(|| LogCursor::after_page(&records, None))
            .flatten();
        LogPage { records, next }
    } else {
        search_logs_page(storage, &tenant, query, direction, cursor).await?
    };
    let views: Vec<LogView<'_>> = page.records.iter().map(LogView::new).collect();
    let mut body = serde_json::json!({ "count": views.len(), "records": views });
    if let Some(next) = page.next {
        body["next_cursor"] = serde_json::Value::String(next.to_string());
    }
    if let Some(facets) = facets {
        body["facets"] = facets;
    }
    Ok(Json(body))
}

/// Histogram buckets when `step` is not given: about 60 over the range (the last hour
/// without one), at least a second.
fn default_step(query: &LogQuery) -> u64 {
    const SECOND: u64 = 1_000_000_000;
    let end = query.end_unix_nano.unwrap_or_else(now_unix_nano);
    let start = query
        .start_unix_nano
        .unwrap_or(end.saturating_sub(3_600 * SECOND));
    (end.saturating_sub(start) / 60).max(SECOND) / SECOND * SECOND
}

/// A step as a duration (`30s`, `5m`) or seconds.
fn parse_step(text: &str) -> Result<u64, ApiError> {
    let seconds = text
        .parse::<f64>()
        .ok()
        .or_else(|| skewer_query::logql::lexer::parse_duration(text))
        .filter(|s| *s >= 0.001 && s.is_finite())
        .ok_or_else(|| ApiError::BadParameter {
            parameter: "step",
            reason: format!("{text:?} is not a duration of at least 1ms (30s, 5m, or seconds)"),
        })?;
    Ok((seconds * 1e9) as u64)
}

/// Counts per level as an object, levels with no record left out.
fn levels_view(levels: &LevelCounts) -> serde_json::Value {
    serde_json::Value::Object(
        LEVELS
            .iter()
            .zip(levels)
            .filter(|(_, count)| **count > 0)
            .map(|(level, count)| ((*level).to_owned(), serde_json::Value::from(*count)))
            .collect(),
    )
}

fn services_view(facets: &LogFacets) -> serde_json::Value {
    serde_json::Value::Array(
        facets
            .services
            .iter()
            .map(|service| {
                serde_json::json!({
                    "name": service.name,
                    "records": service.records,
                    "bytes": service.bytes,
                    "levels": levels_view(&service.levels),
                })
            })
            .collect(),
    )
}

fn facets_view(facets: &LogFacets, step: u64) -> serde_json::Value {
    let histogram: Vec<serde_json::Value> = facets
        .histogram
        .iter()
        .map(|bucket| {
            serde_json::json!({
                "start": format_time(bucket.start_unix_nano),
                "start_unix_nano": bucket.start_unix_nano.to_string(),
                "levels": levels_view(&bucket.levels),
            })
        })
        .collect();
    serde_json::json!({
        "total": facets.total,
        "levels": levels_view(&facets.levels),
        "services": services_view(facets),
        "step_ns": step.to_string(),
        "histogram": histogram,
    })
}

/// Query parameters of the services listing; `end` defaults to now, `start` to the default
/// range before it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceParams {
    start: Option<String>,
    end: Option<String>,
}

/// `GET /api/logs/services?start=&end=`: every service with log records in the range, with
/// its record and byte counts and records per level (`trace` … `fatal`, `unknown`), counted
/// from the index columns.
pub async fn services(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<ServiceParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let end = optional_time("end", params.end.as_deref())?.unwrap_or_else(now_unix_nano);
    let default_start = end.saturating_sub(state.default_range().as_nanos() as u64);
    let start = optional_time("start", params.start.as_deref())?.unwrap_or(default_start);
    if start >= end {
        return Err(ApiError::BadParameter {
            parameter: "start",
            reason: "must be before end".to_owned(),
        });
    }
    state.check_log_range(&tenant, start, end)?;
    let query = LogQuery {
        start_unix_nano: Some(start),
        end_unix_nano: Some(end),
        ..LogQuery::default()
    };
    let facets = log_facets(state.storage()?, &tenant, query, 0).await?;
    Ok(Json(serde_json::json!({
        "total": facets.total,
        "levels": levels_view(&facets.levels),
        "services": services_view(&facets),
    })))
}
