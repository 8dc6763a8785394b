//! `GET /api/skew`: the clock offset estimated for every pair of hosts seen calling each
//! other (client → server spans), learnt continuously at ingest.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::params::format_time;
use super::{ApiError, AppState, tenant};

/// The handler.
pub async fn pairs(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let pairs: Vec<Value> = state
        .storage()?
        .clock_skew(&tenant)
        .iter()
        .map(|estimate| {
            let pair = &estimate.pair;
            json!({
                "client_service": pair.client_service,
                "client_host": pair.client_host,
                "server_service": pair.server_service,
                "server_host": pair.server_host,
                "offset_ns": estimate.offset_nanos.to_string(),
                "offset_ms": estimate.offset_nanos as f64 / 1e6,
                "spread_ns": estimate.spread_nanos.to_string(),
                "samples": estimate.samples,
                "last_seen": format_time(estimate.last_seen_unix_nano),
            })
        })
        .collect();
    Ok(Json(json!({ "pairs": pairs })))
}
