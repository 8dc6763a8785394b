//! The fetch plan: which series each selector of a query needs and over what time span, so
//! every selector is read once, before evaluation starts.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::error::PromqlError;
use super::series::{METRIC_NAME_LABEL, Selection};
use super::time::{at_millis, offset_millis};

/// The matchers of `selector`, its metric name as a `__name__` matcher.
pub fn selector_matchers(selector: &VectorSelector) -> Vec<Matcher> {
    let mut matchers = selector.matchers.matchers.clone();
    if let Some(name) = &selector.name
        && !matchers.iter().any(|m| m.name == METRIC_NAME_LABEL)
    {
        matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, name));
    }
    matchers
}

/// A selector in the query, identified by its address in the parsed tree (which lives, not
/// moved, for the whole evaluation).
pub type SelectorKey = usize;

/// The key of `selector`.
pub fn selector_key(selector: &VectorSelector) -> SelectorKey {
    std::ptr::from_ref(selector) as usize
}

/// What the query needs: per selector, its matchers and the time span to read.
#[derive(Debug, Default)]
pub struct FetchPlan {
    /// One selection per selector of the query.
    pub selections: HashMap<SelectorKey, Selection>,
}

/// Refuses a window (a range selector's or subquery's with the subqueries around it, the
/// lookback) longer than the tenant's `query_max_range_hours` (the query's own range is
/// checked against it too), so one query reads at most its range plus the limit.
fn check_window(window_ms: i64, ctx: &PlanContext) -> Result<(), PromqlError> {
    match ctx.max_range_ms {
        Some(max) if window_ms > max => Err(PromqlError::Source(crate::QueryError::from(
            skewer_storage::StorageError::TenantQueryLimit {
                limit: "query_max_range_hours",
                value: u64::try_from(max / 3_600_000).unwrap_or(0),
            },
        ))),
        _ => Ok(()),
    }
}

/// Evaluation times of a subtree: the first and last, ms.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: i64,
    last: i64,
}

/// Query-wide settings the plan needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext {
    /// The query's start (what `@ start()` means), ms.
    pub query_start: i64,
    /// The query's end (what `@ end()` means), ms.
    pub query_end: i64,
    /// Instant selectors' lookback, ms.
    pub lookback_ms: i64,
    /// The longest window a range selector or subquery may span, ms (the tenant's
    /// `query_max_range_hours`); `None` for any.
    pub max_range_ms: Option<i64>,
}

impl FetchPlan {
    /// The plan of `expr` evaluated from `ctx.query_start` to `ctx.query_end`.
    pub fn of(expr: &Expr, ctx: PlanContext) -> Result<Self, PromqlError> {
        let mut plan = Self::default();
        let span = Span {
            first: ctx.query_start,
            last: ctx.query_end,
        };
        plan.visit(expr, span, &ctx)?;
        Ok(plan)
    }

    fn visit(&mut self, expr: &Expr, span: Span, ctx: &PlanContext) -> Result<(), PromqlError> {
        match expr {
            Expr::VectorSelector(vs) => {
                self.need(vs, span, ctx.lookback_ms, ctx)?;
            }
            Expr::MatrixSelector(ms) => {
                self.need(&ms.vs, span, duration_millis(&ms.range)?, ctx)?;
            }
            Expr::Subquery(sq) => {
                let span = shift(span, sq.at.as_ref(), sq.offset.as_ref(), ctx)?;
                let range = duration_millis(&sq.range)?;
                check_window(range, ctx)?;
                let inner = Span {
                    first: span.first - range,
                    last: span.last,
                };
                self.visit(&sq.expr, inner, ctx)?;
            }
            Expr::Aggregate(agg) => {
                if let Some(param) = &agg.param {
                    self.visit(param, span, ctx)?;
                }
                self.visit(&agg.expr, span, ctx)?;
            }
            Expr::Unary(unary) => self.visit(&unary.expr, span, ctx)?,
            Expr::Binary(binary) => {
                self.visit(&binary.lhs, span, ctx)?;
                self.visit(&binary.rhs, span, ctx)?;
            }
            Expr::Paren(paren) => self.visit(&paren.expr, span, ctx)?,
            Expr::Call(call) => {
                for arg in &call.args.args {
                    self.visit(arg, span, ctx)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::Extension(_) => {
                return Err(PromqlError::Execution(
                    "extension expressions are not supported".into(),
                ));
            }
        }
        Ok(())
    }

    fn need(
        &mut self,
        vs: &VectorSelector,
        span: Span,
        reach_back_ms: i64,
        ctx: &PlanContext,
    ) -> Result<(), PromqlError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(PromqlError::Execution(
                "`or` inside a selector's braces is not supported yet".into(),
            ));
        }
        let span = shift(span, vs.at.as_ref(), vs.offset.as_ref(), ctx)?;
        // How far the enclosing subqueries stretched the evaluation times past the query's
        // own range, plus this selector's window: all of it within the limit, so nesting
        // subqueries does not add windows up past it.
        let stretched = (span.last.saturating_sub(span.first))
            .saturating_sub(ctx.query_end.saturating_sub(ctx.query_start));
        check_window(stretched.saturating_add(reach_back_ms), ctx)?;
        let start_ms = span.first.saturating_sub(reach_back_ms);
        let selection = self
            .selections
            .entry(selector_key(vs))
            .or_insert_with(|| Selection {
                matchers: selector_matchers(vs),
                start_ms,
                end_ms: span.last,
            });
        selection.start_ms = selection.start_ms.min(start_ms);
        selection.end_ms = selection.end_ms.max(span.last);
        Ok(())
    }
}

/// Evaluation times after an `@` and an `offset`.
fn shift(
    span: Span,
    at: Option<&AtModifier>,
    offset: Option<&Offset>,
    ctx: &PlanContext,
) -> Result<Span, PromqlError> {
    let span = match at {
        Some(at) => {
            let t = at_millis(at, ctx.query_start, ctx.query_end)?;
            Span { first: t, last: t }
        }
        None => span,
    };
    let offset = offset_millis(offset)?;
    Ok(Span {
        first: span.first - offset,
        last: span.last - offset,
    })
}

/// A duration in ms, refusing ones too long to count.
pub fn duration_millis(duration: &std::time::Duration) -> Result<i64, PromqlError> {
    i64::try_from(duration.as_millis())
        .map_err(|_| PromqlError::BadData(format!("duration {duration:?} is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `query` over an hour, selectors limited to reading `max_hours`.
    fn plan(query: &str, max_hours: i64) -> Result<FetchPlan, PromqlError> {
        let expr = crate::promql::dialect::parse(query).unwrap();
        let hour = 3_600_000;
        FetchPlan::of(
            &expr,
            PlanContext {
                query_start: 100 * hour,
                query_end: 101 * hour,
                lookback_ms: 300_000,
                max_range_ms: Some(max_hours * hour),
            },
        )
    }

    #[test]
    fn selectors_reading_past_the_range_limit_are_refused() {
        for query in [
            "rate(x[5m])",
            "x",
            "x offset 30d",
            "x @ 0",
            "max_over_time(rate(x[5m])[30m:1m])",
        ] {
            assert!(plan(query, 1).is_ok(), "{query}");
        }
        for query in [
            "rate(x[2h])",
            "sum(rate(x[5m])) / sum(rate(y[3h]))",
            "max_over_time(rate(x[5m])[2h:1m])",
            // Each window under the limit, together past it.
            "max_over_time(max_over_time(rate(x[5m])[40m:1m])[40m:1m])",
        ] {
            let err = plan(query, 1).err().unwrap_or_else(|| panic!("{query}"));
            assert!(
                err.to_string().contains("query_max_range_hours"),
                "{query}: {err}"
            );
        }
        assert!(plan("rate(x[2h])", 3).is_ok());
    }
}
