//! Parsing of common query parameters: timestamps and limits.

use chrono::DateTime;

use super::ApiError;

/// The query string as `T`, or a 400 in the API's JSON error shape naming what is wrong
/// (axum's own rejection is plain text).
pub struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(ApiError::BadParameter {
                parameter: "query string",
                reason: rejection.body_text(),
            }),
        }
    }
}

/// Parses a time as Unix nanoseconds (an integer) or RFC 3339 text.
pub fn parse_time(parameter: &'static str, text: &str) -> Result<u64, ApiError> {
    if let Ok(nanos) = text.parse::<u64>() {
        return Ok(nanos);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|time| time.timestamp_nanos_opt())
        .and_then(|nanos| u64::try_from(nanos).ok())
        .ok_or_else(|| ApiError::BadParameter {
            parameter,
            reason: format!("{text:?} is neither Unix nanoseconds nor RFC 3339"),
        })
}

/// Parses an optional time parameter.
pub fn optional_time(parameter: &'static str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| parse_time(parameter, t))
        .transpose()
}

/// A minimum severity: an OTLP severity number (1–24) or a name (`TRACE`, `DEBUG`, `INFO`,
/// `WARN`, `ERROR`, `FATAL`, any case, with an optional 1–4 suffix: `ERROR2` is 18).
pub fn parse_severity(parameter: &'static str, text: &str) -> Result<i32, ApiError> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let bad = || ApiError::BadParameter {
        parameter,
        reason: format!("{text:?} is no severity: 1-24, or TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
    };
    if let Ok(number) = text.parse::<i32>() {
        return (1..=24).contains(&number).then_some(number).ok_or_else(bad);
    }
    let upper = text.trim().to_ascii_uppercase();
    let name_end = upper
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (name, suffix) = upper.split_at(name_end);
    let base = NAMES
        .iter()
        .position(|known| *known == name)
        .ok_or_else(bad)?;
    let step = match suffix {
        "" => 0,
        "1" | "2" | "3" | "4" => suffix.parse::<i32>().map_err(|_| bad())? - 1,
        _ => return Err(bad()),
    };
    Ok(base as i32 * 4 + 1 + step)
}

/// The wall clock, Unix nanoseconds.
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix nanoseconds as RFC 3339 text with nanoseconds, UTC.
pub fn format_time(unix_nano: u64) -> String {
    let nanos = i64::try_from(unix_nano).unwrap_or(i64::MAX);
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Query pairs from literals (tests).
#[cfg(test)]
pub fn query_pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_as_numbers_or_names() {
        for (text, number) in [
            ("1", 1),
            ("24", 24),
            ("TRACE", 1),
            ("debug", 5),
            ("Info", 9),
            ("WARN", 13),
            ("ERROR", 17),
            ("ERROR2", 18),
            ("fatal4", 24),
        ] {
            assert_eq!(parse_severity("s", text).unwrap(), number, "{text}");
        }
        for bad in ["0", "25", "-3", "LOUD", "ERROR5", "ERROR1x", ""] {
            assert!(parse_severity("s", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_as_nanos_or_rfc3339() {
        assert_eq!(
            parse_time("t", "1700000000000000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_time("t", "yesterday").is_err());
        assert_eq!(
            format_time(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
    }
}
