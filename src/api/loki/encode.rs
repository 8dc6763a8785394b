//! Loki's response shapes: `streams` of `["<ns>", "<line>"]` values (with a third element of
//! structured metadata and parsed labels when labels are categorised), `matrix`, `vector` and
//! `scalar` results of metric queries, and errors as `{"status":"error","code":…,"message":…}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use skewer_query::logql::{Labels, MetricResult, Stream};
use skewer_query::promql::format_value;

use super::LokiError;
use crate::api::prometheus::encode::point;

/// `{"status":"success","data":data}`.
pub fn success(data: Value) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

/// The error answer, with the status Loki gives it.
pub fn failure(error: &LokiError) -> Response {
    let status = error.status();
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %error, "Loki API query failed");
        "internal error".to_owned()
    } else {
        error.to_string()
    };
    (
        status,
        Json(json!({ "status": "error", "code": status.as_u16(), "message": message })),
    )
        .into_response()
}

/// A label set as a JSON object.
pub fn labels(labels: &Labels) -> Value {
    let map: Map<String, Value> = labels
        .iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
        .collect();
    Value::Object(map)
}

/// The `data` of a log query.
pub fn streams_data(streams: &[Stream], categorized: bool, stats: Value) -> Value {
    let result: Vec<Value> = streams
        .iter()
        .map(|stream| {
            let values: Vec<Value> = stream
                .entries
                .iter()
                .map(|entry| {
                    let mut value = vec![
                        Value::String(entry.time_unix_nano.to_string()),
                        Value::String(entry.line.clone()),
                    ];
                    if categorized && !(entry.metadata.is_empty() && entry.parsed.is_empty()) {
                        let mut categories = Map::new();
                        if !entry.metadata.is_empty() {
                            categories.insert("structuredMetadata".into(), labels(&entry.metadata));
                        }
                        if !entry.parsed.is_empty() {
                            categories.insert("parsed".into(), labels(&entry.parsed));
                        }
                        value.push(Value::Object(categories));
                    }
                    Value::Array(value)
                })
                .collect();
            json!({ "stream": labels(&stream.labels), "values": values })
        })
        .collect();
    let mut data = json!({ "resultType": "streams", "result": result, "stats": stats });
    if categorized {
        data["encodingFlags"] = json!(["categorize-labels"]);
    }
    data
}

fn ns_to_ms(time_unix_nano: u64) -> i64 {
    i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX)
}

/// The `data` of a metric query; `time` is the evaluation time of instant results.
pub fn metric_data(result: &MetricResult, time_unix_nano: u64, stats: Value) -> Value {
    let (result_type, result) = match result {
        MetricResult::Scalar(value) => (
            "scalar",
            point(ns_to_ms(time_unix_nano), &format_value(*value)),
        ),
        MetricResult::Vector(samples) => (
            "vector",
            Value::Array(
                samples
                    .iter()
                    .map(|(metric, value)| {
                        json!({
                            "metric": labels(metric),
                            "value": point(ns_to_ms(time_unix_nano), &format_value(*value)),
                        })
                    })
                    .collect(),
            ),
        ),
        MetricResult::Matrix(series) => (
            "matrix",
            Value::Array(
                series
                    .iter()
                    .map(|(metric, points)| {
                        let values: Vec<Value> = points
                            .iter()
                            .map(|&(time, value)| point(ns_to_ms(time), &format_value(value)))
                            .collect();
                        json!({ "metric": labels(metric), "values": values })
                    })
                    .collect(),
            ),
        ),
    };
    json!({ "resultType": result_type, "result": result, "stats": stats })
}
