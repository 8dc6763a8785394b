//! Nothing acknowledged is lost: `kill -9` right after the last ack, restart, all there;
//! a torn WAL tail is cut and the server starts.

use std::io::Write;

use crate::fixtures::{hex, logs_request, metrics_request, trace_id, trace_request};
use crate::harness::Server;

#[tokio::test]
async fn kill_9_after_the_last_ack_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]).await;
    const BATCHES: u64 = 40;
    let mut traces = server.trace_client().await;
    let mut logs = server.logs_client().await;
    for n in 0..BATCHES {
        traces.export(trace_request(n, "crash")).await.unwrap();
        logs.export(logs_request(n, "crash", &format!("crash-{n}")))
            .await
            .unwrap();
    }
    server
        .metrics_client()
        .await
        .export(metrics_request("crash.", 0))
        .await
        .unwrap();
    server.kill9();

    server.restart().await;
    for n in 0..BATCHES {
        let (status, body) = server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(n))))
            .await;
        assert_eq!(status, 200, "trace {n} lost:\n{}", server.log());
        assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(2));
        let (_, logs) = server
            .get_json(&format!("/api/logs?correlation_id=crash-{n}"))
            .await;
        assert_eq!(logs["count"], 1, "log {n} lost");
    }
    let (_, points) = server
        .get_json("/api/metrics/points?name=crash.requests")
        .await;
    assert_eq!(
        points["series"][0]["points"].as_array().map(Vec::len),
        Some(1)
    );

    // A second crash after replay must not duplicate anything.
    server.kill9();
    server.restart().await;
    let (_, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(3))))
        .await;
    assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(2));
    let (_, logs) = server.get_json("/api/logs?service=crash&limit=1000").await;
    assert_eq!(logs["count"], 2 * BATCHES);
}

#[tokio::test]
async fn a_torn_wal_tail_is_truncated_and_the_rest_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]).await;
    let mut traces = server.trace_client().await;
    for n in 0..5 {
        traces.export(trace_request(n, "torn")).await.unwrap();
    }
    server.kill9();

    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a WAL segment");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .unwrap();
    // A record header promising more bytes than follow: a write torn by the crash.
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(file);

    server.restart().await;
    assert!(server.log().contains("torn record"), "{}", server.log());
    for n in 0..5 {
        assert_eq!(
            server
                .get_json(&format!("/api/traces/{}", hex(&trace_id(n))))
                .await
                .0,
            200
        );
    }
    server
        .trace_client()
        .await
        .export(trace_request(99, "after"))
        .await
        .unwrap();
    server.kill9();
    server.restart().await;
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(99))))
            .await
            .0,
        200,
        "appends after a repaired tail survive the next crash"
    );
}

#[tokio::test]
async fn an_idle_signal_does_not_pin_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--wal-segment-max-bytes",
            "4096",
            "--flush-interval-seconds",
            "1",
        ],
    )
    .await;
    let mut traces = server.trace_client().await;
    for n in 0..40 {
        traces
            .export(trace_request(n, "only-traces"))
            .await
            .unwrap();
    }
    let segments = || {
        std::fs::read_dir(data.join("wal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "wal")
            })
            .count()
    };
    let written = segments();
    let start = std::time::Instant::now();
    while segments() > 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "WAL still holds {} segments (of {written}) with logs and metrics idle:\n{}",
            segments(),
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(7))))
            .await
            .0,
        200,
        "flushed spans are still found"
    );
}
