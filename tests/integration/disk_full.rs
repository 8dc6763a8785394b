//! A full disk through the binary: on a small tmpfs filled to the last byte, exports get the
//! retryable answer (gRPC UNAVAILABLE, HTTP 503 with Retry-After), `/readyz` says why, nothing
//! acknowledged is lost, and ingest resumes by itself once space returns.
//!
//! Mounting needs CAP_SYS_ADMIN (root in CI); where it is refused the test says so and stops.
//! The same recovery is tested everywhere with an injected I/O error in the WAL's unit tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixtures::{hex, trace_id, trace_request};
use crate::harness::Server;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u64) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

async fn found(server: &Server, n: u64) -> bool {
    server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(n))))
        .await
        .0
        == 200
}

#[tokio::test]
async fn a_full_disk_is_answered_retryable_and_ingest_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("fs"), 96) else {
        eprintln!("skipped: mounting a tmpfs is not permitted here");
        return;
    };
    let data = fs.dir.join("data");
    let mut server = Server::start(&data, &["--flush-interval-seconds", "1"]).await;
    let mut traces = server.trace_client().await;
    let mut acknowledged = Vec::new();
    traces.export(trace_request(0, "disk")).await.unwrap();
    acknowledged.push(0);

    let filler = fill(&fs.dir);
    // Appends into the WAL's last page may still fit; one soon fails.
    let mut refused = None;
    for n in 1..500 {
        match traces.export(trace_request(n, "disk")).await {
            Ok(_) => acknowledged.push(n),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a full disk refuses exports");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let http = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&trace_request(9_999, "disk")))
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 503);
    assert!(http.headers().contains_key("retry-after"));
    let ready = reqwest::get(server.api("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    for &n in &acknowledged {
        assert!(
            found(&server, n).await,
            "acknowledged trace {n} must stay queryable"
        );
    }

    std::fs::remove_file(filler).unwrap();
    let resumed = 10_000;
    server
        .wait_for("exports accepted again", Duration::from_secs(20), || {
            let mut traces = traces.clone();
            async move { traces.export(trace_request(resumed, "disk")).await.is_ok() }
        })
        .await;
    acknowledged.push(resumed);
    server
        .wait_for("/readyz healthy again", Duration::from_secs(60), || async {
            reqwest::get(server.api("/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    drop(traces);
    assert_eq!(server.terminate().await.code(), Some(0));
    server.restart().await;
    for &n in &acknowledged {
        assert!(
            found(&server, n).await,
            "trace {n} lost across the full disk and a restart"
        );
    }
    server.kill9();
    drop(fs);
}
