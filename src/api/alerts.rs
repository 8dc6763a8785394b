//! Alerting on the query port: `GET /api/alerts` and `GET /api/rules` (skewer's shapes, with
//! health, last evaluation and last error), their Prometheus-shaped twins `/api/v1/alerts`
//! and `/api/v1/rules`, receivers' delivery state (`GET /api/alerts/receivers`), silences
//! (`GET`/`POST /api/silences`, `DELETE /api/silences/{id}`, bodies in Alertmanager's API v2
//! shape) and `POST /api/rules/reload`. Everything is the caller's tenant's only, but the
//! receivers' state (server-wide, for operator keys).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::alerting::Alerting;
use crate::alerting::alert_state::{ActiveAlert, AlertState};
use crate::alerting::engine::{GroupRuntime, RuleRuntime, now_ms};
use crate::alerting::payload::rfc3339;
use crate::alerting::rule_file::RuleKind;
use crate::alerting::silences::{Silence, SilenceMatcher};

/// Routes that read.
pub fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/api/alerts", get(alerts))
        .route("/api/rules", get(rules))
        .route("/api/v1/alerts", get(prometheus_alerts))
        .route("/api/v1/rules", get(prometheus_rules))
        .route("/api/silences", get(list_silences))
}

/// Routes about the server rather than a tenant (an operator key, as `/metrics`).
pub fn operator_routes() -> Router<AppState> {
    Router::new().route("/api/alerts/receivers", get(receivers))
}

/// Routes that change alerting (an `admin` key).
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/api/rules/reload", post(reload))
        .route("/api/silences", post(create_silence))
        .route("/api/silences/{id}", delete(expire_silence))
}

/// A refusal: its status and `{"error": …}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    Failure(status, message.into()).into_response()
}

/// The engine and the caller's tenant.
fn context(state: &AppState, headers: &HeaderMap) -> Result<(Arc<Alerting>, String), Failure> {
    let tenant = super::tenant(headers).map_err(|err| Failure(err.status(), err.to_string()))?;
    let alerting = state.alerting().ok_or_else(|| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerting is not running".to_owned(),
        )
    })?;
    Ok((alerting, tenant.to_string()))
}

fn time_text(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(rfc3339(ms))
    }
}

fn state_text(state: AlertState) -> &'static str {
    match state {
        AlertState::Pending => "pending",
        AlertState::Firing => "firing",
    }
}

fn alert_json(alert: &ActiveAlert, silenced_by: &[String]) -> Value {
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "state": state_text(alert.state),
        "activeAt": rfc3339(alert.active_at_ms),
        "firedAt": alert.fired_at_ms.map(rfc3339),
        "keepFiringSince": alert.keep_firing_since_ms.map(rfc3339),
        "value": crate::alerting::go_format::format_v(alert.value),
        "silencedBy": silenced_by,
    })
}

fn rule_state(runtime: &RuleRuntime) -> &'static str {
    if runtime.alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else if runtime.alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    }
}

fn rule_json(runtime: &RuleRuntime, alerts: Vec<Value>) -> Value {
    let definition = &runtime.rule.definition;
    let labels: serde_json::Map<String, Value> = definition
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.source().to_owned())))
        .collect();
    let annotations: serde_json::Map<String, Value> = definition
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.source().to_owned())))
        .collect();
    let mut rule = json!({
        "name": definition.name,
        "query": definition.expr,
        "queryLanguage": definition.language,
        "labels": labels,
        "health": runtime.health,
        "lastError": runtime.last_error,
        "lastEvaluation": time_text(runtime.last_evaluation_ms),
        "evaluationTime": runtime.evaluation_time.as_secs_f64(),
    });
    if definition.kind == RuleKind::Alerting {
        rule["type"] = json!("alerting");
        rule["state"] = json!(rule_state(runtime));
        rule["duration"] = json!(definition.hold.as_secs_f64());
        rule["keepFiringFor"] = json!(definition.keep_firing_for.as_secs_f64());
        rule["annotations"] = Value::Object(annotations);
        rule["alerts"] = Value::Array(alerts);
    } else {
        rule["type"] = json!("recording");
    }
    rule
}

fn group_json(group: &GroupRuntime, rules: Vec<Value>) -> Value {
    json!({
        "name": group.definition.name,
        "file": group.definition.file.display().to_string(),
        "interval": group.interval.as_secs_f64(),
        "limit": group.definition.limit,
        "rules": rules,
        "lastEvaluation": time_text(group.last_evaluation_ms),
        "evaluationTime": group.evaluation_time.as_secs_f64(),
    })
}

/// Every rule group of `tenant` as JSON, alerts included.
fn groups_of(alerting: &Alerting, tenant: &str) -> Vec<Value> {
    let now = now_ms();
    let state = alerting.lock();
    state
        .groups
        .iter()
        .filter(|g| g.definition.tenant.as_str() == tenant)
        .map(|group| {
            let rules = group
                .rules
                .iter()
                .map(|runtime| {
                    let alerts = runtime
                        .alerts
                        .iter()
                        .map(|a| alert_json(a, &state.silences.muting(tenant, &a.labels, now)))
                        .collect();
                    rule_json(runtime, alerts)
                })
                .collect();
            group_json(group, rules)
        })
        .collect()
}

/// Every alert of `tenant`, with its rule and group.
fn alerts_of(alerting: &Alerting, tenant: &str) -> Vec<Value> {
    let now = now_ms();
    let state = alerting.lock();
    let mut alerts = Vec::new();
    for group in state
        .groups
        .iter()
        .filter(|g| g.definition.tenant.as_str() == tenant)
    {
        for runtime in &group.rules {
            for alert in runtime.alerts.iter() {
                let mut value =
                    alert_json(alert, &state.silences.muting(tenant, &alert.labels, now));
                value["rule"] = json!(runtime.rule.definition.name);
                value["group"] = json!(group.definition.name);
                alerts.push(value);
            }
        }
    }
    alerts
}

async fn alerts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => {
            Json(json!({ "alerts": alerts_of(&alerting, &tenant) })).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn rules(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => {
            Json(json!({ "groups": groups_of(&alerting, &tenant) })).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn prometheus_alerts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => {
            let alerts: Vec<Value> = alerts_of(&alerting, &tenant)
                .into_iter()
                .map(|a| {
                    json!({
                        "labels": a["labels"],
                        "annotations": a["annotations"],
                        "state": a["state"],
                        "activeAt": a["activeAt"],
                        "value": a["value"],
                    })
                })
                .collect();
            Json(json!({ "status": "success", "data": { "alerts": alerts } })).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn prometheus_rules(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => Json(json!({
            "status": "success",
            "data": { "groups": groups_of(&alerting, &tenant) },
        }))
        .into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn receivers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, _)) => {
            let receivers: Vec<Value> = alerting
                .receivers()
                .iter()
                .map(|r| {
                    json!({
                        "name": r.settings.name,
                        "queued": r.queued(),
                        "delivered": r.stats.delivered.load(Ordering::Relaxed),
                        "failedAttempts": r.stats.failed_attempts.load(Ordering::Relaxed),
                        "dropped": r.stats.dropped.load(Ordering::Relaxed),
                        "breakerOpen": r.stats.breaker_open.load(Ordering::Relaxed) == 1,
                    })
                })
                .collect();
            Json(json!({ "receivers": receivers })).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (alerting, _) = match context(&state, &headers) {
        Ok(context) => context,
        Err(failure) => return failure.into_response(),
    };
    match tokio::task::spawn_blocking(move || alerting.reload()).await {
        Ok(Ok(loaded)) => Json(json!({
            "status": "reloaded",
            "groups": loaded.groups,
            "rules": loaded.rules,
        }))
        .into_response(),
        // The request is fine; the files it asks to read are not.
        Ok(Err(err)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": err.to_string(),
                "errors": err.0.iter().map(|e| json!({
                    "file": e.file.display().to_string(),
                    "line": e.line,
                    "message": e.message,
                })).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload task failed"),
    }
}

fn silence_json(silence: &Silence, now: i64) -> Value {
    json!({
        "id": silence.id,
        "status": { "state": silence.state(now) },
        "matchers": silence.matchers,
        "startsAt": rfc3339(silence.starts_at_ms),
        "endsAt": rfc3339(silence.ends_at_ms),
        "updatedAt": rfc3339(silence.updated_at_ms),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    })
}

async fn list_silences(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => {
            let now = now_ms();
            let list: Vec<Value> = alerting
                .lock()
                .silences
                .list()
                .iter()
                .filter(|s| s.tenant == tenant)
                .map(|s| silence_json(s, now))
                .collect();
            Json(Value::Array(list)).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

/// `POST /api/silences`: Alertmanager's `postableSilence`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    #[serde(default)]
    starts_at: Option<String>,
    ends_at: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

fn parse_time(field: &str, text: &str) -> Result<i64, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|err| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("{field}: {text:?} is not RFC 3339: {err}"),
            )
        })
}

async fn create_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (alerting, tenant) = match context(&state, &headers) {
        Ok(context) => context,
        Err(failure) => return failure.into_response(),
    };
    let Json(asked) = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let now = now_ms();
    let starts_at_ms = match asked.starts_at.as_deref() {
        Some(text) => match parse_time("startsAt", text) {
            Ok(ms) => ms.max(now),
            Err(failure) => return failure.into_response(),
        },
        None => now,
    };
    let ends_at_ms = match parse_time("endsAt", &asked.ends_at) {
        Ok(ms) => ms,
        Err(failure) => return failure.into_response(),
    };
    let id = match asked.id.filter(|id| !id.is_empty()) {
        Some(id) => {
            let exists = alerting
                .lock()
                .silences
                .list()
                .iter()
                .any(|s| s.id == id && s.tenant == tenant);
            if !exists {
                return error(StatusCode::NOT_FOUND, format!("no silence {id}"));
            }
            id
        }
        None => new_silence_id(),
    };
    let silence = Silence {
        id: id.clone(),
        tenant,
        matchers: asked.matchers,
        starts_at_ms,
        ends_at_ms,
        created_by: asked.created_by,
        comment: asked.comment,
        updated_at_ms: now,
    };
    match alerting.upsert_silence(silence) {
        Ok(()) => Json(json!({ "silenceID": id })).into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

fn new_silence_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

async fn expire_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match context(&state, &headers) {
        Ok((alerting, tenant)) => {
            if alerting.expire_silence(&tenant, &id) {
                StatusCode::OK.into_response()
            } else {
                error(StatusCode::NOT_FOUND, format!("no silence {id}"))
            }
        }
        Err(failure) => failure.into_response(),
    }
}
