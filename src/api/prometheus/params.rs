//! Parameters of the Prometheus HTTP API: from the query string of a GET or the form body of
//! a POST (both at once are merged), times as RFC 3339 or Unix seconds, durations as PromQL
//! durations or seconds, and repeated `match[]` selectors.

use axum::body::Bytes;
use chrono::DateTime;
use promql_parser::label::Matcher;
use skewer_query::promql::{PromqlError, parse_selector};

pub use crate::api::form::Params;

impl Params {
    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str, PromqlError> {
        self.get(name)
            .ok_or_else(|| PromqlError::BadData(format!("invalid parameter \"{name}\": missing")))
    }

    /// A time parameter in ms, `default` when absent.
    pub fn time_ms(&self, name: &str, default: i64) -> Result<i64, PromqlError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => parse_time_ms(text).ok_or_else(|| {
                PromqlError::BadData(format!(
                    "invalid parameter \"{name}\": cannot parse {text:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// A time parameter in ms that must be given.
    pub fn required_time_ms(&self, name: &str) -> Result<i64, PromqlError> {
        self.required(name)?;
        self.time_ms(name, 0)
    }

    /// A duration parameter in ms, if given.
    pub fn duration_ms(&self, name: &str) -> Result<Option<i64>, PromqlError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        parse_duration_ms(text).map(Some).ok_or_else(|| {
            PromqlError::BadData(format!(
                "invalid parameter \"{name}\": cannot parse {text:?} to a valid duration"
            ))
        })
    }

    /// The `match[]` selectors, each as its matchers.
    pub fn selectors(&self) -> Result<Vec<Vec<Matcher>>, PromqlError> {
        self.all("match[]")
            .map(|selector| {
                let matchers = parse_selector(selector).map_err(|err| {
                    PromqlError::BadData(format!("invalid parameter \"match[]\": {err}"))
                })?;
                if matchers.iter().all(|m| m.is_match("")) {
                    return Err(PromqlError::BadData(
                        "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher".into(),
                    ));
                }
                Ok(matchers)
            })
            .collect()
    }
}

/// Collects a request body, refusing more than `limit` bytes.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, PromqlError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|err| PromqlError::BadData(format!("cannot read the request body: {err}")))
}

/// Unix seconds (with a fraction) or RFC 3339, as ms.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_ms(seconds);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

/// A PromQL duration (`5m`, `1h30m`) or seconds (`15`, `0.5`), as ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_ms(seconds);
    }
    promql_parser::util::duration::parse_duration(text)
        .ok()
        .and_then(|duration| i64::try_from(duration.as_millis()).ok())
}

fn seconds_to_ms(seconds: f64) -> Option<i64> {
    let ms = (seconds * 1000.0).round();
    // Prometheus accepts times between the years -292277025 and 292277025; ms in i64 is
    // the bound here.
    (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Uri;

    #[test]
    fn times_are_seconds_or_rfc3339() {
        assert_eq!(parse_time_ms("1.5"), Some(1_500));
        assert_eq!(parse_time_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time_ms("2026-12-02T12:00:00Z"),
            Some(1_796_212_800_000)
        );
        assert_eq!(
            parse_time_ms("2026-12-02T12:00:00.250+01:00"),
            Some(1_796_209_200_250)
        );
        assert_eq!(parse_time_ms("yesterday"), None);
        assert_eq!(parse_time_ms("NaN"), None);
    }

    #[test]
    fn durations_are_promql_or_seconds() {
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.25"), Some(250));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("soon"), None);
    }

    #[test]
    fn query_string_and_form_body_merge_and_repeat() {
        let uri: Uri = "/api/v1/series?match[]=up&start=1"
            .parse()
            .unwrap_or_else(|err| panic!("{err}"));
        let params = Params::parse(&uri, b"match%5B%5D=process_cpu_seconds_total&end=2");
        assert_eq!(
            params.all("match[]").collect::<Vec<_>>(),
            ["up", "process_cpu_seconds_total"]
        );
        assert_eq!(params.get("end"), Some("2"));
        assert!(params.required("query").is_err());
    }
}
