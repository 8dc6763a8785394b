//! The PromQL of Prometheus 2.42 on top of `promql-parser`, which follows Prometheus 3:
//! `holt_winters` parses, and the functions, aggregations and syntax 2.42 does not know
//! are parse errors (`bad_data`), as they are there.

use std::sync::Once;

use promql_parser::parser::token::{T_LIMIT_RATIO, T_LIMITK};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, Function, VectorSelector, register_extra_functions};

use super::error::PromqlError;

/// Every function Prometheus 2.42 has (its `FunctionCalls`).
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "ln",
    "log10",
    "log2",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Parses `query` as Prometheus 2.42 would.
pub fn parse(query: &str) -> Result<Expr, PromqlError> {
    register_holt_winters();
    let expr = promql_parser::parser::parse(query).map_err(PromqlError::Parse)?;
    check(&expr)?;
    Ok(expr)
}

/// Teaches the parser `holt_winters(range, smoothing, trend)`, which Prometheus 3 renamed.
fn register_holt_winters() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let holt_winters = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        // This fails only if the parser knows the function already, which is as good.
        let _known = register_extra_functions(vec![holt_winters]);
    });
}

/// Fails on what parses here but not in Prometheus 2.42.
fn check(expr: &Expr) -> Result<(), PromqlError> {
    match expr {
        Expr::Call(call) => {
            if !FUNCTIONS.contains(&call.func.name) {
                return Err(unknown_function(call.func.name));
            }
            call.args.args.iter().try_for_each(|arg| check(arg))
        }
        Expr::Aggregate(agg) => {
            let op = agg.op.id();
            if op == T_LIMITK || op == T_LIMIT_RATIO {
                return Err(unknown_function(&agg.op.to_string()));
            }
            if let Some(param) = &agg.param {
                check(param)?;
            }
            check(&agg.expr)
        }
        Expr::Binary(binary) => {
            if let Some(modifier) = &binary.modifier
                && (modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some())
            {
                return Err(unknown_function("fill"));
            }
            check(&binary.lhs)?;
            check(&binary.rhs)
        }
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(sq) => check(&sq.expr),
        Expr::Paren(paren) => check(&paren.expr),
        Expr::Unary(unary) => check(&unary.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

/// `or` between matchers in braces is Prometheus 3 syntax.
fn check_selector(selector: &VectorSelector) -> Result<(), PromqlError> {
    if selector.matchers.or_matchers.is_empty() {
        return Ok(());
    }
    Err(PromqlError::Parse(
        "unexpected identifier \"or\" in label matching, expected \",\" or \"}\"".into(),
    ))
}

fn unknown_function(name: &str) -> PromqlError {
    PromqlError::Parse(format!("unknown function with name {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holt_winters_parses_and_newer_functions_do_not() {
        assert!(parse("holt_winters(x[5m], 0.5, 0.5)").is_ok());
        for query in [
            "double_exponential_smoothing(x[5m], 0.5, 0.5)",
            "sort_by_label(x, \"a\")",
            "limitk(1, x)",
            "x + fill(0) y",
            "x{a=\"1\" or a=\"2\"}",
            "rate(x{a=\"1\" or a=\"2\"}[5m])",
        ] {
            assert!(
                matches!(parse(query), Err(PromqlError::Parse(_))),
                "{query}"
            );
        }
    }
}
