//! The query HTTP API on the query port: native read-back endpoints, the Jaeger-shaped trace
//! endpoint, health, readiness and self-metrics. Shapes live in the submodules; errors map
//! to statuses here, once.

pub mod jaeger;
pub mod logs;
pub mod metric_points;
pub mod params;
pub mod status;

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use skewer_ingest::stats::IngestStats;
use skewer_ingest::tenant::{TENANT_HEADER, tenant_from_header};
use skewer_query::QueryError;
use skewer_storage::model::TenantId;
use skewer_storage::{ErrorKind, Storage};

/// What the API handlers share. Storage appears once the WAL is replayed.
#[derive(Clone, Default)]
pub struct AppState {
    storage: Arc<OnceLock<Arc<Storage>>>,
    ingest_stats: Arc<IngestStats>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// State whose ingest counters are `ingest_stats`.
    pub fn new(ingest_stats: Arc<IngestStats>) -> Self {
        Self {
            ingest_stats,
            ..Self::default()
        }
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

/// The query API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(jaeger::get_trace))
        .route("/api/logs", get(logs::search))
        .route("/api/metrics/points", get(metric_points::points))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .with_state(state)
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
}

impl ApiError {
    /// The one mapping from error kinds to HTTP statuses on the query port.
    pub fn status(&self) -> StatusCode {
        let kind = match self {
            Self::BadParameter { .. } => ErrorKind::InvalidArgument,
            Self::Query(err) => err.kind(),
            Self::NotReady => ErrorKind::Unavailable,
        };
        match kind {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
