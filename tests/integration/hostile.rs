//! Hostile and broken clients: exports built to decode into far more memory than they weigh
//! are limited (attributes past the record limits dropped and counted) or refused for good
//! when even decoding them would not fit the budget, and many at once never push the
//! server's memory past its budget.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use crate::fixtures::{hex, trace_id, trace_request};
use crate::harness::Server;

/// Trace `n` whose root span carries `count` empty attributes: two bytes each on the wire
/// (`4a 00`), a whole attribute once decoded.
fn amplified_trace(n: u64, count: usize) -> ExportTraceServiceRequest {
    let mut request = trace_request(n, "amplified");
    let root = &mut request.resource_spans[0].scope_spans[0].spans[0];
    root.attributes
        .extend(std::iter::repeat_n(KeyValue::default(), count));
    request
}

async fn post_protobuf(server: &Server, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn attributes_past_the_record_limit_are_dropped_and_counted_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let extra = 200_000;
    let response = post_protobuf(&server, amplified_trace(1, extra).encode_to_vec()).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    server
        .trace_client()
        .await
        .export(amplified_trace(2, extra))
        .await
        .unwrap();

    let typed = trace_request(1, "x").resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .len();
    for n in [1, 2] {
        let (status, body) = server
            .get_json(&format!("/api/v3/traces/{}", hex(&trace_id(n))))
            .await;
        assert_eq!(status, 200, "{body}");
        let spans = &body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
        let root = spans
            .as_array()
            .unwrap()
            .iter()
            .find(|span| span["name"] == "GET /checkout")
            .expect("root span");
        let kept = root["attributes"].as_array().unwrap().len();
        assert_eq!(kept, 128, "the first 128 attributes are kept");
        assert_eq!(
            root["droppedAttributesCount"],
            (typed + extra - 128) as u64,
            "what was dropped is counted on the span"
        );
    }
    let dropped = server
        .metric("skewer_ingest_limited_total{signal=\"traces\",what=\"attributes\"}")
        .await;
    assert_eq!(dropped as usize, 2 * (typed + extra - 128));
}

#[tokio::test]
async fn an_export_whose_decoding_would_not_fit_the_budget_is_refused_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let budget = (64u64 << 20).to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;
    // 4 MB of protobuf that decodes into ~120 MB of attributes.
    let request = amplified_trace(1, 2_000_000);
    let response = post_protobuf(&server, request.encode_to_vec()).await;
    assert_eq!(response.status(), 413);
    assert!(response.headers().get("retry-after").is_none());
    let text = response.text().await.unwrap();
    assert!(text.contains("smaller parts"), "{text}");

    let status = server
        .trace_client()
        .await
        .export(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");

    // 300 kB of JSON `{}` spans: each a whole span once decoded.
    let spans = vec!["{}"; 150_000].join(",");
    let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let response = reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Ordinary exports go on.
    server
        .trace_client()
        .await
        .export(trace_request(2, "ordinary"))
        .await
        .unwrap();
}

#[tokio::test]
async fn many_amplified_exports_at_once_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget_bytes = 64u64 << 20;
    let budget = budget_bytes.to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;
    // Each: 800 kB that decode into ~30 MB; twelve at once would hold ~360 MB unbudgeted.
    let body = amplified_trace(1, 400_000).encode_to_vec();
    let (rss_before, _) = server.memory_bytes();
    let mut accepted = 0;
    for _round in 0..3 {
        let mut sends = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let request = reqwest::Client::new()
                .post(server.otlp_url("/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(body.clone());
            sends.spawn(async move { request.send().await.unwrap() });
        }
        while let Some(response) = sends.join_next().await {
            let response = response.unwrap();
            match response.status().as_u16() {
                200 => accepted += 1,
                429 => assert!(response.headers().contains_key("retry-after")),
                other => panic!("{other}: {:?}", response.text().await),
            }
        }
    }
    assert!(accepted > 0, "one at a time fits the budget");
    let (_, peak) = server.memory_bytes();
    let growth = peak.saturating_sub(rss_before);
    // The budget, plus the bodies being received and the runtime's own working memory.
    let allowed = budget_bytes + (24 << 20);
    assert!(
        growth <= allowed,
        "peak RSS grew by {} MiB, past the {} MiB budget plus 24 MiB",
        growth >> 20,
        budget_bytes >> 20
    );
}
