//! Redaction at ingest through the binary: exports carrying a password, a bearer token, a card
//! number and an e-mail address, sent to a server without rules (the control: the raw values
//! are found in its data directory) and to one with `[[redaction.rules]]` (none is found
//! anywhere in its data directory, neither in the WAL right after the acknowledgement nor in
//! the files after flushing); hashed values still correlate a span with its log records (an
//! attribute hashed by key and an address hashed inside a log body hash alike).

use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use serde_json::Value as Json;

use crate::fixtures::{hex, logs_request, string, trace_id, trace_request};
use crate::harness::Server;

const PASSWORD: &str = "hunter2-very-secret";
const TOKEN: &str = "tok3n-abcdef-123456789";
const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "ann.secret@example.com";

const RULES: &str = r#"
[[redaction.rules]]
attributes = ["*.password", "*_password", "http.request.header.authorization"]
action = "drop"

[[redaction.rules]]
attributes = ["user.email"]
action = "hash"

[[redaction.rules]]
pattern = '\b\d{4}(?:[ -]?\d{4}){3}\b'
action = "mask"

[[redaction.rules]]
pattern = '[\w.+-]+@[\w-]+\.[\w.]+'
action = "hash"

[[redaction.rules]]
pattern = '(?i)bearer\s+[A-Za-z0-9._~+/-]+=*'
action = "mask"
"#;

/// Every secret, in the places users leak them: span and log attributes, a log body.
async fn send_secrets(server: &Server) {
    let mut traces = trace_request(1, "checkout");
    let span = &mut traces.resource_spans[0].scope_spans[0].spans[0];
    span.attributes.extend([
        string("db.password", PASSWORD),
        string(
            "http.request.header.authorization",
            &format!("Bearer {TOKEN}"),
        ),
        string("user.email", EMAIL),
        string("payment.note", &format!("card {CARD} charged")),
    ]);
    let mut logs = logs_request(1, "checkout", "corr-redact");
    let record = &mut logs.resource_logs[0].scope_logs[0].log_records[0];
    record.body = Some(AnyValue {
        value: Some(Value::StringValue(format!(
            "charging {CARD} for {EMAIL} with Authorization: Bearer {TOKEN}"
        ))),
    });
    record.attributes.extend([
        string("user.email", EMAIL),
        string("smtp.password", PASSWORD),
    ]);

    let client = reqwest::Client::new();
    let response = client
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Logs as OTLP/JSON: the WAL must hold the redacted export, not the JSON received.
    let response = client
        .post(server.otlp_url("/v1/logs"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&logs).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Prometheus remote write: labels are the points' attributes.
    let response = client
        .post(server.otlp_url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(remote_write_secrets())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// A remote write request whose series carries a password, a card number and an e-mail
/// address in its labels.
fn remote_write_secrets() -> Vec<u8> {
    crate::fixtures::remote_write_body(&[
        ("__name__", "payments_total"),
        ("contact", EMAIL),
        ("note", &format!("card {CARD} charged")),
        ("smtp_password", PASSWORD),
    ])
}

/// The secrets found in any file under `dir`.
fn secrets_in(dir: &Path) -> Vec<&'static str> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for secret in [PASSWORD, TOKEN, CARD, EMAIL] {
                if !found.contains(&secret)
                    && bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
                {
                    found.push(secret);
                }
            }
        }
    }
    found.sort_unstable();
    found
}

fn all_secrets() -> Vec<&'static str> {
    let mut all = vec![PASSWORD, TOKEN, CARD, EMAIL];
    all.sort_unstable();
    all
}

#[tokio::test]
async fn redacted_values_are_written_nowhere_and_hashes_still_correlate() {
    // The control: without rules every secret is in the data directory (the WAL holds the
    // export as received), so the search below can find them.
    let control_dir = tempfile::tempdir().unwrap();
    let control = Server::start(&control_dir.path().join("data"), &[]).await;
    send_secrets(&control).await;
    assert_eq!(secrets_in(&control.data_dir), all_secrets());
    drop(control);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, RULES).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--flush-interval-seconds",
            "1",
        ],
    )
    .await;
    send_secrets(&server).await;
    assert_eq!(
        secrets_in(&server.data_dir),
        Vec::<&str>::new(),
        "right after the acknowledgement"
    );

    let trace_path = format!("/api/traces/{}", hex(&trace_id(1)));
    server
        .wait_for("the trace flushed", Duration::from_secs(30), || async {
            server.get_json(&trace_path).await.0 == 200
        })
        .await;
    server.wait_logs_committed().await;
    let logs_path = format!("/api/logs?trace_id={}", hex(&trace_id(1)));
    let (status, logs) = server.get_json(&logs_path).await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(
        secrets_in(&server.data_dir),
        Vec::<&str>::new(),
        "after flushing and indexing"
    );

    // What reads back: dropped keys gone, masks in place, one hash for one e-mail address.
    let (_, trace) = server.get_json(&trace_path).await;
    let tags = trace["data"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|span| span["tags"].as_array().unwrap().clone())
        .collect::<Vec<Json>>();
    let tag = |key: &str| {
        tags.iter()
            .find(|tag| tag["key"] == key)
            .map(|tag| tag["value"].clone())
    };
    assert_eq!(tag("db.password"), None);
    assert_eq!(tag("http.request.header.authorization"), None);
    assert_eq!(
        tag("payment.note"),
        Some(Json::from("card [REDACTED] charged"))
    );
    let span_hash = tag("user.email").unwrap();
    assert!(
        span_hash.as_str().unwrap().starts_with("hmac:"),
        "{span_hash}"
    );

    let record = logs["records"]
        .as_array()
        .or_else(|| logs["logs"].as_array())
        .and_then(|records| records.first())
        .unwrap_or_else(|| panic!("no record: {logs}"))
        .clone();
    let body = record["body"].to_string();
    let expected = format!(
        "charging [REDACTED] for {} with Authorization: [REDACTED]",
        span_hash.as_str().unwrap()
    );
    assert!(body.contains(&expected), "{body}");
    let attributes = record["attributes"].to_string();
    assert!(!attributes.contains("smtp.password"), "{attributes}");
    assert!(
        attributes.contains(span_hash.as_str().unwrap()),
        "the span's hash is not the record's: {attributes}"
    );
    // The remote-written series: the password label gone, the card masked, the e-mail
    // address hashed as the span's was.
    let seconds = crate::fixtures::t0() / 1_000_000_000;
    let (status, series) = server
        .get_json(&format!(
            "/api/v1/series?match[]=payments_total&start={}&end={}",
            seconds - 3600,
            seconds + 3600
        ))
        .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(
        series["data"],
        serde_json::json!([{
            "__name__": "payments_total",
            "contact": span_hash,
            "note": "card [REDACTED] charged",
        }]),
        "{series}"
    );
    let hash_key = server.data_dir.join("redaction.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&hash_key).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}
