//! What goes in over OTLP/gRPC comes back out of the query API, field by field: first from
//! memory, then, after a graceful restart, from Parquet and the log index.

use serde_json::{Value, json};

use crate::fixtures::{hex, logs_request, metrics_request, span_id, t0, trace_id, trace_request};
use crate::harness::Server;

fn tag<'a>(tags: &'a Value, key: &str) -> &'a Value {
    tags.as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == key))
        .unwrap_or_else(|| panic!("tag {key} missing in {tags}"))
}

async fn check_trace(server: &Server) {
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], hex(&trace_id(1)));
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let root = spans
        .iter()
        .find(|s| s["spanID"] == hex(&span_id(10)))
        .unwrap();
    assert_eq!(root["operationName"], "GET /checkout");
    assert_eq!(root["startTime"], (t0() + 1_000_000) / 1_000);
    assert_eq!(root["duration"], 250_000);
    assert_eq!(root["references"], json!([]));
    let tags = &root["tags"];
    assert_eq!(tag(tags, "http.request.method")["value"], "GET");
    assert_eq!(
        tag(tags, "http.response.status_code"),
        &json!({"key": "http.response.status_code", "type": "int64", "value": 503})
    );
    assert_eq!(tag(tags, "sample.ratio")["type"], "float64");
    assert_eq!(tag(tags, "sample.ratio")["value"], 0.25);
    assert_eq!(
        tag(tags, "cache.hit"),
        &json!({"key": "cache.hit", "type": "bool", "value": false})
    );
    assert_eq!(
        tag(tags, "payload"),
        &json!({"key": "payload", "type": "binary", "value": "3q2+7w=="})
    );
    assert_eq!(tag(tags, "tags")["value"], r#"["a",2]"#);
    assert_eq!(tag(tags, "nested")["value"], r#"{"inner":"x"}"#);
    assert_eq!(tag(tags, "span.kind")["value"], "server");
    assert_eq!(tag(tags, "error")["value"], true);
    assert_eq!(
        tag(tags, "otel.status_description")["value"],
        "upstream failed"
    );
    assert_eq!(tag(tags, "w3c.tracestate")["value"], "vendor=1");
    assert_eq!(tag(tags, "otel.scope.name")["value"], "skewer-tests");
    assert_eq!(tag(tags, "otel.scope.version")["value"], "1.2.3");
    assert_eq!(root["flags"], 1);

    let child = spans
        .iter()
        .find(|s| s["spanID"] == hex(&span_id(11)))
        .unwrap();
    assert_eq!(
        child["references"][0],
        json!({"refType": "CHILD_OF", "traceID": hex(&trace_id(1)), "spanID": hex(&span_id(10))})
    );
    assert_eq!(child["references"][1]["refType"], "FOLLOWS_FROM");
    assert_eq!(child["references"][1]["traceID"], hex(&trace_id(1_000_001)));
    assert_eq!(tag(&child["tags"], "span.kind")["value"], "client");
    assert_eq!(child["logs"][0]["timestamp"], (t0() + 21_000_000) / 1_000);
    assert_eq!(tag(&child["logs"][0]["fields"], "event")["value"], "retry");
    assert_eq!(tag(&child["logs"][0]["fields"], "attempt")["value"], 2);

    let process = &trace["processes"][root["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "checkout");
    assert_eq!(tag(&process["tags"], "host.name")["value"], "host-1");
}

async fn check_logs(server: &Server) {
    let (status, body) = server
        .get_json(&format!("/api/logs?trace_id={}", hex(&trace_id(1))))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    let record = &body["records"][0];
    assert_eq!(
        record["body"],
        json!({"type": "string", "value": "payment declined for order 1 by upstream gateway"})
    );
    assert_eq!(record["severity_number"], 17);
    assert_eq!(record["severity_text"], "ERROR");
    assert_eq!(record["time_unix_nano"], (t0() + 31_000_000).to_string());
    assert_eq!(
        record["observed_time_unix_nano"],
        (t0() + 32_000_000).to_string()
    );
    assert_eq!(record["span_id"], hex(&span_id(11)));
    assert_eq!(record["flags"], 1);
    assert_eq!(record["service_name"], "checkout");
    assert_eq!(
        record["attributes"],
        json!([
            {"key": "order.id", "value": {"type": "string", "value": "order-1"}},
            {"key": "retry.count", "value": {"type": "int", "value": 3}},
        ])
    );
    assert_eq!(record["scope"]["name"], "skewer-tests");

    let (_, by_correlation) = server.get_json("/api/logs?correlation_id=corr-1").await;
    assert_eq!(by_correlation["count"], 1, "{by_correlation}");
    assert_eq!(by_correlation["records"][0]["correlation_id"], "corr-1");
    assert_eq!(
        by_correlation["records"][0]["body"]["value"],
        "inventory reserved"
    );

    let (_, by_text) = server.get_json("/api/logs?q=declined%20gateway").await;
    assert_eq!(by_text["count"], 1, "{by_text}");
    let (_, no_match) = server.get_json("/api/logs?q=declined%20inventory").await;
    assert_eq!(no_match["count"], 0, "terms are ANDed: {no_match}");

    // Severity by number or by name; errors of the native API in one JSON shape.
    for severity in ["17", "ERROR", "error", "ERROR1"] {
        let (status, errors) = server
            .get_json(&format!(
                "/api/logs?service=checkout&min_severity={severity}"
            ))
            .await;
        assert_eq!(status, 200, "{severity}: {errors}");
        assert_eq!(errors["count"], 1, "{severity}: {errors}");
    }
    let (_, warnings) = server
        .get_json("/api/logs?service=checkout&min_severity=warn")
        .await;
    assert_eq!(warnings["count"], 1, "INFO is below WARN: {warnings}");
    for bad in [
        "min_severity=LOUD",
        "min_severity=25",
        "limit=0",
        "limit=-1",
        "colour=red",
    ] {
        let (status, body) = server.get_json(&format!("/api/logs?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    let (_, by_service) = server.get_json("/api/logs?service=checkout").await;
    assert_eq!(by_service["count"], 2);
    assert_eq!(
        by_service["records"][0]["body"]["value"], "inventory reserved",
        "newest first"
    );
}

async fn series(server: &Server, name: &str) -> Value {
    let (status, body) = server
        .get_json(&format!("/api/metrics/points?name={name}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["series"].as_array().map(Vec::len),
        Some(1),
        "{name}: {body}"
    );
    body["series"][0].clone()
}

async fn check_metrics(server: &Server) {
    let gauge = series(server, "rt.gauge").await;
    assert_eq!(gauge["kind"], "gauge");
    assert_eq!(gauge["unit"], "1");
    assert_eq!(gauge["description"], "gauge description");
    assert_eq!(gauge["service_name"], "metrics-svc");
    assert_eq!(
        gauge["points"][0]["value"],
        json!({"kind": "number", "value": {"type": "double", "value": 21.5}})
    );
    assert_eq!(gauge["points"][0]["time_unix_nano"], t0().to_string());
    assert_eq!(
        gauge["attributes"],
        json!([{"key": "route", "value": {"type": "string", "value": "/checkout"}}])
    );

    let sum = series(server, "rt.requests").await;
    assert_eq!(sum["temporality"], "cumulative");
    assert_eq!(sum["is_monotonic"], true);
    let point = &sum["points"][0];
    assert_eq!(
        point["value"],
        json!({"kind": "number", "value": {"type": "int", "value": 42}})
    );
    assert_eq!(point["exemplars"][0]["trace_id"], hex(&trace_id(1)));
    assert_eq!(
        point["exemplars"][0]["time_unix_nano"], point["time_unix_nano"],
        "exemplar and point times in one encoding (Unix ns text)"
    );
    assert_eq!(point["exemplars"][0]["span_id"], hex(&span_id(10)));
    assert_eq!(
        point["exemplars"][0]["value"],
        json!({"type": "double", "value": 0.5})
    );
    assert_eq!(
        point["exemplars"][0]["filtered_attributes"][0]["key"],
        "user"
    );

    let histogram = series(server, "rt.latency").await;
    assert_eq!(histogram["temporality"], "delta");
    assert_eq!(
        histogram["points"][0]["value"],
        json!({"kind": "histogram", "count": 6, "sum": 1.5, "min": 0.01, "max": 0.9,
               "explicit_bounds": [0.1, 0.5], "bucket_counts": [1, 2, 3]})
    );

    let exponential = series(server, "rt.sizes").await;
    assert_eq!(
        exponential["points"][0]["value"],
        json!({"kind": "exponential_histogram", "count": 7, "sum": 70.0, "min": null, "max": null,
               "scale": 3, "zero_count": 1, "zero_threshold": 0.001,
               "positive": {"offset": -2, "bucket_counts": [1, 2, 3]},
               "negative": {"offset": 1, "bucket_counts": [0]}})
    );

    let summary = series(server, "rt.rpc").await;
    assert_eq!(
        summary["points"][0]["value"],
        json!({"kind": "summary", "count": 10, "sum": 5.0,
               "quantiles": [{"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": 0.9}]})
    );
}

#[tokio::test]
async fn grpc_exports_read_back_field_by_field_from_memory_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]).await;

    let response = server
        .trace_client()
        .await
        .export(trace_request(1, "checkout"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.partial_success, None);
    server
        .logs_client()
        .await
        .export(logs_request(1, "checkout", "corr-1"))
        .await
        .unwrap();
    server
        .metrics_client()
        .await
        .export(metrics_request("rt.", 0))
        .await
        .unwrap();

    check_trace(&server).await;
    check_logs(&server).await;
    check_metrics(&server).await;

    let status = server.terminate().await;
    assert!(
        status.success(),
        "graceful shutdown exits 0: {status}\n{}",
        server.log()
    );
    let objects = dir.path().join("data/objects/tenants/default");
    assert!(
        objects.join("traces").is_dir(),
        "spans flushed to Parquet on shutdown"
    );
    assert!(
        objects.join("metrics").is_dir(),
        "metrics flushed to Parquet on shutdown"
    );

    server.restart().await;
    check_trace(&server).await;
    check_logs(&server).await;
    check_metrics(&server).await;
}

#[tokio::test]
async fn unknown_trace_is_a_jaeger_404_and_bad_ids_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (status, body) = server
        .get_json("/api/traces/0102030405060708090a0b0c0d0e0f10")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["code"], 404);
    let (status, body) = server.get_json("/api/traces/not-hex").await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], 400);
    let (status, _) = server.get_json("/api/logs?trace_id=zz").await;
    assert_eq!(status, 400);
    let (status, _) = server.get_json("/api/metrics/points").await;
    assert_eq!(status, 400, "a metric name is required");
}

#[tokio::test]
async fn tenants_are_isolated_and_invalid_tenants_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let mut request = tonic::Request::new(trace_request(5, "team-a-svc"));
    request
        .metadata_mut()
        .insert("x-scope-orgid", "team-a".parse().unwrap());
    server.trace_client().await.export(request).await.unwrap();
    let path = format!("/api/traces/{}", hex(&trace_id(5)));
    assert_eq!(server.get_json_as(&path, Some("team-a")).await.0, 200);
    assert_eq!(
        server.get_json_as(&path, None).await.0,
        404,
        "default tenant sees nothing"
    );
    assert_eq!(server.get_json_as(&path, Some("team-b")).await.0, 404);
    assert_eq!(server.get_json_as(&path, Some("../x")).await.0, 400);

    let mut bad = tonic::Request::new(trace_request(6, "x"));
    bad.metadata_mut()
        .insert("x-scope-orgid", "a/b".parse().unwrap());
    let err = server.trace_client().await.export(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn invalid_spans_are_refused_through_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let mut request = trace_request(9, "svc");
    request.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let response = server
        .trace_client()
        .await
        .export(request)
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("span id"),
        "{}",
        partial.error_message
    );
    let (_, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(9))))
        .await;
    assert_eq!(
        body["data"][0]["spans"].as_array().map(Vec::len),
        Some(1),
        "the valid span is kept"
    );
}
