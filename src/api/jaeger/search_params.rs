//! Parameters of Jaeger's `GET /api/traces`, parsed as Jaeger's query service parses them:
//! `start`/`end` in Unix µs, `lookback` and `minDuration`/`maxDuration` as Go durations
//! (`1.2s`, `300ms`, `1h30m`; `lookback` also takes days, `2d`), repeated `tag=key:value`
//! and `tags` (a JSON map), `limit` (default 20), repeated `traceID` for a multi-get.

use std::collections::BTreeMap;

use skewer_query::trace_filter::TagFilter;
use skewer_query::trace_search::TraceSearch;
use skewer_storage::model::{SpanKind, TraceId};
use skewer_storage::scan::TimeRange;

use crate::api::ApiError;

/// Traces returned when `limit` is absent (what the Jaeger UI asks for by default).
pub const DEFAULT_LIMIT: usize = 20;
/// How far back a search without `start` or `lookback` looks (Jaeger's default).
const DEFAULT_LOOKBACK_NANOS: u64 = 2 * 24 * 3_600 * 1_000_000_000;

/// What `GET /api/traces` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum TracesRequest {
    /// Traces by id (`traceID` repeated), in that order.
    ByIds(Vec<TraceId>),
    /// A search.
    Search(TraceSearch),
}

fn bad(parameter: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        parameter,
        reason: reason.into(),
    }
}

/// Parses the query pairs of a request made at `now_unix_nano`.
pub fn parse(pairs: &[(String, String)], now_unix_nano: u64) -> Result<TracesRequest, ApiError> {
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let trace_ids: Vec<TraceId> = pairs
        .iter()
        .filter(|(key, _)| key == "traceID")
        .map(|(_, value)| parse_trace_id(value))
        .collect::<Result<_, _>>()?;
    if !trace_ids.is_empty() {
        return Ok(TracesRequest::ByIds(trace_ids));
    }
    let service = first("service").ok_or_else(|| bad("service", "required"))?;
    let end = match first("end") {
        Some(text) => micros(text, "end")?,
        None => now_unix_nano,
    };
    let start = match (first("start"), first("lookback")) {
        (Some(text), _) => micros(text, "start")?,
        (None, Some(lookback)) if lookback != "custom" => {
            end.saturating_sub(parse_duration(lookback, "lookback", true)?)
        }
        _ => end.saturating_sub(DEFAULT_LOOKBACK_NANOS),
    };
    if start > end {
        return Err(bad("start", "after end"));
    }
    let min_duration = first("minDuration")
        .map(|text| parse_duration(text, "minDuration", false))
        .transpose()?;
    let max_duration = first("maxDuration")
        .map(|text| parse_duration(text, "maxDuration", false))
        .transpose()?;
    if let (Some(min), Some(max)) = (min_duration, max_duration)
        && max < min
    {
        return Err(bad("maxDuration", "shorter than minDuration"));
    }
    let limit = match first("limit") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| bad("limit", format!("{text:?} is not a non-negative integer")))?,
        None => DEFAULT_LIMIT,
    };
    Ok(TracesRequest::Search(TraceSearch {
        service: Some(service.to_owned()),
        operation: first("operation").map(str::to_owned),
        filters: parse_tags(pairs)?,
        min_duration_nanos: min_duration,
        max_duration_nanos: max_duration,
        // `end` is inclusive in Jaeger.
        time_range: TimeRange {
            start_unix_nano: start,
            end_unix_nano: end.saturating_add(1),
        },
        limit,
    }))
}

/// Whether the flag named `names` (the first given) is set, read as Go's `strconv.ParseBool`
/// reads it (as Jaeger does): `1 t T TRUE true True` or `0 f F FALSE false False`; absent is
/// false.
pub fn flag(pairs: &[(String, String)], names: &[&'static str]) -> Result<bool, ApiError> {
    match names.iter().find_map(|name| {
        pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| (*name, value.as_str()))
    }) {
        Some((name, value)) => parse_flag(name, value),
        None => Ok(false),
    }
}

/// One flag's value, read as Go's `strconv.ParseBool` reads it.
pub fn parse_flag(name: &'static str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(bad(name, format!("{other:?} is not a boolean"))),
    }
}

/// Traces an api_v3 search returns when `query.searchDepth` is absent (Jaeger's default).
pub const DEFAULT_SEARCH_DEPTH: usize = 100;

/// Parses an api_v3 search (`/api/v3/traces`, `/api/v3/trace-summaries`): the canonical
/// camelCase parameters or their snake_case aliases, RFC 3339 times (both required), Go
/// durations, `query.attributes` as a JSON map, `query.searchDepth` (or `query.num_traces`).
pub fn parse_v3(pairs: &[(String, String)]) -> Result<TraceSearch, ApiError> {
    let get = |canonical: &str, alias: &str| {
        [canonical, alias].into_iter().find_map(|name| {
            pairs
                .iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.as_str())
        })
    };
    let service = get("query.serviceName", "query.service_name")
        .ok_or_else(|| bad("query.serviceName", "required"))?;
    let time = |canonical: &'static str, alias: &str| {
        let text = get(canonical, alias).ok_or_else(|| bad(canonical, "required (RFC 3339)"))?;
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|time| time.timestamp_nanos_opt())
            .and_then(|nanos| u64::try_from(nanos).ok())
            .ok_or_else(|| bad(canonical, format!("{text:?} is not an RFC 3339 time")))
    };
    let start = time("query.startTimeMin", "query.start_time_min")?;
    let end = time("query.startTimeMax", "query.start_time_max")?;
    if start >= end {
        return Err(bad("query.startTimeMin", "not before query.startTimeMax"));
    }
    let duration = |canonical: &'static str, alias: &str| {
        get(canonical, alias)
            .map(|text| parse_duration(text, canonical, false))
            .transpose()
    };
    let min_duration = duration("query.durationMin", "query.duration_min")?;
    let max_duration = duration("query.durationMax", "query.duration_max")?;
    let limit = match get("query.searchDepth", "query.search_depth").or(get("query.num_traces", ""))
    {
        Some(text) => text.parse::<usize>().map_err(|_| {
            bad(
                "query.searchDepth",
                format!("{text:?} is not a non-negative integer"),
            )
        })?,
        None => DEFAULT_SEARCH_DEPTH,
    };
    let filters = match get("query.attributes", "") {
        Some(text) => serde_json::from_str::<BTreeMap<String, String>>(text)
            .map_err(|err| {
                bad(
                    "query.attributes",
                    format!("not a JSON map of strings: {err}"),
                )
            })?
            .into_iter()
            .map(|(key, value)| TagFilter::Equals(key, value))
            .collect(),
        None => Vec::new(),
    };
    Ok(TraceSearch {
        service: Some(service.to_owned()),
        operation: get("query.operationName", "query.operation_name").map(str::to_owned),
        filters,
        min_duration_nanos: min_duration,
        max_duration_nanos: max_duration,
        time_range: TimeRange {
            start_unix_nano: start,
            end_unix_nano: end,
        },
        limit,
    })
}

/// Lookback of `/api/dependencies` without one (Jaeger's default: a day).
const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 3_600 * 1_000;

/// The range of `/api/dependencies`: `endTs` in Unix ms (default now), `lookback` in ms.
pub fn dependencies_range(
    end_ts: Option<&str>,
    lookback: Option<&str>,
    now_unix_nano: u64,
) -> Result<TimeRange, ApiError> {
    let millis = |text: &str, parameter: &'static str| {
        text.parse::<u64>().map_err(|_| {
            bad(
                parameter,
                format!("{text:?} is not a count of milliseconds"),
            )
        })
    };
    let end = match end_ts.filter(|t| !t.is_empty()) {
        Some(text) => millis(text, "endTs")?.saturating_mul(1_000_000),
        None => now_unix_nano,
    };
    let lookback = match lookback.filter(|t| !t.is_empty()) {
        Some(text) => millis(text, "lookback")?,
        None => DEFAULT_DEPENDENCY_LOOKBACK_MS,
    };
    Ok(TimeRange {
        start_unix_nano: end.saturating_sub(lookback.saturating_mul(1_000_000)),
        end_unix_nano: end.saturating_add(1),
    })
}

/// `tag=key:value` (repeated) and `tags={"key":"value"}`, later ones winning on a key: each an
/// equality.
fn parse_tags(pairs: &[(String, String)]) -> Result<Vec<TagFilter>, ApiError> {
    let mut tags = BTreeMap::new();
    for (key, value) in pairs {
        match key.as_str() {
            "tag" => {
                let (tag, tag_value) = value
                    .split_once(':')
                    .ok_or_else(|| bad("tag", format!("expected key:value, received {value:?}")))?;
                tags.insert(tag.to_owned(), tag_value.to_owned());
            }
            "tags" if !value.is_empty() => {
                let map: BTreeMap<String, String> = serde_json::from_str(value)
                    .map_err(|err| bad("tags", format!("not a JSON map of strings: {err}")))?;
                tags.extend(map);
            }
            _ => {}
        }
    }
    Ok(tags
        .into_iter()
        .map(|(key, value)| TagFilter::Equals(key, value))
        .collect())
}

fn micros(text: &str, parameter: &'static str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map(|micros| micros.saturating_mul(1_000))
        .map_err(|_| bad(parameter, format!("{text:?} is not Unix microseconds")))
}

/// A trace id as Jaeger writes it: hex, up to 32 digits (shorter ids are zero-padded).
pub fn parse_trace_id(text: &str) -> Result<TraceId, ApiError> {
    let valid = !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(bad("traceID", format!("{text:?} is not a hex trace id")));
    }
    format!("{text:0>32}")
        .parse()
        .map_err(|err: skewer_storage::model::IdError| bad("traceID", err.to_string()))
}

/// A span kind by its Jaeger name (`server`, `client`, `producer`, `consumer`, `internal`,
/// `unspecified`).
pub fn parse_span_kind(text: &str) -> Result<SpanKind, ApiError> {
    match text {
        "unspecified" => Ok(SpanKind::Unspecified),
        "internal" => Ok(SpanKind::Internal),
        "server" => Ok(SpanKind::Server),
        "client" => Ok(SpanKind::Client),
        "producer" => Ok(SpanKind::Producer),
        "consumer" => Ok(SpanKind::Consumer),
        other => Err(bad("spanKind", format!("unsupported span kind {other:?}"))),
    }
}

/// A Go duration (`1.5s`, `300ms`, `1h30m`, `250us`, `250µs`, `10ns`) in ns; with
/// `days`, `d` counts too (the Jaeger UI's lookbacks: `2d`).
pub fn parse_duration(text: &str, parameter: &'static str, days: bool) -> Result<u64, ApiError> {
    let invalid = || {
        bad(
            parameter,
            format!("{text:?} is not a duration like 1.5s or 300ms"),
        )
    };
    // The Jaeger UI's form accepts `10 ms` and sends it as typed.
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = compact.as_str();
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3_600e9,
            "d" if days => 86_400e9,
            _ => return Err(invalid()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::params::query_pairs as pairs;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn search(query: &[(&str, &str)]) -> TraceSearch {
        match parse(&pairs(query), NOW).unwrap() {
            TracesRequest::Search(search) => search,
            other => panic!("not a search: {other:?}"),
        }
    }

    #[test]
    fn flags_read_as_go_parses_booleans() {
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(!flag(&pairs(&[]), &["raw"]).unwrap());
        assert!(flag(&pairs(&[("raw", "true")]), &["raw"]).unwrap());
        assert!(flag(&pairs(&[("raw", "1")]), &["raw"]).unwrap());
        assert!(!flag(&pairs(&[("raw", "False")]), &["raw"]).unwrap());
        assert!(
            flag(
                &pairs(&[("query.rawTraces", "T")]),
                &["query.raw_traces", "query.rawTraces"]
            )
            .unwrap()
        );
        let err = flag(&pairs(&[("raw", "yes")]), &["raw"]).unwrap_err();
        assert!(err.to_string().contains("not a boolean"), "{err}");
    }

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_duration("1.2s", "d", false).unwrap(), 1_200_000_000);
        assert_eq!(parse_duration("300ms", "d", false).unwrap(), 300_000_000);
        assert_eq!(
            parse_duration("1h30m", "d", false).unwrap(),
            5_400 * 1_000_000_000
        );
        assert_eq!(parse_duration("250µs", "d", false).unwrap(), 250_000);
        assert_eq!(parse_duration("250us", "d", false).unwrap(), 250_000);
        assert_eq!(parse_duration("7ns", "d", false).unwrap(), 7);
        assert_eq!(
            parse_duration("2d", "d", true).unwrap(),
            172_800 * 1_000_000_000
        );
        assert_eq!(parse_duration("10 ms", "d", false).unwrap(), 10_000_000);
        for bad in ["", " ", "2d", "10", "ms", "1.2.3s", "-1s"] {
            assert!(parse_duration(bad, "d", false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_search_takes_every_jaeger_parameter() {
        let s = search(&[
            ("service", "api"),
            ("operation", "GET /"),
            ("tag", "http.status_code:500"),
            ("tag", "url:http://x:8080/"),
            ("tags", r#"{"error":"true"}"#),
            ("minDuration", "10ms"),
            ("maxDuration", "1.5s"),
            ("start", "1699999000000000"),
            ("end", "1700000000000000"),
            ("limit", "5"),
        ]);
        assert_eq!(s.service.as_deref(), Some("api"));
        assert_eq!(s.operation.as_deref(), Some("GET /"));
        assert_eq!(
            s.filters,
            ["error=true", "http.status_code=500", "url=http://x:8080/"]
                .map(|f| f.parse::<TagFilter>().unwrap())
        );
        assert_eq!(s.min_duration_nanos, Some(10_000_000));
        assert_eq!(s.max_duration_nanos, Some(1_500_000_000));
        assert_eq!(s.time_range.start_unix_nano, 1_699_999_000_000_000_000);
        assert_eq!(s.time_range.end_unix_nano, NOW + 1, "end is inclusive");
        assert_eq!(s.limit, 5);
    }

    #[test]
    fn defaults_and_lookback() {
        let s = search(&[("service", "api")]);
        assert_eq!(s.limit, DEFAULT_LIMIT);
        assert_eq!(s.time_range.start_unix_nano, NOW - DEFAULT_LOOKBACK_NANOS);
        let s = search(&[("service", "api"), ("lookback", "1h")]);
        assert_eq!(s.time_range.start_unix_nano, NOW - 3_600_000_000_000);
        let s = search(&[
            ("service", "api"),
            ("lookback", "custom"),
            ("operation", ""),
        ]);
        assert_eq!(s.operation, None, "an empty operation means any");
        assert_eq!(s.time_range.start_unix_nano, NOW - DEFAULT_LOOKBACK_NANOS);
    }

    #[test]
    fn trace_ids_make_a_multi_get_and_need_no_service() {
        let parsed = parse(
            &pairs(&[
                ("traceID", "abc"),
                ("traceID", "0123456789abcdef0123456789abcdef"),
            ]),
            NOW,
        )
        .unwrap();
        let TracesRequest::ByIds(ids) = parsed else {
            panic!("not a multi-get");
        };
        assert_eq!(ids[0].to_string(), "00000000000000000000000000000abc");
        assert_eq!(ids[1].to_string(), "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn bad_parameters_are_named() {
        let error = |query: &[(&str, &str)]| match parse(&pairs(query), NOW) {
            Err(ApiError::BadParameter { parameter, .. }) => parameter,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(error(&[]), "service");
        assert_eq!(error(&[("service", "a"), ("limit", "-1")]), "limit");
        assert_eq!(error(&[("service", "a"), ("start", "yesterday")]), "start");
        assert_eq!(
            error(&[("service", "a"), ("minDuration", "fast")]),
            "minDuration"
        );
        assert_eq!(
            error(&[
                ("service", "a"),
                ("minDuration", "2s"),
                ("maxDuration", "1s")
            ]),
            "maxDuration"
        );
        assert_eq!(error(&[("service", "a"), ("tag", "novalue")]), "tag");
        assert_eq!(error(&[("service", "a"), ("tags", "[1]")]), "tags");
        assert_eq!(error(&[("traceID", "xyz")]), "traceID");
        assert_eq!(
            error(&[("service", "a"), ("start", "20"), ("end", "10")]),
            "start"
        );
    }

    #[test]
    fn v3_searches_take_camel_case_or_snake_case() {
        let camel = parse_v3(&pairs(&[
            ("query.serviceName", "api"),
            ("query.operationName", "GET /"),
            ("query.startTimeMin", "2023-11-14T22:00:00Z"),
            ("query.startTimeMax", "2023-11-14T23:00:00.5Z"),
            ("query.durationMin", "1ms"),
            ("query.durationMax", "2s"),
            ("query.searchDepth", "7"),
            ("query.attributes", r#"{"http.status_code":"500"}"#),
        ]))
        .unwrap();
        let snake = |depth: &str| {
            parse_v3(&pairs(&[
                ("query.service_name", "api"),
                ("query.operation_name", "GET /"),
                ("query.start_time_min", "2023-11-14T22:00:00Z"),
                ("query.start_time_max", "2023-11-14T23:00:00.5Z"),
                ("query.duration_min", "1ms"),
                ("query.duration_max", "2s"),
                (depth, "7"),
                ("query.attributes", r#"{"http.status_code":"500"}"#),
            ]))
            .unwrap()
        };
        assert_eq!(camel, snake("query.search_depth"));
        assert_eq!(
            camel,
            snake("query.num_traces"),
            "num_traces, the older name of the depth"
        );
        assert_eq!(camel.time_range.start_unix_nano, NOW - 800_000_000_000);
        assert_eq!(camel.time_range.end_unix_nano, NOW + 2_800_500_000_000);
        assert_eq!(camel.limit, 7);
        assert_eq!(
            camel.filters,
            ["http.status_code=500".parse::<TagFilter>().unwrap()]
        );
        let defaults = parse_v3(&pairs(&[
            ("query.serviceName", "api"),
            ("query.startTimeMin", "2023-11-14T22:00:00Z"),
            ("query.startTimeMax", "2023-11-14T23:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(defaults.limit, DEFAULT_SEARCH_DEPTH);
        for (bad_pairs, parameter) in [
            (vec![("query.serviceName", "api")], "query.startTimeMin"),
            (
                vec![
                    ("query.serviceName", "api"),
                    ("query.startTimeMin", "2023-11-14T23:00:00Z"),
                    ("query.startTimeMax", "2023-11-14T22:00:00Z"),
                ],
                "query.startTimeMin",
            ),
            (
                vec![
                    ("query.startTimeMin", "2023-11-14T22:00:00Z"),
                    ("query.startTimeMax", "2023-11-14T23:00:00Z"),
                ],
                "query.serviceName",
            ),
        ] {
            match parse_v3(&pairs(&bad_pairs)) {
                Err(ApiError::BadParameter { parameter: p, .. }) => assert_eq!(p, parameter),
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn dependency_ranges_are_in_milliseconds() {
        let range = dependencies_range(Some("1700000000000"), Some("3600000"), 0).unwrap();
        assert_eq!(range.start_unix_nano, NOW - 3_600_000_000_000);
        assert_eq!(range.end_unix_nano, NOW + 1);
        let default = dependencies_range(None, None, NOW).unwrap();
        assert_eq!(default.start_unix_nano, NOW - 86_400_000_000_000);
        assert!(dependencies_range(Some("soon"), None, NOW).is_err());
        assert!(dependencies_range(None, Some("1h"), NOW).is_err());
    }

    #[test]
    fn span_kinds_by_jaeger_name() {
        assert_eq!(parse_span_kind("server").unwrap(), SpanKind::Server);
        assert!(parse_span_kind("SERVER").is_err());
    }
}
