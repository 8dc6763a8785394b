//! The native trace search, beyond what Jaeger's API can say: tag conditions with negation,
//! regular expressions and presence (`where`, repeated), and duration percentiles.
//!
//! - `GET /api/search/traces?service=&operation=&where=&min_duration=&max_duration=&start=&end=&limit=`:
//!   trace summaries, newest first.
//! - `GET /api/search/durations?service=&operation=&where=&min_duration=&max_duration=&start=&end=`:
//!   span count, error count and duration percentiles of the matching spans.
//!
//! `where` is `key=value`, `key!=value`, `key=~regex`, `key!~regex` (anchored), `key` or
//! `!key`; `error=true` selects failed spans. Times are Unix ns or RFC 3339 (default: the last
//! hour), durations Go durations (`250ms`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use skewer_query::trace_filter::TagFilter;
use skewer_query::trace_search::{self, TraceSearch};
use skewer_query::trace_summary::{TraceSummary, trace_summaries};
use skewer_storage::scan::TimeRange;

use super::jaeger::search_params::parse_duration;
use super::params::{format_time, now_unix_nano, optional_time};
use super::{ApiError, AppState, tenant};

/// Traces a search returns without `limit`.
const DEFAULT_LIMIT: usize = 20;
/// Traces a search returns at most.
const MAX_LIMIT: usize = 1_000;
/// How far back a search without `start` looks.
const DEFAULT_RANGE_NANOS: u64 = 3_600 * 1_000_000_000;

fn bad(parameter: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        parameter,
        reason: reason.into(),
    }
}

/// The search the parameters describe.
fn parse(pairs: &[(String, String)], now: u64) -> Result<TraceSearch, ApiError> {
    const KNOWN: [&str; 8] = [
        "service",
        "operation",
        "where",
        "min_duration",
        "max_duration",
        "start",
        "end",
        "limit",
    ];
    if let Some((unknown, _)) = pairs.iter().find(|(key, _)| !KNOWN.contains(&key.as_str())) {
        return Err(ApiError::BadParameter {
            parameter: "query",
            reason: format!("unknown parameter {unknown:?}; known: {}", KNOWN.join(", ")),
        });
    }
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let end = optional_time("end", first("end"))?.unwrap_or(now);
    let start =
        optional_time("start", first("start"))?.unwrap_or(end.saturating_sub(DEFAULT_RANGE_NANOS));
    if start >= end {
        return Err(bad("start", "not before end"));
    }
    let duration = |name: &'static str| {
        first(name)
            .map(|text| parse_duration(text, name, false))
            .transpose()
    };
    let filters = pairs
        .iter()
        .filter(|(key, _)| key == "where")
        .map(|(_, text)| {
            text.parse::<TagFilter>()
                .map_err(|err| bad("where", err.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = match first("limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!("{text:?} is not between 1 and {MAX_LIMIT}"),
                )
            })?,
        None => DEFAULT_LIMIT,
    };
    Ok(TraceSearch {
        // Any service when none is named (`*` says so in a URL).
        service: first("service")
            .filter(|service| *service != "*")
            .map(str::to_owned),
        operation: first("operation").map(str::to_owned),
        filters,
        min_duration_nanos: duration("min_duration")?,
        max_duration_nanos: duration("max_duration")?,
        time_range: TimeRange {
            start_unix_nano: start,
            end_unix_nano: end,
        },
        limit,
    })
}

/// `GET /api/search/traces`.
pub async fn traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let search = parse(&pairs, now_unix_nano())?;
    let storage = state.storage()?;
    let ids = trace_search::search_trace_ids(storage, &tenant, &search, state.scan_limits(&tenant))
        .await?;
    let summaries: Vec<Value> = trace_summaries(storage, &tenant, &ids, state.scan_limits(&tenant))
        .await?
        .iter()
        .map(summary_json)
        .collect();
    Ok(Json(
        json!({ "count": summaries.len(), "traces": summaries }),
    ))
}

/// `GET /api/search/durations`.
pub async fn durations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let search = parse(&pairs, now_unix_nano())?;
    let stats = trace_search::duration_stats(
        state.storage()?,
        &tenant,
        &search,
        state.scan_limits(&tenant),
    )
    .await?;
    Ok(Json(json!({
        "spans": stats.spans,
        "error_spans": stats.error_spans,
        "p50_ns": stats.p50_nanos.to_string(),
        "p90_ns": stats.p90_nanos.to_string(),
        "p99_ns": stats.p99_nanos.to_string(),
        "max_ns": stats.max_nanos.to_string(),
    })))
}

/// A trace summary in the native shape (times as RFC 3339 and as Unix ns text).
fn summary_json(summary: &TraceSummary) -> Value {
    let services: Vec<Value> = summary
        .services
        .iter()
        .map(|(name, (spans, errors))| {
            json!({ "name": name, "span_count": spans, "error_span_count": errors })
        })
        .collect();
    json!({
        "trace_id": summary.trace_id.to_string(),
        "root_service": summary.root_service,
        "root_operation": summary.root_operation,
        "start": format_time(summary.start_unix_nano),
        "start_unix_nano": summary.start_unix_nano.to_string(),
        "duration_ns": summary.end_unix_nano.saturating_sub(summary.start_unix_nano).to_string(),
        "span_count": summary.spans,
        "error_span_count": summary.error_spans,
        "orphan_span_count": summary.orphan_spans,
        "services": services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::params::query_pairs as pairs;

    #[test]
    fn where_conditions_times_and_limits_parse() {
        let search = parse(
            &pairs(&[
                ("service", "api"),
                ("where", "http.route=~/api/.*"),
                ("where", "!user.id"),
                ("min_duration", "5ms"),
                ("start", "2023-11-14T22:00:00Z"),
                ("end", "1700000000000000000"),
                ("limit", "3"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(
            search
                .filters
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["http.route=~/api/.*", "!user.id"]
        );
        assert_eq!(search.min_duration_nanos, Some(5_000_000));
        assert_eq!(search.time_range.end_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(search.limit, 3);
        let defaults = parse(&pairs(&[("service", "api")]), 10 * DEFAULT_RANGE_NANOS).unwrap();
        assert_eq!(defaults.time_range.start_unix_nano, 9 * DEFAULT_RANGE_NANOS);
        assert_eq!(defaults.limit, DEFAULT_LIMIT);
        // No service, or `*`: any.
        for any in [&[][..], &[("service", "*")][..]] {
            assert_eq!(
                parse(&pairs(any), 10 * DEFAULT_RANGE_NANOS)
                    .unwrap()
                    .service,
                None
            );
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let error = |query: &[(&str, &str)]| match parse(&pairs(query), 1 << 62) {
            Err(ApiError::BadParameter { parameter, .. }) => parameter,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(error(&[("service", "a"), ("where", "k=~(")]), "where");
        assert_eq!(error(&[("service", "a"), ("limit", "0")]), "limit");
        assert_eq!(error(&[("service", "a"), ("limit", "5000")]), "limit");
        assert_eq!(
            error(&[("service", "a"), ("max_duration", "soon")]),
            "max_duration"
        );
        assert_eq!(error(&[("service", "a"), ("servce", "b")]), "query");
        assert_eq!(
            error(&[("service", "a"), ("start", "2"), ("end", "1")]),
            "start"
        );
    }
}
