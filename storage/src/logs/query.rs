//! What a log search asks for, and its evaluation against records that are not indexed yet.
//!
//! [`LogQuery`] is shared by the index and the in-memory buffer so both answer the same
//! question; this file holds the in-memory side. The tantivy side is in [`super::index`].

use super::LogIndexError;
use super::text_match::TextMatcher;
use crate::model::{LogRecord, SpanId, TraceId};

/// A log search: every filter that is set must hold (AND); results come newest first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only records of this trace.
    pub trace_id: Option<TraceId>,
    /// Only records of this span.
    pub span_id: Option<SpanId>,
    /// Only records with this correlation id (exact).
    pub correlation_id: Option<String>,
    /// Only records of this service (exact `service.name`, `unknown_service` when unset).
    pub service_name: Option<String>,
    /// Full-text query over the body (tantivy query syntax; terms ANDed by default).
    pub text: Option<String>,
    /// Exact record attribute values (key, value), all required; keys with dots are paths
    /// ([`super::attribute_clause`]).
    pub attributes: Vec<(String, String)>,
    /// Inclusive lower bound on effective time, Unix nanoseconds.
    pub start_unix_nano: Option<u64>,
    /// Exclusive upper bound on effective time, Unix nanoseconds.
    pub end_unix_nano: Option<u64>,
    /// Only records at least this severe (OTLP severity number).
    pub min_severity_number: Option<i32>,
    /// At most this many records are returned.
    pub limit: usize,
}

impl LogQuery {
    /// The query text, or `None` when absent or blank (blank text filters nothing).
    pub(crate) fn text_filter(&self) -> Option<&str> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
    }

    /// The clauses of the attribute filters in the query syntax.
    pub(crate) fn attribute_clauses(&self) -> Result<Vec<String>, LogIndexError> {
        self.attributes
            .iter()
            .map(|(key, value)| {
                super::attribute_clause(key, value).map_err(|reason| LogIndexError::InvalidQuery {
                    text: key.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// Compiles the query for matching many records in memory; fails on invalid text.
    pub fn matcher(&self) -> Result<LogMatcher, LogIndexError> {
        let compile = |text: &str| {
            TextMatcher::parse(text).map_err(|reason| LogIndexError::InvalidQuery {
                text: text.to_string(),
                reason,
            })
        };
        let text = self.text_filter().map(compile).transpose()?;
        let attributes = self
            .attribute_clauses()?
            .iter()
            .map(|clause| compile(clause))
            .collect::<Result<_, _>>()?;
        Ok(LogMatcher {
            query: self.clone(),
            text,
            attributes,
        })
    }
}

/// A [`LogQuery`] with its text parsed once, for filtering a buffer record by record.
#[derive(Debug, Clone)]
pub struct LogMatcher {
    query: LogQuery,
    text: Option<TextMatcher>,
    attributes: Vec<TextMatcher>,
}

impl LogMatcher {
    /// True when `record` passes every filter of the query, as the index would decide.
    pub fn matches(&self, record: &LogRecord) -> bool {
        let query = &self.query;
        let time = record.effective_time_unix_nano();
        query.trace_id.is_none_or(|id| record.trace_id == Some(id))
            && query.span_id.is_none_or(|id| record.span_id == Some(id))
            && query
                .correlation_id
                .as_deref()
                .is_none_or(|id| record.correlation_id.as_deref() == Some(id))
            && query
                .service_name
                .as_deref()
                .is_none_or(|name| record.resource.service_name() == name)
            && query.start_unix_nano.is_none_or(|start| time >= start)
            && query.end_unix_nano.is_none_or(|end| time < end)
            && query
                .min_severity_number
                .is_none_or(|min| record.severity_number >= min)
            && self.text.as_ref().is_none_or(|text| text.matches(record))
            && self.attributes.iter().all(|clause| clause.matches(record))
    }
}

/// Applies `query`'s filters (not its limit) to one record that is not indexed yet, with the
/// meaning [`super::LogIndex::search`] gives them. Invalid query text matches nothing (the
/// index search reports the error); to filter many records, compile once with
/// [`LogQuery::matcher`].
pub fn matches_in_memory(query: &LogQuery, record: &LogRecord) -> bool {
    query.matcher().is_ok_and(|matcher| matcher.matches(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_records::{BASE_UNIX_NANO, record, span_id, trace_id};

    #[test]
    fn an_empty_query_matches_everything() {
        assert!(matches_in_memory(&LogQuery::default(), &record(1, "x")));
        let blank = LogQuery {
            text: Some("  ".into()),
            ..LogQuery::default()
        };
        assert!(matches_in_memory(&blank, &record(1, "x")));
    }

    #[test]
    fn every_set_filter_must_hold() {
        let record = record(3, "payment declined");
        let matching = LogQuery {
            trace_id: Some(trace_id(3)),
            span_id: Some(span_id(3)),
            correlation_id: Some("req-3".into()),
            service_name: Some("checkout".into()),
            text: Some("declined".into()),
            attributes: vec![
                ("http.method".into(), "GET".into()),
                ("http.status_code".into(), "200".into()),
            ],
            start_unix_nano: Some(BASE_UNIX_NANO + 3_000_000_000),
            end_unix_nano: Some(BASE_UNIX_NANO + 3_000_000_001),
            min_severity_number: Some(9),
            limit: 10,
        };
        assert!(matches_in_memory(&matching, &record));
        let misses = [
            LogQuery {
                trace_id: Some(trace_id(4)),
                ..matching.clone()
            },
            LogQuery {
                span_id: Some(span_id(4)),
                ..matching.clone()
            },
            LogQuery {
                correlation_id: Some("req-4".into()),
                ..matching.clone()
            },
            LogQuery {
                service_name: Some("cart".into()),
                ..matching.clone()
            },
            LogQuery {
                text: Some("accepted".into()),
                ..matching.clone()
            },
            LogQuery {
                attributes: vec![("http.method".into(), "POST".into())],
                ..matching.clone()
            },
            LogQuery {
                attributes: vec![("http.status_code".into(), "500".into())],
                ..matching.clone()
            },
            LogQuery {
                start_unix_nano: Some(BASE_UNIX_NANO + 3_000_000_001),
                ..matching.clone()
            },
            LogQuery {
                end_unix_nano: Some(BASE_UNIX_NANO + 3_000_000_000),
                ..matching.clone()
            },
            LogQuery {
                min_severity_number: Some(10),
                ..matching.clone()
            },
        ];
        for query in misses {
            assert!(!matches_in_memory(&query, &record), "{query:?}");
        }
    }

    #[test]
    fn invalid_text_matches_nothing_and_the_matcher_says_why() {
        let query = LogQuery {
            text: Some("(unclosed".into()),
            ..LogQuery::default()
        };
        assert!(!matches_in_memory(&query, &record(1, "unclosed")));
        assert!(query.matcher().unwrap_err().is_invalid_query());
    }
}
