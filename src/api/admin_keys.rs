//! `/api/admin/keys`: API keys managed over HTTP by an `admin` key (bound to every tenant), as
//! `skewer keys` manages them on the host. A new key is in the answer once and nowhere else;
//! the running server honours a change at once (the key ring is refreshed before answering).
//! On a server without keys these routes are open like every other (loopback only), so the
//! first admin key can be made over HTTP; from then on every route needs a key.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use serde_json::{Value, json};
use skewer_storage::ErrorKind;
use skewer_storage::auth::{AuthError, KeyRecord, KeyRing, KeyStore, NewKeyRequest, Scope};
use skewer_storage::retention::parse_retention;

use super::AppState;

/// The admin key routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/keys", get(list).post(create))
        .route("/api/admin/keys/{id}", delete(revoke))
}

/// `POST /api/admin/keys`: what `skewer keys create` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A tenant, or `*` for every tenant (admin keys).
    tenant: String,
    /// `ingest`, `query`, `admin`.
    scopes: Vec<Scope>,
    #[serde(default)]
    name: String,
    /// A lifetime such as `90d` or `12h`; never expires when absent.
    expires: Option<String>,
}

async fn list(State(state): State<AppState>) -> Response {
    let keys = Arc::clone(&state.keys);
    run(keys, |store| {
        let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
        let records = store.load()?;
        let keys: Vec<Value> = records.iter().map(|r| view(r, now)).collect();
        Ok((StatusCode::OK, json!({ "keys": keys })))
    })
    .await
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(asked) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let tenant = match asked.tenant.parse() {
        Ok(tenant) => tenant,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid tenant: {err}")),
    };
    let expires_in = match asked.expires.as_deref().map(parse_retention).transpose() {
        Ok(lifetime) => lifetime.flatten(),
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid expires: {reason}"),
            );
        }
    };
    let request = NewKeyRequest {
        name: asked.name,
        tenant,
        scopes: asked.scopes.into_iter().collect(),
        expires_in,
    };
    run(Arc::clone(&state.keys), move |store| {
        let (record, key) = store.create(request)?;
        tracing::info!(
            key_id = %record.id,
            tenant = %record.tenant,
            scopes = %record.scopes_text(),
            "API key created over the admin API"
        );
        let now = record.created_unix_seconds;
        let mut answer = view(&record, now);
        answer["key"] = Value::String(key);
        Ok((StatusCode::CREATED, answer))
    })
    .await
}

async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    run(Arc::clone(&state.keys), move |store| {
        let record = store.revoke(&id)?;
        tracing::info!(
            key_id = %record.id,
            tenant = %record.tenant,
            "API key revoked over the admin API"
        );
        let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
        Ok((StatusCode::OK, view(&record, now)))
    })
    .await
}

/// Runs `work` on the key file off the async threads, refreshes the server's keys, answers.
async fn run(
    keys: Arc<KeyRing>,
    work: impl FnOnce(&KeyStore) -> Result<(StatusCode, Value), AuthError> + Send + 'static,
) -> Response {
    let done = tokio::task::spawn_blocking(move || {
        let store = keys
            .store()
            .ok_or_else(|| AuthError::BadKeyRequest("this server keeps no key file".to_owned()))?;
        let answer = work(store)?;
        keys.refresh()?;
        Ok::<_, AuthError>(answer)
    })
    .await;
    match done {
        Ok(Ok((status, body))) => (status, Json(body)).into_response(),
        Ok(Err(AuthError::UnknownKeyId(id))) => {
            error(StatusCode::NOT_FOUND, &format!("no key with id {id}"))
        }
        Ok(Err(err)) if err.kind() == ErrorKind::Internal => {
            tracing::error!(error = %err, "admin API: key file");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Ok(Err(err)) => error(
            StatusCode::from_u16(err.kind().http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            &err.to_string(),
        ),
        Err(join) => {
            tracing::error!(error = %join, "admin API task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// A key as the API shows it: everything but its hash.
fn view(record: &KeyRecord, now: u64) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "tenant": record.tenant,
        "scopes": record.scopes,
        "status": record.status(now),
        "created": timestamp(Some(record.created_unix_seconds)),
        "expires": timestamp(record.expires_unix_seconds),
        "revoked": timestamp(record.revoked_unix_seconds),
    })
}

fn timestamp(unix_seconds: Option<u64>) -> Option<String> {
    let seconds = i64::try_from(unix_seconds?).ok()?;
    DateTime::from_timestamp(seconds, 0).map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
