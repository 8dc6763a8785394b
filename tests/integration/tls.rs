//! TLS and mTLS through the binary, with certificates made here (rcgen): every port speaks
//! TLS (OTLP over gRPC and HTTP, the query API); clients that do not trust the server's CA, or
//! see an expired certificate, fail the handshake; a renewed certificate is served without a
//! restart; with a client CA, only clients holding a valid certificate from it get in; a
//! certificate mapped to a tenant is a credential for that tenant only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, date_time_ymd,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::fixtures::{hex, trace_id, trace_request};
use crate::harness::{Server, connect_from};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

/// A certificate authority for the test.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, name: &str, purpose: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        if expired {
            params.not_before = date_time_ymd(2019, 1, 1);
            params.not_after = date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self, expired: bool) -> Leaf {
        self.leaf("skewer", ExtendedKeyUsagePurpose::ServerAuth, expired)
    }

    fn client(&self, name: &str, expired: bool) -> Leaf {
        self.leaf(name, ExtendedKeyUsagePurpose::ClientAuth, expired)
    }
}

/// Writes `text` to `path` as a certificate renewal does: a new file renamed into place.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A reqwest client trusting `ca`, presenting `identity` if given; every request makes a new
/// connection (a handshake), so a renewed certificate is seen.
fn https_client(ca: &str, identity: Option<&Leaf>) -> reqwest::Client {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A tonic trace client over TLS.
async fn grpc_client(
    server: &Server,
    ca: &str,
    identity: Option<&Leaf>,
) -> Result<TraceServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    let channel = Channel::from_shared(format!("https://{}", server.grpc))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(TraceServiceClient::new(channel))
}

/// Writes the server's files; returns (cert, key) paths.
fn write_server_files(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    replace_file(&cert, &leaf.cert);
    replace_file(&key, &leaf.key);
    (cert, key)
}

/// A server CA and a clients CA, with the server's files and the clients CA's file written.
struct MtlsFiles {
    ca: Authority,
    clients_ca: Authority,
    cert: PathBuf,
    key: PathBuf,
    client_ca_file: PathBuf,
}

impl MtlsFiles {
    fn write(dir: &Path) -> Self {
        let ca = Authority::new("server CA");
        let clients_ca = Authority::new("clients CA");
        let (cert, key) = write_server_files(dir, &ca.server(false));
        let client_ca_file = dir.join("clients-ca.crt");
        std::fs::write(&client_ca_file, clients_ca.pem()).unwrap();
        Self {
            ca,
            clients_ca,
            cert,
            key,
            client_ca_file,
        }
    }
}

async fn ready(client: &reqwest::Client, server: &Server) -> bool {
    client
        .get(server.api("/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

/// Polls until `ready(client)` is `wanted`; panics after 5 s (the reload promise).
async fn wait_until(client: &reqwest::Client, server: &Server, wanted: bool, what: &str) {
    let started = Instant::now();
    while ready(client, server).await != wanted {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} not seen within 5 s:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_port_speaks_tls_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("skewer test CA");
    let (cert, key) = write_server_files(dir.path(), &ca.server(false));
    let trusted = https_client(&ca.pem(), None);
    let server = Server::start_with_client(
        &dir.path().join("data"),
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--flush-interval-seconds",
            "1",
        ],
        "https",
        trusted.clone(),
    )
    .await;

    // OTLP/HTTP and OTLP/gRPC over TLS; read back over TLS.
    let response = trusted
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request(1, "tls-http").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    grpc_client(&server, &ca.pem(), None)
        .await
        .expect("gRPC over TLS connects")
        .export(trace_request(2, "tls-grpc"))
        .await
        .expect("gRPC export over TLS");
    for n in [1, 2] {
        let path = format!("/api/traces/{}", hex(&trace_id(n)));
        server
            .wait_for("the trace over TLS", Duration::from_secs(30), || async {
                server.get_json(&path).await.0 == 200
            })
            .await;
    }

    // Plain text to a TLS port, and a client trusting another CA, get nothing.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/readyz", server.http))
        .send()
        .await;
    assert!(
        plain.is_err_and(|err| !err.is_status()),
        "plain HTTP answered"
    );
    let other_ca = Authority::new("another CA");
    let untrusting = https_client(&other_ca.pem(), None);
    assert!(
        !ready(&untrusting, &server).await,
        "a client trusting another CA got in"
    );
    assert!(
        grpc_client(&server, &other_ca.pem(), None)
            .await
            .map(drop)
            .is_err(),
        "a gRPC client trusting another CA connected"
    );

    // Renewal: a certificate from the other CA, then an expired one, each seen within 5 s.
    write_server_files(dir.path(), &other_ca.server(false));
    wait_until(&untrusting, &server, true, "the renewed certificate").await;
    assert!(!ready(&trusted, &server).await, "the old CA still verifies");
    write_server_files(dir.path(), &other_ca.server(true));
    wait_until(
        &untrusting,
        &server,
        false,
        "the expired certificate refused by clients",
    )
    .await;
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );

    // A broken renewal (key without its certificate) keeps the last good certificate.
    replace_file(&cert, "not a certificate");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        server.log().contains("TLS certificate not reloaded"),
        "{}",
        server.log()
    );
    write_server_files(dir.path(), &other_ca.server(false));
    wait_until(&untrusting, &server, true, "the repaired certificate").await;
}

#[tokio::test]
async fn with_a_client_ca_only_valid_client_certificates_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let MtlsFiles {
        ca,
        clients_ca,
        cert,
        key,
        client_ca_file,
    } = MtlsFiles::write(dir.path());
    let good = clients_ca.client("checkout", false);
    let server = Server::start_with_client(
        &dir.path().join("data"),
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-client-ca-file",
            client_ca_file.to_str().unwrap(),
        ],
        "https",
        https_client(&ca.pem(), Some(&good)),
    )
    .await;

    let expired = clients_ca.client("checkout", true);
    let stranger = Authority::new("someone else's CA").client("checkout", false);
    for (what, identity, expected) in [
        ("a valid client certificate", Some(&good), true),
        ("no client certificate", None, false),
        ("an expired client certificate", Some(&expired), false),
        ("a certificate from another CA", Some(&stranger), false),
    ] {
        let client = https_client(&ca.pem(), identity);
        assert_eq!(ready(&client, &server).await, expected, "HTTPS with {what}");
        let export = async {
            grpc_client(&server, &ca.pem(), identity)
                .await
                .map_err(|err| err.to_string())?
                .export(trace_request(3, "mtls"))
                .await
                .map_err(|status| status.to_string())
        };
        assert_eq!(export.await.is_ok(), expected, "gRPC with {what}");
    }
}

#[tokio::test]
async fn a_client_certificate_mapped_to_a_tenant_acts_for_that_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let MtlsFiles {
        ca,
        clients_ca,
        cert,
        key,
        client_ca_file,
    } = MtlsFiles::write(dir.path());
    let config = dir.path().join("skewer.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nclient_ca_file = {client_ca_file:?}\n\n\
             [[tls.client_tenants]]\ncommon_name = \"collector\"\ntenant = \"shop\"\nscopes = [\"ingest\"]\n\n\
             [[tls.client_tenants]]\ncommon_name = \"dashboard\"\ntenant = \"shop\"\nscopes = [\"query\"]\n"
        ),
    )
    .unwrap();
    // A key exists, so requests need a credential: a key or a mapped certificate.
    let data_dir = dir.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["keys", "create", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--tenant", "other", "--scope", "ingest,query"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let other_key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let collector = clients_ca.client("collector", false);
    let dashboard = clients_ca.client("dashboard", false);
    let unmapped = clients_ca.client("checkout", false);
    let server = Server::start_with_client(
        &data_dir,
        &["--config", config.to_str().unwrap()],
        "https",
        https_client(&ca.pem(), Some(&dashboard)),
    )
    .await;

    // The collector's certificate exports without a key, into its tenant only.
    let export = |identity: &Leaf, tenant: Option<&'static str>, key: Option<String>, n: u64| {
        let server = &server;
        let ca = ca.pem();
        let identity = Leaf {
            cert: identity.cert.clone(),
            key: identity.key.clone(),
        };
        async move {
            let mut request = tonic::Request::new(trace_request(n, "mtls-tenant"));
            if let Some(tenant) = tenant {
                request
                    .metadata_mut()
                    .insert("x-scope-orgid", tenant.parse().unwrap());
            }
            if let Some(key) = key {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {key}").parse().unwrap());
            }
            match grpc_client(server, &ca, Some(&identity))
                .await
                .unwrap()
                .export(request)
                .await
            {
                Ok(_) => tonic::Code::Ok,
                Err(status) => status.code(),
            }
        }
    };
    assert_eq!(export(&collector, None, None, 1).await, tonic::Code::Ok);
    assert_eq!(
        export(&collector, Some("shop"), None, 2).await,
        tonic::Code::Ok
    );
    assert_eq!(
        export(&collector, Some("other"), None, 3).await,
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        export(&collector, None, Some(other_key.clone()), 4).await,
        tonic::Code::PermissionDenied,
        "a key of another tenant on a mapped connection"
    );
    assert_eq!(
        export(&unmapped, None, None, 5).await,
        tonic::Code::Unauthenticated,
        "an unmapped certificate is no credential"
    );
    let https = |identity: &Leaf| https_client(&ca.pem(), Some(identity));
    let posted = https(&collector)
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request(6, "mtls-tenant").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    // The dashboard's certificate reads that tenant; the collector's does not read.
    let trace = format!("/api/traces/{}", hex(&trace_id(1)));
    let status_of = |client: reqwest::Client, tenant: Option<&'static str>| {
        let url = server.api(&trace);
        async move {
            let mut request = client.get(url);
            if let Some(tenant) = tenant {
                request = request.header("x-scope-orgid", tenant);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    let started = Instant::now();
    while status_of(https(&dashboard), None).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "shop's trace never readable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of(https(&dashboard), Some("other")).await, 403);
    assert_eq!(status_of(https(&collector), None).await, 403);
    assert_eq!(status_of(https(&unmapped), None).await, 401);
    // The other tenant's key does not see shop's trace.
    let with_key = https(&unmapped)
        .get(server.api(&trace))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 404);
}

#[tokio::test]
async fn one_host_cannot_hold_the_handshake_slots() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("skewer test CA");
    let (cert, key) = write_server_files(dir.path(), &ca.server(false));
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "[connections]\nmax_connections_per_address = 3\n").unwrap();
    let trusted = https_client(&ca.pem(), None);
    let server = Server::start_with_client(
        &dir.path().join("data"),
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        "https",
        trusted.clone(),
    )
    .await;
    // One host opens 40 connections and never says hello: three wait in their handshake, the
    // rest are closed at once.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(connect_from([127, 0, 0, 2], server.otlp_http_addr()).await);
    }
    let mut closed = 0;
    for mut stream in silent.drain(3..) {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await;
        closed += usize::from(matches!(read, Ok(Ok(0) | Err(_))));
    }
    assert_eq!(
        closed, 37,
        "past its share, a host's connections are closed"
    );
    // Another client is served meanwhile.
    let response = trusted
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request(1, "tls-other").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
