//! The Jaeger query API through the binary, called the way Grafana's Jaeger data source and
//! the Jaeger UI call it: services, operations, trace search with every parameter, multi-get,
//! trace by id and the error envelope in v1 JSON; traces, searches and trace summaries in
//! api_v3's OTLP/JSON. Each answer is checked while
//! the spans are buffered and again once they are in files.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::{hex, t0, trace_id, trace_request, trace_request_at};
use crate::harness::Server;

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap().to_owned())
        .collect()
}

fn trace_hex(n: u64) -> String {
    hex(&trace_id(n))
}

async fn search(server: &Server, query: &str) -> Vec<String> {
    let (status, body) = server.get_json(&format!("/api/traces?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["errors"], Value::Null, "{query}: {body}");
    ids(&body)
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

/// Every listing and search over traces 1 and 2 of `frontend` and 3 of `billing` (each a
/// `GET /checkout` server root of 250 ms with an error status and a `SELECT orders` client
/// child of 50 ms with `db.system=postgresql`, trace n starting n ms after t0).
async fn check_answers(server: &Server) {
    let (status, body) = server.get_json("/api/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": ["billing", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = server.get_json("/api/services/frontend/operations").await;
    assert_eq!(body["data"], json!(["GET /checkout", "SELECT orders"]));
    assert_eq!(body["total"], 2);
    let (_, body) = server
        .get_json("/api/operations?service=frontend&spanKind=server")
        .await;
    assert_eq!(
        body["data"],
        json!([{"name": "GET /checkout", "spanKind": "server"}])
    );
    let (_, body) = server.get_json("/api/operations?service=billing").await;
    assert_eq!(
        body["data"],
        json!([{"name": "GET /checkout", "spanKind": "server"}, {"name": "SELECT orders", "spanKind": "client"}])
    );
    let (_, body) = server.get_json("/api/v3/services").await;
    assert_eq!(body, json!({"services": ["billing", "frontend"]}));
    let (_, body) = server
        .get_json("/api/v3/operations?service=frontend&spanKind=client")
        .await;
    assert_eq!(
        body,
        json!({"operations": [{"name": "SELECT orders", "spanKind": "client"}]})
    );
    let (_, body) = server.get_json("/api/services/nobody/operations").await;
    assert_eq!(
        body["data"],
        json!([]),
        "an unknown service has no operations, not null"
    );

    let (start, end) = (micros(t0()), micros(t0() + 3_600_000_000_000));
    let range = format!("start={start}&end={end}");
    // Newest first: trace 2 starts after trace 1.
    assert_eq!(
        search(server, &format!("service=frontend&{range}")).await,
        [trace_hex(2), trace_hex(1)]
    );
    assert_eq!(
        search(server, &format!("service=frontend&{range}&limit=1")).await,
        [trace_hex(2)]
    );
    // `raw=true` (Jaeger's "skip the adjusters") changes times, never which traces match
    // (the times it keeps are tested with skewed clocks in stitch.rs).
    assert_eq!(
        search(server, &format!("service=frontend&{range}&raw=true")).await,
        [trace_hex(2), trace_hex(1)]
    );
    assert_eq!(
        search(server, &format!("service=billing&{range}")).await,
        [trace_hex(3)]
    );
    // Tags: span attributes, derived fields, resource attributes; all on one span.
    for tags in [
        "tag=db.system:postgresql",
        "tag=span.kind:client&tag=db.system:postgresql",
        "tags=%7B%22http.response.status_code%22%3A%22503%22%7D",
        "tag=error:true&tag=http.request.method:GET",
        "tag=host.name:host-1",
        "tag=attempt:2",
    ] {
        assert_eq!(
            search(server, &format!("service=frontend&{range}&{tags}")).await,
            [trace_hex(2), trace_hex(1)],
            "{tags}"
        );
    }
    for tags in [
        "tag=db.system:mysql",
        "tag=error:true&tag=db.system:postgresql",
    ] {
        assert!(
            search(server, &format!("service=frontend&{range}&{tags}"))
                .await
                .is_empty(),
            "{tags}"
        );
    }
    // Operation and duration bounds (the root lasts 250 ms, the child 50 ms).
    let op = "operation=SELECT%20orders";
    assert_eq!(
        search(
            server,
            &format!("service=frontend&{range}&{op}&maxDuration=50ms")
        )
        .await,
        [trace_hex(2), trace_hex(1)]
    );
    assert!(
        search(
            server,
            &format!("service=frontend&{range}&{op}&minDuration=51ms")
        )
        .await
        .is_empty()
    );
    assert_eq!(
        search(
            server,
            &format!("service=frontend&{range}&minDuration=0.2s")
        )
        .await,
        [trace_hex(2), trace_hex(1)]
    );
    assert!(
        search(
            server,
            &format!("service=frontend&{range}&minDuration=251ms")
        )
        .await
        .is_empty()
    );
    // Across hours, newest first: trace 4 is an hour older than the others.
    let two_hours = format!("start={}&end={end}", micros(t0() - 7_200_000_000_000));
    assert_eq!(
        search(server, &format!("service=frontend&{two_hours}")).await,
        [trace_hex(2), trace_hex(1), trace_hex(4)]
    );
    assert_eq!(
        search(server, &format!("service=frontend&{two_hours}&limit=2")).await,
        [trace_hex(2), trace_hex(1)]
    );
    // Time bounds: only trace 1's root starts in [t0, t0 + 1.5 ms].
    let early = format!("start={start}&end={}", micros(t0() + 1_500_000));
    assert_eq!(
        search(server, &format!("service=frontend&{early}")).await,
        [trace_hex(1)]
    );

    // A multi-get answers found traces and names the missing one.
    let (status, body) = server
        .get_json(&format!(
            "/api/traces?traceID={}&traceID={}&traceID={}",
            trace_hex(3),
            trace_hex(1),
            trace_hex(99)
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), [trace_hex(3), trace_hex(1)]);
    assert_eq!(
        body["errors"],
        json!([{"code": 404, "msg": "trace not found", "traceID": trace_hex(99)}])
    );
    // Search, multi-get and trace by id return the same trace (also as "View JSON" asks).
    let (_, by_id) = server
        .get_json(&format!("/api/traces/{}", trace_hex(1)))
        .await;
    let (_, pretty) = server
        .get_json(&format!("/api/traces/{}?prettyPrint=true", trace_hex(1)))
        .await;
    assert_eq!(pretty, by_id);
    assert_eq!(by_id["data"][0], body["data"][1]);
    let found = server
        .get_json(&format!("/api/traces?service=frontend&{early}"))
        .await
        .1;
    assert_eq!(found["data"][0], by_id["data"][0]);
    let trace = &by_id["data"][0];
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);
    assert_eq!(trace["processes"]["p1"]["serviceName"], "frontend");
    assert_eq!(trace["warnings"], Value::Null);
    check_v3_answers(server).await;
    check_native_search(server).await;
}

/// The native search: conditions Jaeger cannot express, duration percentiles.
async fn check_native_search(server: &Server) {
    let range = format!("start={}&end={}", t0(), t0() + 3_600_000_000_000);
    let traces = |body: &Value| -> Vec<String> {
        body["traces"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (conditions, expected) in [
        (
            "where=db.system%3D~post.*",
            vec![trace_hex(2), trace_hex(1)],
        ),
        (
            "where=error%3Dtrue&where=http.response.status_code%3D~5%5Cd%5Cd",
            vec![trace_hex(2), trace_hex(1)],
        ),
        ("where=http.request.method!%3DGET&where=!db.system", vec![]),
        (
            "where=!db.system&where=http.request.method",
            vec![trace_hex(2), trace_hex(1)],
        ),
        ("where=db.system!~post.*&where=db.system", vec![]),
    ] {
        let (status, body) = server
            .get_json(&format!(
                "/api/search/traces?service=frontend&{range}&{conditions}"
            ))
            .await;
        assert_eq!(status, 200, "{conditions}: {body}");
        assert_eq!(traces(&body), expected, "{conditions}");
        assert_eq!(body["count"], expected.len());
    }
    // Any service: none named, or `*`.
    for any in ["", "service=*&", "service=%2A&"] {
        let (status, body) = server
            .get_json(&format!("/api/search/traces?{any}{range}&where=!db.system"))
            .await;
        assert_eq!(status, 200, "{any}: {body}");
        let mut found = traces(&body);
        found.sort();
        let mut all = vec![trace_hex(1), trace_hex(2), trace_hex(3)];
        all.sort();
        assert_eq!(found, all, "{any}");
    }
    let (_, body) = server
        .get_json(&format!(
            "/api/search/traces?service=frontend&{range}&limit=1"
        ))
        .await;
    assert_eq!(
        body["traces"][0],
        json!({
            "trace_id": trace_hex(2),
            "root_service": "frontend",
            "root_operation": "GET /checkout",
            "start": chrono::DateTime::from_timestamp_nanos((t0() + 2_000_000) as i64)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "start_unix_nano": (t0() + 2_000_000).to_string(),
            "duration_ns": "250000000",
            "span_count": 2,
            "error_span_count": 1,
            "orphan_span_count": 0,
            "services": [{"name": "frontend", "span_count": 2, "error_span_count": 1}],
        })
    );
    // Two traces of a 250 ms failing root and a 50 ms child each.
    let (status, body) = server
        .get_json(&format!("/api/search/durations?service=frontend&{range}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"spans": 4, "error_spans": 2, "p50_ns": "50000000", "p90_ns": "250000000",
               "p99_ns": "250000000", "max_ns": "250000000"})
    );
    let (_, body) = server
        .get_json(&format!(
            "/api/search/durations?service=frontend&{range}&operation=SELECT%20orders&where=attempt%3D2"
        ))
        .await;
    assert_eq!(
        (&body["spans"], &body["p99_ns"]),
        (&json!(2), &json!("50000000"))
    );
    let (status, body) = server
        .get_json(&format!(
            "/api/search/traces?service=frontend&{range}&where=k%3D~("
        ))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("where"), "{body}");
}

fn rfc3339(unix_nano: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_nano as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// OTLP/JSON spans of a `{"result": TracesData}` answer, as (trace id, span id) pairs.
fn otlp_span_ids(body: &Value) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for resource in body["result"]["resourceSpans"].as_array().unwrap() {
        for scope in resource["scopeSpans"].as_array().unwrap() {
            for span in scope["spans"].as_array().unwrap() {
                ids.push((
                    span["traceId"].as_str().unwrap().to_owned(),
                    span["spanId"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    ids.sort();
    ids
}

/// api_v3: traces as OTLP/JSON, searches and trace summaries, the same spans as v1.
async fn check_v3_answers(server: &Server) {
    let (status, body) = server
        .get_json(&format!("/api/v3/traces/{}", trace_hex(1)))
        .await;
    assert_eq!(status, 200, "{body}");
    let resource = &body["result"]["resourceSpans"][0];
    assert_eq!(
        resource["resource"]["attributes"][0],
        json!({"key": "service.name", "value": {"stringValue": "frontend"}})
    );
    let span = &resource["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], trace_hex(1));
    assert_eq!(span["name"], "GET /checkout");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["startTimeUnixNano"], (t0() + 1_000_000).to_string());
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "skewer-tests");

    let window = format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        rfc3339(t0()),
        rfc3339(t0() + 3_600_000_000_000)
    );
    let (status, v3) = server
        .get_json(&format!(
            "/api/v3/traces?query.serviceName=frontend&{window}"
        ))
        .await;
    assert_eq!(status, 200, "{v3}");
    let (_, v1) = server
        .get_json(&format!(
            "/api/traces?service=frontend&start={}&end={}",
            micros(t0()),
            micros(t0() + 3_600_000_000_000)
        ))
        .await;
    let mut v1_ids: Vec<(String, String)> = v1["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|trace| trace["spans"].as_array().unwrap().clone())
        .map(|span| {
            (
                span["traceID"].as_str().unwrap().to_owned(),
                span["spanID"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v1_ids.sort();
    assert_eq!(
        otlp_span_ids(&v3),
        v1_ids,
        "v1 and v3 return the same spans"
    );
    assert_eq!(v1_ids.len(), 4);

    let (status, body) = server
        .get_json(&format!(
            "/api/v3/trace-summaries?query.service_name=frontend&{window}&query.attributes=%7B%22db.system%22%3A%22postgresql%22%7D"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summaries"][0],
        json!({
            "traceId": trace_hex(2),
            "rootServiceName": "frontend",
            "rootOperationName": "GET /checkout",
            "minStartTimeUnixNano": (t0() + 2_000_000).to_string(),
            "maxEndTimeUnixNano": (t0() + 2_000_000 + 250_000_000).to_string(),
            "spanCount": 2,
            "errorSpanCount": 1,
            "orphanSpanCount": 0,
            "services": [{"name": "frontend", "spanCount": 2, "errorSpanCount": 1}],
        })
    );
    assert_eq!(body["summaries"][1]["traceId"], trace_hex(1));

    // Exactly as the Jaeger UI's search page asks (times with milliseconds, searchDepth 20,
    // the form's durations, attributes as a JSON map).
    let ui_time = |nanos: u64| {
        chrono::DateTime::from_timestamp_nanos(nanos as i64)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace(':', "%3A")
    };
    let (status, body) = server
        .get_json(&format!(
            "/api/v3/trace-summaries?query.serviceName=frontend&query.operationName=SELECT+orders\
             &query.startTimeMin={}&query.startTimeMax={}&query.searchDepth=20\
             &query.durationMin=10+ms&query.durationMax=1s\
             &query.attributes=%7B%22db.system%22%3A%22postgresql%22%7D",
            ui_time(t0()),
            ui_time(t0() + 3_600_000_000_000)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let found: Vec<&str> = body["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["traceId"].as_str().unwrap())
        .collect();
    assert_eq!(found, [trace_hex(2), trace_hex(1)]);
    // A root span carries no parentSpanId; a child its parent's.
    let (_, body) = server
        .get_json(&format!("/api/v3/traces/{}", trace_hex(1)))
        .await;
    let spans = &body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert!(spans[0].get("parentSpanId").is_none(), "{}", spans[0]);
    assert_eq!(spans[1]["parentSpanId"], spans[0]["spanId"]);

    let (status, body) = server
        .get_json(&format!("/api/v3/traces?query.serviceName=nobody&{window}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["httpCode"], 404, "{body}");
    let (status, _) = server
        .get_json(&format!("/api/v3/traces/{}", trace_hex(77)))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn jaeger_listings_and_search_answer_from_buffers_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--flush-interval-seconds", "1"]).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "frontend")).await.unwrap();
    traces.export(trace_request(2, "frontend")).await.unwrap();
    traces.export(trace_request(3, "billing")).await.unwrap();
    traces
        .export(trace_request_at(4, "frontend", t0() - 3_600_000_000_000))
        .await
        .unwrap();
    check_answers(&server).await;
    server
        .wait_for("span files", Duration::from_secs(30), || async {
            server
                .metric("skewer_storage_files{signal=\"traces\"}")
                .await
                > 0.0
                && server
                    .metric("skewer_buffered_records{signal=\"traces\"}")
                    .await
                    == 0.0
        })
        .await;
    check_answers(&server).await;
    // Another tenant sees nothing.
    let (status, body) = server.get_json_as("/api/services", Some("other")).await;
    assert_eq!((status, &body["data"]), (200, &json!([])));
}

#[tokio::test]
async fn bad_jaeger_parameters_get_400_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    for path in [
        "/api/traces",
        "/api/traces?service=a&minDuration=fast",
        "/api/traces?service=a&limit=-1",
        "/api/traces?service=a&tag=novalue",
        "/api/traces?traceID=xyz",
        "/api/traces/not-hex",
        "/api/operations",
        "/api/operations?service=a&spanKind=sideways",
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["data"], Value::Null, "{path}");
        assert_eq!(body["errors"][0]["code"], 400, "{path}: {body}");
        assert!(
            body["errors"][0]["msg"]
                .as_str()
                .unwrap()
                .contains("invalid")
        );
    }
    for path in [
        "/api/v3/operations?service=a&spanKind=sideways",
        "/api/v3/traces?query.serviceName=a",
        "/api/v3/traces?query.serviceName=a&query.startTimeMin=yesterday&query.startTimeMax=now",
        "/api/v3/trace-summaries?query.startTimeMin=2023-11-14T22:00:00Z&query.startTimeMax=2023-11-14T23:00:00Z",
        "/api/v3/traces/not-hex",
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["httpCode"], 400, "{path}: {body}");
    }
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", trace_hex(5)))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], 404);
}

/// One export of `service` holding `spans`.
fn export(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: crate::fixtures::resource(service),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u64,
    id: u64,
    parent: Option<u64>,
    kind: i32,
    millis: u64,
    error: bool,
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    use crate::fixtures::span_id;
    use opentelemetry_proto::tonic::trace::v1::Status;
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: format!("op-{id}"),
        kind,
        start_time_unix_nano: t0() + trace * 1_000_000,
        end_time_unix_nano: t0() + trace * 1_000_000 + millis * 1_000_000,
        attributes,
        status: error.then(|| Status {
            code: 2,
            ..Status::default()
        }),
        ..opentelemetry_proto::tonic::trace::v1::Span::default()
    }
}

#[tokio::test]
async fn dependencies_count_calls_between_services_and_to_uninstrumented_peers() {
    use crate::fixtures::string;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--flush-interval-seconds", "1"]).await;
    let mut client = server.trace_client().await;
    // Two requests: gateway (server 1, client 2 naming orders) calls orders (server 3,
    // failing in the first request), which calls the uninstrumented payments.example
    // (client 4) and an internal step of its own (5). The callee's spans arrive first, in
    // an export of their own, as they do when the callee finishes before its caller.
    for (trace, failing) in [(10u64, true), (11, false)] {
        let base = trace * 100;
        client
            .export(export(
                "orders",
                vec![
                    span(trace, base + 3, Some(base + 2), 2, 40, failing, vec![]),
                    span(
                        trace,
                        base + 4,
                        Some(base + 3),
                        3,
                        20,
                        false,
                        vec![string("server.address", "payments.example")],
                    ),
                    span(trace, base + 5, Some(base + 3), 1, 5, false, vec![]),
                ],
            ))
            .await
            .unwrap();
        client
            .export(export(
                "gateway",
                vec![
                    span(trace, base + 1, None, 2, 60, false, vec![]),
                    span(
                        trace,
                        base + 2,
                        Some(base + 1),
                        3,
                        50,
                        false,
                        vec![string("peer.service", "orders")],
                    ),
                ],
            ))
            .await
            .unwrap();
    }
    server
        .wait_for("span files", Duration::from_secs(30), || async {
            server
                .metric("skewer_storage_files{signal=\"traces\"}")
                .await
                > 0.0
                && server
                    .metric("skewer_buffered_records{signal=\"traces\"}")
                    .await
                    == 0.0
        })
        .await;
    let end_ms = (t0() + 3_600_000_000_000) / 1_000_000;
    let (status, body) = server
        .get_json(&format!(
            "/api/dependencies?endTs={end_ms}&lookback=7200000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([
            {"parent": "gateway", "child": "orders", "callCount": 2, "errorCount": 1,
             "meanDurationMicros": 40_000, "maxDurationMicros": 40_000},
            {"parent": "orders", "child": "payments.example", "callCount": 2, "errorCount": 0,
             "meanDurationMicros": 20_000, "maxDurationMicros": 20_000},
        ])
    );
    assert_eq!(body["total"], 2);
    // A window before the spans holds no calls.
    let (_, body) = server
        .get_json(&format!(
            "/api/dependencies?endTs={}&lookback=60000",
            t0() / 1_000_000 - 7_200_000
        ))
        .await;
    assert_eq!(body["data"], json!([]));
    let (status, _) = server.get_json("/api/dependencies?endTs=soon").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_trace_of_ten_thousand_spans_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--flush-interval-seconds", "1"]).await;
    let mut client = server.trace_client().await;
    const SPANS: u64 = 10_000;
    // A root and a fan-out of children, sent as a busy service would: many exports.
    for chunk in 0..10u64 {
        let spans = (chunk * SPANS / 10..(chunk + 1) * SPANS / 10)
            .map(|id| span(20, id, id.checked_sub(1).map(|_| 0), 1, 1, false, vec![]))
            .collect();
        client.export(export("batch", spans)).await.unwrap();
    }
    let check = |body: Value| {
        let trace = &body["data"][0];
        assert_eq!(
            trace["spans"].as_array().map(Vec::len),
            Some(SPANS as usize)
        );
    };
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", trace_hex(20)))
        .await;
    assert_eq!(status, 200);
    check(body);
    server
        .wait_for("span files", Duration::from_secs(30), || async {
            server
                .metric("skewer_buffered_records{signal=\"traces\"}")
                .await
                == 0.0
        })
        .await;
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", trace_hex(20)))
        .await;
    assert_eq!(status, 200);
    check(body);
    let (_, body) = server
        .get_json(&format!("/api/v3/traces/{}", trace_hex(20)))
        .await;
    let spans = body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .map(Vec::len);
    assert_eq!(spans, Some(SPANS as usize));
}
