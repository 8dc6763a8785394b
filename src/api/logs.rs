//! `GET /api/logs`: log records by trace id, span id, correlation id, service, full text and
//! time range; newest first, every field.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use skewer_storage::logs::LogQuery;
use skewer_storage::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

use super::params::{QueryParams, format_time, optional_time, parse_severity};
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
    start: Option<String>,
    end: Option<String>,
    min_severity: Option<String>,
    limit: Option<usize>,
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
    fn new(record: &'a LogRecord) -> Self {
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
    let storage = state.storage()?;
    let records = skewer_query::logs::search_logs(storage, &tenant, query).await?;
    let views: Vec<LogView<'_>> = records.iter().map(LogView::new).collect();
    Ok(Json(
        serde_json::json!({ "count": views.len(), "records": views }),
    ))
}
