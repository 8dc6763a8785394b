//! PromQL: parse with `promql-parser` (held to Prometheus 2.42's dialect), evaluate over a
//! [`SeriesSource`] with Prometheus 2.42's semantics (lookback and staleness, `rate`
//! extrapolation, vector matching, aggregation).
//!
//! Evaluation has two phases: every selector's series are fetched first (each over the time
//! span the whole query needs of it), then the expression is evaluated in memory, all steps
//! of a range query at once, series by series.

mod aggregate;
mod binary;
#[cfg(test)]
mod corpus;
mod dialect;
mod error;
mod eval;
mod format;
mod functions;
mod histogram;
mod numeric;
mod plan;
mod series;
mod time;
mod value;

pub use error::PromqlError;
pub use eval::{QueryOptions, instant_query, range_query};
pub use format::{format_value, label_float};
pub use series::{
    Labels, METRIC_NAME_LABEL, MemorySource, STALE_NAN_BITS, Sample, Selection, Series,
    SeriesSource, is_stale, stale_nan,
};
pub use value::{InstantSample, QueryValue};

/// Checks that `query` parses in the dialect queries are evaluated in (rule files validate
/// their expressions with it before any evaluation).
pub fn check_query(query: &str) -> Result<(), PromqlError> {
    dialect::parse(query).map(drop)
}

/// The matchers of every selector in `query` (what `/api/v1/query_exemplars` reads).
pub fn query_selectors(
    query: &str,
) -> Result<Vec<Vec<promql_parser::label::Matcher>>, PromqlError> {
    let expr = dialect::parse(query)?;
    let context = plan::PlanContext {
        query_start: 0,
        query_end: 0,
        lookback_ms: 0,
        max_range_ms: None,
    };
    let plan = plan::FetchPlan::of(&expr, context)?;
    Ok(plan
        .selections
        .into_values()
        .map(|selection| selection.matchers)
        .collect())
}

/// Parses a series selector such as `up{job="api"}` (the `match[]` parameter) into matchers.
pub fn parse_selector(selector: &str) -> Result<Vec<promql_parser::label::Matcher>, PromqlError> {
    match dialect::parse(selector)? {
        promql_parser::parser::Expr::VectorSelector(vs) => Ok(plan::selector_matchers(&vs)),
        _ => Err(PromqlError::Parse(format!(
            "{selector:?} is not a series selector"
        ))),
    }
}
