//! PromQL against a real Prometheus: the same samples are remote-written to both, the same
//! instant and range queries asked of both, and the answers compared series by series
//! (values within a relative 1e-9, timestamps exactly).

use std::collections::BTreeMap;

use prost::Message;
use serde_json::Value;
use skewer_ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};

use crate::harness::Server;
use crate::prometheus_peer::Prometheus;

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 240;

/// Series over the last hour at 15 s: counters with resets, gauges, histogram buckets,
/// a series that stops (staleness by lookback) and one with gaps.
fn samples(end_ms: i64) -> WriteRequest {
    let start_ms = end_ms - (POINTS - 1) * STEP_MS;
    let mut timeseries = Vec::new();
    let mut add = |labels: &[(&str, &str)], value: &dyn Fn(i64) -> Option<f64>| {
        let samples: Vec<Sample> = (0..POINTS)
            .filter_map(|i| {
                value(i).map(|value| Sample {
                    value,
                    timestamp: start_ms + i * STEP_MS,
                })
            })
            .collect();
        let mut labels: Vec<Label> = labels
            .iter()
            .map(|(name, value)| Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        timeseries.push(TimeSeries {
            labels,
            samples,
            ..TimeSeries::default()
        });
    };
    for (instance, rate, reset_every) in [("a", 3.0, 97), ("b", 7.5, 41), ("c", 0.25, 1000)] {
        for (code, share) in [("200", 0.9), ("500", 0.1)] {
            add(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", instance),
                    ("code", code),
                ],
                &|i| Some(((i % reset_every) as f64) * rate * share * 15.0),
            );
        }
        add(
            &[
                ("__name__", "memory_bytes"),
                ("job", "api"),
                ("instance", instance),
            ],
            &|i| Some(1e6 * rate + ((i * 37 % 101) as f64) * 1000.0 - 50_000.0),
        );
        let mut cumulative = 0.0;
        let counts: Vec<f64> = [0.2, 0.5, 0.2, 0.1]
            .iter()
            .map(|share| {
                cumulative += share;
                cumulative
            })
            .collect();
        for (le, fraction) in ["0.1", "0.5", "1", "+Inf"].iter().zip(counts) {
            add(
                &[
                    ("__name__", "latency_seconds_bucket"),
                    ("job", "api"),
                    ("instance", instance),
                    ("le", le),
                ],
                &|i| Some((i as f64 * rate * fraction * 4.0).floor()),
            );
        }
    }
    add(&[("__name__", "stops_early"), ("job", "batch")], &|i| {
        (i < POINTS / 2).then_some(i as f64)
    });
    add(&[("__name__", "gappy"), ("job", "batch")], &|i| {
        (i % 30 < 20).then_some((i % 7) as f64 - 3.0)
    });
    WriteRequest {
        timeseries,
        ..WriteRequest::default()
    }
}

const INSTANT_QUERIES: &[&str] = &[
    "http_requests_total",
    "http_requests_total offset 10m",
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "resets(http_requests_total[30m])",
    "changes(memory_bytes[10m])",
    "delta(memory_bytes[5m])",
    "idelta(memory_bytes[5m])",
    "deriv(memory_bytes[10m])",
    "predict_linear(memory_bytes[10m], 600)",
    "avg_over_time(memory_bytes[10m])",
    "min_over_time(memory_bytes[10m])",
    "max_over_time(memory_bytes[10m])",
    "sum_over_time(gappy[10m])",
    "count_over_time(gappy[10m])",
    "stddev_over_time(memory_bytes[10m])",
    "quantile_over_time(0.9, memory_bytes[10m])",
    "last_over_time(gappy[10m])",
    "sum by (code) (rate(http_requests_total[5m]))",
    "sum without (instance) (rate(http_requests_total[5m]))",
    "avg(memory_bytes)",
    "max by (job) (memory_bytes)",
    "count(http_requests_total)",
    "stddev(memory_bytes)",
    "topk(2, memory_bytes)",
    "bottomk(1, rate(http_requests_total[5m]))",
    "quantile(0.5, memory_bytes)",
    "count_values(\"value\", gappy)",
    "sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))",
    "rate(http_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(http_requests_total{code=\"200\"}[5m])",
    "memory_bytes * on(instance) group_left(code) rate(http_requests_total{code=\"500\"}[5m])",
    "memory_bytes > 7000000",
    "memory_bytes > bool 7000000",
    "http_requests_total and on(instance) memory_bytes > 2000000",
    "http_requests_total unless on(instance) memory_bytes > 2000000",
    "stops_early or gappy",
    "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(latency_seconds_bucket[5m]))",
    "abs(gappy)",
    "clamp(memory_bytes, 1000000, 5000000)",
    "round(rate(http_requests_total[5m]), 0.1)",
    "label_replace(memory_bytes, \"host\", \"h-$1\", \"instance\", \"(.*)\")",
    "label_join(memory_bytes, \"id\", \"/\", \"job\", \"instance\")",
    "absent(nonexistent{job=\"x\"})",
    "absent_over_time(stops_early[5m])",
    "timestamp(gappy)",
    "vector(1) + scalar(count(memory_bytes))",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "stops_early",
    "-memory_bytes % 7",
    "2 ^ 3 * 4 - 1",
];

const RANGE_QUERIES: &[&str] = &[
    "rate(http_requests_total[5m])",
    "sum by (instance) (increase(http_requests_total[2m]))",
    "stops_early",
    "gappy",
    "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "avg_over_time(memory_bytes[3m]) - memory_bytes",
    "time()",
];

/// A comparable form of an API answer: result type, then per series label set its points.
fn normalise(body: &Value) -> (String, BTreeMap<String, Vec<(f64, f64)>>) {
    assert_eq!(body["status"], "success", "{body}");
    let data = &body["data"];
    let kind = data["resultType"].as_str().unwrap().to_owned();
    let point = |p: &Value| {
        let value = p[1].as_str().unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse::<f64>().unwrap(),
        };
        (p[0].as_f64().unwrap(), value)
    };
    let mut series = BTreeMap::new();
    match kind.as_str() {
        "scalar" | "string" => {
            series.insert(String::new(), vec![point(&data["result"])]);
        }
        _ => {
            for one in data["result"].as_array().unwrap() {
                let points = match one.get("values") {
                    Some(values) => values.as_array().unwrap().iter().map(point).collect(),
                    None => vec![point(&one["value"])],
                };
                series.insert(one["metric"].to_string(), points);
            }
        }
    }
    (kind, series)
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Differences between the two answers, if any; `answered` counts answers with data.
fn compare(query: &str, ours: &Value, theirs: &Value, answered: &mut usize) -> Option<String> {
    let (our_kind, our_series) = normalise(ours);
    let (their_kind, their_series) = normalise(theirs);
    if !their_series.is_empty() {
        *answered += 1;
    }
    if our_kind != their_kind || our_series.keys().ne(their_series.keys()) {
        return Some(format!(
            "{query}:\n  skewer:     {ours}\n  prometheus: {theirs}"
        ));
    }
    for (labels, points) in &our_series {
        let theirs = &their_series[labels];
        let equal = points.len() == theirs.len()
            && points
                .iter()
                .zip(theirs)
                .all(|(a, b)| a.0 == b.0 && same(a.1, b.1));
        if !equal {
            return Some(format!(
                "{query} {labels}:\n  skewer:     {points:?}\n  prometheus: {theirs:?}"
            ));
        }
    }
    None
}

async fn remote_write(client: &reqwest::Client, url: String, request: &WriteRequest) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let response = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().await.unwrap_or_default()
    );
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn promql_answers_as_prometheus_does() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prometheus) = Prometheus::start(dir.path()).await else {
        return;
    };
    let server = Server::start(&dir.path().join("skewer"), &[]).await;
    let now_ms = chrono_now_ms();
    let end_ms = now_ms - now_ms % STEP_MS;
    let request = samples(end_ms);
    let client = reqwest::Client::new();
    remote_write(&client, prometheus.url("/api/v1/write"), &request).await;
    remote_write(&client, server.otlp_url("/api/v1/write"), &request).await;

    let mut failures = Vec::new();
    let mut answered = 0;
    let times = [
        end_ms,
        end_ms - 7 * 60_000 - 3_000,
        end_ms - 31 * 60_000 + 500,
    ];
    for query in INSTANT_QUERIES {
        for time in times {
            let params = format!("query={}&time={}", encode(query), time as f64 / 1000.0);
            let ours = get(&client, server.api(&format!("/api/v1/query?{params}"))).await;
            let theirs = get(&client, prometheus.url(&format!("/api/v1/query?{params}"))).await;
            failures.extend(compare(
                &format!("{query} @ {time}"),
                &ours,
                &theirs,
                &mut answered,
            ));
        }
    }
    for query in RANGE_QUERIES {
        let params = format!(
            "query={}&start={}&end={}&step=45",
            encode(query),
            (end_ms - 50 * 60_000) as f64 / 1000.0,
            (end_ms + 6 * 60_000) as f64 / 1000.0,
        );
        let ours = get(
            &client,
            server.api(&format!("/api/v1/query_range?{params}")),
        )
        .await;
        let theirs = get(
            &client,
            prometheus.url(&format!("/api/v1/query_range?{params}")),
        )
        .await;
        failures.extend(compare(
            &format!("range {query}"),
            &ours,
            &theirs,
            &mut answered,
        ));
    }
    let asked = INSTANT_QUERIES.len() * times.len() + RANGE_QUERIES.len();
    eprintln!("{answered} of {asked} answers held data");
    // All but `absent(nonexistent…)` at each of the three times hold data.
    assert!(
        answered + 3 >= asked,
        "only {answered} of {asked} answers held data"
    );
    assert!(
        failures.is_empty(),
        "{} of {asked} comparisons differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn chrono_now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_millis()).unwrap()
}
