//! Parameters of the Loki HTTP API as Loki reads them: times as Unix seconds (up to ten
//! digits), Unix nanoseconds (more digits), float seconds or RFC 3339; steps as seconds or
//! durations; `direction` and `limit`.

use chrono::DateTime;
use skewer_query::logql::lexer::parse_duration;
use skewer_storage::log_store::ScanDirection;

use super::LokiError;
use crate::api::form::Params;

/// A Loki timestamp, Unix ns.
pub fn parse_time_ns(text: &str) -> Option<u64> {
    if text.contains('.')
        && let Ok(seconds) = text.parse::<f64>()
    {
        return seconds_to_ns(seconds);
    }
    if let Ok(number) = text.parse::<u64>() {
        return Some(if text.len() <= 10 {
            number.saturating_mul(1_000_000_000)
        } else {
            number
        });
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|time| time.timestamp_nanos_opt())
        .and_then(|nanos| u64::try_from(nanos).ok())
}

/// Seconds (`15`, `0.5`) or a duration (`1m`, `1h30m`), as ns.
pub fn parse_step_ns(text: &str) -> Option<u64> {
    let seconds = text.parse::<f64>().ok().or_else(|| parse_duration(text))?;
    seconds_to_ns(seconds)
}

/// Seconds as whole ns, when they fit a `u64` (NaN and negatives do not).
fn seconds_to_ns(seconds: f64) -> Option<u64> {
    let nanos = (seconds * 1e9).round();
    (0.0..1.8e19).contains(&nanos).then_some(nanos as u64)
}

/// A time parameter, `default` when absent.
pub fn time_ns(params: &Params, name: &str, default: u64) -> Result<u64, LokiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => parse_time_ns(text).ok_or_else(|| {
            LokiError::BadRequest(format!(
                "invalid {name}: cannot parse {text:?} as a timestamp"
            ))
        }),
    }
}

/// `[start, end]` of a range request: `end` defaults to now, `start` to `end - since` (or
/// `end - default_since`).
pub fn range_ns(params: &Params, now: u64, default_since: u64) -> Result<(u64, u64), LokiError> {
    let end = time_ns(params, "end", now)?;
    let since = match params.get("since") {
        None => default_since,
        Some(text) => parse_step_ns(text).ok_or_else(|| {
            LokiError::BadRequest(format!(
                "invalid since: cannot parse {text:?} as a duration"
            ))
        })?,
    };
    let start = time_ns(params, "start", end.saturating_sub(since))?;
    if end < start {
        return Err(LokiError::BadRequest(
            "the end timestamp must not be before the start time".to_owned(),
        ));
    }
    Ok((start, end))
}

/// `direction`: `backward` (newest first, the default) or `forward`.
pub fn direction(params: &Params) -> Result<ScanDirection, LokiError> {
    match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Ok(ScanDirection::Backward),
        Some("forward") => Ok(ScanDirection::Forward),
        Some(other) => Err(LokiError::BadRequest(format!(
            "invalid direction {other:?}: use forward or backward"
        ))),
    }
}

/// `limit`: at most `max`, 100 when absent.
pub fn limit(params: &Params, max: usize) -> Result<usize, LokiError> {
    let Some(text) = params.get("limit") else {
        return Ok(100.min(max));
    };
    let limit: usize = text.parse().map_err(|_| {
        LokiError::BadRequest(format!("invalid limit {text:?}: not a whole number"))
    })?;
    if limit == 0 {
        return Err(LokiError::BadRequest(
            "limit must be a positive value".to_owned(),
        ));
    }
    if limit > max {
        return Err(LokiError::BadRequest(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max})"
        )));
    }
    Ok(limit)
}

/// `step`, else Loki's default: the range split in about 250 points, at least a second.
pub fn step_ns(params: &Params, start: u64, end: u64) -> Result<u64, LokiError> {
    match params.get("step") {
        Some(text) => {
            let step = parse_step_ns(text).ok_or_else(|| {
                LokiError::BadRequest(format!("invalid step {text:?}: use seconds or a duration"))
            })?;
            if step == 0 {
                return Err(LokiError::BadRequest(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer".to_owned(),
                ));
            }
            Ok(step)
        }
        None => {
            let seconds = ((end - start) / 1_000_000_000 / 250).max(1);
            Ok(seconds * 1_000_000_000)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_loki_reads_them() {
        assert_eq!(parse_time_ns("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(
            parse_time_ns("1700000000000000001"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_time_ns("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20.000000001Z"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(parse_time_ns("yesterday"), None);
        assert_eq!(parse_step_ns("15"), Some(15_000_000_000));
        assert_eq!(parse_step_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_step_ns("0.25"), Some(250_000_000));
    }

    fn params(query: &str) -> Params {
        Params::parse(&format!("/x?{query}").parse().unwrap(), b"")
    }

    #[test]
    fn defaults_and_bounds() {
        let now = 10_000_000_000_000;
        assert_eq!(
            range_ns(&params(""), now, 3_600_000_000_000).unwrap(),
            (now - 3_600_000_000_000, now)
        );
        assert_eq!(
            range_ns(&params("since=1m"), now, 3_600_000_000_000).unwrap(),
            (now - 60_000_000_000, now)
        );
        assert!(range_ns(&params("start=20&end=10"), now, 0).is_err());
        assert_eq!(limit(&params(""), 5_000).unwrap(), 100);
        assert!(limit(&params("limit=5001"), 5_000).is_err());
        assert!(limit(&params("limit=0"), 5_000).is_err());
        assert_eq!(
            direction(&params("direction=FORWARD")).unwrap(),
            ScanDirection::Forward
        );
        assert!(direction(&params("direction=up")).is_err());
        // One hour in ~250 steps: 14 s.
        assert_eq!(
            step_ns(&params(""), 0, 3_600_000_000_000).unwrap(),
            14_000_000_000
        );
        assert_eq!(step_ns(&params(""), 0, 1).unwrap(), 1_000_000_000);
        assert!(step_ns(&params("step=0"), 0, 1).is_err());
    }
}
