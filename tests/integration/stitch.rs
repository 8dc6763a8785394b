//! Request stitching through the binary: a request across three services (and a retry trace
//! and a linked async trace), with logs that carry only a correlation id and one service's
//! clock 250 ms ahead, sent over OTLP/gRPC and read back whole from `/api/stitch/{id}`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as OtlpValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::Value;

use crate::fixtures::{hex, scope, span_id, string, t0, trace_id};
use crate::harness::Server;

const MS: u64 = 1_000_000;
/// payment's clock runs this far ahead.
const SKEW: u64 = 250 * MS;

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            string("service.name", service),
            string("host.name", &format!("{service}-host")),
        ],
        ..Resource::default()
    })
}

fn span(
    trace: u64,
    id: u64,
    parent: Option<u64>,
    name: &str,
    kind: i32,
    start_ms: u64,
    end_ms: u64,
) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: t0() + start_ms * MS,
        end_time_unix_nano: t0() + end_ms * MS,
        ..Span::default()
    }
}

/// `span` with one link to span `to_span` of trace `to_trace`.
fn linked(mut span: Span, to_trace: u64, to_span: u64) -> Span {
    span.links = vec![Link {
        trace_id: trace_id(to_trace),
        span_id: span_id(to_span),
        ..Link::default()
    }];
    span
}

fn spans_of(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: resource(service),
        scope_spans: vec![ScopeSpans {
            scope: scope(),
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

/// Trace 1: frontend → checkout → payment (payment's times 250 ms ahead); checkout's server
/// span links to trace 3 (an email sent later); trace 2: checkout's retry; trace 4: the
/// warehouse consuming the order later, its span linking back to checkout's.
fn traces() -> ExportTraceServiceRequest {
    let checkout_server = linked(span(1, 20, Some(11), "POST /checkout", 2, 20, 280), 3, 40);
    let warehouse = linked(span(4, 50, None, "process order", 5, 1_000, 1_200), 1, 20);
    ExportTraceServiceRequest {
        resource_spans: vec![
            spans_of(
                "frontend",
                vec![
                    span(1, 10, None, "GET /buy", 2, 0, 300),
                    span(1, 11, Some(10), "POST checkout", 3, 10, 290),
                ],
            ),
            spans_of(
                "checkout",
                vec![
                    checkout_server,
                    span(1, 21, Some(20), "POST payment", 3, 30, 270),
                    span(2, 30, None, "retry POST /checkout", 2, 500, 600),
                ],
            ),
            spans_of(
                "payment",
                vec![span(
                    1,
                    22,
                    Some(21),
                    "POST /pay",
                    2,
                    40 + SKEW / MS,
                    260 + SKEW / MS,
                )],
            ),
            spans_of(
                "email",
                vec![span(3, 40, None, "send receipt", 5, 700, 800)],
            ),
            spans_of("warehouse", vec![warehouse]),
        ],
    }
}

fn log(text: &str, at_ms: u64, trace: Option<u64>, request_id: Option<&str>) -> LogRecord {
    LogRecord {
        time_unix_nano: t0() + at_ms * MS,
        severity_number: 9,
        body: Some(AnyValue {
            value: Some(OtlpValue::StringValue(text.to_owned())),
        }),
        attributes: request_id
            .map(|id| string("request.id", id))
            .into_iter()
            .collect(),
        trace_id: trace.map(trace_id).unwrap_or_default(),
        ..LogRecord::default()
    }
}

fn logs_of(service: &str, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: resource(service),
        scope_logs: vec![ScopeLogs {
            scope: scope(),
            log_records: records,
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }
}

fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![
            logs_of("frontend", vec![log("buy clicked", 5, Some(1), None)]),
            logs_of(
                "checkout",
                vec![
                    log("cart validated", 25, None, Some("req-1")),
                    log("retrying checkout", 510, Some(2), Some("req-1")),
                ],
            ),
            logs_of(
                "payment",
                vec![
                    log("card charged", 60 + SKEW / MS, Some(1), Some("req-1")),
                    log("receipt queued", 150 + SKEW / MS, None, Some("req-1")),
                ],
            ),
            // Another request's line: not part of the answer.
            logs_of(
                "checkout",
                vec![log("other request", 30, None, Some("req-2"))],
            ),
        ],
    }
}

async fn started() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    server.trace_client().await.export(traces()).await.unwrap();
    server.logs_client().await.export(logs()).await.unwrap();
    (dir, server)
}

fn texts(body: &Value) -> Vec<String> {
    body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["body"]["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_trace_id_brings_the_whole_request_with_skew_found_and_corrected() {
    let (_dir, server) = started().await;
    let (status, body) = server
        .get_json(&format!("/api/stitch/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id_kind"], "trace_id");
    let traces: Vec<(&str, bool)> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trace_id"].as_str().unwrap(),
                t["linked"].as_bool().unwrap(),
            )
        })
        .collect();
    let (one, two, three) = (hex(&trace_id(1)), hex(&trace_id(2)), hex(&trace_id(3)));
    let four = hex(&trace_id(4));
    assert_eq!(traces.len(), 4, "{traces:?}");
    assert!(traces.contains(&(one.as_str(), false)));
    assert!(
        traces.contains(&(two.as_str(), false)),
        "the retry, through req-1"
    );
    assert!(
        traces.contains(&(three.as_str(), true)),
        "the linked email trace"
    );
    assert!(
        traces.contains(&(four.as_str(), true)),
        "the warehouse trace linking back"
    );
    assert_eq!(body["incoming_links_complete"], true);
    assert_eq!(body["correlation_ids"], serde_json::json!(["req-1"]));
    // Every line of the request, none of another, ordered by adjusted time: payment's lines
    // moved back 250 ms with its clock.
    assert_eq!(
        texts(&body),
        [
            "buy clicked",
            "cart validated",
            "card charged",
            "receipt queued",
            "retrying checkout"
        ]
    );
    let card = &body["logs"][2];
    assert_eq!(card["skew_delta_ns"], (-(SKEW as i64)).to_string());
    assert_eq!(
        card["adjusted_time_unix_nano"],
        (t0() + 60 * MS).to_string()
    );
    // The payment span is flagged and centred in its client; nothing else is.
    let flagged: Vec<&Value> = body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["skew"].is_null())
        .collect();
    assert_eq!(flagged.len(), 1, "{body}");
    let pay = flagged[0];
    assert_eq!(pay["name"], "POST /pay");
    assert_eq!(pay["skew"]["applied"], true);
    assert_eq!(pay["skew"]["delta_ns"], (-(SKEW as i64)).to_string());
    assert_eq!(pay["skew"]["host"], "payment-host");
    assert_eq!(pay["skew"]["other_host"], "checkout-host");
    assert_eq!(pay["start_unix_nano"], (t0() + 40 * MS).to_string());
    assert_eq!(
        pay["raw_start_unix_nano"],
        (t0() + (40 * MS + SKEW)).to_string()
    );
    assert_eq!(body["skew"]["spans_flagged"], 1);
    // The critical path runs frontend → checkout → payment and back, on adjusted times.
    let trace_one = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == one.as_str())
        .unwrap();
    let path: Vec<&str> = trace_one["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|segment| segment["span_id"].as_str().unwrap())
        .collect();
    let ids: Vec<String> = [10u64, 11, 20, 21, 22, 21, 20, 11, 10]
        .iter()
        .map(|n| hex(&span_id(*n)))
        .collect();
    assert_eq!(path, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pay["on_critical_path"], true);
    assert_eq!(
        body["skew"]["hosts"],
        serde_json::json!([{ "host": "payment-host", "delta_ns": (-(SKEW as i64)).to_string() }])
    );
    let services: Vec<(&str, u64, u64)> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["spans"].as_u64().unwrap(),
                s["logs"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("checkout", 3, 2),
            ("email", 1, 0),
            ("frontend", 2, 1),
            ("payment", 1, 2),
            ("warehouse", 1, 0)
        ]
    );
}

#[tokio::test]
async fn traces_linking_back_are_found_in_buffers_and_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--flush-interval-seconds", "1"]).await;
    server.trace_client().await.export(traces()).await.unwrap();
    let linked_traces = |body: &Value| -> Vec<String> {
        body["traces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["linked"] == true)
            .map(|t| t["trace_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = vec![hex(&trace_id(3)), hex(&trace_id(4))];
    let stitch_one = format!("/api/stitch/{}", hex(&trace_id(1)));
    let (_, buffered) = server.get_json(&stitch_one).await;
    let mut found = linked_traces(&buffered);
    found.sort();
    assert_eq!(found, expected, "{buffered}");
    server
        .wait_for(
            "the spans flushed",
            std::time::Duration::from_secs(20),
            || async {
                server
                    .self_metrics()
                    .await
                    .contains("skewer_buffered_records{signal=\"traces\"} 0")
            },
        )
        .await;
    let (_, flushed) = server.get_json(&stitch_one).await;
    let mut found = linked_traces(&flushed);
    found.sort();
    assert_eq!(found, expected, "{flushed}");
    assert_eq!(flushed["incoming_links_complete"], true);
    // One hop only: the warehouse trace's own request does not pull in trace 1's links.
    let (_, from_warehouse) = server
        .get_json(&format!("/api/stitch/{}", hex(&trace_id(4))))
        .await;
    assert_eq!(linked_traces(&from_warehouse), vec![hex(&trace_id(1))]);
}

#[tokio::test]
async fn a_correlation_id_brings_the_same_request_and_raw_moves_nothing() {
    let (_dir, server) = started().await;
    let (status, body) = server.get_json("/api/stitch/req-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id_kind"], "correlation_id");
    assert_eq!(body["traces"].as_array().unwrap().len(), 4);
    assert_eq!(
        texts(&body),
        [
            "buy clicked",
            "cart validated",
            "card charged",
            "receipt queued",
            "retrying checkout"
        ]
    );
    let (_, raw) = server.get_json("/api/stitch/req-1?raw=true").await;
    let pay = raw["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "POST /pay")
        .unwrap();
    assert_eq!(pay["skew"]["applied"], false);
    assert_eq!(pay["start_unix_nano"], pay["raw_start_unix_nano"]);
    assert!(
        pay["skew"]["reason"]
            .as_str()
            .unwrap()
            .contains("adjusting is off")
    );
    assert_eq!(raw["skew"]["spans_adjusted"], 0);
    // Unknown ids are 404 with the reason.
    let (status, body) = server.get_json("/api/stitch/nothing-like-this").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("nothing-like-this")
    );
}

/// The span called `name` in an api_v3 answer.
fn v3_span(body: &Value, name: &str) -> Value {
    body["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap().clone())
        .flat_map(|s| s["spans"].as_array().unwrap().clone())
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {body}"))
}

#[tokio::test]
async fn jaeger_traces_are_corrected_with_warnings_unless_raw() {
    let (_dir, server) = started().await;
    let pay_of = |body: &Value| {
        body["data"][0]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["operationName"] == "POST /pay")
            .cloned()
            .unwrap()
    };
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    let pay = pay_of(&body);
    assert_eq!(pay["startTime"], (t0() + 40 * MS) / 1_000);
    let warning = pay["warnings"][0].as_str().unwrap();
    assert!(warning.starts_with("clock skew: "), "{warning}");
    assert!(warning.contains("-250.000 ms"), "{warning}");
    let unflagged = body["data"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["warnings"].is_null())
        .count();
    assert_eq!(unflagged, 4);
    // api_v3 carries the finding in the `@jaeger@warnings` attribute.
    let (status, v3) = server
        .get_json(&format!("/api/v3/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{v3}");
    let v3_pay = v3_span(&v3, "POST /pay");
    assert_eq!(v3_pay["startTimeUnixNano"], (t0() + 40 * MS).to_string());
    let warnings = v3_pay["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "@jaeger@warnings")
        .unwrap();
    let text = warnings["value"]["arrayValue"]["values"][0]["stringValue"]
        .as_str()
        .unwrap();
    assert!(text.starts_with("clock skew: "), "{text}");
    let (_, raw) = server
        .get_json(&format!("/api/traces/{}?raw=true", hex(&trace_id(1))))
        .await;
    let pay = pay_of(&raw);
    assert_eq!(pay["startTime"], (t0() + 40 * MS + SKEW) / 1_000);
    // Go booleans, as Jaeger reads them.
    let (_, raw_one) = server
        .get_json(&format!("/api/traces/{}?raw=1", hex(&trace_id(1))))
        .await;
    assert_eq!(
        pay_of(&raw_one)["startTime"],
        (t0() + 40 * MS + SKEW) / 1_000
    );
    let (status, _) = server
        .get_json(&format!("/api/traces/{}?raw=maybe", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 400);
    // Searches answer the same way: corrected, or as stored with `raw`, in v1 and api_v3.
    let range = format!(
        "start={}&end={}",
        t0() / 1_000,
        (t0() + 3_600_000 * MS) / 1_000
    );
    for (raw_param, expected) in [("", t0() + 40 * MS), ("&raw=true", t0() + 40 * MS + SKEW)] {
        let (status, found) = server
            .get_json(&format!("/api/traces?service=payment&{range}{raw_param}"))
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(pay_of(&found)["startTime"], expected / 1_000, "{raw_param}");
    }
    let (status, bad) = server
        .get_json(&format!("/api/traces?service=payment&{range}&raw=maybe"))
        .await;
    assert_eq!(status, 400, "{bad}");
    let rfc3339 = |nanos: u64| {
        chrono::DateTime::from_timestamp_nanos(nanos as i64)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    let v3_range = format!(
        "query.service_name=payment&query.start_time_min={}&query.start_time_max={}",
        rfc3339(t0()),
        rfc3339(t0() + 3_600_000 * MS)
    );
    for (raw_param, expected) in [
        ("", t0() + 40 * MS),
        ("&query.raw_traces=true", t0() + 40 * MS + SKEW),
    ] {
        let (status, found) = server
            .get_json(&format!("/api/v3/traces?{v3_range}{raw_param}"))
            .await;
        assert_eq!(status, 200, "{found}");
        let start = &v3_span(&found, "POST /pay")["startTimeUnixNano"];
        assert_eq!(start, &expected.to_string(), "{raw_param}");
    }
    let (_, v3_raw) = server
        .get_json(&format!(
            "/api/v3/traces/{}?raw_traces=true",
            hex(&trace_id(1))
        ))
        .await;
    let v3_raw_pay = v3_span(&v3_raw, "POST /pay");
    assert_eq!(
        v3_raw_pay["startTimeUnixNano"],
        (t0() + 40 * MS + SKEW).to_string()
    );
    assert!(
        pay["warnings"][0]
            .as_str()
            .unwrap()
            .contains("adjusting is off")
    );
}

/// Sends `count` generated spans into `tenant` with `service`'s clock shifted `skew_ms`.
fn skewed_load(server: &Server, tenant: &str, service: &str, skew_ms: i64, ids: &std::path::Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["loadgen", "--signal", "traces", "--count", "3000"])
        .args(["--otlp-grpc-addr", &server.grpc.to_string()])
        .args(["--skew-service", service, "--skew-ms", &skew_ms.to_string()])
        .args(["--header", &format!("X-Scope-OrgID: {tenant}")])
        .args(["--seed", "5", "--pool-size", "8"])
        .arg("--trace-ids-out")
        .arg(ids)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The stitched spans of `trace` whose clock crossing is off: on another host than their
/// parent and not within the parent's (adjusted) times; and the spans flagged.
fn crossings_off_and_flagged(stitched: &Value) -> (Vec<String>, Vec<String>) {
    let spans = stitched["spans"].as_array().unwrap();
    let nanos = |value: &Value| value.as_str().unwrap().parse::<u64>().unwrap();
    let by_id: std::collections::HashMap<&str, &Value> = spans
        .iter()
        .map(|span| (span["span_id"].as_str().unwrap(), span))
        .collect();
    let mut off = Vec::new();
    for span in spans {
        let Some(parent) = by_id.get(span["parent_span_id"].as_str().unwrap_or_default()) else {
            continue;
        };
        if parent["host"] == span["host"] {
            continue;
        }
        let (start, end) = (
            nanos(&span["raw_start_unix_nano"]),
            nanos(&span["raw_end_unix_nano"]),
        );
        if start < nanos(&parent["start_unix_nano"]) || end > nanos(&parent["end_unix_nano"]) {
            off.push(span["span_id"].as_str().unwrap().to_owned());
        }
    }
    let flagged = spans
        .iter()
        .filter(|span| !span["skew"].is_null())
        .map(|span| span["span_id"].as_str().unwrap().to_owned())
        .collect();
    (off, flagged)
}

#[tokio::test]
async fn offsets_between_hosts_are_estimated_across_traces_within_ten_percent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    // The offsets (+250 ms, −40 ms, +3 ms) and clocks in sync.
    for (tenant, skew_ms) in [
        ("ahead", 250i64),
        ("behind", -40),
        ("slight", 3),
        ("synced", 0),
    ] {
        let ids = dir.path().join(format!("{tenant}.ids"));
        skewed_load(&server, tenant, "payment", skew_ms, &ids);
        let (status, body) = server.get_json_as("/api/skew", Some(tenant)).await;
        assert_eq!(status, 200, "{body}");
        let pairs = body["pairs"].as_array().unwrap();
        let tolerance = (skew_ms.abs() as f64 * 0.1).max(1.0);
        let mut checked = 0;
        for pair in pairs {
            let offset = pair["offset_ms"].as_f64().unwrap();
            let samples = pair["samples"].as_u64().unwrap();
            let expected = match (
                pair["client_service"].as_str(),
                pair["server_service"].as_str(),
            ) {
                (Some("payment"), Some("payment")) => 0.0,
                (_, Some("payment")) => skew_ms as f64,
                (Some("payment"), _) => -skew_ms as f64,
                _ => 0.0,
            };
            assert!(
                (offset - expected).abs() <= tolerance,
                "{tenant}: {pair} (expected {expected} ms)"
            );
            if (skew_ms == 0 || expected != 0.0) && samples >= 20 {
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "{tenant}: no payment pair with 20 exchanges: {body}"
        );
        // The estimate is a metric too.
        let metrics = server.self_metrics().await;
        assert!(
            metrics.contains(&format!("skewer_clock_skew_seconds{{tenant=\"{tenant}\"")),
            "{metrics}"
        );
        // And the trace view moves payment's spans by it, saying so: every span whose
        // crossing from another host is off is flagged, and no other host's span.
        let trace = std::fs::read_to_string(&ids).unwrap();
        let flagged = {
            let mut flagged = 0;
            for id in trace.lines().take(30) {
                let (_, stitched) = server
                    .get_json_as(&format!("/api/stitch/{id}"), Some(tenant))
                    .await;
                let (off, flagged_ids) = crossings_off_and_flagged(&stitched);
                for span in &off {
                    let find = |id: &str| {
                        stitched["spans"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|s| s["span_id"] == id)
                            .cloned()
                            .unwrap_or_default()
                    };
                    let child = find(span);
                    let parent = find(child["parent_span_id"].as_str().unwrap());
                    assert!(
                        flagged_ids.contains(span),
                        "{tenant}: {span} not flagged: {child} under {parent}"
                    );
                }
                for span in stitched["spans"].as_array().unwrap() {
                    if let Some(reason) = span["skew"]["reason"].as_str() {
                        // Payment's spans only: moved by the estimate where they cross from
                        // another host, with it below.
                        assert_eq!(span["service_name"], "payment", "{span}");
                        assert!(
                            reason.contains("estimated across traces")
                                || reason.starts_with("same host as its parent"),
                            "{reason}"
                        );
                        flagged += usize::from(reason.contains("estimated across traces"));
                    }
                }
            }
            flagged
        };
        // Even at +3 ms, where payment's calls still fit within their callers' spans, the
        // estimate moves them; in sync nothing is flagged.
        if skew_ms == 0 {
            assert_eq!(flagged, 0, "{tenant}: a span flagged with clocks in sync");
        } else {
            assert!(
                flagged > 0,
                "{tenant}: no payment span flagged in 30 traces"
            );
        }
    }
}

/// One request with clocks in sync and asynchronous work: a message published by frontend
/// and consumed by worker after the request ended, a callee that outlives its caller's
/// timeout, and a linked trace started later. Nothing in it is a clock problem.
fn in_sync_with_async_children() -> ExportTraceServiceRequest {
    let (server, client, producer, consumer, internal) = (2, 3, 4, 5, 1);
    let email = linked(span(8, 90, None, "send receipt", consumer, 900, 950), 7, 71);
    ExportTraceServiceRequest {
        resource_spans: vec![
            spans_of(
                "frontend",
                vec![
                    span(7, 70, None, "POST /orders", server, 0, 100),
                    span(7, 71, Some(70), "publish orders", producer, 20, 25),
                    span(7, 72, Some(70), "GET inventory", client, 30, 60),
                ],
            ),
            spans_of(
                "worker",
                vec![
                    span(7, 73, Some(71), "process orders", consumer, 150, 400),
                    span(7, 74, Some(73), "write order", internal, 160, 390),
                ],
            ),
            // The caller gave up at 60 ms; inventory answered at 80 ms.
            spans_of(
                "inventory",
                vec![span(7, 75, Some(72), "GET /inventory", server, 31, 80)],
            ),
            spans_of("email", vec![email]),
        ],
    }
}

#[tokio::test]
async fn asynchronous_children_with_clocks_in_sync_are_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    server
        .trace_client()
        .await
        .export(in_sync_with_async_children())
        .await
        .unwrap();
    let id = hex(&trace_id(7));
    let (status, stitched) = server.get_json(&format!("/api/stitch/{id}")).await;
    assert_eq!(status, 200, "{stitched}");
    assert_eq!(stitched["spans"].as_array().unwrap().len(), 7, "{stitched}");
    assert_eq!(stitched["skew"]["spans_flagged"], 0, "{stitched}");
    assert_eq!(crossings_off_and_flagged(&stitched).1, Vec::<String>::new());
    for span in stitched["spans"].as_array().unwrap() {
        assert_eq!(
            span["start_unix_nano"], span["raw_start_unix_nano"],
            "{span}"
        );
    }
    let (status, jaeger) = server.get_json(&format!("/api/traces/{id}")).await;
    assert_eq!(status, 200, "{jaeger}");
    let spans = jaeger["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 6);
    assert!(spans.iter().all(|s| s["warnings"].is_null()), "{jaeger}");
}

#[tokio::test]
async fn warn_only_is_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "[query]\nclock_skew = \"warn\"\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    server.trace_client().await.export(traces()).await.unwrap();
    let (status, body) = server
        .get_json(&format!("/api/stitch/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skew"]["adjusting"], false);
    assert_eq!(body["skew"]["spans_flagged"], 1);
    assert_eq!(body["skew"]["spans_adjusted"], 0);
}

#[tokio::test]
async fn clock_skew_estimates_are_series_promql_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "[span_metrics]\ninterval_seconds = 1\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    skewed_load(&server, "ahead", "payment", 250, &dir.path().join("ids"));
    let query = "/api/v1/query?query=max(skewer_clock_skew_seconds%7Bserver_service%3D%22payment%22%2Cclient_service!%3D%22payment%22%7D)";
    let read = || async {
        let (_, body) = server.get_json_as(query, Some("ahead")).await;
        body["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    server
        .wait_for(
            "the skew gauge in the metric store",
            std::time::Duration::from_secs(20),
            || async { !read().await.is_empty() },
        )
        .await;
    let value = read().await;
    let seconds: f64 = value.parse().unwrap();
    assert!((seconds - 0.25).abs() <= 0.025, "{seconds}");
    // Another tenant's store has none.
    let (_, other) = server.get_json_as(query, Some("behind")).await;
    assert_eq!(other["data"]["result"], serde_json::json!([]));
}
