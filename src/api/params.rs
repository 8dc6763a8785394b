//! Parsing of common query parameters: timestamps and limits.

use chrono::DateTime;

use super::ApiError;

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
