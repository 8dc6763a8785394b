//! The key check in front of every query-port route but health and readiness: the request's
//! key must grant the route's scope; its tenant then replaces whatever `X-Scope-OrgID` said,
//! so the handlers' `tenant(&headers)` reads the granted tenant and nothing else. Checked
//! before any handler runs, and never logged.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use skewer_storage::auth::{
    Access, AuthError, BASIC_CHALLENGE, BEARER_CHALLENGE, ConnectionIdentity, KeyRing, Scope,
};
use skewer_storage::model::tenant::TENANT_HEADER;

/// What one group of routes asks of a key.
#[derive(Clone)]
pub struct Guard {
    keys: Arc<KeyRing>,
    /// Any of these scopes lets the request in.
    scopes: &'static [Scope],
    /// The route answers about every tenant at once (the server's own metrics).
    all_tenants: bool,
    /// Pages a browser shows ask for Basic credentials; API routes for a bearer token.
    browser: bool,
}

impl Guard {
    /// The read APIs: a `query` key, confined to its tenant.
    pub fn query(keys: &Arc<KeyRing>) -> Self {
        Self {
            keys: Arc::clone(keys),
            scopes: &[Scope::Query],
            all_tenants: false,
            browser: false,
        }
    }

    /// The web UI: a `query` key, which the browser asks for (as the password).
    pub fn browser(keys: &Arc<KeyRing>) -> Self {
        Self {
            browser: true,
            ..Self::query(keys)
        }
    }

    /// Server-wide operations (keys): an `admin` key, which is bound to every tenant.
    pub fn admin(keys: &Arc<KeyRing>) -> Self {
        Self {
            keys: Arc::clone(keys),
            scopes: &[Scope::Admin],
            all_tenants: true,
            browser: false,
        }
    }

    /// The server's own `/metrics`: a `query` or `admin` key bound to every tenant.
    pub fn operator(keys: &Arc<KeyRing>) -> Self {
        Self {
            keys: Arc::clone(keys),
            scopes: &[Scope::Query, Scope::Admin],
            all_tenants: true,
            browser: false,
        }
    }

    fn check(&self, request: &Request) -> Result<Access, AuthError> {
        let headers = request.headers();
        let authorization = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let tenant = headers.get(TENANT_HEADER).map(HeaderValue::as_bytes);
        let certificate = request
            .extensions()
            .get::<ConnectionIdentity>()
            .and_then(|identity| identity.certificate.as_deref());
        let mut first_error = None;
        for scope in self.scopes {
            match self
                .keys
                .authorize_with(authorization, tenant, *scope, certificate)
            {
                Ok(access) if self.all_tenants && !access.all_tenants => {
                    return Err(AuthError::AllTenantsRequired);
                }
                Ok(access) => return Ok(access),
                // Another scope cannot mend a missing or bad key.
                Err(err @ (AuthError::ScopeDenied { .. } | AuthError::TenantDenied { .. })) => {
                    first_error.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(first_error.unwrap_or(AuthError::MissingKey))
    }

    fn refusal(&self, err: &AuthError) -> Response {
        let kind = err.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %err, "key check failed");
            "internal error".to_owned()
        } else {
            err.to_string()
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if self.browser {
                BASIC_CHALLENGE
            } else {
                BEARER_CHALLENGE
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Lets a request through when its key grants what `guard` asks, as its key's tenant.
pub async fn require_key(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard.check(&request) {
        Ok(access) => {
            match HeaderValue::from_str(access.tenant.as_str()) {
                Ok(tenant) => {
                    request.headers_mut().insert(TENANT_HEADER, tenant);
                }
                // Tenant ids are header-safe by construction; this cannot happen.
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
            next.run(request).await
        }
        Err(err) => guard.refusal(&err),
    }
}
