//! `GET /api/metrics/points?name=&start=&end=`: the series of one metric and their points.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use skewer_storage::model::{
    Attribute, Exemplar, InstrumentationScope, MetricPoint, NumberValue, PointValue, Resource,
    SpanId, TraceId,
};

use super::params::{QueryParams, now_unix_nano, optional_time};
use super::{ApiError, AppState, tenant};

/// Query parameters; `end` defaults to now and `start` to the default range before `end`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointParams {
    name: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Serialize)]
struct SeriesView<'a> {
    series_id: String,
    name: &'a str,
    description: &'a str,
    unit: &'a str,
    kind: &'static str,
    temporality: skewer_storage::model::Temporality,
    is_monotonic: bool,
    service_name: &'a str,
    resource: &'a Resource,
    scope: &'a InstrumentationScope,
    attributes: &'a [Attribute],
    points: Vec<PointView<'a>>,
}

#[derive(Debug, Serialize)]
struct PointView<'a> {
    start_time_unix_nano: String,
    time_unix_nano: String,
    flags: u32,
    value: &'a PointValue,
    exemplars: Vec<ExemplarView<'a>>,
}

/// An exemplar, its time as Unix ns text like every time of the native API.
#[derive(Debug, Serialize)]
struct ExemplarView<'a> {
    time_unix_nano: String,
    value: NumberValue,
    filtered_attributes: &'a [Attribute],
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
}

fn exemplar_view(exemplar: &Exemplar) -> ExemplarView<'_> {
    ExemplarView {
        time_unix_nano: exemplar.time_unix_nano.to_string(),
        value: exemplar.value,
        filtered_attributes: &exemplar.filtered_attributes,
        trace_id: exemplar.trace_id,
        span_id: exemplar.span_id,
    }
}

fn point_view(point: &MetricPoint) -> PointView<'_> {
    PointView {
        start_time_unix_nano: point.start_time_unix_nano.to_string(),
        time_unix_nano: point.time_unix_nano.to_string(),
        flags: point.flags,
        value: &point.value,
        exemplars: point.exemplars.iter().map(exemplar_view).collect(),
    }
}

/// The handler.
pub async fn points(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<PointParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let name = params.name.unwrap_or_default();
    let end = optional_time("end", params.end.as_deref())?.unwrap_or_else(now_unix_nano);
    let default_start = end.saturating_sub(state.default_range().as_nanos() as u64);
    let start = optional_time("start", params.start.as_deref())?.unwrap_or(default_start);
    let storage = state.storage()?;
    let series = skewer_query::metrics::metric_series(
        storage,
        &tenant,
        &name,
        start,
        end,
        state.scan_limits(&tenant),
    )
    .await?;
    let views: Vec<SeriesView<'_>> = series
        .iter()
        .filter_map(|series| {
            let first = series.points.first()?;
            Some(SeriesView {
                series_id: format!("{:016x}", series.series_id),
                name: &first.series.metric.name,
                description: &first.series.metric.description,
                unit: &first.series.metric.unit,
                kind: first.series.metric.kind.name(),
                temporality: first.series.metric.temporality,
                is_monotonic: first.series.metric.is_monotonic,
                service_name: first.series.resource.service_name(),
                resource: &first.series.resource,
                scope: &first.series.scope,
                attributes: &first.series.attributes,
                points: series.points.iter().map(point_view).collect(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "name": name, "series": views })))
}
