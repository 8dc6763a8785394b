//! A second S3-compatible server: s3s-fs (`cargo install s3s-fs@0.14.1 --features binary`), which
//! keeps objects as files on disk and checks request signatures, unlike moto. A node's spans,
//! metrics and log partitions land on its disk and a node on an empty data directory answers
//! for them; refused credentials and a missing bucket fail the start saying what to check.
//! Skipped where s3s-fs is not installed (`SKEWER_S3S_FS` names the binary, else `s3s-fs` on
//! the PATH), unless `SKEWER_REQUIRE_S3S_FS=1`. One writer at a time: s3s-fs's conditional
//! puts are not atomic under concurrent writers.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures::{self, trace_request};
use crate::harness::{Peer, Server, free_addr};
use crate::object_store::{log_lines, spans_of};

const ACCESS_KEY: &str = "skewer-test";
const SECRET_KEY: &str = "s3s-secret";

struct S3sFs {
    _process: Peer,
    addr: std::net::SocketAddr,
    root: PathBuf,
}

impl S3sFs {
    async fn start(dir: &Path) -> Option<Self> {
        let binary = std::env::var("SKEWER_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let required = std::env::var("SKEWER_REQUIRE_S3S_FS").is_ok_and(|v| v == "1");
        let installed = Command::new(&binary)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !installed {
            assert!(
                !required,
                "SKEWER_REQUIRE_S3S_FS=1 but {binary} does not run \
                 (cargo install s3s-fs@0.14.1 --features binary)"
            );
            eprintln!("SKIPPED: no s3s-fs on this machine");
            return None;
        }
        let root = dir.join("s3s-root");
        std::fs::create_dir_all(&root).unwrap();
        let addr = free_addr();
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root);
        let process = Peer::start_listening(command, &dir.join("s3s-fs.log"), addr).await;
        Some(Self {
            _process: process,
            addr,
            root,
        })
    }

    /// A bucket is a directory of the root.
    fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).unwrap();
    }

    /// A configuration file for `bucket` with `secret`.
    fn config(&self, dir: &Path, bucket: &str, secret: &str) -> String {
        let which = if secret == SECRET_KEY {
            "right"
        } else {
            "wrong"
        };
        let path = dir.join(format!("s3s-{bucket}-{which}-secret.toml"));
        std::fs::write(
            &path,
            format!(
                "[storage]\nurl = \"s3://{bucket}/team\"\nendpoint = \"http://{}\"\n\
                 region = \"us-east-1\"\npath_style = true\naccess_key_id = \"{ACCESS_KEY}\"\n\
                 secret_access_key = \"{secret}\"\nretry_timeout_seconds = 5\n",
                self.addr
            ),
        )
        .unwrap();
        path.display().to_string()
    }

    /// Files under the bucket's directory, relative to it.
    fn files(&self, bucket: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, found);
                } else {
                    found.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let base = self.root.join(bucket);
        let mut found = Vec::new();
        walk(&base, &base, &mut found);
        found
    }
}

#[tokio::test]
async fn a_node_on_s3s_fs_keeps_its_data_there_and_a_new_node_answers_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3s) = S3sFs::start(dir.path()).await else {
        return;
    };
    s3s.create_bucket("skewer");
    let config = s3s.config(dir.path(), "skewer", SECRET_KEY);
    let mut first = Server::start(&dir.path().join("first"), &["--config", &config]).await;
    let mut traces = first.trace_client().await;
    let mut logs = first.logs_client().await;
    for n in 1..=3 {
        traces.export(trace_request(n, "checkout")).await.unwrap();
        logs.export(fixtures::logs_request(n, "checkout", &format!("req-{n}")))
            .await
            .unwrap();
    }
    // A graceful stop flushes the spans and uploads the last log commit.
    assert!(first.terminate().await.success(), "{}", first.log());
    let files = s3s.files("skewer");
    for wanted in [".parquet", ".traceids", "log-replicas/default/"] {
        assert!(
            files.iter().any(|file| file.contains(wanted)),
            "no {wanted} on s3s-fs's disk: {files:?}"
        );
    }

    let second = Server::start(&dir.path().join("second"), &["--config", &config]).await;
    for n in 1..=3 {
        assert_eq!(spans_of(&second, n).await, 2, "trace {n}");
    }
    assert_eq!(log_lines(&second).await, 6, "two records a request");
}

/// `skewer serve` on `config`: its exit status and standard error.
fn serve_fails(dir: &Path, config: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["serve", "--config", config, "--data-dir"])
        .arg(dir)
        .args(["--http-addr", &free_addr().to_string()])
        .args(["--otlp-grpc-addr", &free_addr().to_string()])
        .args(["--otlp-http-addr", &free_addr().to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success(), "the start should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn refused_credentials_and_a_missing_bucket_fail_the_start_saying_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3s) = S3sFs::start(dir.path()).await else {
        return;
    };
    s3s.create_bucket("skewer");
    let wrong = s3s.config(dir.path(), "skewer", "not-the-secret");
    let stderr = serve_fails(&dir.path().join("wrong"), &wrong);
    assert!(
        stderr.contains("the store refused the credentials")
            && stderr.contains("SignatureDoesNotMatch"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-secret"),
        "the secret is never printed: {stderr}"
    );
    let missing = s3s.config(dir.path(), "absent", SECRET_KEY);
    let stderr = serve_fails(&dir.path().join("missing"), &missing);
    assert!(stderr.contains("the bucket does not exist"), "{stderr}");
}

#[tokio::test]
async fn credentials_come_from_the_shared_credentials_file_when_nothing_else_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3s) = S3sFs::start(dir.path()).await else {
        return;
    };
    s3s.create_bucket("skewer");
    // The configuration names no key: the profile in the file does.
    let config = dir.path().join("no-keys.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"s3://skewer/team\"\nendpoint = \"http://{}\"\n\
             region = \"us-east-1\"\npath_style = true\nretry_timeout_seconds = 5\n",
            s3s.addr
        ),
    )
    .unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\
             [skewer]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let http = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", &http.to_string()])
        .args(["--otlp-grpc-addr", &free_addr().to_string()])
        .args(["--otlp-http-addr", &free_addr().to_string()])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_PROFILE", "skewer")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ready = loop {
        let answered = reqwest::get(format!("http://{http}/readyz"))
            .await
            .is_ok_and(|response| response.status() == 200);
        if answered || std::time::Instant::now() > deadline {
            break answered;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the node signed with the profile's keys and started");
}
