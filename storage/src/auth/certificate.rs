//! Client certificates as credentials: with mTLS, a certificate the CA signed whose subject
//! common name `[[tls.client_tenants]]` maps is bound to that tenant with those scopes, as a
//! key would be. The TLS layer resolves the mapping once per connection and hands every
//! request of the connection a [`ConnectionIdentity`].

use std::sync::Arc;

use super::scope::Scopes;
use crate::model::TenantId;

/// What a mapped client certificate grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateGrant {
    /// The subject common name it was mapped by (for logs).
    pub common_name: String,
    /// The tenant its requests act for, and the only one.
    pub tenant: TenantId,
    /// What it may do without a key.
    pub scopes: Scopes,
}

/// Who is at the other end of a connection, beyond its keys: a request extension (and
/// tonic's connect info) set by the TLS listener.
#[derive(Debug, Clone, Default)]
pub struct ConnectionIdentity {
    /// The grant of a verified, mapped client certificate.
    pub certificate: Option<Arc<CertificateGrant>>,
}
