//! The query API's bounds and manners through the binary: a query past its row limit is
//! answered 422 with a clear message (a trace view is cut instead), responses are gzipped when
//! asked, every response carries a request id, and a metric query without a time range covers
//! the recent past.

use crate::fixtures::{hex, metrics_request, trace_id, trace_request};
use crate::harness::Server;

#[tokio::test]
async fn a_query_past_its_row_limit_is_answered_422_and_a_trace_view_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &["--query-max-rows", "1"]).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "limits")).await.unwrap();
    // Summaries are kept at ingest: listing the trace reads none of its spans.
    let summaries = "/api/v3/trace-summaries?query.service_name=limits\
        &query.start_time_min=2000-01-01T00:00:00Z&query.start_time_max=2100-01-01T00:00:00Z";
    let (status, body) = server.get_json(summaries).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"][0]["spanCount"], 2, "{body}");
    // Sent again after a restart (a retry), the trace is in a file and in the buffer: its
    // summary is counted from its spans, and two rows are past the limit.
    server.terminate().await;
    server.restart().await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "limits")).await.unwrap();
    let (status, body) = server.get_json(summaries).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("more than 1 rows"), "{message}");
    // A trace view shows what fits and says why the rest is missing.
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["spans"].as_array().unwrap().len(), 1);
    let warning = body["data"][0]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("stopped at 1 spans") && warning.contains("max_rows"),
        "{warning}"
    );
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

#[tokio::test]
async fn stored_metrics_are_listed_with_kind_unit_and_services() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let mut client = server.metrics_client().await;
    client.export(metrics_request("listed.", 0)).await.unwrap();
    let (status, body) = server.get_json("/api/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["complete"], true);
    let metrics = body["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "listed.gauge",
            "listed.latency",
            "listed.requests",
            "listed.rpc",
            "listed.sizes"
        ]
    );
    let requests = &metrics[2];
    assert_eq!(requests["kind"], "sum");
    assert_eq!(requests["unit"], "1");
    assert_eq!(requests["is_monotonic"], true);
    assert_eq!(requests["temporality"], "cumulative");
    assert_eq!(requests["services"], serde_json::json!(["metrics-svc"]));
    assert_eq!(requests["points"], 1);
    assert_eq!(metrics[1]["kind"], "histogram");
    // Outside the range asked for: nothing.
    let (_, body) = server.get_json("/api/metrics?start=1&end=2").await;
    assert_eq!(body["metrics"], serde_json::json!([]), "{body}");
    let (status, _) = server.get_json("/api/metrics?start=5&end=2").await;
    assert_eq!(status, 400);
}
