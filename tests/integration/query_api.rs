//! The query API's bounds and manners through the binary: a query past its row limit is
//! answered 422 with a clear message, responses are gzipped when asked, every response carries
//! a request id, and a metric query without a time range covers the recent past.

use crate::fixtures::{hex, metrics_request, trace_id, trace_request};
use crate::harness::Server;

#[tokio::test]
async fn a_query_past_its_row_limit_is_answered_422() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--query-max-rows", "1"]).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "limits")).await.unwrap();
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["errors"][0]["msg"].as_str().unwrap();
    assert!(message.contains("more than 1 rows"), "{message}");
    assert_eq!(body["errors"][0]["code"], 422);
}

#[tokio::test]
async fn responses_are_compressed_and_carry_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    server
        .metrics_client()
        .await
        .export(metrics_request("recent.", 0))
        .await
        .unwrap();
    let client = reqwest::Client::builder().build().unwrap();
    let response = client
        .get(server.api("/api/metrics/points?name=recent.gauge"))
        .header("accept-encoding", "gzip")
        .header("x-request-id", "test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["x-request-id"], "test-42");
    let compressed = response.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut text,
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    // No start or end: the default range (the last 24 h) holds the point sent two hours ago.
    assert_eq!(body["series"].as_array().map(Vec::len), Some(1), "{body}");
    let plain = client.get(server.api("/healthz")).send().await.unwrap();
    assert_eq!(plain.headers()["x-request-id"].len(), 16);
}
