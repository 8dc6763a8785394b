//! Alerting through the binary: rules on metrics (PromQL) and logs (LogQL) fire and resolve
//! into a real webhook receiver on loopback, with Alertmanager's JSON, a valid signature, the
//! same idempotency key on a retry, no repeat after a restart, and bad rule files refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::Value as Json;
use sha2::Sha256;

use crate::fixtures::resource;
use crate::harness::Server;

const SECRET: &str = "webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    idempotency_key: String,
    body: String,
    json: Json,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests to answer 503 before answering 200.
    failures_left: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(failures: usize) -> (Self, SocketAddr) {
        let receiver = Self::default();
        receiver.failures_left.store(failures, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Delivered notifications (answered 200) about `alertname` with `status`.
    fn delivered(&self, alertname: &str, status: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.answered == 200)
            .filter(|r| r.json["groupLabels"]["alertname"] == alertname)
            .filter(|r| r.json["status"] == status)
            .collect()
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let fail = receiver
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.received.lock().unwrap().push(Received {
        signature: header("x-skewer-signature"),
        idempotency_key: header("idempotency-key"),
        json: serde_json::from_str(&body).unwrap_or(Json::Null),
        body,
        answered: status.as_u16(),
    });
    status
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn queue_depth(value: f64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("checkout"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue_depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now_nanos(),
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..NumberDataPoint::default()
                        }],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn timeout_log() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("checkout"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now_nanos(),
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(
                            "card network timeout after 2000 ms".into(),
                        )),
                    }),
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

const RULES: &str = r#"
groups:
  - name: shop
    interval: 1s
    rules:
      - alert: QueueTooDeep
        expr: queue_depth > 100
        labels:
          severity: page
        annotations:
          summary: "queue at {{ $value }}"
  - name: shop-logs
    interval: 1s
    query_language: logql
    rules:
      - alert: CheckoutTimeouts
        expr: sum by (service_name) (count_over_time({service_name="checkout"} |= "timeout" [15s])) > 0
        annotations:
          summary: "{{ $labels.service_name }} timed out {{ $value }} times"
"#;

/// The config of the first tests: fast grouping, one signing receiver at `receiver`.
fn signed_receiver_config(receiver: SocketAddr) -> String {
    format!(
        r#"
log_commit_interval_seconds = 1

[alerting]
rule_files = ["*.yml"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"

[[alerting.receivers]]
name = "ops"
url = "http://{receiver}/hook"
secret = "{SECRET}"
timeout = "2s"
"#
    )
}

/// Writes `rules` as `rules.yml` and `config` as `skewer.toml` into `dir`, and starts a
/// server with that config on `dir/data`.
async fn start_with(dir: &std::path::Path, rules: &str, config: &str) -> Server {
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let path = dir.join("skewer.toml");
    std::fs::write(&path, config).unwrap();
    Server::start(&dir.join("data"), &["--config", path.to_str().unwrap()]).await
}

/// `POST /api/rules/reload`.
async fn reload(client: &reqwest::Client, server: &Server) -> reqwest::Response {
    client
        .post(server.api("/api/rules/reload"))
        .send()
        .await
        .unwrap()
}

fn check_signature(received: &Received) {
    let (t, v1) = received
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {:?}", received.signature));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "signature");
    let sent: i64 = t.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - sent).abs() < 60,
        "a fresh timestamp: {sent} vs {now}"
    );
}

#[tokio::test]
async fn metric_and_log_rules_fire_and_resolve_into_a_signed_webhook_across_a_retry_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The first delivery fails: it is retried with the same idempotency key.
    let (receiver, addr) = Receiver::start(1).await;
    let mut server = start_with(dir.path(), RULES, &signed_receiver_config(addr)).await;

    server
        .metrics_client()
        .await
        .export(queue_depth(150.0))
        .await
        .unwrap();
    server
        .logs_client()
        .await
        .export(timeout_log())
        .await
        .unwrap();

    server
        .wait_for("both alerts delivered", Duration::from_secs(30), || async {
            !receiver.delivered("QueueTooDeep", "firing").is_empty()
                && !receiver.delivered("CheckoutTimeouts", "firing").is_empty()
        })
        .await;

    let all = receiver.all();
    let failed: Vec<&Received> = all.iter().filter(|r| r.answered == 503).collect();
    assert_eq!(failed.len(), 1, "{all:#?}");
    let retried: Vec<&Received> = all
        .iter()
        .filter(|r| r.idempotency_key == failed[0].idempotency_key)
        .collect();
    assert_eq!(retried.len(), 2, "the retry carries the same key: {all:#?}");
    assert_eq!(retried[1].answered, 200);
    for received in &all {
        check_signature(received);
    }

    let queue = receiver.delivered("QueueTooDeep", "firing").remove(0);
    let message = &queue.json;
    let keys: Vec<&str> = message
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(message["version"], "4");
    assert_eq!(message["receiver"], "ops");
    assert_eq!(
        message["groupKey"],
        r#"{}/{tenant="default"}:{alertname="QueueTooDeep"}"#
    );
    let alert = &message["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "QueueTooDeep");
    assert_eq!(alert["labels"]["severity"], "page");
    assert!(alert["labels"].get("__name__").is_none());
    assert_eq!(alert["annotations"]["summary"], "queue at 150");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/", server.http))
    );
    let logs = receiver.delivered("CheckoutTimeouts", "firing").remove(0);
    assert_eq!(
        logs.json["alerts"][0]["annotations"]["summary"],
        "checkout timed out 1 times"
    );

    // The API shows both firing, the Prometheus shapes too.
    let (status, alerts) = server.get_json("/api/alerts").await;
    assert_eq!(status, 200, "{alerts}");
    let firing: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert!(firing.contains(&"QueueTooDeep") && firing.contains(&"CheckoutTimeouts"));
    let (status, rules) = server.get_json("/api/v1/rules").await;
    assert_eq!(status, 200);
    assert_eq!(rules["status"], "success");
    let rule = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["name"], "QueueTooDeep");
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["state"], "firing");
    let active_at = alerts["alerts"][0]["activeAt"].clone();

    // A restart keeps the firing alerts and does not notify them again.
    server.terminate().await;
    let before_restart = receiver.delivered("QueueTooDeep", "firing").len();
    server.restart().await;
    let (_, after) = server.get_json("/api/alerts").await;
    let queue_alert = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "QueueTooDeep")
        .cloned()
        .unwrap_or_else(|| panic!("still firing after the restart: {after}"));
    assert_eq!(queue_alert["state"], "firing");
    assert_eq!(queue_alert["activeAt"], active_at);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.delivered("QueueTooDeep", "firing").len(),
        before_restart,
        "no repeat of a notified alert after a restart"
    );

    // The queue drains: resolved. The log window passes: resolved.
    server
        .metrics_client()
        .await
        .export(queue_depth(5.0))
        .await
        .unwrap();
    server
        .wait_for("both alerts resolved", Duration::from_secs(40), || async {
            !receiver.delivered("QueueTooDeep", "resolved").is_empty()
                && !receiver
                    .delivered("CheckoutTimeouts", "resolved")
                    .is_empty()
        })
        .await;
    let resolved = receiver.delivered("QueueTooDeep", "resolved").remove(0);
    check_signature(&resolved);
    let alert = &resolved.json["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let (_, after) = server.get_json("/api/alerts").await;
    assert_eq!(after["alerts"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_rule_files_are_refused_with_every_error_and_reloads_keep_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, addr) = Receiver::start(0).await;
    let server = start_with(dir.path(), RULES, &signed_receiver_config(addr)).await;
    let client = reqwest::Client::new();

    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: broken\n    rules:\n      - alert: A\n        expr: sum(\n      - alert: B\n        expr: up\n        for: later\n",
    )
    .unwrap();
    let response = reload(&client, &server).await;
    assert_eq!(response.status(), 422);
    let body: Json = response.json().await.unwrap();
    let lines: Vec<u64> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [5, 8], "{body}");
    let (_, rules) = server.get_json("/api/rules").await;
    let names: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop", "shop-logs"], "the old rules stay");

    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: fixed\n    rules:\n      - alert: A\n        expr: up == 0\n",
    )
    .unwrap();
    let response = reload(&client, &server).await;
    assert_eq!(response.status(), 200);
    let (_, rules) = server.get_json("/api/rules").await;
    assert_eq!(rules["groups"][0]["name"], "fixed");

    // SIGHUP reads the files again too.
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: after-hangup\n    rules:\n      - alert: B\n        expr: up == 0\n",
    )
    .unwrap();
    server.signal("HUP");
    server
        .wait_for(
            "the rules reloaded on SIGHUP",
            Duration::from_secs(10),
            || async {
                server.get_json("/api/rules").await.1["groups"][0]["name"] == "after-hangup"
            },
        )
        .await;

    // Silences: made, listed, expired.
    let response = client
        .post(server.api("/api/silences"))
        .json(&serde_json::json!({
            "matchers": [{"name": "alertname", "value": "A", "isRegex": false}],
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "test",
            "comment": "maintenance",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.json::<Json>().await.unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, silences) = server.get_json("/api/silences").await;
    assert_eq!(silences[0]["status"]["state"], "active");
    let response = client
        .delete(server.api(&format!("/api/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, silences) = server.get_json("/api/silences").await;
    assert_eq!(silences[0]["status"]["state"], "expired");
    let response = client
        .post(server.api("/api/silences"))
        .json(&serde_json::json!({"matchers": [], "endsAt": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// A receiver that takes connections and never answers.
async fn hung_receiver() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[tokio::test]
async fn a_hung_receiver_times_out_opens_its_breaker_and_delays_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, ops_addr) = Receiver::start(0).await;
    let hung_addr = hung_receiver().await;
    let server = start_with(
        dir.path(),
        r#"
groups:
  - name: routes
    interval: 1s
    rules:
      - alert: ToHung
        expr: queue_depth > 100
        labels: {receiver: hung}
      - alert: ToOps
        expr: queue_depth > 100
        labels: {receiver: ops}
"#,
        &format!(
            r#"
[alerting]
rule_files = ["rules.yml"]
group_wait = "0s"
group_interval = "1s"

[[alerting.receivers]]
name = "hung"
url = "http://{hung_addr}/hook"
timeout = "1s"

[[alerting.receivers]]
name = "ops"
url = "http://{ops_addr}/hook"
"#
        ),
    )
    .await;
    server
        .metrics_client()
        .await
        .export(queue_depth(150.0))
        .await
        .unwrap();
    server
        .wait_for(
            "the healthy receiver's notification",
            Duration::from_secs(15),
            || async { !ops.delivered("ToOps", "firing").is_empty() },
        )
        .await;
    assert!(
        ops.delivered("ToHung", "firing").is_empty(),
        "each alert goes to the receiver its label names"
    );
    let receiver_state = |name: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get_json("/api/alerts/receivers").await;
            assert_eq!(status, 200, "{body}");
            body["receivers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap()
        }
    };
    server
        .wait_for(
            "the hung receiver's breaker to open",
            Duration::from_secs(40),
            || async { receiver_state("hung").await["breakerOpen"] == true },
        )
        .await;
    let hung = receiver_state("hung").await;
    assert!(hung["failedAttempts"].as_u64().unwrap() >= 5, "{hung}");
    assert_eq!(hung["queued"], 1, "kept, not given up: {hung}");
    assert_eq!(hung["delivered"], 0);
    let healthy = receiver_state("ops").await;
    assert_eq!(healthy["queued"], 0, "{healthy}");
    assert_eq!(healthy["breakerOpen"], false);
}

fn checkout_spans(errors: usize, successes: usize) -> ExportTraceServiceRequest {
    let now = now_nanos();
    let spans = (0..errors + successes)
        .map(|n| Span {
            trace_id: vec![n as u8 + 1; 16],
            span_id: vec![n as u8 + 1; 8],
            name: "POST /api/checkout".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: now - 80_000_000,
            end_time_unix_nano: now,
            status: Some(Status {
                code: if n < errors {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
                ..Status::default()
            }),
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

#[tokio::test]
async fn a_trace_rule_over_span_metrics_fires_with_the_error_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, addr) = Receiver::start(0).await;
    let server = start_with(
        dir.path(),
        r#"
groups:
  - name: traces
    interval: 1s
    rules:
      - alert: CheckoutErrorRatio
        # Calls since start, so the ratio is exact whichever evaluation sees the counts first
        # (`increase` over a window extrapolates).
        expr: >
          sum by (job) (traces_span_metrics_calls_total{job="checkout", span_kind="SPAN_KIND_SERVER", status_code="STATUS_CODE_ERROR"})
          / sum by (job) (traces_span_metrics_calls_total{job="checkout", span_kind="SPAN_KIND_SERVER"}) > 0.2
        annotations:
          summary: "{{ $labels.job }} fails {{ $value | humanizePercentage }} of its calls"
      - alert: CheckoutSlow
        expr: histogram_quantile(0.9, sum by (le, job) (traces_span_metrics_duration_seconds_bucket{job="checkout"})) > 0.01
"#,
        &format!(
            r#"
[span_metrics]
interval_seconds = 1

[alerting]
rule_files = ["rules.yml"]
group_wait = "1s"
group_interval = "1s"

[[alerting.receivers]]
name = "ops"
url = "http://{addr}/hook"
secret = "{SECRET}"
"#
        ),
    )
    .await;
    server
        .trace_client()
        .await
        .export(checkout_spans(2, 2))
        .await
        .unwrap();
    server
        .wait_for(
            "the trace rule's notification",
            Duration::from_secs(30),
            || async {
                !receiver
                    .delivered("CheckoutErrorRatio", "firing")
                    .is_empty()
            },
        )
        .await;
    let notification = receiver.delivered("CheckoutErrorRatio", "firing").remove(0);
    let alert = &notification.json["alerts"][0];
    assert_eq!(alert["labels"]["job"], "checkout");
    assert_eq!(
        alert["annotations"]["summary"],
        "checkout fails 50% of its calls"
    );
    // A rule over the duration histogram names an example trace: one of the spans'.
    server
        .wait_for(
            "the latency rule's notification",
            Duration::from_secs(30),
            || async { !receiver.delivered("CheckoutSlow", "firing").is_empty() },
        )
        .await;
    let slow = receiver.delivered("CheckoutSlow", "firing").remove(0);
    let annotations = &slow.json["alerts"][0]["annotations"];
    let trace_id = annotations["exemplar_trace_id"]
        .as_str()
        .unwrap_or_default();
    let sent: Vec<String> = (1..=4u8).map(|n| hex::encode([n; 16])).collect();
    assert!(sent.contains(&trace_id.to_owned()), "{annotations}");
    assert_eq!(
        annotations["exemplar_trace_url"],
        format!("http://{}/#/request/{trace_id}", server.http)
    );
    // Grafana's exemplar query finds the same traces.
    let (status, body) = server
        .get_json("/api/v1/query_exemplars?query=traces_span_metrics_duration_seconds_bucket%7Bjob%3D%22checkout%22%7D")
        .await;
    assert_eq!(status, 200, "{body}");
    let series = body["data"].as_array().unwrap();
    assert_eq!(series.len(), 2, "an error and a success series: {body}");
    for entry in series {
        assert!(entry["seriesLabels"]["le"].is_string(), "{entry}");
        let exemplar = &entry["exemplars"][0];
        assert!(sent.contains(&exemplar["labels"]["trace_id"].as_str().unwrap().to_owned()));
        assert_eq!(exemplar["value"], "0.08");
    }
    // The span metrics are ordinary series: the Prometheus API shows their buckets.
    let (status, body) = server
        .get_json("/api/v1/query?query=sum(traces_span_metrics_duration_seconds_bucket{job=%22checkout%22,le=%220.1%22})")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "4", "{body}");

    // Ten calls that succeed bring the error ratio to 2 in 14: the alert resolves, signed.
    server
        .trace_client()
        .await
        .export(checkout_spans(0, 10))
        .await
        .unwrap();
    server
        .wait_for(
            "the trace rule's resolution",
            Duration::from_secs(30),
            || async {
                !receiver
                    .delivered("CheckoutErrorRatio", "resolved")
                    .is_empty()
            },
        )
        .await;
    for received in receiver.all() {
        check_signature(&received);
    }
}

#[tokio::test]
async fn recording_rules_write_their_series_and_alerts_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, addr) = Receiver::start(0).await;
    // The alert reads the recorded series, as Prometheus users' rule files do.
    let rules = r#"
groups:
  - name: recorded
    interval: 1s
    rules:
      - record: shop:queue_depth:doubled
        expr: queue_depth * 2
        labels:
          source: recording
      - alert: RecordedQueueTooDeep
        expr: shop:queue_depth:doubled > 250
"#;
    let server = start_with(dir.path(), rules, &signed_receiver_config(addr)).await;
    server
        .metrics_client()
        .await
        .export(queue_depth(150.0))
        .await
        .unwrap();
    server
        .wait_for(
            "the alert on the recorded series",
            Duration::from_secs(30),
            || async {
                !receiver
                    .delivered("RecordedQueueTooDeep", "firing")
                    .is_empty()
            },
        )
        .await;
    let alert = &receiver.delivered("RecordedQueueTooDeep", "firing")[0].json["alerts"][0];
    assert_eq!(alert["labels"]["source"], "recording", "{alert}");
    assert_eq!(alert["labels"]["job"], "checkout", "{alert}");

    // The series itself, through the Prometheus API: the rule's name, the query's labels
    // and the rule's, the query's value.
    let (status, body) = server
        .get_json("/api/v1/query?query=shop:queue_depth:doubled")
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["data"]["result"][0];
    assert_eq!(
        result["metric"]["__name__"], "shop:queue_depth:doubled",
        "{body}"
    );
    assert_eq!(result["metric"]["source"], "recording", "{body}");
    assert_eq!(result["value"][1], "300", "{body}");
    let (_, rules) = server.get_json("/api/v1/rules").await;
    let recording = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(recording["type"], "recording", "{rules}");
    assert_eq!(recording["health"], "ok", "{rules}");
}
