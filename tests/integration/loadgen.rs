//! `skewer loadgen` against the real server: every signal over every transport is
//! acknowledged, the summary counts it, and the trace and correlation ids it reports can be
//! read back.

use std::process::Command;

use crate::harness::Server;

#[tokio::test]
async fn loadgen_drives_every_signal_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    for signal in ["traces", "logs", "metrics"] {
        for (seed, transport) in ["grpc", "http-protobuf", "http-json"].iter().enumerate() {
            let transport = *transport;
            let summary = dir.path().join(format!("{signal}-{transport}.json"));
            let ids = dir.path().join(format!("{signal}-{transport}.ids"));
            let correlation_ids = dir.path().join(format!("{signal}-{transport}.correlation"));
            let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
                .args(["loadgen", "--signal", signal, "--transport", transport])
                .args(["--otlp-grpc-addr", &server.grpc.to_string()])
                .args(["--otlp-http-addr", &server.otlp_http.to_string()])
                .args([
                    "--count",
                    "600",
                    "--batch-size",
                    "100",
                    "--series",
                    "100",
                    "--pool-size",
                    "2",
                ])
                // A seed per transport: runs into one tenant must not repeat each other's ids.
                .args(["--seed", &seed.to_string()])
                .args(["--header", "X-Scope-OrgID: loadgen"])
                .arg("--summary-json")
                .arg(&summary)
                .arg("--trace-ids-out")
                .arg(&ids)
                .arg("--correlation-ids-out")
                .arg(&correlation_ids)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{signal} over {transport}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
            assert!(report["records_acked"].as_u64().unwrap() >= 500, "{report}");
            assert_eq!(report["failed_requests"], 0, "{report}");
            assert_eq!(report["records_rejected"], 0, "{report}");
            if signal == "traces" {
                let ids = std::fs::read_to_string(&ids).unwrap();
                let last = ids.lines().last().expect("trace ids written");
                let (status, _) = server
                    .get_json_as(&format!("/api/traces/{last}"), Some("loadgen"))
                    .await;
                assert_eq!(status, 200, "trace {last} from {transport} readable");
            }
            if signal == "logs" {
                // The last sampled id is from a replay of the 2-request pool: it was rewritten,
                // so exactly one record carries it.
                let ids = std::fs::read_to_string(&correlation_ids).unwrap();
                let last = ids.lines().last().expect("correlation ids written");
                let (status, body) = server
                    .get_json_as(&format!("/api/logs?correlation_id={last}"), Some("loadgen"))
                    .await;
                assert_eq!(status, 200, "{body}");
                let records = body["records"].as_array().unwrap();
                assert_eq!(records.len(), 1, "{last} over {transport}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn demo_scenario_tells_a_story_with_skew_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args([
            "loadgen",
            "--scenario",
            "demo",
            "--count",
            "12",
            "--duration",
            "30",
        ])
        .args(["--otlp-grpc-addr", &server.grpc.to_string()])
        .env("SKEWER_HTTP_ADDR", server.http.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("curl http://{}/api/traces/", server.http)),
        "the link names the query port: {stdout}"
    );
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace_id = stdout
        .lines()
        .find_map(|l| l.split("/api/traces/").nth(1))
        .expect("the demo names a trace");
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", trace_id.trim()))
        .await;
    assert_eq!(status, 200);
    let services: std::collections::HashSet<&str> = body["data"][0]["processes"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|p| p["serviceName"].as_str())
        .collect();
    assert!(
        services.contains("frontend") && services.contains("checkout"),
        "{services:?}"
    );
    let (_, logs) = server.get_json("/api/logs?service=payment&limit=100").await;
    assert!(logs["count"].as_u64().unwrap() > 0, "payment logs: {logs}");

    // The printed request, stitched by its request id: every service, one request id on every
    // record (the warehouse's confirmation has no trace context), each call answered by the
    // service and route it names.
    let request_id = stdout
        .lines()
        .find_map(|l| l.split("/api/stitch/").nth(1))
        .expect("the demo names a request id")
        .trim();
    let (status, stitched) = server.get_json(&format!("/api/stitch/{request_id}")).await;
    assert_eq!(status, 200, "{stitched}");
    assert_eq!(stitched["id_kind"], "correlation_id", "{stitched}");
    let names = |items: &serde_json::Value| -> std::collections::BTreeSet<String> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["service_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all: std::collections::BTreeSet<String> = ["checkout", "frontend", "inventory", "payment"]
        .map(String::from)
        .into();
    assert_eq!(names(&stitched["spans"]), all);
    assert_eq!(names(&stitched["logs"]), all);
    let logs = stitched["logs"].as_array().unwrap();
    assert!(
        logs.iter().all(|l| l["correlation_id"] == request_id),
        "{stitched}"
    );
    assert!(
        logs.iter().any(|l| l["trace_id"].is_null()),
        "an untraced record"
    );
    let spans = stitched["spans"].as_array().unwrap();
    let attribute = |span: &serde_json::Value, key: &str| -> Option<String> {
        span["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)
            .and_then(|a| a["value"]["value"].as_str().map(str::to_owned))
    };
    let mut calls = 0;
    for client in spans
        .iter()
        .filter(|s| attribute(s, "url.template").is_some())
    {
        let server_span = spans
            .iter()
            .find(|s| s["parent_span_id"] == client["span_id"])
            .expect("every call is answered");
        assert_eq!(
            Some(server_span["service_name"].as_str().unwrap().to_owned()),
            attribute(client, "server.address")
        );
        assert_eq!(
            attribute(server_span, "http.route"),
            attribute(client, "url.template")
        );
        calls += 1;
    }
    assert!(
        calls >= 3,
        "frontend → checkout → inventory and payment: {calls}"
    );

    let (_, series) = server
        .get_json("/api/metrics/points?name=http.server.request.duration")
        .await;
    assert!(!series["series"].as_array().unwrap().is_empty(), "{series}");
    let (_, process) = server
        .get_json("/api/metrics/points?name=process.cpu.utilization")
        .await;
    let process = process["series"].as_array().unwrap();
    assert_eq!(process.len(), 4, "one per service");
    assert!(
        process
            .iter()
            .all(|s| s["attributes"].as_array().unwrap().is_empty()),
        "resource metrics carry no request attributes"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_failure_and_no_id_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for transport in ["grpc", "http-json"] {
        let summary = dir.path().join(format!("{transport}.json"));
        let ids = dir.path().join(format!("{transport}.ids"));
        let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
            .args(["loadgen", "--signal", "traces", "--transport", transport])
            .args(["--otlp-grpc-addr", &port.to_string()])
            .args(["--otlp-http-addr", &port.to_string()])
            .args(["--count", "300", "--batch-size", "100", "--retries", "2"])
            .arg("--summary-json")
            .arg(&summary)
            .arg("--trace-ids-out")
            .arg(&ids)
            .output()
            .unwrap();
        assert!(!output.status.success(), "nothing was acknowledged");
        if transport == "grpc" {
            // gRPC connects before the run: it stops there and says why.
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("cannot connect"), "{stderr}");
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        assert_eq!(report["records_acked"], 0, "{report}");
        assert_eq!(report["retryable_answers"], 0, "{transport}: {report}");
        assert!(report["failed_requests"].as_u64().unwrap() >= 1, "{report}");
        let first = report["first_error"].as_str().unwrap_or_default();
        assert!(first.contains("unreachable"), "{transport}: {first}");
        let written = std::fs::read_to_string(&ids).unwrap_or_default();
        assert!(written.trim().is_empty(), "{transport}: {written}");
    }
}
