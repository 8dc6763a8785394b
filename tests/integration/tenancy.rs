//! Per-tenant limits through the binary: a tenant over its record rate gets `429` naming the
//! limit (with `Retry-After`) while another tenant sending at the same time gets every export
//! in; a new tenant past the cap is refused over HTTP and gRPC alike, existing ones are not;
//! `/metrics` counts each tenant's records and refusals; a tenant at its active-series limit
//! keeps its active series while points of new ones are refused (and never reach the WAL).

use std::time::{Duration, Instant};

use prost::Message;
use tonic::metadata::MetadataValue;

use crate::fixtures::trace_request;
use crate::harness::Server;

const LIMITS: &str = r#"
[limits]
max_tenants = 3

[limits.tenants.noisy]
ingest_records_per_second = 20
"#;

async fn export(server: &Server, tenant: &str, n: u64) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", tenant)
        .body(trace_request(n, "svc").encode_to_vec())
        .send()
        .await
        .expect("OTLP/HTTP reachable")
}

#[tokio::test]
async fn a_tenant_at_its_limits_does_not_hold_back_another() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, LIMITS).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;

    // Both tenants send as fast as they can for two seconds, side by side: 2 spans an export.
    let started = Instant::now();
    let send = |tenant: &'static str| {
        let server = &server;
        async move {
            let (mut accepted, mut limited, mut other) = (0_u32, 0_u32, Vec::new());
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(2) {
                n += 1;
                let response = export(server, tenant, n).await;
                match response.status().as_u16() {
                    200 => accepted += 1,
                    429 => {
                        assert!(response.headers().contains_key("retry-after"));
                        let body =
                            String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
                        assert!(body.contains("ingest_records_per_second = 20;"), "{body}");
                        limited += 1;
                    }
                    status => other.push(status),
                }
            }
            (accepted, limited, other)
        }
    };
    let (noisy, quiet) = tokio::join!(send("noisy"), send("quiet"));
    assert!(noisy.1 > 0, "the noisy tenant was never limited: {noisy:?}");
    // 200 records a second, a second's burst: at most ~3 s worth of 2-span exports get in.
    assert!(
        noisy.0 <= 320,
        "the limit let {} exports of 2 spans through in 2 s",
        noisy.0
    );
    assert_eq!(quiet.1, 0, "the quiet tenant was limited");
    assert!(
        quiet.2.is_empty() && noisy.2.is_empty(),
        "{quiet:?} {noisy:?}"
    );
    assert!(
        quiet.0 > noisy.0,
        "the quiet tenant got fewer exports in than the limited one: {quiet:?} {noisy:?}"
    );

    // The cap: noisy and quiet exist; a third tenant fits, a fourth does not, on any transport.
    assert_eq!(export(&server, "third", 1).await.status(), 200);
    let refused = export(&server, "fourth", 1).await;
    assert_eq!(refused.status(), 429);
    let body = String::from_utf8_lossy(&refused.bytes().await.unwrap()).into_owned();
    assert!(body.contains("max_tenants = 3"), "{body}");
    let mut request = tonic::Request::new(trace_request(2, "svc"));
    request
        .metadata_mut()
        .insert("x-scope-orgid", MetadataValue::from_static("fifth"));
    let status = server
        .trace_client()
        .await
        .export(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("max_tenants"), "{status:?}");
    assert_eq!(
        export(&server, "quiet", 99).await.status(),
        200,
        "existing tenants keep working"
    );

    let limited = server
        .metric(r#"skewer_tenant_limited_requests_total{tenant="noisy",limit="ingest_records_per_second"}"#)
        .await;
    assert_eq!(limited, f64::from(noisy.1));
    let quiet_records = server
        .metric(r#"skewer_tenant_ingest_records_total{tenant="quiet"}"#)
        .await;
    assert_eq!(quiet_records, f64::from(quiet.0 + 1) * 2.0);
}

/// A gauge `temp` with one point per room, at `t0`.
fn rooms(
    rooms: &[&str],
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    let points = rooms
        .iter()
        .map(|room| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "room".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue((*room).into())),
                }),
                ..KeyValue::default()
            }],
            time_unix_nano: crate::fixtures::t0(),
            value: Some(number_data_point::Value::AsDouble(21.5)),
            ..NumberDataPoint::default()
        })
        .collect();
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "temp".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

async fn temp_series(server: &Server, tenant: &str) -> usize {
    let hour = 3_600_000_000_000;
    let t0 = crate::fixtures::t0();
    let (status, body) = server
        .get_json_as(
            &format!(
                "/api/metrics/points?name=temp&start={}&end={}",
                t0 - hour,
                t0 + hour
            ),
            Some(tenant),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["series"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_tenant_at_its_series_limit_keeps_its_active_series_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_active_series = 3\n\n[limits.tenants.big]\nmax_active_series = 100\n",
    )
    .unwrap();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let grpc = |tenant: &'static str, request| {
        let mut request = tonic::Request::new(request);
        request
            .metadata_mut()
            .insert("x-scope-orgid", MetadataValue::from_static(tenant));
        request
    };

    // Five new series, room for three: the first three are kept, the rest refused by name.
    let answer = server
        .metrics_client()
        .await
        .export(grpc("small", rooms(&["a", "b", "c", "d", "e"])))
        .await
        .unwrap()
        .into_inner();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("max_active_series = 3"),
        "{partial:?}"
    );

    // Only new series: refused whole, 429 naming the limit; active ones still go in.
    let refused = reqwest::Client::new()
        .post(server.otlp_url("/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", "small")
        .body(rooms(&["f", "g"]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body = String::from_utf8_lossy(&refused.bytes().await.unwrap()).into_owned();
    assert!(body.contains("max_active_series = 3"), "{body}");
    let again = server
        .metrics_client()
        .await
        .export(grpc("small", rooms(&["a", "c"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.partial_success, None, "active series go on");

    // Remote write counts its series against the same limit.
    let write = skewer_ingest::remote_write::proto::WriteRequest {
        timeseries: vec![skewer_ingest::remote_write::proto::TimeSeries {
            labels: vec![skewer_ingest::remote_write::proto::Label {
                name: "__name__".into(),
                value: "up".into(),
            }],
            samples: vec![skewer_ingest::remote_write::proto::Sample {
                value: 1.0,
                timestamp: i64::try_from(crate::fixtures::t0() / 1_000_000).unwrap(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let written = reqwest::Client::new()
        .post(server.otlp_url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-scope-orgid", "small")
        .body(
            snap::raw::Encoder::new()
                .compress_vec(&write.encode_to_vec())
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 429);

    // Another tenant, with a limit of its own, is not held back.
    let big = server
        .metrics_client()
        .await
        .export(grpc("big", rooms(&["a", "b", "c", "d", "e"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(big.partial_success, None);

    assert_eq!(
        server
            .metric(r#"skewer_tenant_active_series{tenant="small"}"#)
            .await,
        3.0
    );
    assert_eq!(
        server
            .metric(r#"skewer_tenant_series_limited_points_total{tenant="small"}"#)
            .await,
        5.0
    );
    assert_eq!(temp_series(&server, "small").await, 3);
    assert_eq!(temp_series(&server, "big").await, 5);

    // What was refused never reached the WAL: a crash and replay bring back three series.
    server.kill9();
    server.restart().await;
    assert_eq!(temp_series(&server, "small").await, 3);
    assert_eq!(temp_series(&server, "big").await, 5);
}

#[tokio::test]
async fn a_tenant_query_over_its_own_row_limit_gets_429_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "[limits.tenants.small]\nquery_max_rows = 3\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    for tenant in ["small", "big"] {
        let mut request = tonic::Request::new(rooms(&["a", "b", "c", "d", "e"]));
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
        server.metrics_client().await.export(request).await.unwrap();
    }
    let hour = 3_600_000_000_000;
    let t0 = crate::fixtures::t0();
    let points = format!(
        "/api/metrics/points?name=temp&start={}&end={}",
        t0 - hour,
        t0 + hour
    );
    let (status, body) = server.get_json_as(&points, Some("small")).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("query_max_rows = 3"),
        "{body}"
    );
    let (status, body) = server.get_json_as(&points, Some("big")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"].as_array().unwrap().len(), 5);

    // PromQL answers in the Prometheus envelope, with the same status.
    let query = format!("/api/v1/query?query=temp&time={}", t0 / 1_000_000_000);
    let (status, body) = server.get_json_as(&query, Some("small")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["status"], "error");
    let (status, body) = server.get_json_as(&query, Some("big")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_tenant_query_over_its_own_range_limit_gets_429_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(
        &config,
        "[limits.tenants.small]\nquery_max_range_hours = 1\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let hour = 3_600_000_000_000_u64;
    let (three_hours, half_hour) = (
        format!("start={}&end={now}", now - 3 * hour),
        format!("start={}&end={now}", now - hour / 2),
    );
    let seconds = |nanos: u64| nanos / 1_000_000_000;
    let ranged = [
        format!("/api/search/traces?service=svc&{three_hours}"),
        format!("/api/logs?{three_hours}"),
        format!("/api/metrics/points?name=temp&{three_hours}"),
        format!(
            "/api/v1/query_range?query=up&start={}&end={}&step=60",
            seconds(now - 3 * hour),
            seconds(now)
        ),
        format!("/loki/api/v1/query_range?query=%7Bservice_name%3D%22a%22%7D&{three_hours}"),
        // An instant query whose selector reaches back further than the limit.
        format!("/api/v1/query?query=rate(up%5B3h%5D)&time={}", seconds(now)),
        format!(
            "/api/v1/query?query=max_over_time(up%5B3h%3A1m%5D)&time={}",
            seconds(now)
        ),
    ];
    for path in &ranged {
        let (status, body) = server.get_json_as(path, Some("small")).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert!(
            body.to_string().contains("query_max_range_hours = 1"),
            "{path}: {body}"
        );
        let (status, body) = server.get_json_as(path, Some("big")).await;
        assert_eq!(status, 200, "another tenant, {path}: {body}");
    }
    // Within the range, and lookups by id, go through.
    for path in [
        format!("/api/search/traces?service=svc&{half_hour}"),
        format!(
            "/api/v1/query?query=rate(up%5B30m%5D)&time={}",
            seconds(now)
        ),
        format!("/api/logs?{half_hour}"),
        "/api/logs?correlation_id=req-1".to_owned(),
        format!(
            "/api/traces/{}",
            crate::fixtures::hex(&crate::fixtures::trace_id(1))
        ),
    ] {
        let (status, body) = server.get_json_as(&path, Some("small")).await;
        assert!(status == 200 || status == 404, "{path}: {status} {body}");
    }
}
