//! Backup under load, restore into a fresh directory, and the same answers from a server on
//! the restored directory for everything acknowledged before the backup began; `check` on the
//! restored directory finds nothing wrong, and `check --repair` refuses a directory in use.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::fixtures::{hex, logs_request, metrics_request, trace_id, trace_request};
use crate::harness::Server;

/// Runs `skewer ARGS…` (quiet logs) to its end.
pub fn skewer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(args)
        .env("SKEWER_LOG", "warn")
        .output()
        .expect("run skewer")
}

/// Everything the API says about the data acknowledged before the backup.
async fn answers(server: &Server, traces: u64) -> Vec<serde_json::Value> {
    let mut answers = Vec::new();
    for n in 0..traces {
        let (status, trace) = server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(n))))
            .await;
        assert_eq!(status, 200, "trace {n}");
        answers.push(trace);
        let (_, logs) = server
            .get_json(&format!("/api/logs?correlation_id=backup-{n}"))
            .await;
        answers.push(logs);
    }
    let (_, points) = server
        .get_json("/api/metrics/points?name=backup.requests")
        .await;
    answers.push(points);
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--flush-interval-seconds",
        "1",
        "--log-commit-interval-seconds",
        "1",
        "--compaction-interval-seconds",
        "1",
    ];
    let server = Server::start(&data, &args).await;
    const ACKED: u64 = 40;
    let mut traces = server.trace_client().await;
    let mut logs = server.logs_client().await;
    for n in 0..ACKED {
        traces.export(trace_request(n, "backup")).await.unwrap();
        logs.export(logs_request(n, "backup", &format!("backup-{n}")))
            .await
            .unwrap();
        if n % 10 == 9 {
            // Let some of it reach files (and compaction) before the backup.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    server
        .metrics_client()
        .await
        .export(metrics_request("backup.", 0))
        .await
        .unwrap();
    let before = answers(&server, ACKED).await;

    // Load keeps flowing while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        let mut traces = traces.clone();
        let mut logs = logs.clone();
        tokio::spawn(async move {
            let mut n = 1_000;
            while !stop.load(Ordering::Relaxed) {
                let _ = traces.export(trace_request(n, "busy")).await;
                let _ = logs
                    .export(logs_request(n, "busy", &format!("busy-{n}")))
                    .await;
                n += 1;
            }
            n - 1_000
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup_dir = dir.path().join("backup");
    let backup = skewer(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        backup_dir.to_str().unwrap(),
    ]);
    assert!(
        backup.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&backup.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    let busy = load.await.unwrap();
    assert!(busy > 0, "the load ran during the backup");

    let in_use = skewer(&["check", "--data-dir", data.to_str().unwrap(), "--repair"]);
    assert!(
        !in_use.status.success(),
        "--repair must refuse a directory a server uses"
    );
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("in use"));

    let restored = dir.path().join("restored");
    let restore = skewer(&[
        "restore",
        "--from",
        backup_dir.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(
        restore.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let check = skewer(&["check", "--data-dir", restored.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check of the restored dir: {report}"
    );
    assert!(report.contains("no problems"), "{report}");

    let copy = Server::start(&restored, &args).await;
    let after = answers(&copy, ACKED).await;
    assert_eq!(after.len(), before.len());
    for (index, (a, b)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a, b, "answer {index} differs after restore");
    }
    drop(server);
}
