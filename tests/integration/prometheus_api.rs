//! The Prometheus HTTP API through the binary: OTLP metrics sent over gRPC, read back with
//! PromQL under their Prometheus names, exactly enveloped; listings and metadata; errors
//! with their `errorType` and status.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value, json};

use crate::fixtures::{scope, string, t0};
use crate::harness::Server;

const SECOND: u64 = 1_000_000_000;

/// A monotonic counter rising 1 per second and a histogram, for two instances of
/// `checkout`, with points every 15 s over ten minutes from `t0()`.
fn traffic() -> ExportMetricsServiceRequest {
    let times = || (0..=40u64).map(|i| (i, t0() + i * 15 * SECOND));
    let resource_metrics = ["i-1", "i-2"]
        .into_iter()
        .enumerate()
        .map(|(n, instance)| {
            let per_second = (n + 1) as u64;
            let counter = Metric {
                name: "http.server.requests".into(),
                description: "Requests served".into(),
                unit: "{request}".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: times()
                        .map(|(i, time)| NumberDataPoint {
                            attributes: vec![string("route", "/pay")],
                            start_time_unix_nano: t0(),
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsInt(
                                (i * 15 * per_second) as i64,
                            )),
                            ..NumberDataPoint::default()
                        })
                        .collect(),
                    aggregation_temporality: 2,
                    is_monotonic: true,
                })),
                ..Metric::default()
            };
            // Every observation under 0.1 s for i-1, under 1 s for i-2.
            let histogram = Metric {
                name: "http.server.duration".into(),
                description: "Request duration".into(),
                unit: "s".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: times()
                        .map(|(i, time)| HistogramDataPoint {
                            start_time_unix_nano: t0(),
                            time_unix_nano: time,
                            count: i * 10,
                            sum: Some(i as f64),
                            bucket_counts: if n == 0 {
                                vec![i * 10, 0, 0]
                            } else {
                                vec![0, i * 10, 0]
                            },
                            explicit_bounds: vec![0.1, 1.0],
                            ..HistogramDataPoint::default()
                        })
                        .collect(),
                    aggregation_temporality: 2,
                })),
                ..Metric::default()
            };
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        string("service.name", "checkout"),
                        string("service.instance.id", instance),
                        string("host.name", "host-1"),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics: vec![counter, histogram],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Seconds of `t0() + offset_seconds`, as the API takes times.
fn at(offset_seconds: u64) -> String {
    ((t0() / SECOND) + offset_seconds).to_string()
}

async fn started() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    server
        .metrics_client()
        .await
        .export(traffic())
        .await
        .unwrap();
    (dir, server)
}

fn encode(query: &str) -> String {
    form_urlencoded::byte_serialize(query.as_bytes()).collect()
}

async fn query(server: &Server, promql: &str, time: &str) -> (u16, Value) {
    server
        .get_json(&format!(
            "/api/v1/query?query={}&time={time}",
            encode(promql)
        ))
        .await
}

/// The vector result as (instance, value) pairs, sorted.
fn by_instance(body: &Value) -> Vec<(String, String)> {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["data"]["resultType"], "vector", "{body}");
    let mut out: Vec<(String, String)> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap_or("").to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn otlp_counters_and_histograms_answer_promql() {
    let (_dir, server) = started().await;

    let (status, body) = query(&server, "rate(http_server_requests_total[5m])", &at(600)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        by_instance(&body),
        [("i-1".into(), "1".into()), ("i-2".into(), "2".into())]
    );
    let first = &body["data"]["result"][0];
    assert_eq!(first["metric"]["job"], "checkout", "{body}");
    assert_eq!(first["metric"]["route"], "/pay", "{body}");
    assert!(
        first["metric"].get("__name__").is_none(),
        "rate drops the name: {body}"
    );
    assert_eq!(
        first["value"][0].as_f64(),
        Some((t0() / SECOND + 600) as f64)
    );

    let (_, body) = query(
        &server,
        "sum by (job) (increase(http_server_requests_total[2m]))",
        &at(600),
    )
    .await;
    let result = &body["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(result[0]["metric"], json!({"job": "checkout"}));
    assert_eq!(result[0]["value"][1], "360", "{body}");

    let (_, body) = query(
        &server,
        "histogram_quantile(0.5, rate(http_server_duration_seconds_bucket[5m]))",
        &at(600),
    )
    .await;
    assert_eq!(
        by_instance(&body),
        [("i-1".into(), "0.05".into()), ("i-2".into(), "0.55".into())]
    );

    // A point past the lookback: nothing.
    let (_, body) = query(&server, "http_server_requests_total", &at(600 + 301)).await;
    assert_eq!(body["data"]["result"], json!([]), "{body}");
}

#[tokio::test]
async fn range_queries_answer_a_matrix_and_posts_work_like_gets() {
    let (_dir, server) = started().await;
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        encode("http_server_requests_total{instance=\"i-1\"}"),
        at(0),
        at(600)
    );
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = &body["data"]["result"][0];
    assert_eq!(series["metric"]["__name__"], "http_server_requests_total");
    let values = series["values"].as_array().unwrap();
    assert_eq!(values.len(), 11, "{body}");
    assert_eq!(values[10][1], "600");

    let response = reqwest::Client::new()
        .post(server.api("/api/v1/query"))
        .form(&[
            ("query", "count(http_server_requests_total)"),
            ("time", at(300).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["result"][0]["value"][1], "2", "{body}");
}

#[tokio::test]
async fn series_labels_and_metadata_list_what_is_stored() {
    let (_dir, server) = started().await;
    let range = format!("start={}&end={}", at(0), at(600));
    let (status, body) = server
        .get_json(&format!(
            "/api/v1/series?match[]={}&{range}",
            encode("http_server_requests_total")
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let series = body["data"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{body}");
    assert_eq!(series[0]["__name__"], "http_server_requests_total");

    let (_, body) = server.get_json(&format!("/api/v1/labels?{range}")).await;
    let names = body["data"].as_array().unwrap();
    for name in ["__name__", "instance", "job", "le", "route"] {
        assert!(names.contains(&json!(name)), "{name} missing: {body}");
    }
    let (_, body) = server
        .get_json(&format!("/api/v1/label/__name__/values?{range}"))
        .await;
    let names = body["data"].as_array().unwrap();
    for name in [
        "http_server_duration_seconds_bucket",
        "http_server_duration_seconds_count",
        "http_server_requests_total",
        "target_info",
    ] {
        assert!(names.contains(&json!(name)), "{name} missing: {body}");
    }
    let (_, body) = server
        .get_json(&format!("/api/v1/label/job/values?{range}"))
        .await;
    assert_eq!(body["data"], json!(["checkout"]));

    let (_, body) = server.get_json(&format!("/api/v1/metadata?{range}")).await;
    assert_eq!(
        body["data"]["http_server_requests_total"][0]["type"], "counter",
        "{body}"
    );
    assert_eq!(
        body["data"]["http_server_duration_seconds"][0],
        json!({"type": "histogram", "help": "Request duration", "unit": "seconds"})
    );

    let (_, body) = server.get_json("/api/v1/status/buildinfo").await;
    assert_eq!(body["status"], "success");
    // The Prometheus whose semantics PromQL follows (Grafana picks features by it).
    assert_eq!(body["data"]["version"], "2.42.0");
}

#[tokio::test]
async fn errors_carry_their_type_and_status() {
    let (_dir, server) = started().await;
    let (status, body) = query(&server, "rate(http_server_requests_total[5m]", &at(600)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");

    let (status, body) = server.get_json("/api/v1/query").await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("bad_data"))
    );
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("query"), "{message}");

    let (status, body) = server
        .get_json(&format!(
            "/api/v1/query_range?query=up&start={}&end={}&step=0",
            at(0),
            at(60)
        ))
        .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("bad_data")),
        "{body}"
    );

    // Both instances on each side share every label but the name: no unique match.
    let (status, body) = query(
        &server,
        "http_server_requests_total + ignoring(instance) http_server_requests_total",
        &at(600),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");

    let (status, body) = query(&server, "up", "yesterday").await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("bad_data")),
        "{body}"
    );
}

/// Every metric series index sidecar (`*.series`) under `dir`.
fn series_sidecars(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(series_sidecars(&path));
        } else if path.extension().is_some_and(|e| e == "series") {
            found.push(path);
        }
    }
    found
}

/// What a user asks of the metrics: the series listing, label values and two queries.
async fn answers(server: &Server) -> Vec<Value> {
    let range = format!("start={}&end={}", at(0), at(600));
    let mut out = Vec::new();
    for path in [
        format!(
            "/api/v1/series?match[]={}&{range}",
            encode("{job=\"checkout\"}")
        ),
        format!("/api/v1/label/__name__/values?{range}"),
        format!(
            "/api/v1/query?query={}&time={}",
            encode("sum by (job) (increase(http_server_requests_total[2m]))"),
            at(600)
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            encode("http_server_duration_seconds_bucket{le=\"+Inf\"}"),
            at(0),
            at(600)
        ),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.push(body["data"].clone());
    }
    out
}

#[tokio::test]
async fn flushed_files_answer_through_their_series_indexes_and_a_damaged_one_is_said() {
    let (dir, mut server) = started().await;
    let buffered = answers(&server).await;
    assert!(
        buffered[0].as_array().is_some_and(|s| s.len() > 5),
        "{:?}",
        buffered[0]
    );
    // A graceful stop flushes: the restarted server reads files and their indexes.
    server.terminate().await;
    let sidecars = series_sidecars(&dir.path().join("data"));
    assert!(
        !sidecars.is_empty(),
        "flushed metric files have series indexes"
    );
    server.restart().await;
    assert_eq!(answers(&server).await, buffered, "from the series indexes");

    // Damaged indexes: the points of these files have no series without them, so answers
    // that need their series fail (never a guess), and the log names the file.
    server.terminate().await;
    for sidecar in &sidecars {
        std::fs::write(sidecar, b"not an index").unwrap();
    }
    server.restart().await;
    let range = format!("start={}&end={}", at(0), at(600));
    let path = format!(
        "/api/v1/series?match[]={}&{range}",
        encode("{job=\"checkout\"}")
    );
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(
        server.log().contains("series index unreadable"),
        "{}",
        server.log()
    );
}
