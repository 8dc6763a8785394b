//! What of a LogQL log expression the store's index can answer: the time range, the
//! selector's exact `service_name`, and exact `trace_id`/`span_id` filters that come before
//! any stage able to change labels. The rest is evaluated on each record.

use skewer_storage::logs::LogQuery;

use super::ast::{LabelFilter, LogExpr, MatchOp, Stage};

/// The store query that finds a superset of what `log` selects in `[start, end)`.
pub fn store_query(log: &LogExpr, start_unix_nano: u64, end_unix_nano: u64) -> LogQuery {
    let mut query = LogQuery {
        start_unix_nano: Some(start_unix_nano),
        end_unix_nano: Some(end_unix_nano),
        ..LogQuery::default()
    };
    query.service_name = log
        .selector
        .iter()
        .find(|m| m.name == "service_name" && m.op == MatchOp::Equal)
        .map(|m| m.value.clone());
    for stage in &log.pipeline {
        match stage {
            Stage::LineFilter(_) => {}
            Stage::LabelFilter(filter) => {
                let mut exact = Vec::new();
                conjuncts(filter, &mut exact);
                for (name, value) in exact {
                    match name {
                        "trace_id" => query.trace_id = value.parse().ok().or(query.trace_id),
                        "span_id" => query.span_id = value.parse().ok().or(query.span_id),
                        _ => {}
                    }
                }
            }
            // Parsers, keep and drop may add or remove labels: later filters may mean a
            // parsed label of the same name.
            _ => break,
        }
    }
    query
}

/// The `name="value"` matchers every entry passing `filter` must satisfy.
fn conjuncts<'a>(filter: &'a LabelFilter, found: &mut Vec<(&'a str, &'a str)>) {
    match filter {
        LabelFilter::And(left, right) => {
            conjuncts(left, found);
            conjuncts(right, found);
        }
        LabelFilter::Matcher(matcher) if matcher.op == MatchOp::Equal => {
            found.push((&matcher.name, &matcher.value));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::ast::Expr;
    use crate::logql::parse;

    fn pushed(query: &str) -> LogQuery {
        let Expr::Log(log) = parse(query).unwrap() else {
            panic!("not a log query");
        };
        store_query(&log, 10, 20)
    }

    #[test]
    fn exact_ids_before_parsers_narrow_the_scan() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let query = pushed(&format!(
            r#"{{service_name="cart", env=~"p.*"}} |= "x" | trace_id="{trace}" and span_id="b7ad6b7169203331""#
        ));
        assert_eq!(query.service_name.as_deref(), Some("cart"));
        assert_eq!(
            query.trace_id.map(|id| id.to_string()).as_deref(),
            Some(trace)
        );
        assert!(query.span_id.is_some());
        assert_eq!(
            (query.start_unix_nano, query.end_unix_nano),
            (Some(10), Some(20))
        );
        // After a parser, or under `or`, the filter may mean something else.
        let after_parser = pushed(&format!(
            r#"{{service_name=~"c.*"}} | json | trace_id="{trace}""#
        ));
        assert!(after_parser.trace_id.is_none() && after_parser.service_name.is_none());
        let either = pushed(&format!(r#"{{a="b"}} | trace_id="{trace}" or span_id="x""#));
        assert!(either.trace_id.is_none());
    }
}
