//! The Loki HTTP API through the binary: OTLP logs sent over gRPC, read back with LogQL as
//! Grafana's Loki data source asks (streams, categorised labels, metric matrices and
//! vectors, listings), in Loki's envelopes, with errors as Loki answers them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as OtlpValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value, json};

use crate::fixtures::{hex, scope, string, t0, trace_id};
use crate::harness::Server;

const SECOND: u64 = 1_000_000_000;

fn line(text: &str, second: u64, severity_number: i32, trace: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: t0() + second * SECOND,
        severity_number,
        body: Some(AnyValue {
            value: Some(OtlpValue::StringValue(text.to_owned())),
        }),
        attributes: vec![string("request.id", &format!("req-{trace}"))],
        trace_id: trace_id(trace),
        ..LogRecord::default()
    }
}

fn resource_logs(attributes: Vec<(&str, &str)>, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: attributes.into_iter().map(|(k, v)| string(k, v)).collect(),
            ..Resource::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: scope(),
            log_records: records,
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }
}

/// checkout (prod): six logfmt lines 10 s apart, even ones errors; cart: three JSON lines.
fn traffic() -> ExportLogsServiceRequest {
    let checkout = (0..6u64)
        .map(|i| {
            if i % 2 == 0 {
                line(
                    &format!("level=error msg=\"upstream timeout\" status=504 took=1.{i}s"),
                    i * 10,
                    17,
                    i + 1,
                )
            } else {
                line("level=info msg=ok status=200 took=20ms", i * 10, 9, i + 1)
            }
        })
        .collect();
    let cart = (0..3u64)
        .map(|i| {
            line(
                &format!("{{\"event\":\"add\",\"qty\":{i}}}"),
                5 + i * 10,
                9,
                100 + i,
            )
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![
            resource_logs(
                vec![
                    ("service.name", "checkout"),
                    ("deployment.environment", "prod"),
                    ("host.name", "h1"),
                ],
                checkout,
            ),
            resource_logs(vec![("service.name", "cart")], cart),
        ],
    }
}

/// A server holding [`traffic`]: committed to the index (read through its columns and
/// stream catalog), or still in the buffer.
async fn started_with(committed: bool) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let commit_interval = if committed { "1" } else { "3600" };
    let server = Server::start(
        dir.path(),
        &["--log-commit-interval-seconds", commit_interval],
    )
    .await;
    server
        .logs_client()
        .await
        .export(traffic())
        .await
        .expect("logs accepted");
    if committed {
        server.wait_logs_committed().await;
    }
    (dir, server)
}

async fn started() -> (tempfile::TempDir, Server) {
    started_with(true).await
}

/// A Loki API path with the query URL-encoded and times around the traffic.
fn path(endpoint: &str, query: &str, extra: &str) -> String {
    let query: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!(
        "/loki/api/v1/{endpoint}?query={query}&start={}&end={}{extra}",
        t0(),
        t0() + 120 * SECOND
    )
}

async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(server.api(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The lines of a streams answer, in answer order.
fn lines(body: &Value) -> Vec<String> {
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|stream| stream["values"].as_array().unwrap().clone())
        .map(|value| value[1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn log_queries_answer_streams_in_either_direction_with_limits() {
    let (_dir, server) = started().await;
    let query = r#"{service_name="checkout"} |= "timeout" | logfmt | took > 1.1s"#;
    let (status, body) = get(&server, &path("query_range", query, "&limit=10"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams");
    let result = body["data"]["result"].as_array().unwrap();
    // Without categorised labels, metadata and parsed labels are part of each stream.
    assert_eq!(result.len(), 2, "{body}");
    let newest = &result[0];
    assert_eq!(
        newest["values"],
        json!([[
            (t0() + 40 * SECOND).to_string(),
            "level=error msg=\"upstream timeout\" status=504 took=1.4s"
        ]])
    );
    let stream = &newest["stream"];
    assert_eq!(stream["service_name"], "checkout");
    assert_eq!(stream["deployment_environment"], "prod");
    assert_eq!(stream["host_name"], "h1");
    assert_eq!(stream["trace_id"], hex(&trace_id(5)));
    assert_eq!(stream["request_id"], "req-5");
    assert_eq!(stream["detected_level"], "error");
    assert_eq!(stream["status"], "504");
    assert_eq!(stream["took"], "1.4s");

    let all_checkout = r#"{service_name="checkout"}"#;
    let (_, forward) = get(
        &server,
        &path("query_range", all_checkout, "&direction=forward&limit=2"),
        &[],
    )
    .await;
    assert_eq!(
        lines(&forward),
        [
            "level=error msg=\"upstream timeout\" status=504 took=1.0s",
            "level=info msg=ok status=200 took=20ms"
        ]
    );
    let (_, backward) = get(&server, &path("query_range", all_checkout, "&limit=1"), &[]).await;
    assert_eq!(lines(&backward), ["level=info msg=ok status=200 took=20ms"]);

    // One request's lines by trace id, across the selector.
    let by_trace = format!(
        r#"{{service_name=~".+"}} | trace_id="{}""#,
        hex(&trace_id(101))
    );
    let (_, traced) = get(&server, &path("query_range", &by_trace, ""), &[]).await;
    assert_eq!(lines(&traced), [r#"{"event":"add","qty":1}"#]);
    let json_filter = r#"{service_name="cart"} | json | qty >= 1"#;
    let (_, parsed) = get(
        &server,
        &path("query_range", json_filter, "&direction=forward"),
        &[],
    )
    .await;
    assert_eq!(
        lines(&parsed),
        [r#"{"event":"add","qty":1}"#, r#"{"event":"add","qty":2}"#]
    );
}

#[tokio::test]
async fn categorized_labels_keep_streams_by_their_stream_labels() {
    let (_dir, server) = started().await;
    let (status, body) = get(
        &server,
        &path(
            "query_range",
            r#"{service_name="checkout"} | logfmt"#,
            "&limit=2",
        ),
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["encodingFlags"], json!(["categorize-labels"]));
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(
        result[0]["stream"],
        json!({ "deployment_environment": "prod", "service_name": "checkout" })
    );
    let newest = &result[0]["values"][0];
    assert_eq!(newest[0], (t0() + 50 * SECOND).to_string());
    assert_eq!(
        newest[2]["structuredMetadata"]["trace_id"],
        hex(&trace_id(6))
    );
    assert_eq!(
        newest[2]["structuredMetadata"]["scope_name"],
        "skewer-tests"
    );
    assert_eq!(newest[2]["parsed"]["status"], "200");
    assert_eq!(newest[2]["parsed"]["level"], "info");
}

#[tokio::test]
async fn metric_queries_answer_matrices_and_vectors() {
    for committed in [true, false] {
        metric_queries_answer(committed).await;
    }
}

async fn metric_queries_answer(committed: bool) {
    let (_dir, server) = started_with(committed).await;
    let query = r#"sum by (service_name) (count_over_time({service_name=~".+"}[30s]))"#;
    let extra = "&step=30";
    let range = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}{extra}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>(),
        t0() + 30 * SECOND,
        t0() + 60 * SECOND,
    );
    let (status, body) = get(&server, &range, &[]).await;
    assert_eq!(status, 200, "{body}");
    let t = |s: u64| (t0() + s * SECOND) as f64 / 1e9;
    assert_eq!(
        body["data"]["result"],
        json!([
            { "metric": { "service_name": "cart" }, "values": [[t(30), "3"]] },
            { "metric": { "service_name": "checkout" }, "values": [[t(30), "3"], [t(60), "2"]] },
        ]),
        "{body}"
    );
    assert_eq!(body["data"]["resultType"], "matrix");

    let errors = r#"sum(count_over_time({service_name="checkout"} | logfmt | status >= 500 [2m])) / sum(count_over_time({service_name="checkout"}[2m]))"#;
    let instant = format!(
        "/loki/api/v1/query?query={}&time={}",
        form_urlencoded::byte_serialize(errors.as_bytes()).collect::<String>(),
        t0() + 60 * SECOND,
    );
    let (status, body) = get(&server, &instant, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(
        body["data"]["result"],
        json!([{ "metric": {}, "value": [t(60), "0.5"] }])
    );

    // Grafana's health check.
    let (status, body) = get(
        &server,
        "/loki/api/v1/query?query=vector(1)%2Bvector(1)",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "2");
}

#[tokio::test]
async fn labels_values_and_series_list_the_streams_of_a_range() {
    for committed in [true, false] {
        labels_values_and_series(committed).await;
    }
}

async fn labels_values_and_series(committed: bool) {
    let (_dir, server) = started_with(committed).await;
    let range = format!("start={}&end={}", t0(), t0() + 120 * SECOND);
    let (status, body) = get(&server, &format!("/loki/api/v1/labels?{range}"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "status": "success", "data": ["deployment_environment", "service_name"] })
    );
    let (_, body) = get(
        &server,
        &format!("/loki/api/v1/label/service_name/values?{range}"),
        &[],
    )
    .await;
    assert_eq!(body["data"], json!(["cart", "checkout"]));
    let (_, body) = get(
        &server,
        &format!("/loki/api/v1/series?{range}&match[]=%7Bdeployment_environment%3D%22prod%22%7D"),
        &[],
    )
    .await;
    assert_eq!(
        body["data"],
        json!([{ "deployment_environment": "prod", "service_name": "checkout" }])
    );
    // What a selector covers, as Grafana asks before running a query.
    let (status, body) = get(
        &server,
        &format!("/loki/api/v1/index/stats?{range}&query=%7Bservice_name%3D%22checkout%22%7D"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "streams": 1, "chunks": 1, "entries": 6, "bytes": 3 * 55 + 3 * 38 })
    );
    // Bytes per series, largest first (Grafana ranks services by it): by the selector's
    // labels, or by `targetLabels`, which a stream must have to count.
    let any_service = r#"{service_name=~".+"}"#;
    let (status, body) = get(&server, &path("index/volume", any_service, ""), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    let series = |body: &Value| -> Vec<(Value, Value)> {
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| (sample["metric"].clone(), sample["value"][1].clone()))
            .collect()
    };
    assert_eq!(
        series(&body),
        [
            (json!({ "service_name": "checkout" }), json!("279")),
            (json!({ "service_name": "cart" }), json!("69")),
        ]
    );
    let by_environment = "&targetLabels=deployment_environment";
    let (_, body) = get(
        &server,
        &path("index/volume", any_service, by_environment),
        &[],
    )
    .await;
    assert_eq!(
        series(&body),
        [(json!({ "deployment_environment": "prod" }), json!("279"))]
    );
    let (_, body) = get(&server, &path("index/volume", any_service, "&limit=1"), &[]).await;
    assert_eq!(series(&body).len(), 1);
    let (status, body) = get(
        &server,
        &path("index/volume", any_service, "&aggregateBy=labels"),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    // Outside the range, nothing.
    let before = format!(
        "start={}&end={}",
        t0() - 7_200 * SECOND,
        t0() - 3_600 * SECOND
    );
    let (_, body) = get(
        &server,
        &format!("/loki/api/v1/label/service_name/values?{before}"),
        &[],
    )
    .await;
    assert_eq!(body["data"], json!([]));
    // Another tenant sees none of it.
    let (_, body) = get(
        &server,
        &format!("/loki/api/v1/labels?{range}"),
        &[("X-Scope-OrgID", "other")],
    )
    .await;
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn bad_requests_are_answered_400_with_the_reason_and_position() {
    let (_dir, server) = started().await;
    let cases = [
        (
            path("query_range", r#"{service_name="checkout"} |= 42"#, ""),
            "parse error at line 1, col 30",
        ),
        (path("query_range", "{}", ""), "at least one label matcher"),
        (
            path(
                "query_range",
                r#"{service_name="checkout"}"#,
                "&limit=100000",
            ),
            "max entries limit",
        ),
        (
            path(
                "query_range",
                r#"{service_name="checkout"}"#,
                "&direction=sideways",
            ),
            "invalid direction",
        ),
        (
            path("query", r#"{service_name="checkout"}"#, ""),
            "not supported as an instant query",
        ),
        (
            path(
                "query_range",
                r#"{service_name="checkout"} | line_format "{{.x}}""#,
                "",
            ),
            "line_format stage is not supported",
        ),
        (
            "/loki/api/v1/query_range?start=1".to_owned(),
            "invalid query: missing",
        ),
        (
            "/loki/api/v1/series?start=1".to_owned(),
            "at least one match[]",
        ),
    ];
    for (path, expected) in cases {
        let (status, body) = get(&server, &path, &[]).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["code"], 400, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: {message}");
    }
    // A query whose lines fail a parser must filter the error, as in Loki.
    let (status, body) = get(
        &server,
        &path(
            "query",
            r#"sum(count_over_time({service_name="checkout"} | json [1m]))"#,
            &format!("&time={}", t0() + 60 * SECOND),
        ),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("JSONParserErr"),
        "{body}"
    );
}

#[tokio::test]
async fn form_posts_are_read_like_query_strings() {
    let (_dir, server) = started().await;
    let response = reqwest::Client::new()
        .post(server.api("/loki/api/v1/query_range"))
        .form(&[
            ("query", r#"{service_name="cart"}"#),
            ("start", &t0().to_string()),
            ("end", &(t0() + 120 * SECOND).to_string()),
            ("direction", "forward"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        lines(&body),
        [
            r#"{"event":"add","qty":0}"#,
            r#"{"event":"add","qty":1}"#,
            r#"{"event":"add","qty":2}"#
        ]
    );
}
