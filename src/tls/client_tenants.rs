//! `[[tls.client_tenants]]`: client certificates mapped to tenants by their subject common
//! name. Looked up once per connection, after the handshake verified the certificate against
//! `client_ca_file`; a certificate with no mapping grants nothing beyond what its keys do.

use std::collections::HashMap;
use std::sync::Arc;

use skewer_storage::auth::{CertificateGrant, ConnectionIdentity};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The mapping, by subject common name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientTenants(Arc<HashMap<String, Arc<CertificateGrant>>>);

impl ClientTenants {
    /// The mapping of `grants` (validated with the config).
    pub fn new(grants: impl IntoIterator<Item = CertificateGrant>) -> Self {
        Self(Arc::new(
            grants
                .into_iter()
                .map(|grant| (grant.common_name.clone(), Arc::new(grant)))
                .collect(),
        ))
    }

    /// The identity of a connection whose client presented `chain` (leaf first; the
    /// handshake verified it).
    pub fn identity(
        &self,
        chain: Option<&[rustls_pki_types::CertificateDer<'_>]>,
    ) -> ConnectionIdentity {
        let certificate = chain
            .and_then(|chain| chain.first())
            .and_then(|leaf| common_name(leaf))
            .and_then(|name| self.0.get(&name).cloned());
        ConnectionIdentity { certificate }
    }
}

/// The first common name of a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let name = certificate.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewer_storage::auth::Scope;

    fn certificate(common_name: &str) -> rustls_pki_types::CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "shop");
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_maps_by_its_subject_common_name() {
        let tenants = ClientTenants::new([CertificateGrant {
            common_name: "collector".into(),
            tenant: "shop".parse().unwrap(),
            scopes: [Scope::Ingest].into_iter().collect(),
        }]);
        let mapped = tenants.identity(Some(&[certificate("collector")]));
        assert_eq!(mapped.certificate.unwrap().tenant.as_str(), "shop");
        assert!(
            tenants
                .identity(Some(&[certificate("other")]))
                .certificate
                .is_none()
        );
        assert!(tenants.identity(None).certificate.is_none());
        assert!(
            tenants
                .identity(Some(&[b"not a certificate".to_vec().into()]))
                .certificate
                .is_none()
        );
    }
}
