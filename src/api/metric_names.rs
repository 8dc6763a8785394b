//! `GET /api/metrics?start=&end=`: the metrics stored in a time range, each with its kind,
//! unit, description, the services that sent it and its point count (from the file summaries
//! kept at ingest; no point is read).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use skewer_storage::catalog::MetricFamily;
use skewer_storage::model::Temporality;

use super::params::{QueryParams, now_unix_nano, optional_time};
use super::{ApiError, AppState, tenant};

/// Query parameters; `end` defaults to now and `start` to the default range before `end`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameParams {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Serialize)]
struct MetricView<'a> {
    name: &'a str,
    kind: &'static str,
    unit: &'a str,
    description: &'a str,
    temporality: Temporality,
    is_monotonic: bool,
    services: Vec<&'a str>,
    /// Some services were left out (a metric sent by very many services).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    services_truncated: bool,
    points: u64,
}

fn view<'a>(name: &'a str, family: &'a MetricFamily) -> MetricView<'a> {
    MetricView {
        name,
        kind: family.kind.name(),
        unit: &family.unit,
        description: &family.description,
        temporality: family.temporality,
        is_monotonic: family.is_monotonic,
        services: family.services.iter().map(String::as_str).collect(),
        services_truncated: family.services_truncated,
        points: family.points,
    }
}

/// The handler.
pub async fn names(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<NameParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let end = optional_time("end", params.end.as_deref())?.unwrap_or_else(now_unix_nano);
    let default_start = end.saturating_sub(state.default_range().as_nanos() as u64);
    let start = optional_time("start", params.start.as_deref())?.unwrap_or(default_start);
    let storage = state.storage()?;
    let catalog = skewer_query::metrics::metric_catalog(
        storage,
        &tenant,
        start,
        end,
        state.scan_limits(&tenant),
    )
    .await?;
    let metrics: Vec<MetricView<'_>> = catalog
        .names
        .iter()
        .flat_map(|(name, families)| families.iter().map(move |family| view(name, family)))
        .collect();
    Ok(Json(serde_json::json!({
        "metrics": metrics,
        // Names past the catalog's cap were left out of a file's summary.
        "complete": !catalog.truncated,
    })))
}
