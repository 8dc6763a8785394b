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
async fn slow_uploads_hold_only_what_they_sent_and_are_cut_while_exports_go_on() {
    const BUDGET: u64 = 4_000_000;
    const DECLARED: u64 = 500_000;
    const UPLOADS: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;

    // Slow uploads: each declares a body worth an eighth of the budget, sends its first bytes
    // and stalls. Declared lengths are not charged: together they would be fifteen budgets.
    let mut uploading = Vec::new();
    for _ in 0..UPLOADS {
        let mut stream = TcpStream::connect(server.otlp_http_addr()).await.unwrap();
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nhost: skewer\r\ncontent-type: application/json\r\n\
             content-length: {DECLARED}\r\n\r\n{{\"resourceLogs\""
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        uploading.push(stream);
    }
    let started = tokio::time::Instant::now();
    let used = budget_used(&server).await;
    assert!(
        used < 100_000,
        "{UPLOADS} stalled uploads hold {used} bytes"
    );

    // Everyone else goes on, over HTTP and gRPC.
    let http = reqwest::Client::new();
    let mut grpc = server.trace_client().await;
    for n in 0..5 {
        let response = http
            .post(server.otlp_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(trace_request(n, "during").encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        grpc.export(trace_request(100 + n, "during")).await.unwrap();
    }

    // Past the rate grace (5 s), each stalled upload is answered 408 and closed.
    let mut answers = tokio::task::JoinSet::new();
    for mut stream in uploading {
        answers.spawn(async move {
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
                .await
                .map(|_| String::from_utf8_lossy(&answer).into_owned())
        });
    }
    while let Some(answer) = answers.join_next().await {
        let answer = answer.unwrap().expect("a stalled upload must be cut");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("too slow"), "{answer}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(10),
        "cut after {elapsed:?}"
    );
    // What is left is the accepted exports' records, buffered until their flush.
    let used = budget_used(&server).await;
    assert!(used < 100_000, "{used} bytes still held");
}

#[tokio::test]
async fn overload_is_always_answered_never_a_dropped_connection() {
    const BUDGET: u64 = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;
    // 2 MiB exports, sixteen at a time: most are refused before their body is read.
    let mut request = trace_request(1, "big");
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    let span = spans[0].clone();
    spans.extend(std::iter::repeat_n(span, 8000));
    let body = request.encode_to_vec();
    assert!(body.len() > 2 << 20, "{}", body.len());
    // A connection per request: what is checked is the answer to a refusal sent while the body
    // is still on its way, not how a client reuses connections.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, url, body) = (client.clone(), server.otlp_url("/v1/traces"), body.clone());
        sends.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..6 {
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body.clone())
                    .send()
                    .await;
                statuses.push(
                    sent.map(|response| response.status().as_u16())
                        .map_err(|err| format!("{err:?}")),
                );
            }
            statuses
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(statuses) = sends.join_next().await {
        for status in statuses.unwrap() {
            match status {
                Ok(200) => accepted += 1,
                Ok(429) => refused += 1,
                other => panic!("an overloaded export got {other:?}"),
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}
