//! The Prometheus HTTP API (`/api/v1/…`) on the query port, so Grafana's Prometheus data
//! source and scripts work unchanged: instant and range queries in PromQL, series, label
//! names and values, metadata and build information. GET and form POST alike.

pub(crate) mod encode;
mod params;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use skewer_query::prometheus::StoreSource;
use skewer_query::promql::{PromqlError, QueryOptions, instant_query, range_query};
use skewer_storage::Storage;
use skewer_storage::model::TenantId;
use skewer_storage::scan::ScanLimits;

use super::AppState;
use encode::{failure, success};
use params::{Params, read_body};

/// Largest form body a query request may send.
const MAX_FORM_BYTES: usize = 1 << 20;

/// The routes, to merge into the read API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(buildinfo))
}

/// What every handler starts from: the parameters (query string and form body), the
/// caller's tenant and storage, the bounds of its reads and the default listing range.
struct Request {
    params: Params,
    storage: Arc<Storage>,
    tenant: TenantId,
    limits: ScanLimits,
    default_range_ms: i64,
    /// The tenant's `query_max_range_hours` (nanoseconds, 0: any), held against the range a
    /// query or listing asks for; its scans reach further back (lookback, range selectors).
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
        uri: &Uri,
        body: Body,
    ) -> Result<Self, PromqlError> {
        let body = read_body(body, MAX_FORM_BYTES).await?;
        let params = Params::parse(uri, &body);
        let tenant = super::tenant(headers).map_err(|err| PromqlError::BadData(err.to_string()))?;
        let storage = state
            .storage()
            .map_err(|err| PromqlError::Unavailable(err.to_string()))?;
        let mut limits = state.scan_limits(&tenant);
        let max_range_nanos = std::mem::take(&mut limits.max_range_nanos);
        if let Some(timeout_ms) = params.duration_ms("timeout")? {
            let asked = Instant::now() + Duration::from_millis(timeout_ms.max(0).unsigned_abs());
            limits.deadline = Some(limits.deadline.map_or(asked, |d| d.min(asked)));
        }
        Ok(Self {
            params,
            storage: Arc::clone(storage),
            tenant,
            limits,
            default_range_ms: i64::try_from(state.default_range().as_millis()).unwrap_or(i64::MAX),
            max_range_nanos,
        })
    }

    fn source(&self) -> StoreSource<'_> {
        StoreSource::new(&self.storage, self.tenant.clone(), self.limits)
    }

    fn options(&self) -> QueryOptions {
        QueryOptions {
            deadline: self.limits.deadline,
            // Selector windows within the tenant's range limit too: `rate(x[30d])` reads 30
            // days whatever the query's own range.
            max_range_ms: (self.max_range_nanos > 0)
                .then(|| i64::try_from(self.max_range_nanos / 1_000_000).unwrap_or(i64::MAX)),
            ..QueryOptions::default()
        }
    }

    /// The time range of a listing: `start`/`end`, the default range before now when absent.
    fn listing_range(&self) -> Result<(i64, i64), PromqlError> {
        let end = self.params.time_ms("end", now_ms())?;
        let start = self
            .params
            .time_ms("start", end.saturating_sub(self.default_range_ms))?;
        if end < start {
            return Err(PromqlError::BadData(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        self.check_range(start, end)?;
        Ok((start, end))
    }

    /// Refuses a range (Unix ms) longer than the tenant's `query_max_range_hours`.
    fn check_range(&self, start_ms: i64, end_ms: i64) -> Result<(), PromqlError> {
        let nanos = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
        skewer_storage::scan::check_range(self.max_range_nanos, nanos(start_ms), nanos(end_ms))
            .map_err(|err| PromqlError::Source(err.into()))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn answer(result: Result<Value, PromqlError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(err) => failure(&err),
    }
}

/// `/api/v1/query?query=&time=`.
async fn query(req: Request) -> Response {
    answer(
        async {
            let query = req.params.required("query")?;
            let time = req.params.time_ms("time", now_ms())?;
            let value = instant_query(&req.source(), query, time, &req.options()).await?;
            Ok(encode::query_data(&value))
        }
        .await,
    )
}

/// `/api/v1/query_range?query=&start=&end=&step=`.
async fn query_range(req: Request) -> Response {
    answer(
        async {
            let query = req.params.required("query")?;
            let start = req.params.required_time_ms("start")?;
            let end = req.params.required_time_ms("end")?;
            req.check_range(start, end)?;
            let step = req.params.duration_ms("step")?.ok_or_else(|| {
                PromqlError::BadData("invalid parameter \"step\": missing".into())
            })?;
            let value = range_query(&req.source(), query, start, end, step, &req.options()).await?;
            Ok(encode::query_data(&value))
        }
        .await,
    )
}

/// `/api/v1/query_exemplars?query=&start=&end=`: the exemplars on the series the query's
/// selectors select (Grafana draws them on charts and links them to their traces).
async fn query_exemplars(req: Request) -> Response {
    answer(
        async {
            let query = req.params.required("query")?;
            let selectors = skewer_query::promql::query_selectors(query)?;
            let (start, end) = req.listing_range()?;
            let found = req.source().exemplars(&selectors, start, end).await?;
            Ok(Value::Array(
                found
                    .iter()
                    .map(|(labels, exemplars)| {
                        json!({
                            "seriesLabels": encode::labels(labels),
                            "exemplars": exemplars.iter().map(|e| json!({
                                "labels": encode::labels(&e.labels),
                                "value": skewer_query::promql::format_value(e.value),
                                "timestamp": e.timestamp_ms / 1000.0,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ))
        }
        .await,
    )
}

/// `/api/v1/series?match[]=&start=&end=`.
async fn series(req: Request) -> Response {
    answer(
        async {
            let selectors = req.params.selectors()?;
            if selectors.is_empty() {
                return Err(PromqlError::BadData("no match[] parameter provided".into()));
            }
            let (start, end) = req.listing_range()?;
            let found = req.source().series_labels(&selectors, start, end).await?;
            Ok(Value::Array(found.iter().map(encode::labels).collect()))
        }
        .await,
    )
}

/// `/api/v1/labels?match[]=&start=&end=`.
async fn labels(req: Request) -> Response {
    answer(
        async {
            let (start, end) = req.listing_range()?;
            let selectors = req.params.selectors()?;
            Ok(json!(
                req.source().label_names(&selectors, start, end).await?
            ))
        }
        .await,
    )
}

/// `/api/v1/label/{name}/values?match[]=&start=&end=`.
async fn label_values(Path(name): Path<String>, req: Request) -> Response {
    answer(
        async {
            let (start, end) = req.listing_range()?;
            let selectors = req.params.selectors()?;
            let values = req
                .source()
                .label_values(&name, &selectors, start, end)
                .await?;
            Ok(json!(values))
        }
        .await,
    )
}

/// `/api/v1/metadata?metric=&limit=`: type, help and unit per metric family.
async fn metadata(req: Request) -> Response {
    answer(
        async {
            let (start, end) = req.listing_range()?;
            let limit = match req.params.get("limit") {
                None => usize::MAX,
                Some(text) => match text.parse::<i64>() {
                    Ok(limit) if limit > 0 => usize::try_from(limit).unwrap_or(usize::MAX),
                    Ok(_) => usize::MAX,
                    Err(_) => {
                        return Err(PromqlError::BadData(format!(
                            "invalid parameter \"limit\": {text:?} is not a number"
                        )));
                    }
                },
            };
            let families = req.source().metadata(start, end).await?;
            let mut out: serde_json::Map<String, Value> = serde_json::Map::new();
            for family in families {
                if req.params.get("metric").is_some_and(|m| m != family.family) {
                    continue;
                }
                let entry = json!({
                    "type": family.metric_type.as_str(),
                    "help": family.help,
                    "unit": family.unit,
                });
                let full = out.len() >= limit;
                match out.get_mut(&family.family) {
                    Some(Value::Array(entries)) => entries.push(entry),
                    _ if full => break,
                    _ => {
                        out.insert(family.family, json!([entry]));
                    }
                }
            }
            Ok(Value::Object(out))
        }
        .await,
    )
}

/// `/api/v1/status/buildinfo`: Grafana reads the version to pick its query features.
async fn buildinfo() -> Response {
    success(json!({
        "version": "2.42.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "skewer",
        "buildUser": "skewer",
        "buildDate": "",
        "goVersion": "none (skewer is written in Rust)",
    }))
}
