//! Tag filters of a trace search, one span at a time: equality (Jaeger's only kind), negation,
//! regular expressions and presence, over the tags Jaeger shows for a span.
//!
//! A span's tags are its attributes, its resource's attributes, its events' fields and the
//! fields Jaeger derives from OTLP (`span.kind`, `error`, `otel.status_code`,
//! `otel.status_description`, `otel.scope.name`, `otel.scope.version`, `w3c.tracestate`,
//! `event`), each compared as text.

use regex::Regex;
use skewer_storage::model::{Attribute, Span, SpanKind, StatusCode};
use skewer_storage::scan::Predicate;

use crate::QueryError;

/// One condition on a span's tags.
#[derive(Debug, Clone)]
pub enum TagFilter {
    /// `key=value`: some value of the key is `value`.
    Equals(String, String),
    /// `key!=value`: no value of the key is `value` (a span without the key matches).
    NotEquals(String, String),
    /// `key=~regex`: some value of the key matches the whole expression.
    Matches(String, Regex),
    /// `key!~regex`: no value of the key matches it.
    NotMatches(String, Regex),
    /// `key`: the span carries the key.
    Exists(String),
    /// `!key`: the span does not carry the key.
    Missing(String),
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl std::fmt::Display for TagFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Equals(key, value) => write!(f, "{key}={value}"),
            Self::NotEquals(key, value) => write!(f, "{key}!={value}"),
            Self::Matches(key, regex) => write!(f, "{key}=~{}", unanchored(regex)),
            Self::NotMatches(key, regex) => write!(f, "{key}!~{}", unanchored(regex)),
            Self::Exists(key) => write!(f, "{key}"),
            Self::Missing(key) => write!(f, "!{key}"),
        }
    }
}

/// The expression as written, without the anchors added when it was parsed.
fn unanchored(regex: &Regex) -> &str {
    let text = regex.as_str();
    text.strip_prefix("^(?:")
        .and_then(|t| t.strip_suffix(")$"))
        .unwrap_or(text)
}

impl std::str::FromStr for TagFilter {
    type Err = QueryError;

    /// `key=value`, `key!=value`, `key=~regex`, `key!~regex`, `key` or `!key`.
    fn from_str(text: &str) -> Result<Self, QueryError> {
        let invalid = |reason: String| QueryError::InvalidParameter {
            parameter: "where",
            reason,
        };
        let key_of = |key: &str| {
            let key = key.trim();
            if key.is_empty() {
                Err(invalid(format!("{text:?} names no attribute")))
            } else {
                Ok(key.to_owned())
            }
        };
        let regex = |pattern: &str| {
            // Anchored: the whole value must match, as in PromQL and LogQL.
            Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|err| invalid(format!("bad regular expression {pattern:?}: {err}")))
        };
        if let Some((key, pattern)) = text.split_once("!~") {
            return Ok(Self::NotMatches(key_of(key)?, regex(pattern)?));
        }
        if let Some((key, pattern)) = text.split_once("=~") {
            return Ok(Self::Matches(key_of(key)?, regex(pattern)?));
        }
        if let Some((key, value)) = text.split_once("!=") {
            return Ok(Self::NotEquals(key_of(key)?, value.to_owned()));
        }
        if let Some((key, value)) = text.split_once('=') {
            return Ok(Self::Equals(key_of(key)?, value.to_owned()));
        }
        match text.strip_prefix('!') {
            Some(key) => Ok(Self::Missing(key_of(key)?)),
            None => Ok(Self::Exists(key_of(text)?)),
        }
    }
}

/// Tags Jaeger derives from span fields rather than attributes ([`tag_values`]).
const DERIVED_TAGS: [&str; 8] = [
    "span.kind",
    "error",
    "otel.status_code",
    "otel.status_description",
    "otel.scope.name",
    "otel.scope.version",
    "w3c.tracestate",
    "event",
];

impl TagFilter {
    /// The condition as storage can check it without decoding spans, exactly: a span
    /// matches the predicate if and only if it matches the condition. `None` when storage
    /// cannot say (regular expressions, and derived tags it has no column for), so the span
    /// must be decoded and checked with [`TagFilter::matches`].
    pub fn pushdown(&self) -> Option<Predicate> {
        match self {
            Self::Equals(key, value) => tag_predicate(key, Some(value)),
            Self::Exists(key) => tag_predicate(key, None),
            Self::NotEquals(key, value) => tag_predicate(key, Some(value)).map(negated),
            Self::Missing(key) => tag_predicate(key, None).map(negated),
            Self::Matches(..) | Self::NotMatches(..) => None,
        }
    }

    /// Whether `span` satisfies the condition.
    pub fn matches(&self, span: &Span) -> bool {
        match self {
            Self::Equals(key, value) => tag_values(span, key).any(|v| v == *value),
            Self::NotEquals(key, value) => !tag_values(span, key).any(|v| v == *value),
            Self::Matches(key, regex) => tag_values(span, key).any(|v| regex.is_match(&v)),
            Self::NotMatches(key, regex) => !tag_values(span, key).any(|v| regex.is_match(&v)),
            Self::Exists(key) => tag_values(span, key).next().is_some(),
            Self::Missing(key) => tag_values(span, key).next().is_none(),
        }
    }
}

fn negated(predicate: Predicate) -> Predicate {
    Predicate::Not(Box::new(predicate))
}

/// Spans carrying tag `key` (with `value` as text, when given), as storage checks it: an
/// attribute of the span, its resource or its events, or for the tags Jaeger derives from a
/// column (`error`, `span.kind`, `otel.status_code`) that column too. `None` for the other
/// derived tags.
fn tag_predicate(key: &str, value: Option<&String>) -> Option<Predicate> {
    use skewer_storage::parquet_codec::{SPAN_KIND_COLUMN, STATUS_CODE_COLUMN};
    use skewer_storage::scan::Value;
    let attribute = Predicate::Tag {
        key: key.to_owned(),
        value: value.cloned(),
        span_attributes_only: false,
    };
    let number = |column: &str, number: u8| Predicate::eq(column, Value::UInt(u64::from(number)));
    // The column's values that derive the tag (any but `unset` when no value is asked).
    let derived = |column: &str, unset: u8, named: &[(&str, u8)]| match value {
        None => Some(negated(number(column, unset))),
        Some(value) => named
            .iter()
            .find(|(name, _)| name == value)
            .map(|(_, n)| number(column, *n)),
    };
    let from_column = match key {
        // Only a failed span derives `error`, always as `true`.
        "error" => value
            .is_none_or(|value| value == "true")
            .then(|| number(STATUS_CODE_COLUMN, StatusCode::Error as u8)),
        "span.kind" => {
            let kinds = [
                SpanKind::Internal,
                SpanKind::Server,
                SpanKind::Client,
                SpanKind::Producer,
                SpanKind::Consumer,
            ]
            .map(|kind| (kind.name(), kind as u8));
            derived(SPAN_KIND_COLUMN, SpanKind::Unspecified as u8, &kinds)
        }
        "otel.status_code" => derived(
            STATUS_CODE_COLUMN,
            StatusCode::Unset as u8,
            &[
                ("ERROR", StatusCode::Error as u8),
                ("OK", StatusCode::Ok as u8),
            ],
        ),
        key if DERIVED_TAGS.contains(&key) => return None,
        _ => None,
    };
    Some(match from_column {
        Some(column) => Predicate::Or(vec![column, attribute]),
        None => attribute,
    })
}

/// Every value `span` has for tag `key`, as text.
pub fn tag_values<'a>(span: &'a Span, key: &'a str) -> impl Iterator<Item = String> + 'a {
    let derived: Option<String> = match key {
        "span.kind" => (span.kind != SpanKind::Unspecified).then(|| span.kind.name().to_owned()),
        "error" => (span.status_code == StatusCode::Error).then(|| "true".to_owned()),
        "otel.status_code" => match span.status_code {
            StatusCode::Error => Some("ERROR".to_owned()),
            StatusCode::Ok => Some("OK".to_owned()),
            StatusCode::Unset => None,
        },
        "otel.status_description" => {
            (!span.status_message.is_empty()).then(|| span.status_message.clone())
        }
        "otel.scope.name" => (!span.scope.name.is_empty()).then(|| span.scope.name.clone()),
        "otel.scope.version" => {
            (!span.scope.version.is_empty()).then(|| span.scope.version.clone())
        }
        "w3c.tracestate" => (!span.trace_state.is_empty()).then(|| span.trace_state.clone()),
        _ => None,
    };
    let event_names = span
        .events
        .iter()
        .filter(move |_| key == "event")
        .map(|event| event.name.clone());
    let attributes = move |attributes: &'a [Attribute]| {
        attributes
            .iter()
            .filter(move |a| a.key == key)
            .map(|a| a.value.to_text())
    };
    derived
        .into_iter()
        .chain(event_names)
        .chain(attributes(&span.attributes))
        .chain(attributes(&span.resource.attributes))
        .chain(
            span.events
                .iter()
                .flat_map(move |event| attributes(&event.attributes)),
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{
        AttributeValue, InstrumentationScope, Resource, SpanEvent, SpanId, TraceId,
    };

    use super::*;

    /// A failed `GET /` server span of `api` on `h1`, with an int and a bool attribute and an
    /// `exception` event.
    pub(crate) fn span() -> Span {
        Span {
            resource: Arc::new(Resource {
                attributes: vec![
                    Attribute::string("service.name", "api"),
                    Attribute::string("host.name", "h1"),
                ],
                ..Resource::default()
            }),
            scope: Arc::new(InstrumentationScope {
                name: "lib".into(),
                ..InstrumentationScope::default()
            }),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000,
            attributes: vec![
                Attribute {
                    key: "http.status_code".into(),
                    value: AttributeValue::Int(500),
                },
                Attribute {
                    key: "retry".into(),
                    value: AttributeValue::Bool(true),
                },
            ],
            dropped_attributes_count: 0,
            events: vec![SpanEvent {
                time_unix_nano: 2_000,
                name: "exception".into(),
                attributes: vec![Attribute::string("exception.type", "Timeout")],
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
        }
    }

    fn filter(text: &str) -> TagFilter {
        text.parse().unwrap()
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for text in [
            "http.route=/api/cart",
            "user.id!=user-1",
            "http.route=~/api/.*",
            "http.route!~/health",
            "db.system",
            "!db.system",
            "url=a=b",
        ] {
            assert_eq!(filter(text).to_string(), text);
        }
        assert!(matches!(filter("url=a=b"), TagFilter::Equals(k, v) if k == "url" && v == "a=b"));
        for bad in ["", "=x", "!", "k=~(", " =~a"] {
            assert!(bad.parse::<TagFilter>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn equalities_match_attributes_resource_events_and_derived_fields_as_text() {
        let span = span();
        for text in [
            "http.status_code=500",
            "retry=true",
            "host.name=h1",
            "exception.type=Timeout",
            "event=exception",
            "span.kind=server",
            "error=true",
            "otel.status_code=ERROR",
            "otel.status_description=boom",
            "otel.scope.name=lib",
        ] {
            assert!(filter(text).matches(&span), "{text}");
        }
        for text in [
            "http.status_code=200",
            "span.kind=client",
            "error=false",
            "otel.scope.version=",
            "missing=x",
        ] {
            assert!(!filter(text).matches(&span), "{text}");
        }
    }

    #[test]
    fn what_storage_checks_agrees_with_the_span_check() {
        // The failed server span, an `ok` client span, and a span of no kind and no status
        // that carries the derived keys as attributes.
        let failed = span();
        let ok_client = Span {
            kind: SpanKind::Client,
            status_code: StatusCode::Ok,
            ..span()
        };
        let plain = Span {
            kind: SpanKind::Unspecified,
            status_code: StatusCode::Unset,
            attributes: vec![
                Attribute::string("error", "yes"),
                Attribute::string("span.kind", "weird"),
            ],
            ..span()
        };
        let spans = [&failed, &ok_client, &plain];
        let batch = skewer_storage::parquet_codec::spans_batch(&spans).unwrap();
        for text in [
            "http.status_code=500",
            "http.status_code=200",
            "http.status_code!=500",
            "retry=true",
            "host.name=h1",
            "host.name=h2",
            "host.name!=h1",
            "exception.type=Timeout",
            "missing=x",
            "missing!=x",
            "retry",
            "missing",
            "!retry",
            "!missing",
            "error=true",
            "error=false",
            "error=yes",
            "error!=true",
            "error",
            "!error",
            "span.kind=server",
            "span.kind=client",
            "span.kind=weird",
            "span.kind!=server",
            "span.kind",
            "!span.kind",
            "otel.status_code=ERROR",
            "otel.status_code=OK",
            "otel.status_code!=OK",
            "otel.status_code",
            "!otel.status_code",
        ] {
            let filter = filter(text);
            let pushed = filter.pushdown().expect(text);
            let mask = pushed.evaluate(&batch).unwrap();
            for (row, span) in spans.iter().enumerate() {
                assert_eq!(mask.value(row), filter.matches(span), "{text} on row {row}");
            }
        }
        for text in ["event=exception", "otel.scope.name=x", "a=~b", "a!~b"] {
            assert!(filter(text).pushdown().is_none(), "{text}");
        }
    }

    #[test]
    fn negations_regexes_and_presence() {
        let span = span();
        for (text, expected) in [
            ("http.status_code!=200", true),
            ("http.status_code!=500", false),
            ("missing!=x", true),
            ("http.status_code=~5..", true),
            ("http.status_code=~5", false),
            ("exception.type=~Time.*|Dead.*", true),
            ("exception.type!~Time.*", false),
            ("host.name!~db-.*", true),
            ("retry", true),
            ("error", true),
            ("!retry", false),
            ("!user.id", true),
            ("user.id", false),
        ] {
            assert_eq!(filter(text).matches(&span), expected, "{text}");
        }
    }
}
