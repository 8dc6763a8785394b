//! Span and metric files in an S3-compatible bucket (moto's server, from PyPI, on a loopback
//! port): what a node flushes lands in the bucket, not the data directory, and a node started
//! later on an empty data directory answers for it; a kill before the flush loses nothing
//! acknowledged; a missing bucket fails the start with the store's own words. `.ci/run`
//! installs moto; elsewhere these tests are skipped with a notice unless
//! `SKEWER_REQUIRE_MOTO=1` (CI sets it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::fixtures::{hex, metrics_request, trace_id, trace_request};
use crate::harness::{Peer, Server, free_addr};

/// moto's S3 server; killed on drop.
pub struct Moto {
    _process: Peer,
    addr: std::net::SocketAddr,
}

impl Moto {
    pub async fn start(dir: &Path) -> Option<Self> {
        let python = std::env::var("SKEWER_PYTHON").unwrap_or_else(|_| "python3".into());
        let required = std::env::var("SKEWER_REQUIRE_MOTO").is_ok_and(|v| v == "1");
        let installed = Command::new(&python)
            .args(["-c", "import moto.server"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !installed {
            assert!(
                !required,
                "SKEWER_REQUIRE_MOTO=1 but {python} cannot import moto.server (pip install 'moto[server]')"
            );
            eprintln!("SKIPPED: no moto on this machine (pip install 'moto[server]')");
            return None;
        }
        let addr = free_addr();
        let mut command = Command::new(&python);
        command.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
        ]);
        let process = Peer::start(command, &dir.join("moto.log"), &format!("http://{addr}/")).await;
        Some(Self {
            _process: process,
            addr,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }

    /// The keys under `prefix` in `bucket`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let body = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

/// A config file naming `bucket/team` on moto.
pub fn config_file(dir: &Path, moto: &Moto, bucket: &str) -> String {
    let path = dir.join("s3.toml");
    std::fs::write(
        &path,
        format!(
            "[storage]\nurl = \"s3://{bucket}/team\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             path_style = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
             retry_timeout_seconds = 5\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Files under `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.display().to_string().ends_with(suffix) {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Log lines `server` answers for every service over the hours around the fixtures' times.
pub async fn log_lines(server: &Server) -> usize {
    let query = form_urlencoded::byte_serialize(br#"{service_name=~".+"}"#).collect::<String>();
    let start = crate::fixtures::t0() - 3_600_000_000_000;
    let (status, body) = server
        .get_json(&format!(
            "/loki/api/v1/query_range?query={query}&start={start}&limit=1000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stream| stream["values"].as_array().unwrap().len())
        .sum()
}

pub async fn spans_of(server: &Server, trace: u64) -> usize {
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(trace))))
        .await;
    match status {
        200 => body["data"][0]["spans"].as_array().map_or(0, Vec::len),
        _ => 0,
    }
}

#[tokio::test]
async fn flushed_files_go_to_the_bucket_and_a_node_started_later_answers_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("skewer").await;
    let config = config_file(dir.path(), &moto, "skewer");
    let first_dir = dir.path().join("first");
    let mut first = Server::start(&first_dir, &["--config", &config]).await;
    let mut traces = first.trace_client().await;
    for n in 1..=3 {
        traces.export(trace_request(n, "checkout")).await.unwrap();
    }
    first
        .metrics_client()
        .await
        .export(metrics_request("bucket.", 0))
        .await
        .unwrap();
    assert!(first.terminate().await.success(), "{}", first.log());

    let keys = moto.keys("skewer", "team/").await;
    for suffix in [
        ".parquet",
        ".traces",
        ".traceids",
        ".summary.json",
        ".series",
    ] {
        assert!(
            keys.iter().any(|key| key.ends_with(suffix)),
            "no {suffix} in the bucket: {keys:?}"
        );
    }
    assert!(
        keys.iter()
            .all(|key| key.starts_with("team/tenants/") || key.starts_with("team/nodes/")),
        "data under the tenants' prefix, beside the node's heartbeat: {keys:?}"
    );
    assert_eq!(
        files_ending(&first_dir, ".parquet"),
        Vec::<String>::new(),
        "no data file in the data directory"
    );

    // Another node, its own empty data directory, the same bucket; the bucket's tenant
    // counts toward its tenant cap.
    let capped = format!(
        "{}\n[limits]\nmax_tenants = 1\n",
        std::fs::read_to_string(&config).unwrap()
    );
    let capped_path = dir.path().join("capped.toml");
    std::fs::write(&capped_path, capped).unwrap();
    let second = Server::start(
        &dir.path().join("second"),
        &["--config", capped_path.to_str().unwrap()],
    )
    .await;
    let refused = reqwest::Client::new()
        .post(second.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", "newcomer")
        .body(prost::Message::encode_to_vec(&trace_request(9, "svc")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        429,
        "the default tenant in the bucket fills the cap"
    );
    for n in 1..=3 {
        assert_eq!(spans_of(&second, n).await, 2, "trace {n}");
    }
    let (status, body) = second
        .get_json(
            "/api/v3/trace-summaries?query.service_name=checkout\
             &query.start_time_min=2000-01-01T00:00:00Z&query.start_time_max=2100-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(body["summaries"][0]["spanCount"], 2, "{body}");
    let (status, body) = second
        .get_json("/api/metrics/points?name=bucket.gauge")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"].as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test]
async fn a_kill_before_the_flush_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("crash").await;
    let config = config_file(dir.path(), &moto, "crash");
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir, &["--config", &config]).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(7, "checkout")).await.unwrap();
    server.kill9();
    server.restart().await;
    assert_eq!(spans_of(&server, 7).await, 2, "replayed from the WAL");
    assert!(server.terminate().await.success(), "{}", server.log());
    assert!(
        moto.keys("crash", "team/")
            .await
            .iter()
            .any(|key| key.ends_with(".parquet")),
        "flushed to the bucket"
    );
}

#[tokio::test]
async fn a_missing_bucket_fails_the_start_with_the_stores_words() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    let config = config_file(dir.path(), &moto, "nobody");
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["serve", "--config", &config, "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--otlp-grpc-addr", &free_addr().to_string()])
        .args(["--otlp-http-addr", &free_addr().to_string()])
        .args(["--http-addr", &free_addr().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        stderr.contains("object store s3://nobody/team unavailable")
            && stderr.contains("NoSuchBucket"),
        "{stderr}"
    );
}
