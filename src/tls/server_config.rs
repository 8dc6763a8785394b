//! The configured files turned into a rustls `ServerConfig`: the certificate chain and key,
//! ALPN for HTTP/2 (gRPC) and HTTP/1.1, and, with a client CA, required client certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

use super::TlsError;

/// The files TLS is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA certificates for client certificates (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// Client certificates mapped to tenants.
    pub client_tenants: super::ClientTenants,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let pem_error = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(err.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error("no PEM certificate in it".to_owned()));
    }
    Ok(certificates)
}

impl TlsFiles {
    /// Every file this configuration reads (watched for changes).
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert_file.as_path(), self.key_file.as_path()];
        paths.extend(self.client_ca_file.as_deref());
        paths
    }

    /// Reads the files and builds the server side of TLS.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = certificates("tls.cert_file", &self.cert_file)?;
        let key_pem = read("tls.key_file", &self.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::Pem {
            what: "tls.key_file",
            path: self.key_file.clone(),
            reason: format!("no usable private key ({err})"),
        })?;
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Rustls(err.to_string()))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates("tls.client_ca_file", path)? {
                    roots.add(certificate).map_err(|err| TlsError::Pem {
                        what: "tls.client_ca_file",
                        path: path.clone(),
                        reason: err.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|err| TlsError::Rustls(err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|err| TlsError::Rustls(err.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn files(cert_file: PathBuf, key_file: PathBuf) -> TlsFiles {
        TlsFiles {
            cert_file,
            key_file,
            client_ca_file: None,
            client_tenants: crate::tls::ClientTenants::default(),
        }
    }

    #[test]
    fn a_matching_pair_loads_and_speaks_h2_and_http1() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let config = files(cert, key).server_config().unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn unusable_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a) = self_signed(dir.path(), "a");
        let (_, key_b) = self_signed(dir.path(), "b");
        let mismatched = files(cert_a.clone(), key_b).server_config().unwrap_err();
        assert!(matches!(mismatched, TlsError::Rustls(_)), "{mismatched}");

        let missing = files(dir.path().join("nope.crt"), key_a.clone())
            .server_config()
            .unwrap_err();
        assert!(missing.to_string().contains("tls.cert_file"), "{missing}");

        std::fs::write(dir.path().join("empty.crt"), "not pem").unwrap();
        let empty = files(dir.path().join("empty.crt"), key_a.clone())
            .server_config()
            .unwrap_err();
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");

        let no_key = files(cert_a.clone(), cert_a).server_config().unwrap_err();
        assert!(no_key.to_string().contains("tls.key_file"), "{no_key}");
    }
}
