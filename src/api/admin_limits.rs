//! `/api/admin/limits`: the tenant limits over HTTP for an `admin` key, as `skewer limits`
//! shows and changes them. Changes need a catalog database (they are stored there, this node
//! applies them at once and every other node within one catalog refresh); a lone node's
//! limits are its config file's and are only shown.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use skewer_ingest::limits::{LimitsConfig, TenantLimitOverrides};
use skewer_storage::model::TenantId;

use super::AppState;
use crate::limits::{LimitsEdit, LimitsError};

/// The admin limit routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/limits", get(show).patch(set_defaults))
        .route(
            "/api/admin/limits/tenants/{tenant}",
            put(replace_tenant).delete(drop_tenant),
        )
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn answer(source: &str, version: Option<i64>, limits: &LimitsConfig) -> Response {
    Json(json!({ "source": source, "version": version, "limits": limits })).into_response()
}

async fn show(State(state): State<AppState>) -> Response {
    match &state.deployment_limits {
        Some(deployment) => answer(
            "catalog database",
            Some(deployment.version()),
            &state.limits.current(),
        ),
        None => answer("config file", None, &state.limits.current()),
    }
}

/// `PATCH /api/admin/limits` with `{"KEY": VALUE, …}`: every tenant's limits.
async fn set_defaults(
    State(state): State<AppState>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Response {
    let Json(values) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let mut assignments = Vec::with_capacity(values.len());
    for (key, value) in values {
        let Some(value) = value.as_u64() else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("{key}: the value must be a whole number (0: unlimited)"),
            );
        };
        assignments.push((key, value));
    }
    change(
        &state,
        LimitsEdit::Set {
            tenant: None,
            values: assignments,
        },
    )
    .await
}

/// `PUT /api/admin/limits/tenants/{tenant}` with the tenant's own limits, whole.
async fn replace_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    body: Result<Json<TenantLimitOverrides>, JsonRejection>,
) -> Response {
    let tenant = match tenant.parse::<TenantId>() {
        Ok(tenant) => tenant,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid tenant: {err}")),
    };
    let Json(overrides) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    change(&state, LimitsEdit::ReplaceTenant { tenant, overrides }).await
}

/// `DELETE /api/admin/limits/tenants/{tenant}`: the tenant follows every tenant's limits.
async fn drop_tenant(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let tenant = match tenant.parse::<TenantId>() {
        Ok(tenant) => tenant,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid tenant: {err}")),
    };
    change(
        &state,
        LimitsEdit::Unset {
            tenant: Some(tenant),
            keys: Vec::new(),
        },
    )
    .await
}

async fn change(state: &AppState, edit: LimitsEdit) -> Response {
    let Some(deployment) = &state.deployment_limits else {
        return error(
            StatusCode::CONFLICT,
            "this server has no catalog database: its limits are its config file's [limits]; \
             change them there and restart",
        );
    };
    match deployment.change(&edit).await {
        Ok((version, limits)) => {
            tracing::info!(version, ?edit, "tenant limits changed over the admin API");
            answer("catalog database", Some(version), &limits)
        }
        Err(LimitsError::Invalid(reason)) => error(StatusCode::BAD_REQUEST, &reason),
        Err(err @ LimitsError::Database(_)) => {
            tracing::warn!(error = %err, "admin API: limits not changed");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the catalog database did not answer; the limits are unchanged, retry shortly",
            );
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "admin API: limits not changed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
