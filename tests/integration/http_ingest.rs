//! OTLP/HTTP: protobuf, JSON and gzip bodies accepted and answered in kind; malformed,
//! mistyped, oversized and gzip-bomb bodies refused with the right status, and the server
//! keeps serving.

use std::io::Write;

use prost::Message;
use serde_json::{Value, json};

use crate::fixtures::{hex, logs_request, metrics_request, t0, trace_id, trace_request};
use crate::harness::Server;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn post(
    server: &Server,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(server.otlp_url(path))
        .header("content-type", content_type);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request
        .body(body)
        .send()
        .await
        .expect("OTLP/HTTP reachable")
}

/// An OTLP JSON trace export as an SDK writes it: hex ids, string int64s, integer enums.
fn json_trace(n: u64) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{
                "scope": {"name": "json-lib"},
                "spans": [{
                    "traceId": hex(&trace_id(n)),
                    "spanId": "1111111111111111",
                    "name": "json span",
                    "kind": 2,
                    "startTimeUnixNano": t0().to_string(),
                    "endTimeUnixNano": (t0() + 5_000_000).to_string(),
                    "attributes": [
                        {"key": "count", "value": {"intValue": "7"}},
                        {"key": "ok", "value": {"boolValue": true}}
                    ],
                    "status": {"code": 1},
                    "aFieldFromTheFuture": {"ignored": true}
                }]
            }]
        }]
    })
}

#[tokio::test]
async fn protobuf_json_and_gzip_bodies_are_accepted_and_answered_in_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;

    let response = post(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        None,
        trace_request(1, "pb").encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");

    let response = post(
        &server,
        "/v1/traces",
        "application/json",
        None,
        json_trace(2).to_string().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({}), "a full success is an empty message");
    // The proto field names (snake_case) are accepted as the protobuf JSON mapping says.
    let snake = json_trace(5)
        .to_string()
        .replace("resourceSpans", "resource_spans")
        .replace("scopeSpans", "scope_spans")
        .replace("traceId", "trace_id")
        .replace("spanId", "span_id")
        .replace("startTimeUnixNano", "start_time_unix_nano")
        .replace("endTimeUnixNano", "end_time_unix_nano")
        .replace("stringValue", "string_value");
    let response = post(
        &server,
        "/v1/traces",
        "application/json",
        None,
        snake.into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);

    let response = post(
        &server,
        "/v1/traces",
        "application/json",
        Some("gzip"),
        gzip(json_trace(3).to_string().as_bytes()),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = post(
        &server,
        "/v1/logs",
        "application/x-protobuf",
        Some("gzip"),
        gzip(&logs_request(4, "gz", "corr-gz").encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = post(
        &server,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        metrics_request("http.", 0).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);

    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(5))))
        .await;
    assert_eq!(status, 200, "the snake_case export was stored: {body}");
    assert_eq!(body["data"][0]["spans"][0]["operationName"], "json span");
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(2))))
        .await;
    assert_eq!(status, 200);
    let span = &body["data"][0]["spans"][0];
    assert_eq!(span["operationName"], "json span");
    let tags = span["tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!({"key": "count", "type": "int64", "value": 7})),
        "{tags:?}"
    );
    assert!(tags.contains(&json!({"key": "ok", "type": "bool", "value": true})));
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(3))))
            .await
            .0,
        200
    );
    let (_, logs) = server.get_json("/api/logs?correlation_id=corr-gz").await;
    assert_eq!(logs["count"], 1);
    let (_, points) = server
        .get_json("/api/metrics/points?name=http.latency")
        .await;
    assert_eq!(
        points["series"][0]["points"][0]["value"]["bucket_counts"],
        json!([1, 2, 3])
    );

    // Doubles written as "NaN" / "Infinity" (the protobuf JSON mapping) are kept, with the
    // rest of the export.
    let special = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "json.special", "gauge": {"dataPoints": [
            {"timeUnixNano": t0().to_string(), "asDouble": "NaN"},
            {"timeUnixNano": (t0() + 1).to_string(), "asDouble": "Infinity"},
            {"timeUnixNano": (t0() + 2).to_string(), "asDouble": 2.5}]}}]}]}]});
    let response = post(
        &server,
        "/v1/metrics",
        "application/json",
        None,
        special.to_string().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({}), "nothing rejected");
    let (_, points) = server
        .get_json("/api/metrics/points?name=json.special")
        .await;
    let stored = points["series"][0]["points"].as_array().map(Vec::len);
    assert_eq!(stored, Some(3), "{points}");

    let response = post(&server, "/v1/traces", "application/json", None, b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"00\",\"spanId\":\"1111111111111111\"}]}]}]}".to_vec()).await;
    assert_eq!(response.status(), 200);
    let partial: Value = response.json().await.unwrap();
    // int64 may come as a JSON number or string; both are valid OTLP JSON for readers.
    let rejected = partial["partialSuccess"]["rejectedSpans"].to_string();
    assert_eq!(rejected.trim_matches('"'), "1", "{partial}");
}

#[tokio::test]
async fn bad_bodies_get_the_right_status_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", "1048576"],
    )
    .await;

    let response = post(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff, 0x0f],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let status = skewer_status(response.bytes().await.unwrap().as_ref());
    assert_eq!(status.code, 3);
    assert!(status.message.contains("malformed"), "{}", status.message);

    let response = post(
        &server,
        "/v1/logs",
        "application/json",
        None,
        b"{\"resourceLogs\": [".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 3);

    let response = post(
        &server,
        "/v1/metrics",
        "text/plain",
        None,
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 415);

    let response = post(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        None,
        vec![0; 2 * 1024 * 1024],
    )
    .await;
    assert_eq!(response.status(), 413);

    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let response = post(
        &server,
        "/v1/traces",
        "application/json",
        Some("gzip"),
        bomb,
    )
    .await;
    assert_eq!(response.status(), 413);

    let response = post(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);

    let response = post(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        None,
        trace_request(77, "after").encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200, "still serving");
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(77))))
            .await
            .0,
        200
    );

    let (_, metrics) = (
        0,
        reqwest::get(server.api("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        metrics.contains("skewer_ingest_requests_total{signal=\"traces\",outcome=\"invalid\"}"),
        "{metrics}"
    );
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn skewer_status(bytes: &[u8]) -> RpcStatus {
    RpcStatus::decode(bytes).expect("a google.rpc.Status body")
}

#[tokio::test]
async fn grpc_rejects_oversized_and_gzip_bomb_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", "1048576"],
    )
    .await;
    let mut big = trace_request(1, "big");
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 * 1024 * 1024);
    let err = server
        .trace_client()
        .await
        .export(big.clone())
        .await
        .unwrap_err();
    // Not OUT_OF_RANGE: exporters retry that, and this request can never succeed.
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("too large"), "{err}");

    let compressed = server
        .trace_client()
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let err = compressed.clone().export(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let ok = compressed.clone().export(trace_request(2, "gz")).await;
    assert!(ok.is_ok(), "gzip requests are accepted: {ok:?}");
    assert_eq!(
        server
            .get_json(&format!("/api/traces/{}", hex(&trace_id(2))))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn grpc_answers_malformed_protobuf_with_invalid_argument_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    // A field header announcing 100 bytes of a nested message, then 2 bytes.
    let garbage = bytes::Bytes::from_static(&[0x0a, 0x64, 0x01, 0x02]);
    let err = grpc
        .unary(
            tonic::Request::new(garbage),
            path,
            skewer_ingest::raw_codec::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    let ok = server
        .trace_client()
        .await
        .export(trace_request(3, "after-garbage"))
        .await;
    assert!(ok.is_ok(), "the server keeps serving: {ok:?}");
}

/// Sends `body` with `Transfer-Encoding: chunked` (no declared length) over a raw socket, in
/// chunks of `chunk_bytes`; returns the status line of the answer.
async fn post_chunked(server: &Server, path: &str, body: &[u8], chunk_bytes: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.otlp_http_addr())
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: skewer\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(chunk_bytes) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer (and close) before the whole body is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn chunked_bodies_without_a_declared_length_are_read_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", "1048576"],
    )
    .await;
    let body = serde_json::to_vec(&json_trace(1)).unwrap();
    let status = post_chunked(&server, "/v1/traces", &body, 100).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    let oversized = vec![b' '; 1_100_000];
    let status = post_chunked(&server, "/v1/traces", &oversized, 64 * 1024).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(server.get_json("/healthz").await.0, 200);
}
