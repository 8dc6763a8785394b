//! The Loki HTTP API (`/loki/api/v1/…`) on the query port, so Grafana's Loki data source,
//! `logcli` and scripts read skewer's logs unchanged: log and metric queries in LogQL (range
//! and instant), label names and values, series. GET and form POST alike; the tenant is
//! `X-Scope-OrgID`, as for Loki.

mod encode;
mod params;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequest, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use skewer_query::QueryError;
use skewer_query::logql::ast::{Expr, Matcher};
use skewer_query::logql::stats::{index_stats, index_volume};
use skewer_query::logql::streams::list_streams;
use skewer_query::logql::{
    LogQueryRequest, LogqlError, LogqlLimits, MetricRequest, MetricResult, parse, parse_selector,
    run_log_query, run_metric_query,
};
use skewer_storage::Storage;
use skewer_storage::model::TenantId;

use super::AppState;
use super::form::Params;
use encode::{failure, success};

/// Largest form body a query request may send.
const MAX_FORM_BYTES: usize = 1 << 20;
/// The range a query or listing covers when it names no start: Loki's defaults.
const DEFAULT_QUERY_SINCE_NS: u64 = 3_600 * 1_000_000_000;
const DEFAULT_LISTING_SINCE_NS: u64 = 6 * 3_600 * 1_000_000_000;
/// The header with Loki's response encoding flags.
const ENCODING_FLAGS_HEADER: &str = "x-loki-response-encoding-flags";

/// The routes, to merge into the read API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats_route).post(index_stats_route),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(index_volume_route).post(index_volume_route),
        )
}

/// Why a Loki API request failed.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    /// A parameter is missing or invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Storage is still opening (WAL replay).
    #[error("not ready: replaying the write-ahead log")]
    NotReady,
}

impl From<LogqlError> for LokiError {
    fn from(error: LogqlError) -> Self {
        Self::Query(error.into())
    }
}

impl LokiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Query(error) => StatusCode::from_u16(error.kind().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What every handler starts from.
struct Request {
    params: Params,
    storage: Arc<Storage>,
    tenant: TenantId,
    categorize_labels: bool,
    limits: LogqlLimits,
    /// The tenant's `query_max_range_hours`, nanoseconds (0: any).
    max_range_nanos: u64,
}

impl FromRequest<AppState> for Request {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        Self::build(state, &parts.headers, &parts.uri, body)
            .await
            .map_err(|err| failure(&err))
    }
}

impl Request {
    async fn build(
        state: &AppState,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        body: axum::body::Body,
    ) -> Result<Self, LokiError> {
        let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|err| LokiError::BadRequest(format!("cannot read the request body: {err}")))?;
        let tenant =
            super::tenant(headers).map_err(|err| LokiError::BadRequest(err.to_string()))?;
        let storage = state.storage().map_err(|_| LokiError::NotReady)?;
        let categorize_labels = headers
            .get_all(ENCODING_FLAGS_HEADER)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|flag| flag.trim() == "categorize-labels");
        Ok(Self {
            params: Params::parse(uri, &body),
            storage: Arc::clone(storage),
            categorize_labels,
            limits: LogqlLimits::default(),
            max_range_nanos: state
                .limits
                .current()
                .query_max_range_nanos_of(tenant.as_str()),
            tenant,
        })
    }

    /// The request's `[start, end]` (default the last `default_since`), held to the tenant's
    /// `query_max_range_hours`.
    fn range(&self, default_since: u64) -> Result<(u64, u64), LokiError> {
        let (start, end) = params::range_ns(&self.params, now_ns(), default_since)?;
        skewer_storage::scan::check_range(self.max_range_nanos, start, end)
            .map_err(|err| LokiError::Query(err.into()))?;
        Ok((start, end))
    }

    fn query_text(&self) -> Result<&str, LokiError> {
        self.params
            .get("query")
            .ok_or_else(|| LokiError::BadRequest("invalid query: missing".to_owned()))
    }

    /// The selectors of `match[]` (or `query` for the label endpoints).
    fn selectors(&self, parameter: &str) -> Result<Vec<Vec<Matcher>>, LokiError> {
        self.params
            .all(parameter)
            .filter(|text| !text.trim().is_empty())
            .map(|text| parse_selector(text).map_err(LokiError::from))
            .collect()
    }

    async fn streams(
        &self,
        selectors: Vec<Vec<Matcher>>,
    ) -> Result<Vec<skewer_query::logql::Labels>, LokiError> {
        let (start, end) = self.range(DEFAULT_LISTING_SINCE_NS)?;
        Ok(list_streams(
            &self.storage,
            &self.tenant,
            &selectors,
            start,
            end.saturating_add(1),
        )
        .await?)
    }
}

fn now_ns() -> u64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .and_then(|nanos| u64::try_from(nanos).ok())
        .unwrap_or(0)
}

fn answer(result: Result<Value, LokiError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(err) => failure(&err),
    }
}

fn stats(started: Instant, entries: usize) -> Value {
    json!({ "summary": {
        "execTime": started.elapsed().as_secs_f64(),
        "totalEntriesReturned": entries,
    }})
}

/// `/loki/api/v1/query_range?query=&start=&end=&since=&step=&limit=&direction=`.
async fn query_range(req: Request) -> Response {
    answer(
        async {
            let started = Instant::now();
            let expr = parse(req.query_text()?)?;
            let (start, end) = req.range(DEFAULT_QUERY_SINCE_NS)?;
            match expr {
                Expr::Log(log) => {
                    let request = LogQueryRequest {
                        start_unix_nano: start,
                        end_unix_nano: end,
                        limit: params::limit(&req.params, req.limits.max_entries)?,
                        direction: params::direction(&req.params)?,
                        categorize_labels: req.categorize_labels,
                    };
                    let streams = run_log_query(&req.storage, &req.tenant, log, &request).await?;
                    let entries = streams.iter().map(|s| s.entries.len()).sum();
                    Ok(encode::streams_data(
                        &streams,
                        req.categorize_labels,
                        stats(started, entries),
                    ))
                }
                Expr::Metric(metric) => {
                    let request = MetricRequest {
                        start_unix_nano: start,
                        end_unix_nano: end,
                        step_nanos: params::step_ns(&req.params, start, end)?,
                        instant: false,
                    };
                    let result =
                        run_metric_query(&req.storage, &req.tenant, &metric, &request, &req.limits)
                            .await?;
                    Ok(encode::metric_data(&result, end, stats(started, 0)))
                }
            }
        }
        .await,
    )
}

/// `/loki/api/v1/query?query=&time=&limit=&direction=`: metric queries at one time.
async fn query(req: Request) -> Response {
    answer(
        async {
            let started = Instant::now();
            let expr = parse(req.query_text()?)?;
            let time = params::time_ns(&req.params, "time", now_ns())?;
            let Expr::Metric(metric) = expr else {
                return Err(LokiError::BadRequest(
                    "log queries are not supported as an instant query type, please change your query to a range query type".to_owned(),
                ));
            };
            let request = MetricRequest {
                start_unix_nano: time,
                end_unix_nano: time,
                step_nanos: 0,
                instant: true,
            };
            let result = run_metric_query(&req.storage, &req.tenant, &metric, &request, &req.limits).await?;
            Ok(encode::metric_data(&result, time, stats(started, 0)))
        }
        .await,
    )
}

/// `/loki/api/v1/labels?start=&end=&since=&query=`: stream label names.
async fn labels(req: Request) -> Response {
    answer(
        async {
            let streams = req.streams(req.selectors("query")?).await?;
            let mut names: Vec<&str> = streams
                .iter()
                .flat_map(|labels| labels.iter().map(|(name, _)| name))
                .collect();
            names.sort_unstable();
            names.dedup();
            Ok(json!(names))
        }
        .await,
    )
}

/// `/loki/api/v1/label/{name}/values?start=&end=&since=&query=`.
async fn label_values(Path(name): Path<String>, req: Request) -> Response {
    answer(
        async {
            let streams = req.streams(req.selectors("query")?).await?;
            let mut values: Vec<&str> = streams
                .iter()
                .filter_map(|labels| labels.get(&name))
                .collect();
            values.sort_unstable();
            values.dedup();
            Ok(json!(values))
        }
        .await,
    )
}

/// `/loki/api/v1/series?match[]=&start=&end=&since=`.
async fn series(req: Request) -> Response {
    answer(
        async {
            let mut selectors = req.selectors("match[]")?;
            selectors.extend(req.selectors("match")?);
            if selectors.is_empty() {
                return Err(LokiError::BadRequest(
                    "at least one match[] selector is required".to_owned(),
                ));
            }
            let streams = req.streams(selectors).await?;
            Ok(Value::Array(streams.iter().map(encode::labels).collect()))
        }
        .await,
    )
}

/// Series an `index/volume` answer holds at most.
const MAX_VOLUME_SERIES: usize = 5_000;

/// `/loki/api/v1/index/volume?query=&start=&end=&limit=&targetLabels=&aggregateBy=`: the bytes
/// of the lines the query's selector covers per series of the labels `targetLabels` names
/// (comma separated; by default those the selector names), largest first, at most `limit`
/// (100), as a vector at `end` (what Grafana asks to rank services by volume). Only Loki's
/// default aggregation, `series`, is served; `aggregateBy=labels` is refused by name.
async fn index_volume_route(req: Request) -> Response {
    answer(
        async {
            let expr = parse(req.query_text()?)?;
            let log = expr.first_log().ok_or_else(|| {
                LokiError::BadRequest("the query has no stream selector".to_owned())
            })?;
            match req.params.get("aggregateBy").map(str::trim) {
                None | Some("" | "series") => {}
                Some(other) => {
                    return Err(LokiError::BadRequest(format!(
                        "aggregateBy {other:?} is not supported: use series"
                    )));
                }
            }
            let targets: Vec<String> = req
                .params
                .get("targetLabels")
                .into_iter()
                .flat_map(|text| text.split(','))
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect();
            let limit = params::limit(&req.params, MAX_VOLUME_SERIES)?;
            let (start, end) = req.range(DEFAULT_QUERY_SINCE_NS)?;
            let volumes = index_volume(
                &req.storage,
                &req.tenant,
                log,
                (start, end),
                &targets,
                limit,
            )
            .await?;
            let samples = volumes
                .into_iter()
                .map(|(labels, bytes)| (labels, bytes as f64))
                .collect();
            Ok(encode::metric_data(
                &MetricResult::Vector(samples),
                end,
                json!({}),
            ))
        }
        .await,
    )
}

/// `/loki/api/v1/index/stats?query=&start=&end=`: the streams, lines and bytes the query's
/// selector covers (Grafana shows it as the query's size). skewer keeps no chunks: `chunks` is
/// the number of streams.
async fn index_stats_route(req: Request) -> Response {
    let result = async {
        let expr = parse(req.query_text()?)?;
        let log = expr
            .first_log()
            .ok_or_else(|| LokiError::BadRequest("the query has no stream selector".to_owned()))?;
        let (start, end) = req.range(DEFAULT_QUERY_SINCE_NS)?;
        let stats = index_stats(&req.storage, &req.tenant, log, start, end).await?;
        Ok::<_, LokiError>(stats)
    }
    .await;
    match result {
        Ok(stats) => axum::Json(json!({
            "streams": stats.streams,
            "chunks": stats.streams,
            "bytes": stats.bytes,
            "entries": stats.entries,
        }))
        .into_response(),
        Err(err) => failure(&err),
    }
}
