//! Health (`/healthz`: the process answers), readiness (`/readyz`: WAL replayed, ingest
//! open) and self-metrics (`/metrics`, Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Always 200 while the process serves HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 once the WAL is replayed and ingest is open; 503 before and during shutdown, and while
/// storage is degraded (writes failing: a full disk, say), with the reasons, one per line.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !state.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    let reasons = state
        .storage
        .get()
        .map(|storage| storage.health())
        .unwrap_or_default();
    if reasons.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let text: String = reasons
        .iter()
        .map(|reason| format!("degraded: {reason}\n"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
}

/// Prometheus text exposition of skewer's own counters.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .self_metrics
        .render(state.storage.get().map(|s| s.as_ref()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
