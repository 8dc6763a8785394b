//! The Jaeger query API on the query port, so Grafana's Jaeger data source, the Jaeger UI and
//! scripts read skewer unchanged: v1 JSON at the root (`/api/services`, `/api/operations`,
//! `/api/traces`...) in Jaeger's envelope (`data`, `total`, `limit`, `offset`, `errors`), and
//! api_v3 over HTTP (`/api/v3/services`, `/api/v3/operations`, `/api/v3/traces`,
//! `/api/v3/trace-summaries`) with traces as OTLP/JSON and `{"error": {...}}` on failure. Errors use the same
//! envelope with the status of their kind: a bad parameter is a 400, never a 500.

pub mod search_params;
pub mod trace_json;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use skewer_query::skew::{KnownOffsets, SkewOptions, adjust_trace, known_offsets};
use skewer_query::trace::TraceRead;
use skewer_query::trace_search::{self, FoundTraces, Operation};
use skewer_query::trace_summary::{TraceSummary, trace_summaries};
use skewer_storage::model::SpanKind;
use skewer_storage::model::{Attribute, AttributeValue, TenantId, TraceId};
use skewer_storage::scan::Truncation;

use super::{ApiError, AppState, tenant};
pub use trace_json::to_jaeger_trace;

/// The Jaeger routes (v1 and api_v3 listings).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(get_trace))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v3/services", get(services_v3))
        .route("/api/v3/operations", get(operations_v3))
        .route("/api/v3/traces", get(search_v3))
        .route("/api/v3/traces/{trace_id}", get(get_trace_v3))
        .route("/api/v3/trace-summaries", get(trace_summaries_v3))
}

/// Jaeger's envelope around results (`total` counts them for listings, as Jaeger does).
fn envelope(data: Value, total: usize, errors: Value) -> Value {
    json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": errors })
}

fn jaeger_error(err: ApiError) -> Response {
    let status = err.status();
    let body = envelope(
        Value::Null,
        0,
        json!([{ "code": status.as_u16(), "msg": err.client_message() }]),
    );
    (status, Json(body)).into_response()
}

/// `{"error": {...}}`, the api_v3 error shape (grpc-gateway's).
fn v3_error(err: ApiError) -> Response {
    let status = err.status();
    let body = json!({ "error": {
        "httpCode": status.as_u16(),
        "httpStatus": status.canonical_reason().unwrap_or_default(),
        "message": err.client_message(),
    }});
    (status, Json(body)).into_response()
}

/// `GET /api/services`: every service with spans, sorted.
async fn services(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match service_names(&state, &headers).await {
        Ok(names) => {
            let total = names.len();
            Json(envelope(json!(names), total, Value::Null)).into_response()
        }
        Err(err) => jaeger_error(err),
    }
}

/// `GET /api/v3/services`.
async fn services_v3(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match service_names(&state, &headers).await {
        Ok(names) => Json(json!({ "services": names })).into_response(),
        Err(err) => v3_error(err),
    }
}

async fn service_names(state: &AppState, headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    let tenant = tenant(headers)?;
    Ok(trace_search::services(state.storage()?, &tenant).await)
}

/// `GET /api/services/{service}/operations`: the service's operation names, sorted, once each.
async fn service_operations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Response {
    match operations_of(&state, &headers, &service, None).await {
        Ok(operations) => {
            let mut names: Vec<String> = operations.into_iter().map(|op| op.name).collect();
            names.dedup();
            let total = names.len();
            Json(envelope(json!(names), total, Value::Null)).into_response()
        }
        Err(err) => jaeger_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct OperationsParams {
    service: Option<String>,
    /// `spanKind`, or api_v3's older `span_kind`.
    #[serde(rename = "spanKind", alias = "span_kind")]
    span_kind: Option<String>,
}

/// `GET /api/operations?service=&spanKind=`: `[{"name", "spanKind"}]`.
async fn operations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<OperationsParams>,
) -> Response {
    match operation_list(&state, &headers, &params).await {
        Ok(operations) => {
            let total = operations.len();
            Json(envelope(json!(operations), total, Value::Null)).into_response()
        }
        Err(err) => jaeger_error(err),
    }
}

/// `GET /api/v3/operations?service=&spanKind=`: `{"operations": [{"name", "spanKind"}]}`.
async fn operations_v3(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<OperationsParams>,
) -> Response {
    match operation_list(&state, &headers, &params).await {
        Ok(operations) => Json(json!({ "operations": operations })).into_response(),
        Err(err) => v3_error(err),
    }
}

async fn operation_list(
    state: &AppState,
    headers: &HeaderMap,
    params: &OperationsParams,
) -> Result<Vec<Value>, ApiError> {
    let service =
        params
            .service
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::BadParameter {
                parameter: "service",
                reason: "required".to_owned(),
            })?;
    let kind = params
        .span_kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(search_params::parse_span_kind)
        .transpose()?;
    let operations = operations_of(state, headers, service, kind).await?;
    Ok(operations
        .into_iter()
        .map(|op| json!({ "name": op.name, "spanKind": kind_name(op.kind) }))
        .collect())
}

async fn operations_of(
    state: &AppState,
    headers: &HeaderMap,
    service: &str,
    kind: Option<SpanKind>,
) -> Result<Vec<Operation>, ApiError> {
    let tenant = tenant(headers)?;
    Ok(trace_search::operations(state.storage()?, &tenant, service, kind).await)
}

/// Jaeger's name of a span kind: empty for unspecified.
fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "",
        other => other.name(),
    }
}

/// `GET /api/traces`: search (`service`, `operation`, `tag`, `tags`, `minDuration`,
/// `maxDuration`, `start`, `end`, `lookback`, `limit`) or multi-get (repeated `traceID`).
async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let tenant = tenant(&headers)?;
        let storage = state.storage()?;
        let request = search_params::parse(&pairs, super::params::now_unix_nano())?;
        let raw = search_params::flag(&pairs, &["raw"])?;
        let (ids, asked_ids) = match request {
            search_params::TracesRequest::ByIds(ids) => (ids.clone(), ids),
            search_params::TracesRequest::Search(search) => {
                let ids = trace_search::search_trace_ids(
                    storage,
                    &tenant,
                    &search,
                    state.scan_limits(&tenant),
                )
                .await?;
                (ids, Vec::new())
            }
        };
        let found =
            trace_search::find_traces(storage, &tenant, &ids, state.trace_limits(&tenant)).await?;
        let known = known_offsets(&storage.clock_skew(&tenant));
        Ok::<_, ApiError>((found, asked_ids, known, skew_options(&state, raw)))
    }
    .await;
    match result {
        Ok((found, asked_ids, known, skew)) => {
            let warning = found.truncated.map(|cut| state.truncation_warning(cut));
            let traces = found.traces;
            // Once the answer reached its limit, an id not in it may exist all the same.
            let missing = |id: &TraceId| match &warning {
                Some(cut) => json!({
                    "code": 422,
                    "msg": format!("trace not found, or not read once the answer reached its limit: {cut}"),
                    "traceID": id.to_string(),
                }),
                None => json!({ "code": 404, "msg": "trace not found", "traceID": id.to_string() }),
            };
            let errors: Vec<Value> = asked_ids
                .iter()
                .filter(|id| !traces.iter().any(|(found, _)| found == *id))
                .map(missing)
                .collect();
            let data: Vec<_> = traces
                .iter()
                .map(|(id, spans)| {
                    to_jaeger_trace(*id, spans, &skew, &known).with_warning(warning.clone())
                })
                .collect();
            let errors = if errors.is_empty() {
                Value::Null
            } else {
                json!(errors)
            };
            Json(envelope(json!(data), 0, errors)).into_response()
        }
        Err(err) => jaeger_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct DependenciesParams {
    #[serde(rename = "endTs")]
    end_ts: Option<String>,
    lookback: Option<String>,
}

/// `GET /api/dependencies?endTs=&lookback=` (Unix ms, ms; default: the last 24 h):
/// `[{"parent", "child", "callCount"}]` as Jaeger answers, with `errorCount`,
/// `meanDurationMicros` and `maxDurationMicros` beside.
async fn dependencies(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<DependenciesParams>,
) -> Response {
    let result = async {
        let tenant = tenant(&headers)?;
        let range = search_params::dependencies_range(
            params.end_ts.as_deref(),
            params.lookback.as_deref(),
            super::params::now_unix_nano(),
        )?;
        Ok::<_, ApiError>(trace_search::dependencies(state.storage()?, &tenant, range).await)
    }
    .await;
    match result {
        Ok(dependencies) => {
            let links: Vec<Value> = dependencies
                .iter()
                .map(|d| {
                    json!({
                        "parent": d.parent,
                        "child": d.child,
                        "callCount": d.calls,
                        "errorCount": d.errors,
                        "meanDurationMicros": d.mean_duration_nanos / 1_000,
                        "maxDurationMicros": d.max_duration_nanos / 1_000,
                    })
                })
                .collect();
            let total = links.len();
            Json(envelope(json!(links), total, Value::Null)).into_response()
        }
        Err(err) => jaeger_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct TraceParams {
    /// The Jaeger UI's "View JSON" asks for indented JSON.
    #[serde(rename = "prettyPrint", default)]
    pretty_print: bool,
    /// Times as stored: clock skew is reported in span warnings, not corrected (a Go boolean,
    /// as Jaeger reads it).
    #[serde(default)]
    raw: Option<String>,
}

/// `GET /api/traces/{traceID}[?prettyPrint=true][&raw=true]`: one whole trace, clock skew
/// corrected unless `raw`; 404 in the envelope when unknown.
async fn get_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(params): Query<TraceParams>,
) -> Response {
    let raw = match params.raw.as_deref().filter(|raw| !raw.is_empty()) {
        Some(raw) => match search_params::parse_flag("raw", raw) {
            Ok(raw) => raw,
            Err(err) => return jaeger_error(err),
        },
        None => false,
    };
    let result = async {
        let tenant = tenant(&headers)?;
        let trace_id = search_params::parse_trace_id(&trace_id)?;
        let storage = state.storage()?;
        let read = skewer_query::trace::trace_by_id(
            storage,
            &tenant,
            trace_id,
            state.trace_limits(&tenant),
        )
        .await?;
        let known = known_offsets(&storage.clock_skew(&tenant));
        Ok::<_, ApiError>((trace_id, read, known))
    }
    .await;
    match result {
        // Not one span fits: nothing to show, so the limit is the answer.
        Ok((
            _,
            TraceRead {
                spans,
                truncated: Some(cut),
            },
            _,
        )) if spans.is_empty() => jaeger_error(not_one_span_fits(cut)),
        Ok((_, read, _)) if read.spans.is_empty() => {
            let body = envelope(
                Value::Null,
                0,
                json!([{ "code": 404, "msg": "trace not found" }]),
            );
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        Ok((trace_id, read, known)) => {
            let skew = skew_options(&state, raw);
            let warning = read.truncated.map(|cut| state.truncation_warning(cut));
            let trace = to_jaeger_trace(trace_id, &read.spans, &skew, &known).with_warning(warning);
            let body = envelope(json!([trace]), 0, Value::Null);
            if params.pretty_print {
                let text = serde_json::to_string_pretty(&body).unwrap_or_default();
                ([(header::CONTENT_TYPE, "application/json")], text).into_response()
            } else {
                Json(body).into_response()
            }
        }
        Err(err) => jaeger_error(err),
    }
}

/// `{"result": TracesData}`: OTLP/JSON of the given traces' spans, clock skew handled as
/// configured: times adjusted, and each finding in the span's `@jaeger@warnings` attribute (as
/// Jaeger's api_v3 carries warnings); a cut answer says so in the first span of each trace.
fn v3_traces(
    found: &FoundTraces,
    truncated: Option<String>,
    skew: &SkewOptions,
    known: &KnownOffsets,
) -> Response {
    let adjusted: Vec<skewer_storage::model::Span> = found
        .traces
        .iter()
        .flat_map(|(_, spans)| {
            let mut spans = with_skew_warnings(spans, skew, known);
            if let (Some(first), Some(warning)) = (spans.first_mut(), &truncated) {
                add_warning(first, warning.clone());
            }
            spans
        })
        .collect();
    let data = super::otlp_json::traces_json(&adjusted);
    Json(json!({ "result": data })).into_response()
}

/// Adds `warning` to the span's `@jaeger@warnings`.
fn add_warning(span: &mut skewer_storage::model::Span, warning: String) {
    let warning = AttributeValue::String(warning);
    match span
        .attributes
        .iter_mut()
        .find(|attribute| attribute.key == WARNINGS_ATTRIBUTE)
    {
        Some(Attribute {
            value: AttributeValue::Array(warnings),
            ..
        }) => warnings.push(warning),
        _ => span.attributes.push(Attribute {
            key: WARNINGS_ATTRIBUTE.to_owned(),
            value: AttributeValue::Array(vec![warning]),
        }),
    }
}

/// The attribute api_v3 spans carry Jaeger's warnings in.
const WARNINGS_ATTRIBUTE: &str = "@jaeger@warnings";

/// A trace's spans with adjusted times and their skew findings as warnings.
fn with_skew_warnings(
    spans: &[skewer_storage::model::Span],
    skew: &SkewOptions,
    known: &KnownOffsets,
) -> Vec<skewer_storage::model::Span> {
    let timings = adjust_trace(spans, skew, known);
    spans
        .iter()
        .zip(timings)
        .map(|(span, timing)| {
            let mut span = span.clone();
            span.start_time_unix_nano = timing.start_unix_nano;
            span.end_time_unix_nano = timing.end_unix_nano;
            if let Some(finding) = timing.finding {
                add_warning(&mut span, format!("clock skew: {}", finding.reason));
            }
            span
        })
        .collect()
}

fn v3_not_found(message: &str) -> Response {
    let body =
        json!({ "error": { "httpCode": 404, "httpStatus": "Not Found", "message": message } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// The configured clock-skew handling, with nothing moved when `raw` (times as stored; the
/// findings still reported).
fn skew_options(state: &AppState, raw: bool) -> SkewOptions {
    let configured = state.skew_options();
    SkewOptions {
        adjust: configured.adjust && !raw,
        ..configured
    }
}

/// `GET /api/v3/traces/{trace_id}[?raw_traces=true]`: one whole trace as OTLP/JSON.
async fn get_trace_v3(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let raw = match search_params::flag(&pairs, &["raw_traces", "rawTraces"]) {
        Ok(raw) => raw,
        Err(err) => return v3_error(err),
    };
    let result = async {
        let tenant = tenant(&headers)?;
        let trace_id = search_params::parse_trace_id(&trace_id)?;
        let storage = state.storage()?;
        let found =
            trace_search::find_traces(storage, &tenant, &[trace_id], state.trace_limits(&tenant))
                .await?;
        Ok::<_, ApiError>((found, known_offsets(&storage.clock_skew(&tenant))))
    }
    .await;
    match result {
        Ok((found, _)) if found.traces.is_empty() => match found.truncated {
            Some(cut) => v3_error(not_one_span_fits(cut)),
            None => v3_not_found("trace not found"),
        },
        Ok((found, known)) => v3_answer(&state, &found, &known, skew_options(&state, raw)),
        Err(err) => v3_error(err),
    }
}

/// The tenant of an api_v3 search and the traces it finds, newest first.
async fn v3_trace_ids(
    state: &AppState,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(TenantId, Vec<TraceId>), ApiError> {
    let tenant = tenant(headers)?;
    let search = search_params::parse_v3(pairs)?;
    let storage = state.storage()?;
    let ids = trace_search::search_trace_ids(storage, &tenant, &search, state.scan_limits(&tenant))
        .await?;
    Ok((tenant, ids))
}

/// The traces an api_v3 search finds, newest first, cut at the trace view's limits.
async fn find_v3(
    state: &AppState,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<FoundTraces, ApiError> {
    let (tenant, ids) = v3_trace_ids(state, headers, pairs).await?;
    let limits = state.trace_limits(&tenant);
    Ok(trace_search::find_traces(state.storage()?, &tenant, &ids, limits).await?)
}

/// A trace view of `found`, a cut one saying so.
fn v3_answer(
    state: &AppState,
    found: &FoundTraces,
    known: &KnownOffsets,
    skew: SkewOptions,
) -> Response {
    let warning = found.truncated.map(|cut| state.truncation_warning(cut));
    v3_traces(found, warning, &skew, known)
}

/// The answer for a trace of which not one span fits its view's limits.
fn not_one_span_fits(cut: Truncation) -> ApiError {
    ApiError::Query(skewer_query::QueryError::from(
        skewer_storage::StorageError::LimitExceeded {
            what: cut.what,
            limit: cut.limit,
        },
    ))
}

/// The clock offsets known for the caller's tenant (none when storage is not ready).
fn known_for(state: &AppState, headers: &HeaderMap) -> KnownOffsets {
    match (tenant(headers), state.storage()) {
        (Ok(tenant), Ok(storage)) => known_offsets(&storage.clock_skew(&tenant)),
        _ => KnownOffsets::new(),
    }
}

/// `GET /api/v3/traces?query.*`: the spans of every trace found, as OTLP/JSON (times as
/// stored with `query.raw_traces=true`); 404 when none is (as Jaeger answers).
async fn search_v3(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let raw = match search_params::flag(&pairs, &["query.raw_traces", "query.rawTraces"]) {
        Ok(raw) => raw,
        Err(err) => return v3_error(err),
    };
    match find_v3(&state, &headers, &pairs).await {
        Ok(found) if found.traces.is_empty() => match found.truncated {
            Some(cut) => v3_error(not_one_span_fits(cut)),
            None => v3_not_found("No traces found"),
        },
        Ok(found) => v3_answer(
            &state,
            &found,
            &known_for(&state, &headers),
            skew_options(&state, raw),
        ),
        Err(err) => v3_error(err),
    }
}

/// `GET /api/v3/trace-summaries?query.*`: `{"summaries": [...]}`, newest first.
async fn trace_summaries_v3(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let summaries = async {
        let (tenant, ids) = v3_trace_ids(&state, &headers, &pairs).await?;
        let limits = state.scan_limits(&tenant);
        Ok::<_, ApiError>(trace_summaries(state.storage()?, &tenant, &ids, limits).await?)
    };
    match summaries.await {
        Ok(summaries) => {
            let summaries: Vec<Value> = summaries.iter().map(summary_json).collect();
            Json(json!({ "summaries": summaries })).into_response()
        }
        Err(err) => v3_error(err),
    }
}

/// A trace summary in Jaeger's JSON (times as decimal strings, as OTLP/JSON writes them).
fn summary_json(summary: &TraceSummary) -> Value {
    let services: Vec<Value> = summary
        .services
        .iter()
        .map(|(name, (spans, errors))| {
            json!({ "name": name, "spanCount": spans, "errorSpanCount": errors })
        })
        .collect();
    json!({
        "traceId": summary.trace_id.to_string(),
        "rootServiceName": summary.root_service,
        "rootOperationName": summary.root_operation,
        "minStartTimeUnixNano": summary.start_unix_nano.to_string(),
        "maxEndTimeUnixNano": summary.end_unix_nano.to_string(),
        "spanCount": summary.spans,
        "errorSpanCount": summary.error_spans,
        "orphanSpanCount": summary.orphan_spans,
        "services": services,
    })
}
