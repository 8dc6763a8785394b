//! Prometheus remote write 1.0 on the OTLP/HTTP port: a snappy-compressed `WriteRequest` is
//! answered 204 and reads back through the native points API, also after `kill -9` and WAL
//! replay; malformed snappy, an oversized declared length, snappy that is not protobuf and a
//! request with nothing valid are refused, and the server keeps serving.

use prost::Message;
use serde_json::{Value, json};
use skewer_ingest::remote_write::proto::{
    MetricMetadata, STALE_NAN_BITS, TimeSeries, WriteRequest,
};

use crate::fixtures::t0;
use crate::harness::Server;

const NANOS_PER_MILLI: u64 = 1_000_000;

fn t0_ms() -> i64 {
    i64::try_from(t0() / NANOS_PER_MILLI).unwrap()
}

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    crate::fixtures::remote_write_series(labels, samples)
}

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

/// POSTs `body` as Prometheus does: snappy, protobuf, version header.
async fn post(server: &Server, body: Vec<u8>) -> reqwest::Response {
    post_as(server, "application/x-protobuf", body).await
}

async fn post_as(server: &Server, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.otlp_url("/api/v1/write"))
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("OTLP/HTTP reachable")
}

/// The series of metric `name` around `t0`.
async fn stored_series(server: &Server, name: &str) -> Vec<Value> {
    let start = t0() - 3_600_000_000_000;
    let end = t0() + 3_600_000_000_000;
    let (status, body) = server
        .get_json(&format!(
            "/api/metrics/points?name={name}&start={start}&end={end}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["series"].as_array().cloned().unwrap_or_default()
}

/// `(time_unix_nano, flags)` of each point of the only series of `name`, checking the series.
async fn stored_points(server: &Server, name: &str) -> Vec<(u64, u64)> {
    let series = stored_series(server, name).await;
    assert_eq!(series.len(), 1, "{series:?}");
    let series = &series[0];
    assert_eq!(series["kind"], "gauge");
    assert_eq!(series["temporality"], "unspecified");
    assert_eq!(series["description"], "Requests served.");
    assert_eq!(series["resource"]["attributes"], json!([]));
    assert_eq!(
        series["attributes"],
        json!([
            {"key": "instance", "value": {"type": "string", "value": "api-1:9090"}},
            {"key": "job", "value": {"type": "string", "value": "api"}},
        ])
    );
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| {
            let time = point["time_unix_nano"].as_str().unwrap().parse().unwrap();
            (time, point["flags"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn remote_write_samples_are_stored_and_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]).await;
    let name = "rw_requests_total";
    let labels = [
        ("__name__", name),
        ("instance", "api-1:9090"),
        ("job", "api"),
    ];
    let stale = f64::from_bits(STALE_NAN_BITS);
    let request = WriteRequest {
        timeseries: vec![
            series(
                &labels,
                &[
                    (1.0, t0_ms()),
                    (4.0, t0_ms() + 15_000),
                    (stale, t0_ms() + 30_000),
                ],
            ),
            // Refused (no name) and counted; the rest is kept.
            series(&[("job", "api")], &[(1.0, t0_ms())]),
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: name.into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
    };
    let response = post(&server, snappy(&request.encode_to_vec())).await;
    assert_eq!(response.status(), 204, "{:?}", response.text().await);

    let t0_ns = t0();
    let expected = vec![
        (t0_ns, 0),
        (t0_ns + 15_000 * NANOS_PER_MILLI, 0),
        (t0_ns + 30_000 * NANOS_PER_MILLI, 1),
    ];
    assert_eq!(stored_points(&server, name).await, expected);
    let series = stored_series(&server, name).await;
    assert_eq!(
        series[0]["points"][1]["value"],
        json!({"kind": "number", "value": {"type": "double", "value": 4.0}})
    );
    let rejected = server
        .metric("skewer_ingest_records_rejected_total{signal=\"metrics\"}")
        .await;
    assert_eq!(rejected, 1.0);

    // Acknowledged means in the WAL: replay (payload format 3) brings back the same points.
    server.kill9();
    server.restart().await;
    assert_eq!(stored_points(&server, name).await, expected);
}

#[tokio::test]
async fn bad_remote_write_bodies_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 1 << 20;
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", &max_bytes.to_string()],
    )
    .await;

    let response = post(&server, b"\xff\xff\xff\xff\xff\xff\xff\xff".to_vec()).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("snappy"), "{text}");

    // A header declaring 2 MiB, past the 1 MiB cap: refused before decompressing.
    let mut declared_too_long = vec![0x80, 0x80, 0x80, 0x01];
    declared_too_long.extend_from_slice(b"\x00garbage");
    let response = post(&server, declared_too_long).await;
    assert_eq!(response.status(), 413);
    // A real bomb: 2 MiB of zeros in about 100 KiB of snappy.
    let bomb = snappy(&vec![0u8; 2 << 20]);
    assert!(bomb.len() < max_bytes / 4);
    assert_eq!(post(&server, bomb).await.status(), 413);

    let response = post(&server, snappy(b"\xff\xff\xff\xff not protobuf")).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("remote write protobuf"), "{text}");

    let nameless = WriteRequest {
        timeseries: vec![series(&[("job", "api")], &[(1.0, t0_ms())])],
        metadata: Vec::new(),
    };
    let response = post(&server, snappy(&nameless.encode_to_vec())).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("no __name__ label"), "{text}");

    // Remote write 2.0 is refused with 415, as its specification asks of a 1.0-only receiver.
    let valid = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "rw_after_errors"), ("job", "api")],
            &[(1.0, t0_ms())],
        )],
        metadata: Vec::new(),
    };
    let response = post_as(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        snappy(&valid.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 415);

    let response = post(&server, snappy(&valid.encode_to_vec())).await;
    assert_eq!(response.status(), 204);
    assert_eq!(stored_series(&server, "rw_after_errors").await.len(), 1);
}

#[tokio::test]
async fn a_full_budget_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--max-buffered-bytes",
            "200000",
            "--flush-interval-seconds",
            "3600",
            "--flush-max-bytes",
            "100000000",
        ],
    )
    .await;
    let mut refused = None;
    for n in 0..2000 {
        let request = WriteRequest {
            timeseries: (0..50)
                .map(|i| {
                    let id = format!("{n}-{i}");
                    series(
                        &[("__name__", "rw_load"), ("series", &id)],
                        &[(1.0, t0_ms())],
                    )
                })
                .collect(),
            metadata: Vec::new(),
        };
        let response = post(&server, snappy(&request.encode_to_vec())).await;
        if response.status() != 204 {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("remote write load must hit a 200 kB budget");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let retryable = server
        .metric("skewer_ingest_requests_total{signal=\"metrics\",outcome=\"retryable\"}")
        .await;
    assert!(retryable >= 1.0, "{retryable}");
}
