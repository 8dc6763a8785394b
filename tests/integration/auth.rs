//! API keys through the binary: keys made with `skewer keys create`, then every route group
//! (OTLP over gRPC and HTTP, remote write, each query API, the UI, `/metrics`) asked with no
//! key, a malformed key, an unknown key, a key of the wrong scope, a key for another tenant and
//! the right key; tenants confined to their key; revocation and new keys seen by a running
//! server within 5 seconds; keys never in the server's log or the key file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use prost::Message;
use tonic::metadata::MetadataValue;

use crate::fixtures::{hex, logs_request, metrics_request, trace_id, trace_request};
use crate::harness::Server;

/// Runs `skewer keys …` on `data_dir`; returns its standard output.
fn keys_command(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .arg("keys")
        .arg(args[0])
        .arg("--data-dir")
        .arg(data_dir)
        .args(&args[1..])
        .output()
        .expect("run skewer keys");
    assert!(
        output.status.success(),
        "skewer keys {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// `skewer keys create`; returns the key (the last line of its output).
fn create_key(data_dir: &Path, tenant: &str, scopes: &str) -> String {
    let output = keys_command(
        data_dir,
        &[
            "create", "--tenant", tenant, "--scope", scopes, "--name", "test",
        ],
    );
    let key = output.lines().last().expect("a key line").to_owned();
    assert!(key.starts_with("skw_") && !key.contains(' '), "{output}");
    key
}

/// The key's id, as `keys list` and `keys revoke` name it.
fn key_id(key: &str) -> &str {
    &key[4..20]
}

struct Keys {
    ingest_a: String,
    query_a: String,
    query_b: String,
    query_all: String,
    admin: String,
}

/// How a request presents itself.
#[derive(Debug, Clone, Copy)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    /// Basic auth with the key as password, as Grafana's data sources send it.
    Basic(&'a str),
    Raw(&'a str),
}

impl Credential<'_> {
    fn header(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Bearer(key) => Some(format!("Bearer {key}")),
            Self::Basic(key) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("grafana:{key}"))
            )),
            Self::Raw(value) => Some(value.to_owned()),
        }
    }
}

/// Every case of the matrix for a key-holding route: (what, credential, tenant header,
/// expected status).
fn matrix<'a>(
    right: &'a str,
    wrong_scope: &'a str,
) -> Vec<(&'static str, Credential<'a>, Option<&'static str>, u16)> {
    vec![
        ("no key", Credential::None, None, 401),
        ("malformed", Credential::Raw("Token abc"), None, 401),
        (
            "unknown key",
            Credential::Bearer("skw_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None,
            401,
        ),
        ("wrong scope", Credential::Bearer(wrong_scope), None, 403),
        ("other tenant", Credential::Bearer(right), Some("b"), 403),
        ("right key", Credential::Bearer(right), None, 200),
        (
            "right key, own tenant named",
            Credential::Bearer(right),
            Some("a"),
            200,
        ),
        ("right key as Basic", Credential::Basic(right), None, 200),
    ]
}

async fn get(
    server: &Server,
    path: &str,
    credential: Credential<'_>,
    tenant: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.api(path));
    if let Some(value) = credential.header() {
        request = request.header("authorization", value);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-scope-orgid", tenant);
    }
    request.send().await.expect("query API reachable")
}

async fn post_otlp(
    server: &Server,
    path: &str,
    body: Vec<u8>,
    credential: Credential<'_>,
    tenant: Option<&str>,
) -> reqwest::Response {
    let remote_write = path == "/api/v1/write";
    let mut request = reqwest::Client::new()
        .post(server.otlp_url(path))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if remote_write {
        request = request.header("content-encoding", "snappy");
    }
    if let Some(value) = credential.header() {
        request = request.header("authorization", value);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-scope-orgid", tenant);
    }
    request.send().await.expect("OTLP/HTTP reachable")
}

fn remote_write_body() -> Vec<u8> {
    crate::fixtures::remote_write_body(&[("__name__", "auth_test_total")])
}

fn with_metadata<T>(
    message: T,
    credential: Credential<'_>,
    tenant: Option<&str>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = credential.header() {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", MetadataValue::try_from(tenant).unwrap());
    }
    request
}

/// The gRPC code each export over every OTLP service gets; all three must agree.
async fn grpc_codes(
    server: &Server,
    n: u64,
    credential: Credential<'_>,
    tenant: Option<&str>,
) -> [tonic::Code; 3] {
    let code = |result: Result<(), tonic::Status>| {
        result.err().map_or(tonic::Code::Ok, |status| status.code())
    };
    let traces = server
        .trace_client()
        .await
        .export(with_metadata(
            trace_request(n, "auth-grpc"),
            credential,
            tenant,
        ))
        .await
        .map(drop);
    let logs = server
        .logs_client()
        .await
        .export(with_metadata(
            logs_request(n, "auth-grpc", "corr-auth"),
            credential,
            tenant,
        ))
        .await
        .map(drop);
    let metrics = server
        .metrics_client()
        .await
        .export(with_metadata(
            metrics_request("auth_grpc", n),
            credential,
            tenant,
        ))
        .await
        .map(drop);
    [code(traces), code(logs), code(metrics)]
}

fn grpc_code_for(status: u16) -> tonic::Code {
    match status {
        200 => tonic::Code::Ok,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        other => panic!("no gRPC code for {other}"),
    }
}

async fn start_with_keys(dir: &Path) -> (Server, Keys) {
    let data_dir = dir.join("data");
    let keys = Keys {
        ingest_a: create_key(&data_dir, "a", "ingest"),
        query_a: create_key(&data_dir, "a", "query"),
        query_b: create_key(&data_dir, "b", "query"),
        query_all: create_key(&data_dir, "*", "query"),
        admin: create_key(&data_dir, "*", "admin"),
    };
    let server = Server::start(&data_dir, &["--flush-interval-seconds", "1"]).await;
    (server, keys)
}

#[tokio::test]
async fn every_route_enforces_scope_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys) = start_with_keys(dir.path()).await;

    // Open to all: health and readiness, for probes.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get(&server, path, Credential::None, None).await.status(),
            200,
            "{path}"
        );
    }

    // Ingest: OTLP/gRPC (three services), OTLP/HTTP (three signals) and remote write.
    for (n, (what, credential, tenant, status)) in matrix(&keys.ingest_a, &keys.query_a)
        .into_iter()
        .enumerate()
    {
        let n = n as u64 + 1;
        let expected = grpc_code_for(status);
        assert_eq!(
            grpc_codes(&server, n, credential, tenant).await,
            [expected; 3],
            "gRPC export, {what}"
        );
        let bodies = [
            (
                "/v1/traces",
                trace_request(100 + n, "auth-http").encode_to_vec(),
            ),
            (
                "/v1/logs",
                logs_request(100 + n, "auth-http", "corr-auth").encode_to_vec(),
            ),
            (
                "/v1/metrics",
                metrics_request("auth_http", n).encode_to_vec(),
            ),
            ("/api/v1/write", remote_write_body()),
        ];
        for (path, body) in bodies {
            let response = post_otlp(&server, path, body, credential, tenant).await;
            let expected = match (path, status) {
                ("/api/v1/write", 200) => 204,
                _ => status,
            };
            assert_eq!(response.status().as_u16(), expected, "POST {path}, {what}");
            if expected == 401 {
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "POST {path}, {what}: no challenge"
                );
            }
        }
    }

    // Every read API and the UI with a query key of tenant a.
    let reads = [
        "/api/services",
        "/api/operations?service=auth-grpc",
        "/api/v3/services",
        "/api/search/traces?service=auth-grpc",
        "/api/logs?correlation_id=corr-auth",
        "/api/logs/services",
        "/api/skew",
        "/api/metrics",
        "/api/v1/query?query=up",
        "/api/v1/labels",
        "/api/v1/status/buildinfo",
        "/loki/api/v1/labels",
        "/",
        "/ui/app.css",
    ];
    for path in reads {
        for (what, credential, tenant, status) in matrix(&keys.query_a, &keys.ingest_a) {
            let response = get(&server, path, credential, tenant).await;
            assert_eq!(response.status().as_u16(), status, "GET {path}, {what}");
            if status == 401 {
                let challenge = response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let expected = if path == "/" || path.starts_with("/ui/") {
                    "Basic"
                } else {
                    "Bearer"
                };
                assert!(
                    challenge.starts_with(expected),
                    "GET {path}, {what}: {challenge}"
                );
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(
                    body["error"].as_str().is_some_and(|e| !e.contains("skw_")),
                    "{body}"
                );
            }
        }
    }

    // The server's own metrics cover every tenant: only keys bound to all tenants read them.
    for (key, status) in [
        (&keys.query_a, 403),
        (&keys.ingest_a, 403),
        (&keys.query_all, 200),
        (&keys.admin, 200),
    ] {
        assert_eq!(
            get(&server, "/metrics", Credential::Bearer(key), None)
                .await
                .status(),
            status
        );
    }
    assert_eq!(
        get(&server, "/metrics", Credential::None, None)
            .await
            .status(),
        401
    );

    // Data goes to the key's tenant and is read only by that tenant's keys (or an all-tenants
    // key naming it); an admin key does not read.
    let trace = format!("/api/traces/{}", hex(&trace_id(106)));
    server
        .wait_for(
            "the trace readable by tenant a",
            Duration::from_secs(30),
            || async {
                get(&server, &trace, Credential::Bearer(&keys.query_a), None)
                    .await
                    .status()
                    == 200
            },
        )
        .await;
    assert_eq!(
        get(&server, &trace, Credential::Bearer(&keys.query_b), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        get(
            &server,
            &trace,
            Credential::Bearer(&keys.query_all),
            Some("a")
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        get(&server, &trace, Credential::Bearer(&keys.query_all), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&server, &trace, Credential::Bearer(&keys.admin), Some("a"))
            .await
            .status(),
        403
    );

    // Keys appear nowhere in the clear: not in the log, not in the key file.
    let log = server.log();
    let key_file = std::fs::read_to_string(server.data_dir.join("keys.json")).unwrap();
    for key in [
        &keys.ingest_a,
        &keys.query_a,
        &keys.query_b,
        &keys.query_all,
        &keys.admin,
    ] {
        let secret = &key[21..];
        assert!(!log.contains(secret), "a key is in the server log");
        assert!(!key_file.contains(secret), "a key is in keys.json");
        assert!(key_file.contains(key_id(key)));
    }
}

#[tokio::test]
async fn revoked_keys_stop_and_new_keys_start_working_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys) = start_with_keys(dir.path()).await;
    let data_dir = server.data_dir.clone();
    let ok = |key: String| {
        let server = &server;
        async move {
            get(server, "/api/services", Credential::Bearer(&key), None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(ok(keys.query_a.clone()).await, 200);

    let output = keys_command(&data_dir, &["revoke", key_id(&keys.query_a)]);
    assert!(output.contains("revoked"), "{output}");
    let revoked_at = std::time::Instant::now();
    while ok(keys.query_a.clone()).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "a revoked key still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let codes = grpc_codes(&server, 1, Credential::Bearer(&keys.ingest_a), None).await;
    assert_eq!(codes, [tonic::Code::Ok; 3], "other keys keep working");

    let fresh = create_key(&data_dir, "a", "query");
    let started = std::time::Instant::now();
    while ok(fresh.clone()).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a new key not accepted within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let list = keys_command(&data_dir, &["list"]);
    let revoked_line = list
        .lines()
        .find(|line| line.starts_with(key_id(&keys.query_a)))
        .unwrap();
    assert!(revoked_line.contains("revoked"), "{list}");

    // Backup and restore carry the keys (hashes only), owner-readable only.
    let backup = dir.path().join("backup");
    let restored = dir.path().join("restored");
    for args in [
        vec![
            "backup",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--to",
            backup.to_str().unwrap(),
        ],
        vec![
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(keys_command(&restored, &["list"]), list);
    for copy in [&backup, &restored] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(copy.join("keys.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", copy.display());
    }
}

/// Sends `method path` with an optional JSON body and a bearer key; status and JSON answer.
async fn admin_call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    credential: Credential<'_>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, server.api(path));
    if let Some(value) = credential.header() {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("query API reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn admin_routes_manage_keys_with_an_admin_key_only_and_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys) = start_with_keys(dir.path()).await;
    let list = |credential| {
        admin_call(
            &server,
            reqwest::Method::GET,
            "/api/admin/keys",
            credential,
            None,
        )
    };

    // Only an admin key (bound to every tenant, as admin keys are) gets in.
    for (what, credential, status) in [
        ("no key", Credential::None, 401),
        ("malformed", Credential::Raw("Token abc"), 401),
        (
            "query key of a tenant",
            Credential::Bearer(&keys.query_a),
            403,
        ),
        (
            "query key of every tenant",
            Credential::Bearer(&keys.query_all),
            403,
        ),
        ("ingest key", Credential::Bearer(&keys.ingest_a), 403),
        ("admin key", Credential::Bearer(&keys.admin), 200),
        ("admin key as Basic", Credential::Basic(&keys.admin), 200),
    ] {
        assert_eq!(
            list(credential).await.0,
            status,
            "GET /api/admin/keys, {what}"
        );
    }
    let (_, listed) = list(Credential::Bearer(&keys.admin)).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 5);
    assert!(
        !listed.to_string().contains("sha256"),
        "hashes stay on the server"
    );

    // A key made over HTTP works at once (no wait for the file watcher).
    let (status, made) = admin_call(
        &server,
        reqwest::Method::POST,
        "/api/admin/keys",
        Credential::Bearer(&keys.admin),
        Some(serde_json::json!({"tenant": "a", "scopes": ["ingest"], "name": "ci", "expires": "30d"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(made["scopes"], serde_json::json!(["ingest"]));
    assert!(made["expires"].as_str().is_some());
    assert_eq!(
        grpc_codes(&server, 40, Credential::Bearer(&key), None).await,
        [tonic::Code::Ok; 3]
    );
    // And stops at once when revoked.
    let id = made["id"].as_str().unwrap();
    let (status, revoked) = admin_call(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/admin/keys/{id}"),
        Credential::Bearer(&keys.admin),
        None,
    )
    .await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")));
    assert_eq!(
        grpc_codes(&server, 41, Credential::Bearer(&key), None).await,
        [tonic::Code::Unauthenticated; 3]
    );

    // Bad requests say why; a query key cannot make keys.
    for (body, status, why) in [
        (
            serde_json::json!({"tenant": "a", "scopes": ["root"]}),
            400,
            "unknown variant",
        ),
        (
            serde_json::json!({"tenant": "a", "scopes": []}),
            400,
            "at least one scope",
        ),
        (
            serde_json::json!({"tenant": "a", "scopes": ["admin"]}),
            400,
            "every tenant",
        ),
        (
            serde_json::json!({"tenant": "../x", "scopes": ["query"]}),
            400,
            "tenant",
        ),
        (
            serde_json::json!({"tenant": "a", "scopes": ["query"], "expires": "soon"}),
            400,
            "expires",
        ),
    ] {
        let (got, answer) = admin_call(
            &server,
            reqwest::Method::POST,
            "/api/admin/keys",
            Credential::Bearer(&keys.admin),
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(why),
            "{body}: {answer}"
        );
    }
    let (status, _) = admin_call(
        &server,
        reqwest::Method::POST,
        "/api/admin/keys",
        Credential::Bearer(&keys.query_all),
        Some(serde_json::json!({"tenant": "*", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = admin_call(
        &server,
        reqwest::Method::DELETE,
        "/api/admin/keys/0123456789abcdef",
        Credential::Bearer(&keys.admin),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The new key's secret is in no log.
    assert!(
        !server.log().contains(&key[21..]),
        "a key is in the server log"
    );
    let key_file = std::fs::read_to_string(server.data_dir.join("keys.json")).unwrap();
    assert!(!key_file.contains(&key[21..]));
}
