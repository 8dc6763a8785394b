//! The query HTTP API on the query port: native read-back endpoints, the Jaeger query API
//! (services, operations, search, traces), health, readiness and self-metrics. Shapes live in the submodules; errors map
//! to statuses here, once.

pub mod admin_keys;
pub mod admin_limits;
pub mod alerts;
pub mod auth;
pub mod form;
pub mod jaeger;
pub mod log_attribute_filter;
pub mod logs;
pub mod loki;
pub mod metric_names;
pub mod metric_points;
pub mod middleware;
pub mod otlp_json;
pub mod params;
pub mod prometheus;
pub mod skew;
pub mod status;
pub mod stitch;
pub mod trace_search;
pub mod web;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use skewer_ingest::limits::LiveLimits;
use skewer_query::QueryError;
use skewer_storage::auth::KeyRing;
use skewer_storage::model::TenantId;
use skewer_storage::model::tenant::{TENANT_HEADER, tenant_from_header};
use skewer_storage::scan::ScanLimits;
use skewer_storage::{ErrorKind, Storage};

use crate::config::QuerySection;
use crate::self_metrics::SelfMetrics;

/// What the API handlers share. Storage appears once the WAL is replayed.
#[derive(Clone)]
pub struct AppState {
    storage: Arc<OnceLock<Arc<Storage>>>,
    self_metrics: Arc<SelfMetrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    query: QuerySection,
    keys: Arc<KeyRing>,
    limits: LiveLimits,
    deployment_limits: Option<Arc<crate::limits::DeploymentLimits>>,
    alerting: Option<Arc<crate::alerting::Alerting>>,
}

impl AppState {
    /// State that reports `self_metrics`, bounds queries by `query` and lets in requests
    /// whose key `keys` accepts.
    pub fn new(self_metrics: Arc<SelfMetrics>, query: QuerySection, keys: Arc<KeyRing>) -> Self {
        Self {
            storage: Arc::default(),
            self_metrics,
            ready: Arc::default(),
            query,
            keys,
            limits: LiveLimits::default(),
            deployment_limits: None,
            alerting: None,
        }
    }

    /// Serves `alerting`'s rules, alerts and silences.
    pub fn with_alerting(mut self, alerting: Arc<crate::alerting::Alerting>) -> Self {
        self.alerting = Some(alerting);
        self
    }

    /// The alerting engine, when running.
    pub fn alerting(&self) -> Option<Arc<crate::alerting::Alerting>> {
        self.alerting.clone()
    }

    /// Holds each tenant to `limits` (`query_max_concurrent`, `query_max_rows`,
    /// `query_max_range_hours`), as they are when each query starts.
    pub fn with_tenant_limits(mut self, limits: LiveLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Shows and changes `limits`, a deployment's limits in its catalog database.
    pub fn with_deployment_limits(
        mut self,
        limits: Option<Arc<crate::limits::DeploymentLimits>>,
    ) -> Self {
        self.deployment_limits = limits;
        self
    }

    /// The bounds of one query of `tenant` starting now: the server-wide ones, rows bounded
    /// by the tenant's own `query_max_rows` where that is lower.
    pub fn scan_limits(&self, tenant: &TenantId) -> ScanLimits {
        let limits = self.limits.current();
        let tenants_rows = limits.query_max_rows_of(tenant.as_str());
        let tenants = tenants_rows > 0 && tenants_rows < self.query.max_rows;
        ScanLimits {
            max_rows: if tenants {
                tenants_rows
            } else {
                self.query.max_rows
            },
            max_bytes: self.query.max_bytes,
            deadline: Some(Instant::now() + Duration::from_secs(self.query.timeout_seconds)),
            max_rows_is_tenants: tenants,
            max_range_nanos: limits.query_max_range_nanos_of(tenant.as_str()),
            truncate: false,
        }
    }

    /// The bounds of one trace view of `tenant` (traces by id, search results, a stitched
    /// request): at most `trace_max_spans` spans and `trace_max_bytes` bytes, or the query
    /// bounds (`max_rows`, `max_bytes`, the tenant's `query_max_rows`) where lower; past them the
    /// view is cut, not refused.
    pub fn trace_limits(&self, tenant: &TenantId) -> ScanLimits {
        let query = self.scan_limits(tenant);
        ScanLimits {
            max_rows: query.max_rows.min(self.query.trace_max_spans),
            max_bytes: query.max_bytes.min(self.query.trace_max_bytes),
            truncate: true,
            ..query
        }
    }

    /// What a cut trace view says, naming the setting that cut it.
    pub fn truncation_warning(&self, truncation: skewer_storage::scan::Truncation) -> String {
        let (count, setting) = if truncation.what == "rows" {
            (
                "spans",
                "query.trace_max_spans (or the tenant's query_max_rows)",
            )
        } else {
            (
                "bytes",
                "the lower of [query] trace_max_bytes and max_bytes",
            )
        };
        format!(
            "trace truncated: the read stopped at {} {count} ({setting}); spans past it are not shown",
            truncation.limit
        )
    }

    /// Refuses a log query of `tenant` over a longer range than its `query_max_range_hours`
    /// (span and metric scans check their ranges themselves).
    pub fn check_log_range(&self, tenant: &TenantId, start: u64, end: u64) -> Result<(), ApiError> {
        let max = self
            .limits
            .current()
            .query_max_range_nanos_of(tenant.as_str());
        skewer_storage::scan::check_range(max, start, end)
            .map_err(|err| ApiError::Query(QueryError::from(err)))
    }

    /// How trace views handle clock skew, as configured.
    pub fn skew_options(&self) -> skewer_query::skew::SkewOptions {
        self.query.skew_options()
    }

    /// The time range a metric query covers when it names none.
    pub fn default_range(&self) -> Duration {
        Duration::from_secs(self.query.default_range_hours * 3600)
    }

    /// Publishes opened storage.
    pub fn set_storage(&self, storage: Arc<Storage>) {
        // Set once at start; a second call keeps the first.
        let _ = self.storage.set(storage);
    }

    /// Marks the server ready (or not, during shutdown).
    pub fn set_ready(&self, ready: bool) {
        self.ready
            .store(ready, std::sync::atomic::Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    fn storage(&self) -> Result<&Arc<Storage>, ApiError> {
        self.storage.get().ok_or(ApiError::NotReady)
    }
}

/// The query API routes: the read APIs behind the key check and the query gate (concurrency
/// limit, timeout), the UI and self-metrics behind the key check, health open; request ids
/// and gzip responses for all.
pub fn router(state: AppState) -> Router {
    let keys = Arc::clone(&state.keys);
    let guard = |guard: auth::Guard| axum::middleware::from_fn_with_state(guard, auth::require_key);
    let gate = middleware::QueryGate::new(
        state.query.max_concurrent,
        Duration::from_secs(state.query.timeout_seconds),
    )
    .with_tenant_limits(state.limits.clone());
    let reads = jaeger::routes()
        .route("/api/search/traces", get(trace_search::traces))
        .route("/api/search/durations", get(trace_search::durations))
        .route("/api/logs", get(logs::search))
        .route("/api/logs/services", get(logs::services))
        .route("/api/stitch/{id}", get(stitch::request))
        .route("/api/skew", get(skew::pairs))
        .route("/api/metrics", get(metric_names::names))
        .route("/api/metrics/points", get(metric_points::points))
        .merge(prometheus::routes())
        .merge(alerts::read_routes())
        .merge(loki::routes())
        .layer(axum::middleware::from_fn_with_state(
            gate,
            middleware::limit_queries,
        ))
        .layer(guard(auth::Guard::query(&keys)));
    let operator = Router::new()
        .route("/metrics", get(status::metrics))
        .merge(alerts::operator_routes())
        .layer(guard(auth::Guard::operator(&keys)));
    let admin = admin_keys::routes()
        .merge(admin_limits::routes())
        .merge(alerts::admin_routes())
        .layer(guard(auth::Guard::admin(&keys)));
    let ui = web::routes().layer(guard(auth::Guard::browser(&keys)));
    Router::new()
        .merge(reads)
        .merge(operator)
        .merge(admin)
        .merge(ui)
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(middleware::request_id))
}

/// Errors of the native API, answered as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is invalid.
    #[error("invalid {parameter}: {reason}")]
    BadParameter {
        /// The parameter.
        parameter: &'static str,
        /// Why.
        reason: String,
    },
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Storage is still opening (WAL replay).
    #[error("not ready: replaying the write-ahead log")]
    NotReady,
    /// Nothing matches what was asked for.
    #[error("{0}")]
    NotFound(String),
}

impl ApiError {
    /// The one mapping from error kinds to HTTP statuses on the query port.
    pub fn status(&self) -> StatusCode {
        let kind = match self {
            Self::BadParameter { .. } => ErrorKind::InvalidArgument,
            Self::Query(err) => err.kind(),
            Self::NotReady => ErrorKind::Unavailable,
            Self::NotFound(_) => ErrorKind::NotFound,
        };
        StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Text safe for clients: internal details stay in the server log.
    pub fn client_message(&self) -> String {
        if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "query failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(json!({ "error": self.client_message() })),
        )
            .into_response()
    }
}

/// The tenant named by `X-Scope-OrgID`, `default` when absent.
pub fn tenant(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    tenant_from_header(headers.get(TENANT_HEADER).map(|v| v.as_bytes())).map_err(|err| {
        ApiError::BadParameter {
            parameter: "X-Scope-OrgID",
            reason: err.to_string(),
        }
    })
}
