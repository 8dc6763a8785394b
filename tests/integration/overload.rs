//! Overload is an answer, not a drop: with a tiny memory budget the server answers gRPC
//! UNAVAILABLE and HTTP 429 with Retry-After, and its budget gauge never passes the limit.

use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::trace_request;
use crate::harness::Server;

const BUDGET: u64 = 200_000;

#[tokio::test]
async fn a_full_budget_gets_retryable_answers_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--max-buffered-bytes",
            &budget,
            "--flush-interval-seconds",
            "3600",
            "--flush-max-bytes",
            "100000000",
        ],
    )
    .await;
    let mut client = server.trace_client().await;
    let mut unavailable = 0;
    for n in 0..400 {
        match client.export(trace_request(n, "load")).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
                unavailable += 1;
            }
        }
    }
    assert!(unavailable > 0, "a 200 kB budget must fill up");

    // The flusher frees the budget under pressure, so keep the load on until it is refused.
    let http = reqwest::Client::new();
    let mut refused = None;
    for n in 0..4000 {
        let response = http
            .post(server.otlp_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(trace_request(1000 + n, "load").encode_to_vec())
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("HTTP load must hit the budget");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");

    let used = budget_used(&server).await;
    assert!(used <= BUDGET, "used {used} > budget {BUDGET}");
    assert!(
        self_metrics(&server)
            .await
            .contains("skewer_ingest_requests_total{signal=\"traces\",outcome=\"retryable\"}")
    );
    assert_eq!(server.get_json("/healthz").await.0, 200);
}

async fn self_metrics(server: &Server) -> String {
    server.self_metrics().await
}

/// The budget gauge from `/metrics`.
async fn budget_used(server: &Server) -> u64 {
    self_metrics(server)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("skewer_memory_budget_used_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("budget gauge")
}

#[tokio::test]
async fn bodies_still_being_received_count_against_the_budget() {
    const BUDGET: u64 = 4_000_000;
    const DECLARED: u64 = 500_000;
    let dir = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;

    // Slow uploads: each declares a body and sends only its first bytes.
    let mut uploading = Vec::new();
    let mut refused = None;
    for n in 0..12 {
        let mut stream = TcpStream::connect(server.otlp_http_addr()).await.unwrap();
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nhost: skewer\r\ncontent-type: application/json\r\n\
             content-length: {DECLARED}\r\n\r\n{{\"resourceLogs\""
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut answer)).await {
            Err(_) => uploading.push(stream),
            Ok(read) => {
                let read = read.unwrap();
                refused = Some((n, String::from_utf8_lossy(&answer[..read]).into_owned()));
                break;
            }
        }
    }
    let (n, answer) = refused.expect("uploads must run out of budget");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(n >= 2, "refused at upload {n}: the budget holds several");
    let used = budget_used(&server).await;
    assert!(
        used >= n as u64 * DECLARED && used <= BUDGET,
        "{n} uploads in flight hold {used} bytes"
    );

    // Uploads that end (here: abandoned) give their bytes back.
    drop(uploading);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while budget_used(&server).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "budget not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request(1, "after").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
