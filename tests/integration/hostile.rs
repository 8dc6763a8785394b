//! Hostile and broken clients: exports built to decode into far more memory than they weigh
//! are limited (attributes past the record limits dropped and counted) or refused for good
//! when even decoding them would not fit the budget, and many at once never push the
//! server's memory past its budget.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use crate::fixtures::{hex, logs_request, t0, trace_id, trace_request};
use crate::harness::{Server, connect_from};

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

/// Sends trace 1 over HTTP and trace 2 over gRPC, each with `extra` empty attributes on its
/// root span, and checks both were accepted with the root limited to 128 attributes and the
/// rest counted, on the span and in `/metrics`.
async fn amplified_exports_are_limited(server: &Server, extra: usize) {
    let response = post_protobuf(server, amplified_trace(1, extra).encode_to_vec()).await;
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
async fn attributes_past_the_record_limit_are_dropped_and_counted_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    amplified_exports_are_limited(&server, 200_000).await;
}

#[tokio::test]
async fn an_export_whose_decoding_would_not_fit_the_budget_is_cut_to_the_limits_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let budget = (64u64 << 20).to_string();
    let server = Server::start(&dir.path().join("data"), &["--max-buffered-bytes", &budget]).await;
    // 4 MB of protobuf that would decode into ~120 MB of attributes: cut on the wire to the
    // record limits, then accepted, over HTTP and gRPC.
    amplified_exports_are_limited(&server, 2_000_000).await;

    // 4 MB of empty spans (`12 00`): nothing to cut, two million records that would not fit:
    // refused for good, never retried.
    let mut empty_spans = vec![0x0a, 0x85, 0x92, 0xf4, 0x01, 0x12, 0x80, 0x92, 0xf4, 0x01];
    empty_spans.extend([0x12, 0x00].repeat(2_000_000));
    let response = post_protobuf(&server, empty_spans).await;
    assert_eq!(response.status(), 413);
    assert!(response.headers().get("retry-after").is_none());
    let text = response.text().await.unwrap();
    assert!(text.contains("smaller parts"), "{text}");

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
    // Each: 400 kB that would decode into ~15 MB (~30 MB at the peak of growing); twelve at
    // once would hold ~360 MB unbudgeted. Cut on the wire to the record limits, each decodes
    // small: all are taken.
    let body = amplified_trace(1, 200_000).encode_to_vec();
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
    assert_eq!(accepted, 36, "cut on the wire, every one fits the budget");
    let (_, peak) = server.memory_bytes();
    let growth = peak.saturating_sub(rss_before);
    // The budget, plus the bodies being received and the runtime's own working memory.
    let allowed = budget_bytes + (24 << 20);
    eprintln!("peak RSS grew by {} MiB", growth >> 20);
    assert!(
        growth <= allowed,
        "peak RSS grew by {} MiB, past the {} MiB budget plus 24 MiB",
        growth >> 20,
        budget_bytes >> 20
    );
}

/// SIGTERMs `server` and checks it exits cleanly within `seconds`, having logged `logged`.
async fn terminates_within(server: &mut Server, seconds: u64, logged: &str) {
    let started = std::time::Instant::now();
    let status = server.terminate().await;
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < std::time::Duration::from_secs(seconds),
        "shutdown took {took:?}, more than {seconds} s"
    );
    assert!(
        server.log().contains(logged),
        "{logged:?} not logged:\n{}",
        server.log()
    );
}

/// A config file with `text`, in `dir`.
fn config_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("skewer.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A raw connection to `addr` that sent `bytes` and then nothing more.
async fn stalled(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Waits for the server to close `stream` (end of stream or reset) within `within`.
async fn closed_within(mut stream: tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

#[tokio::test]
async fn clients_that_send_headers_slowly_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "[connections]\nheader_read_timeout_seconds = 1\n",
    );
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..50 {
        slow.push(
            stalled(
                server.otlp_http_addr(),
                b"POST /v1/traces HTTP/1.1\r\nhost: s",
            )
            .await,
        );
    }
    for stream in slow {
        assert!(
            closed_within(stream, std::time::Duration::from_secs(5)).await,
            "a connection that never finished its headers is still open"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The port still serves.
    let response = post_protobuf(&server, trace_request(1, "after").encode_to_vec()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_and_none_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[connections]\nmax_connections = 4\n");
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(stalled(server.otlp_http_addr(), b"").await);
    }
    let body = trace_request(1, "waiting").encode_to_vec();
    let waiting = tokio::spawn(post_protobuf_owned(server.otlp_url("/v1/traces"), body));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a fifth connection is not served");
    drop(open.pop());
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(response, 200);
}

async fn post_protobuf_owned(url: String, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn shutdown_cuts_requests_still_in_flight_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    // No rate floor and a long body deadline: only the grace period ends these uploads.
    let config = config_file(
        dir.path(),
        "shutdown_grace_seconds = 2\n[connections]\nmin_body_bytes_per_second = 0\nbody_timeout_seconds = 600\n",
    );
    let mut server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let used_before = server.metric("skewer_memory_budget_used_bytes").await;
    let mut half_sent = Vec::new();
    for _ in 0..50 {
        half_sent.push(
            stalled(
                server.otlp_http_addr(),
                b"POST /v1/traces HTTP/1.1\r\nhost: s\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100000\r\n\r\n\x0a",
            )
            .await,
        );
    }
    // Every upload is being read (its first byte is in the budget) before the server is told
    // to stop: on a busy machine accepting them can lag behind the writes.
    server
        .wait_for(
            "the 50 half-sent uploads in flight",
            std::time::Duration::from_secs(20),
            || async {
                server.metric("skewer_memory_budget_used_bytes").await - used_before >= 50.0
            },
        )
        .await;
    server
        .trace_client()
        .await
        .export(trace_request(1, "before"))
        .await
        .unwrap();
    terminates_within(&mut server, 6, "shutdown grace period").await;
    drop(half_sent);

    // What was acknowledged before is there after a restart.
    server.restart().await;
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn stalled_grpc_streams_hold_what_they_sent_in_the_budget_and_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[connections]\nbody_timeout_seconds = 3\n");
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let used_before = server.metric("skewer_memory_budget_used_bytes").await;
    let (rss_before, _) = server.memory_bytes();
    // 2 connections × 20 streams, each declaring a 16 MiB message, sending 256 KiB of it, then
    // nothing more.
    let sent_per_stream: u32 = 256 << 10;
    let mut streams = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(server.grpc).await.unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        connections.push(tokio::spawn(connection));
        for _ in 0..20 {
            client = client.ready().await.unwrap();
            let request = http::Request::post(format!(
                "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                server.grpc
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
            let (response, mut body) = client.send_request(request, false).unwrap();
            let mut message = vec![0u8];
            message.extend_from_slice(&(16u32 << 20).to_be_bytes());
            message.extend(std::iter::repeat_n(0x0a, sent_per_stream as usize));
            body.reserve_capacity(message.len());
            body.send_data(message.into(), false).unwrap();
            streams.push((response, body));
        }
    }
    // What they sent is in the budget (visible, bounded), not held off the books.
    server
        .wait_for(
            "stalled streams charged",
            std::time::Duration::from_secs(10),
            || async {
                let used = server.metric("skewer_memory_budget_used_bytes").await - used_before;
                used >= 40.0 * f64::from(sent_per_stream)
            },
        )
        .await;
    // ... and that is about all they hold: no message buffer is reserved for what they only
    // declared (tonic reserves the declared length: ~2 MiB resident a stream, ~80 MiB here).
    let (_, peak) = server.memory_bytes();
    let growth = peak.saturating_sub(rss_before);
    assert!(
        growth < (10 << 20) + 40 * u64::from(sent_per_stream),
        "40 stalled streams grew RSS by {} MiB",
        growth >> 20
    );
    // Ordinary exports go on meanwhile.
    server
        .trace_client()
        .await
        .export(trace_request(1, "during"))
        .await
        .unwrap();
    // Past the body deadline each is answered DEADLINE_EXCEEDED and lets go of its budget.
    for (response, _body) in streams {
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), response)
            .await
            .expect("a stalled stream must be answered")
            .unwrap();
        let status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(status.as_deref(), Some("4"), "{response:?}");
    }
    let used = server.metric("skewer_memory_budget_used_bytes").await - used_before;
    assert!(used < f64::from(1 << 20), "{used} bytes still held");
}

/// Trace `n` with `count` client spans under its root.
fn wide_trace(n: u64, count: u64) -> ExportTraceServiceRequest {
    let mut request = trace_request(n, "wide");
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    let child = spans[1].clone();
    spans.extend((2..count).map(|i| {
        let mut span = child.clone();
        span.span_id = crate::fixtures::span_id(n * 10_000 + i);
        span.start_time_unix_nano += i;
        span
    }));
    request
}

#[tokio::test]
async fn a_trace_past_the_view_limits_is_cut_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[query]\ntrace_max_spans = 100\n");
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let mut client = server.trace_client().await;
    client.export(wide_trace(1, 300)).await.unwrap();
    client.export(trace_request(2, "small")).await.unwrap();
    let id = hex(&trace_id(1));

    let (status, body) = server.get_json(&format!("/api/traces/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    assert_eq!(trace["spans"].as_array().unwrap().len(), 100);
    let warning = trace["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("trace truncated") && warning.contains("trace_max_spans"),
        "{warning}"
    );
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(2))))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["warnings"],
        serde_json::Value::Null,
        "a whole trace"
    );

    let (status, body) = server.get_json(&format!("/api/v3/traces/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let spans = body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    assert_eq!(spans.len(), 100);
    let warned = spans.iter().any(|span| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|attribute| {
                attribute["key"] == "@jaeger@warnings"
                    && attribute.to_string().contains("trace truncated")
            })
    });
    assert!(warned, "api_v3 carries the cut in @jaeger@warnings");

    let (status, body) = server.get_json(&format!("/api/stitch/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], true);

    // A multi-get cut short cannot say an id it did not reach is unknown.
    let (status, body) = server
        .get_json(&format!(
            "/api/traces?traceID={id}&traceID={}",
            hex(&trace_id(99))
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["spans"].as_array().unwrap().len(), 100);
    assert_eq!(body["errors"][0]["code"], 422, "{body}");
    let message = body["errors"][0]["msg"].as_str().unwrap();
    assert!(
        message.contains("not read once the answer reached its limit")
            && message.contains("trace_max_spans"),
        "{message}"
    );

    // Summaries count whole traces: past the limits they are refused, not miscounted.
    let (status, body) = server
        .get_json(
            "/api/v3/trace-summaries?query.service_name=wide&query.num_traces=5\
             &query.start_time_min=2000-01-01T00:00:00Z&query.start_time_max=2100-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"][0]["spanCount"], 300);
}

#[tokio::test]
async fn one_address_past_its_share_of_connections_is_closed_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "[connections]\nmax_connections_per_address = 3\n",
    );
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let hoarder = [127, 0, 0, 2];
    for addr in [server.otlp_http_addr(), server.grpc] {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect_from(hoarder, addr).await);
        }
        let one_more = connect_from(hoarder, addr).await;
        assert!(
            closed_within(one_more, std::time::Duration::from_secs(2)).await,
            "a fourth connection from one address is closed ({addr})"
        );
        for stream in held.drain(1..) {
            drop(stream);
        }
        // Closed ones give their share back (the server notices the close first).
        server
            .wait_for(
                "a freed share",
                std::time::Duration::from_secs(5),
                || async {
                    let stream = connect_from(hoarder, addr).await;
                    !closed_within(stream, std::time::Duration::from_millis(300)).await
                },
            )
            .await;
    }
    // Hoarding every share of one address: other clients are served over HTTP and gRPC.
    let mut held = Vec::new();
    for addr in [server.otlp_http_addr(), server.grpc] {
        for _ in 0..3 {
            held.push(connect_from(hoarder, addr).await);
        }
    }
    let response = post_protobuf(&server, trace_request(1, "other").encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    server
        .trace_client()
        .await
        .export(trace_request(2, "other"))
        .await
        .unwrap();
}

#[tokio::test]
async fn grpc_connections_past_their_age_are_asked_to_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "[connections]\ngrpc_max_connection_age_seconds = 1\n",
    );
    let server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    // An idle HTTP/2 connection is closed after its age (GOAWAY, nothing in flight).
    let tcp = tokio::net::TcpStream::connect(server.grpc).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "an idle connection outlived its age");
    // A client keeps exporting across the reconnects.
    let mut client = server.trace_client().await;
    for n in 0..4 {
        client.export(trace_request(n, "aging")).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
}

/// `count` log records of `service` in one export (pairs from [`logs_request`]), from `first`.
fn many_logs(service: &str, first: u64, count: u64) -> ExportLogsServiceRequest {
    let mut request = logs_request(first, service, "bulk");
    let records = &mut request.resource_logs[0].scope_logs[0].log_records;
    records.clear();
    for n in (first..first + count).step_by(2) {
        let more = logs_request(n, service, &format!("bulk-{n}"));
        records.extend(more.resource_logs[0].scope_logs[0].log_records.clone());
    }
    request
}

#[tokio::test]
async fn shutdown_under_load_ends_within_its_bounds_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Logs stay in memory until shutdown, whose final commit of them is far longer than the
    // 1 s it gets (60,000 records took 0.96 s on a 2-vCPU EPYC: four times that many): the
    // process exits anyway and the WAL brings them back.
    let config = config_file(
        dir.path(),
        "shutdown_grace_seconds = 1\nshutdown_flush_timeout_seconds = 1\n\
         log_commit_interval_seconds = 3600\n",
    );
    let mut server = Server::start(&dir.path().join("data"), &["--config", &config]).await;
    let mut client = server.logs_client().await;
    let (exports, per_export) = (240, 1000);
    for n in 0..exports {
        client
            .export(many_logs("bulk", n * per_export, per_export))
            .await
            .unwrap();
    }
    // The commit is cut short.
    terminates_within(&mut server, 5, "final flush unfinished").await;

    // Replayed from the WAL at start (searchable from memory).
    server.restart().await;
    let (start, end) = (t0(), t0() + 3_600_000_000_000);
    let (status, body) = server
        .get_json(&format!(
            "/api/logs?service=bulk&facets=true&limit=1&start={start}&end={end}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["facets"]["total"],
        exports * per_export,
        "every acknowledged record"
    );
}
