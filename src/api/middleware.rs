//! What every query request goes through: a request id (taken from `X-Request-Id` or made up)
//! on its tracing span and its response; and, for the read APIs, a concurrency limit (past it:
//! 503 with `Retry-After`, never a queue) and a timeout (504). Response compression is
//! tower-http's, layered in [`super::router`].

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

use skewer_ingest::limits::LiveLimits;
use skewer_storage::model::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::tenant;
use tracing::Instrument;

/// The header carrying a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Bounds of the read APIs.
#[derive(Clone)]
pub struct QueryGate {
    permits: Arc<Semaphore>,
    timeout: Duration,
    tenants: Option<Arc<TenantQueries>>,
}

/// Per-tenant query concurrency: one semaphore per tenant with a limit, made on its first
/// query and made anew when the limit changes (queries holding the old one finish on it).
struct TenantQueries {
    limits: LiveLimits,
    permits: Mutex<HashMap<TenantId, (usize, Arc<Semaphore>)>>,
}

/// Semaphores kept before idle ones are dropped (tenant names come from requests).
const MAX_TENANT_SEMAPHORES: usize = 10_000;

impl TenantQueries {
    /// `Some(permit)`, `None` when `tenant` has no limit; `Err(limit)` when it is at it.
    fn try_acquire(&self, tenant: &TenantId) -> Result<Option<OwnedSemaphorePermit>, usize> {
        let limit = self.limits.current().query_concurrency_of(tenant.as_str());
        if limit == 0 {
            return Ok(None);
        }
        let semaphore = {
            let mut permits = self
                .permits
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if permits.len() >= MAX_TENANT_SEMAPHORES {
                permits.retain(|_, (_, semaphore)| Arc::strong_count(semaphore) > 1);
            }
            let entry = permits
                .entry(tenant.clone())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit)));
            }
            Arc::clone(&entry.1)
        };
        semaphore.try_acquire_owned().map(Some).map_err(|_| limit)
    }
}

impl QueryGate {
    /// At most `max_concurrent` queries at once, each answered within `timeout`.
    pub fn new(max_concurrent: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            timeout,
            tenants: None,
        }
    }

    /// Also at most `[limits] query_max_concurrent` queries of one tenant at once.
    pub fn with_tenant_limits(mut self, limits: LiveLimits) -> Self {
        self.tenants = Some(Arc::new(TenantQueries {
            limits,
            permits: Mutex::default(),
        }));
        self
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Refuses a query past the concurrency limit and stops one past the timeout.
pub async fn limit_queries(
    State(gate): State<QueryGate>,
    request: Request,
    next: Next,
) -> Response {
    let tenant_permit = match (&gate.tenants, tenant(request.headers())) {
        (Some(tenants), Ok(tenant)) => match tenants.try_acquire(&tenant) {
            Ok(permit) => permit,
            Err(limit) => {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "tenant {tenant} is over its limit query_max_concurrent = {limit}; retry shortly"
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        },
        // No per-tenant limits, or a bad tenant header the handler will refuse.
        _ => None,
    };
    let _tenant_permit = tenant_permit;
    let Ok(_permit) = Arc::clone(&gate.permits).try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many queries at once; retry shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(gate.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the query did not finish within {} s: narrow the time range or add filters",
                gate.timeout.as_secs()
            ),
        ),
    }
}

/// A request id a client may send: short, printable, no spaces.
fn acceptable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 64 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// Gives every request an id, logs under it, and returns it as `X-Request-Id`.
pub async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|value| acceptable_id(value))
        .cloned()
        .unwrap_or_else(|| {
            let generated = format!("{:016x}", rand::random::<u64>());
            HeaderValue::from_str(&generated).unwrap_or(HeaderValue::from_static("unknown"))
        });
    let span = tracing::info_span!(
        "request",
        request_id = %String::from_utf8_lossy(id.as_bytes()),
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = std::time::Instant::now();
    let mut response = async {
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms, "request served");
        }
        response
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use skewer_ingest::limits::LimitsConfig;

    /// Serves `router` on a loopback port; returns its base URL.
    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }

    fn slow_router(gate: QueryGate, release: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route(
                "/slow",
                get(move || {
                    let release = Arc::clone(&release);
                    async move {
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(gate, limit_queries))
            .layer(axum::middleware::from_fn(request_id))
    }

    #[tokio::test]
    async fn queries_past_the_limit_are_refused_and_slow_ones_time_out() {
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = QueryGate::new(1, Duration::from_millis(300));
        let base = serve(slow_router(gate, Arc::clone(&release))).await;
        let client = reqwest::Client::new();
        let first = tokio::spawn({
            let client = client.clone();
            let url = format!("{base}/slow");
            async move { client.get(url).send().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = client.get(format!("{base}/slow")).send().await.unwrap();
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers()["retry-after"], "1");
        let first = first.await.unwrap();
        assert_eq!(first.status(), 504, "nobody released it within the timeout");
        let body: serde_json::Value = first.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("did not finish"));
        // The permit came back with the timed-out query.
        let third = tokio::spawn({
            let client = client.clone();
            let url = format!("{base}/slow");
            async move { client.get(url).send().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        assert_eq!(third.await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_tenant_at_its_query_limit_does_not_block_another_and_a_raised_limit_holds_at_once() {
        let release = Arc::new(tokio::sync::Notify::new());
        let mut tenants = std::collections::BTreeMap::new();
        tenants.insert(
            "busy".to_owned(),
            skewer_ingest::limits::TenantLimitOverrides {
                query_max_concurrent: Some(1),
                ..Default::default()
            },
        );
        let limits = LimitsConfig {
            tenants,
            ..LimitsConfig::default()
        };
        let live = LiveLimits::new(limits.clone());
        let gate = QueryGate::new(8, Duration::from_secs(10)).with_tenant_limits(live.clone());
        let base = serve(slow_router(gate, Arc::clone(&release))).await;
        let client = reqwest::Client::new();
        let get = |tenant: &'static str| {
            let client = client.clone();
            let url = format!("{base}/slow");
            async move {
                client
                    .get(url)
                    .header("x-scope-orgid", tenant)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let first = tokio::spawn(get("busy"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = get("busy").await;
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("query_max_concurrent = 1"),
            "{body}"
        );
        let other = tokio::spawn(get("calm"));
        // Raised while a query runs: the next one passes at once.
        let mut raised = limits;
        if let Some(busy) = raised.tenants.get_mut("busy") {
            busy.query_max_concurrent = Some(2);
        }
        live.replace(raised);
        let second = tokio::spawn(get("busy"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_waiters();
        assert_eq!(first.await.unwrap().status(), 200);
        assert_eq!(second.await.unwrap().status(), 200);
        assert_eq!(
            other.await.unwrap().status(),
            200,
            "another tenant is not held back"
        );
    }

    #[tokio::test]
    async fn requests_carry_an_id_given_or_made_up() {
        let release = Arc::new(tokio::sync::Notify::new());
        release.notify_one();
        let base = serve(slow_router(
            QueryGate::new(4, Duration::from_secs(5)),
            release,
        ))
        .await;
        let client = reqwest::Client::new();
        let given = client
            .get(format!("{base}/slow"))
            .header(REQUEST_ID_HEADER, "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(given.headers()[REQUEST_ID_HEADER], "abc-123");
        let hostile = client
            .get(format!("{base}/nowhere"))
            .header(REQUEST_ID_HEADER, "has space")
            .send()
            .await
            .unwrap();
        let made_up = hostile.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert_eq!(made_up.len(), 16, "{made_up}");
        assert_ne!(made_up, "has space");
    }
}
