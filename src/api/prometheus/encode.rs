//! The Prometheus API's JSON: the `{"status", "data"}` envelope, values as strings,
//! times as Unix seconds, and errors with their `errorType`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use skewer_query::promql::{Labels, PromqlError, QueryValue, Sample, format_value};

/// `{"status":"success","data":data}`.
pub fn success(data: Value) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

/// `{"status":"error","errorType":…,"error":…}` with the status Prometheus answers with.
pub fn failure(err: &PromqlError) -> Response {
    let error_type = err.error_type();
    let tenant_limit = matches!(err, PromqlError::Source(source)
        if source.kind() == skewer_storage::ErrorKind::ResourceExhausted);
    let status = match error_type {
        // A tenant's own limit, as on every other route.
        _ if tenant_limit => StatusCode::TOO_MANY_REQUESTS,
        "bad_data" => StatusCode::BAD_REQUEST,
        "execution" => StatusCode::UNPROCESSABLE_ENTITY,
        "timeout" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %err, "PromQL query failed");
        "internal error".to_owned()
    } else {
        err.to_string()
    };
    (
        status,
        Json(json!({ "status": "error", "errorType": error_type, "error": message })),
    )
        .into_response()
}

/// A label set as a JSON object.
pub fn labels(labels: &Labels) -> Value {
    let mut map = Map::new();
    for (name, value) in labels.iter() {
        map.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Value::Object(map)
}

/// `[seconds, "value"]`.
pub fn point(timestamp_ms: i64, value: &str) -> Value {
    json!([timestamp_ms as f64 / 1000.0, value])
}

fn sample(sample: &Sample) -> Value {
    point(sample.timestamp_ms, &format_value(sample.value))
}

/// `{"resultType": …, "result": …}` of a query.
pub fn query_data(value: &QueryValue) -> Value {
    let result = match value {
        QueryValue::Scalar {
            timestamp_ms,
            value,
        } => point(*timestamp_ms, &format_value(*value)),
        QueryValue::String {
            timestamp_ms,
            value,
        } => point(*timestamp_ms, value),
        QueryValue::Vector(samples) => Value::Array(
            samples
                .iter()
                .map(|s| {
                    json!({
                        "metric": labels(&s.labels),
                        "value": point(s.timestamp_ms, &format_value(s.value)),
                    })
                })
                .collect(),
        ),
        QueryValue::Matrix(series) => Value::Array(
            series
                .iter()
                .map(|s| {
                    json!({
                        "metric": labels(&s.labels),
                        "values": s.samples.iter().map(sample).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
    };
    json!({ "resultType": value.result_type(), "result": result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewer_query::promql::InstantSample;

    #[test]
    fn vectors_carry_string_values_and_second_times() {
        let value = QueryValue::Vector(vec![InstantSample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "api")]),
            timestamp_ms: 1_435_781_451_781,
            value: 1.0,
        }]);
        assert_eq!(
            query_data(&value),
            json!({
                "resultType": "vector",
                "result": [{"metric": {"__name__": "up", "job": "api"}, "value": [1435781451.781, "1"]}]
            })
        );
    }

    #[test]
    fn scalars_are_a_bare_point() {
        let value = QueryValue::Scalar {
            timestamp_ms: 2_000,
            value: f64::NAN,
        };
        assert_eq!(
            query_data(&value),
            json!({"resultType": "scalar", "result": [2.0, "NaN"]})
        );
    }
}
