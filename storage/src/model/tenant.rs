//! The tenant of a request: `X-Scope-OrgID` (HTTP header or gRPC metadata), else `default`.
//! Shared by every surface that takes requests (ingest and the query API), so it lives with
//! the tenant id itself.

use super::{IdError, TenantId};

/// The header (and gRPC metadata key) that names the tenant, as Loki, Mimir and Tempo use it.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Parses the header value; absent means the default tenant, invalid is an error.
pub fn tenant_from_header(value: Option<&[u8]>) -> Result<TenantId, IdError> {
    match value {
        None => Ok(TenantId::default_tenant()),
        Some(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| IdError::BadTenant(String::from_utf8_lossy(bytes).into_owned()))?
            .trim()
            .parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_default_invalid_is_refused() {
        assert_eq!(tenant_from_header(None).unwrap().as_str(), "default");
        assert_eq!(
            tenant_from_header(Some(b"team-a")).unwrap().as_str(),
            "team-a"
        );
        assert!(tenant_from_header(Some(b"../etc")).is_err());
    }
}
