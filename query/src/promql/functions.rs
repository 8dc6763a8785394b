//! PromQL functions: element-wise math, range functions (`rate`, `*_over_time`…), label
//! functions, `histogram_quantile`, and the time and type-conversion functions.

use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::aggregate::valid_label_name;
use super::error::PromqlError;
use super::eval::{Evaluator, RangeVector, StepSeries, Value, distinct_labels, merge_same_labels};
use super::histogram::histogram_quantile;
use super::numeric::{
    extrapolated_rate, extreme, go_max, go_min, holt_winters, instant_rate, kahan_mean, kahan_sum,
    kahan_variance, linear_regression, quantile,
};
use super::series::{Labels, METRIC_NAME_LABEL, Sample};
use super::time::{civil, days_in_month, go_seconds};

/// Evaluates the function call `call` at `times`.
pub(super) fn call(ev: &Evaluator, call: &Call, times: &[i64]) -> Result<Value, PromqlError> {
    let args: Vec<&Expr> = call.args.args.iter().map(|arg| &**arg).collect();
    let name = call.func.name;
    let steps = times.len();
    match name {
        "time" => Ok(Value::Scalar(
            times.iter().map(|&t| t as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; steps])),
        "vector" => {
            let values = scalar(ev, arg(&args, 0)?, times)?;
            Ok(Value::Vector(vec![StepSeries {
                labels: Labels::default(),
                values: values.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let vector = vector(ev, arg(&args, 0)?, times)?;
            Ok(Value::Scalar(
                (0..steps)
                    .map(|step| {
                        let mut present = vector.iter().filter_map(|s| s.values[step]);
                        match (present.next(), present.next()) {
                            (Some(value), None) => value,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "abs" => map(ev, &args, times, f64::abs),
        "ceil" => map(ev, &args, times, f64::ceil),
        "floor" => map(ev, &args, times, f64::floor),
        "exp" => map(ev, &args, times, f64::exp),
        "ln" => map(ev, &args, times, f64::ln),
        "log2" => map(ev, &args, times, f64::log2),
        "log10" => map(ev, &args, times, f64::log10),
        "sqrt" => map(ev, &args, times, f64::sqrt),
        "sgn" => map(ev, &args, times, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }),
        "sin" => map(ev, &args, times, f64::sin),
        "cos" => map(ev, &args, times, f64::cos),
        "tan" => map(ev, &args, times, f64::tan),
        "asin" => map(ev, &args, times, f64::asin),
        "acos" => map(ev, &args, times, f64::acos),
        "atan" => map(ev, &args, times, f64::atan),
        "sinh" => map(ev, &args, times, f64::sinh),
        "cosh" => map(ev, &args, times, f64::cosh),
        "tanh" => map(ev, &args, times, f64::tanh),
        "asinh" => map(ev, &args, times, f64::asinh),
        "acosh" => map(ev, &args, times, f64::acosh),
        "atanh" => map(ev, &args, times, f64::atanh),
        "deg" => map(ev, &args, times, f64::to_degrees),
        "rad" => map(ev, &args, times, f64::to_radians),
        "round" => {
            let nearest = match args.get(1) {
                Some(expr) => scalar(ev, expr, times)?,
                None => vec![1.0; steps],
            };
            map_steps(ev, arg(&args, 0)?, times, |v, step| {
                let inverse = 1.0 / nearest[step];
                Some((v * inverse + 0.5).floor() / inverse)
            })
        }
        "clamp" => {
            let min = scalar(ev, arg(&args, 1)?, times)?;
            let max = scalar(ev, arg(&args, 2)?, times)?;
            map_steps(ev, arg(&args, 0)?, times, |v, step| {
                // Only max < min empties the result; a NaN bound makes every value NaN.
                let empty = max[step].partial_cmp(&min[step]) == Some(std::cmp::Ordering::Less);
                (!empty).then(|| go_max(min[step], go_min(max[step], v)))
            })
        }
        "clamp_min" => {
            let min = scalar(ev, arg(&args, 1)?, times)?;
            map_steps(ev, arg(&args, 0)?, times, |v, step| {
                Some(go_max(min[step], v))
            })
        }
        "clamp_max" => {
            let max = scalar(ev, arg(&args, 1)?, times)?;
            map_steps(ev, arg(&args, 0)?, times, |v, step| {
                Some(go_min(max[step], v))
            })
        }
        "timestamp" => {
            let input = match unwrap_parens(arg(&args, 0)?) {
                Expr::VectorSelector(vs) => ev.select_instant(vs, times, true)?,
                expr => {
                    let mut input = vector(ev, expr, times)?;
                    for series in &mut input {
                        for (value, &t) in series.values.iter_mut().zip(times) {
                            if value.is_some() {
                                *value = Some(t as f64 / 1000.0);
                            }
                        }
                    }
                    input
                }
            };
            drop_names(input)
        }
        "year" | "month" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "hour" | "minute" => {
            let field = |seconds: i64| {
                let c = civil(seconds);
                f64::from(match name {
                    "year" => return c.year as f64,
                    "month" => c.month,
                    "day_of_month" => c.day,
                    "day_of_week" => c.weekday,
                    "day_of_year" => c.day_of_year,
                    "days_in_month" => days_in_month(c.year, c.month),
                    "hour" => c.hour,
                    _ => c.minute,
                })
            };
            match args.first() {
                Some(expr) => {
                    let input = vector(ev, expr, times)?;
                    drop_names(map_values(input, |v, _| Some(field(go_seconds(v)))))
                }
                // The evaluation time in whole seconds, truncated as Prometheus does.
                None => Ok(Value::Vector(vec![StepSeries {
                    labels: Labels::default(),
                    values: times.iter().map(|&t| Some(field(t / 1000))).collect(),
                }])),
            }
        }
        "sort" | "sort_desc" => {
            let mut input = vector(ev, arg(&args, 0)?, times)?;
            if steps == 1 {
                let descending = name == "sort_desc";
                input.sort_by(|a, b| {
                    let (x, y) = (
                        a.values[0].unwrap_or(f64::NAN),
                        b.values[0].unwrap_or(f64::NAN),
                    );
                    // NaN last, either way.
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if descending => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
            }
            Ok(Value::Vector(input))
        }
        "label_replace" => label_replace(ev, &args, times),
        "label_join" => label_join(ev, &args, times),
        "absent" => {
            let input = vector(ev, arg(&args, 0)?, times)?;
            Ok(absent(
                (0..steps).map(|step| input.iter().all(|s| s.values[step].is_none())),
                absent_labels(arg(&args, 0)?),
            ))
        }
        "absent_over_time" => {
            let range = matrix(ev, arg(&args, 0)?, times)?;
            Ok(absent(
                (0..steps).map(|step| {
                    range
                        .series
                        .iter()
                        .all(|s| range.window(s, step).is_empty())
                }),
                absent_labels(arg(&args, 0)?),
            ))
        }
        "histogram_quantile" => {
            let phi = scalar(ev, arg(&args, 0)?, times)?;
            let input = vector(ev, arg(&args, 1)?, times)?;
            histogram_quantile(&phi, input)
        }
        "rate" => over_range(ev, &args, times, false, |w, end, range, _| {
            extrapolated_rate(w, end, range, true, true)
        }),
        "increase" => over_range(ev, &args, times, false, |w, end, range, _| {
            extrapolated_rate(w, end, range, true, false)
        }),
        "delta" => over_range(ev, &args, times, false, |w, end, range, _| {
            extrapolated_rate(w, end, range, false, false)
        }),
        "irate" => over_range(ev, &args, times, false, |w, _, _, _| instant_rate(w, true)),
        "idelta" => over_range(ev, &args, times, false, |w, _, _, _| instant_rate(w, false)),
        "deriv" => over_range(ev, &args, times, false, |w, _, _, _| {
            (w.len() >= 2).then(|| linear_regression(w, w[0].timestamp_ms).0)
        }),
        "predict_linear" => {
            let seconds = scalar(ev, arg(&args, 1)?, times)?;
            // The intercept is at the evaluation time, even under `@` (as Prometheus does).
            over_range(ev, &args, times, false, |w, _, _, step| {
                (w.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w, times[step]);
                    slope * seconds[step] + intercept
                })
            })
        }
        "resets" => over_range(ev, &args, times, false, |w, _, _, _| {
            Some(w.windows(2).filter(|p| p[1].value < p[0].value).count() as f64)
        }),
        "changes" => over_range(ev, &args, times, false, |w, _, _, _| {
            Some(
                w.windows(2)
                    .filter(|p| {
                        let (a, b) = (p[0].value, p[1].value);
                        !(a == b || (a.is_nan() && b.is_nan()))
                    })
                    .count() as f64,
            )
        }),
        "avg_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| kahan_mean(w.iter().map(|s| s.value)))
        }),
        "sum_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| kahan_sum(w.iter().map(|s| s.value)))
        }),
        "count_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| w.len() as f64)
        }),
        "min_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| extreme(w, |v, best| v < best))
        }),
        "max_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| extreme(w, |v, best| v > best))
        }),
        "last_over_time" => over_range(ev, &args, times, true, |w, _, _, _| {
            w.last().map(|s| s.value)
        }),
        "present_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|_| 1.0)
        }),
        "stdvar_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| kahan_variance(w.iter().map(|s| s.value)))
        }),
        "stddev_over_time" => over_range(ev, &args, times, false, |w, _, _, _| {
            nonempty(w).map(|w| kahan_variance(w.iter().map(|s| s.value)).sqrt())
        }),
        "quantile_over_time" => {
            let phi = scalar(ev, arg(&args, 0)?, times)?;
            let rest = &args[1..];
            over_range(ev, rest, times, false, |w, _, _, step| {
                nonempty(w).map(|w| quantile(phi[step], w.iter().map(|s| s.value).collect()))
            })
        }
        "holt_winters" => {
            let smoothing = scalar(ev, arg(&args, 1)?, times)?;
            let trend = scalar(ev, arg(&args, 2)?, times)?;
            let range = matrix(ev, arg(&args, 0)?, times)?;
            check_holt_winters_factors(&range, &smoothing, &trend)?;
            apply_over_range(ev, &range, times, false, |w, _, _, step| {
                holt_winters(w, smoothing[step], trend[step])
            })
        }
        // Native-histogram functions: Prometheus skips float samples, so on classic series
        // (all this store holds) they answer nothing.
        "histogram_count" | "histogram_sum" => {
            vector(ev, arg(&args, 0)?, times)?;
            Ok(Value::Vector(Vec::new()))
        }
        "histogram_fraction" => {
            scalar(ev, arg(&args, 0)?, times)?;
            scalar(ev, arg(&args, 1)?, times)?;
            vector(ev, arg(&args, 2)?, times)?;
            Ok(Value::Vector(Vec::new()))
        }
        other => Err(PromqlError::Execution(format!(
            "function {other}() is not supported"
        ))),
    }
}

fn arg<'a>(args: &[&'a Expr], index: usize) -> Result<&'a Expr, PromqlError> {
    args.get(index).copied().ok_or_else(|| {
        PromqlError::Execution(format!("missing argument {} of a function call", index + 1))
    })
}

fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(paren) = expr {
        expr = &paren.expr;
    }
    expr
}

fn scalar(ev: &Evaluator, expr: &Expr, times: &[i64]) -> Result<Vec<f64>, PromqlError> {
    match ev.eval(expr, times)? {
        Value::Scalar(values) => Ok(values),
        other => Err(type_error("scalar", &other)),
    }
}

fn vector(ev: &Evaluator, expr: &Expr, times: &[i64]) -> Result<Vec<StepSeries>, PromqlError> {
    match ev.eval(expr, times)? {
        Value::Vector(vector) => Ok(vector),
        other => Err(type_error("instant vector", &other)),
    }
}

fn matrix(ev: &Evaluator, expr: &Expr, times: &[i64]) -> Result<RangeVector, PromqlError> {
    match ev.eval(expr, times)? {
        Value::Matrix(range) => Ok(range),
        other => Err(type_error("range vector", &other)),
    }
}

fn string(ev: &Evaluator, expr: &Expr, times: &[i64]) -> Result<String, PromqlError> {
    match ev.eval(expr, times)? {
        Value::String(value) => Ok(value),
        other => Err(type_error("string", &other)),
    }
}

fn type_error(expected: &str, got: &Value) -> PromqlError {
    PromqlError::Execution(format!(
        "expected type {expected} in call to function, got {}",
        got.type_name()
    ))
}

fn map_values(
    mut input: Vec<StepSeries>,
    f: impl Fn(f64, usize) -> Option<f64>,
) -> Vec<StepSeries> {
    for series in &mut input {
        for (step, value) in series.values.iter_mut().enumerate() {
            *value = value.and_then(|v| f(v, step));
        }
    }
    input.retain(|series| series.values.iter().any(Option::is_some));
    input
}

fn drop_names(input: Vec<StepSeries>) -> Result<Value, PromqlError> {
    let input = input
        .into_iter()
        .map(|series| StepSeries {
            labels: series.labels.without_metric_name(),
            values: series.values,
        })
        .collect();
    merge_same_labels(input).map(Value::Vector)
}

/// An element-wise function of the first argument; drops the metric name.
fn map(
    ev: &Evaluator,
    args: &[&Expr],
    times: &[i64],
    f: impl Fn(f64) -> f64,
) -> Result<Value, PromqlError> {
    map_steps(ev, arg(args, 0)?, times, |v, _| Some(f(v)))
}

fn map_steps(
    ev: &Evaluator,
    expr: &Expr,
    times: &[i64],
    f: impl Fn(f64, usize) -> Option<f64>,
) -> Result<Value, PromqlError> {
    let input = vector(ev, expr, times)?;
    drop_names(map_values(input, f))
}

/// A range function of the first argument: `f(window, window end, range, step)` per series
/// and step. Drops the metric name unless `keep_name`.
fn over_range(
    ev: &Evaluator,
    args: &[&Expr],
    times: &[i64],
    keep_name: bool,
    f: impl Fn(&[Sample], i64, i64, usize) -> Option<f64>,
) -> Result<Value, PromqlError> {
    let range = matrix(ev, arg(args, 0)?, times)?;
    apply_over_range(ev, &range, times, keep_name, f)
}

/// [`over_range`] on an evaluated range vector. Windows without samples give nothing; two
/// results with like labels are an error even at different steps, as in Prometheus.
fn apply_over_range(
    ev: &Evaluator,
    range: &RangeVector,
    times: &[i64],
    keep_name: bool,
    f: impl Fn(&[Sample], i64, i64, usize) -> Option<f64>,
) -> Result<Value, PromqlError> {
    ev.check_size(range.series.len(), times.len())?;
    let mut out = Vec::with_capacity(range.series.len());
    for series in &range.series {
        ev.check_deadline()?;
        let values: Vec<Option<f64>> = (0..times.len())
            .map(|step| {
                let window = range.window(series, step);
                if window.is_empty() {
                    return None;
                }
                f(window, range.ends[step], range.range_ms, step)
            })
            .collect();
        if values.iter().any(Option::is_some) {
            let labels = if keep_name {
                series.labels.clone()
            } else {
                series.labels.clone().without_metric_name()
            };
            out.push(StepSeries { labels, values });
        }
    }
    distinct_labels(out).map(Value::Vector)
}

/// `holt_winters`'s factors must lie in (0, 1) at every step where some series has a
/// sample in its window (Prometheus checks them there only, and lets NaN pass).
fn check_holt_winters_factors(
    range: &RangeVector,
    smoothing: &[f64],
    trend: &[f64],
) -> Result<(), PromqlError> {
    for step in 0..range.ends.len() {
        if range
            .series
            .iter()
            .all(|s| range.window(s, step).is_empty())
        {
            continue;
        }
        for (what, value) in [("smoothing", smoothing[step]), ("trend", trend[step])] {
            if value <= 0.0 || value >= 1.0 {
                return Err(PromqlError::Execution(format!(
                    "invalid {what} factor. Expected: 0 < sf < 1, got: {value:.6}"
                )));
            }
        }
    }
    Ok(())
}

fn nonempty(window: &[Sample]) -> Option<&[Sample]> {
    (!window.is_empty()).then_some(window)
}

fn absent(missing: impl Iterator<Item = bool>, labels: Labels) -> Value {
    let values: Vec<Option<f64>> = missing.map(|missing| missing.then_some(1.0)).collect();
    if values.iter().all(Option::is_none) {
        return Value::Vector(Vec::new());
    }
    Value::Vector(vec![StepSeries { labels, values }])
}

/// The labels `absent()` answers with, as Prometheus takes them from the selector's
/// matchers in order: a name's first equality matcher sets it, any later matcher of that
/// name (or an earlier one of another kind) removes it; the metric name is left out.
fn absent_labels(expr: &Expr) -> Labels {
    let selector = match unwrap_parens(expr) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut labels = Labels::default();
    let mut set: Vec<&str> = Vec::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == METRIC_NAME_LABEL {
            continue;
        }
        let equal = matches!(matcher.op, promql_parser::label::MatchOp::Equal);
        if equal && !set.contains(&matcher.name.as_str()) {
            labels.set(&matcher.name, &matcher.value);
            set.push(&matcher.name);
        } else {
            labels.set(&matcher.name, "");
        }
    }
    labels
}

fn label_replace(ev: &Evaluator, args: &[&Expr], times: &[i64]) -> Result<Value, PromqlError> {
    let input = vector(ev, arg(args, 0)?, times)?;
    let destination = string(ev, arg(args, 1)?, times)?;
    let replacement = string(ev, arg(args, 2)?, times)?;
    let source = string(ev, arg(args, 3)?, times)?;
    let pattern = string(ev, arg(args, 4)?, times)?;
    // Anchored as Prometheus 2.42 compiles it: `.` does not match a newline.
    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
        PromqlError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}: {err}"
        ))
    })?;
    if !valid_label_name(&destination) {
        return Err(PromqlError::Execution(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    let out = input
        .into_iter()
        .map(|mut series| {
            if let Some(captures) = regex.captures(series.labels.get(&source)) {
                let mut value = String::new();
                captures.expand(&replacement, &mut value);
                series.labels.set(&destination, &value);
            }
            series
        })
        .collect();
    merge_same_labels(out).map(Value::Vector)
}

fn label_join(ev: &Evaluator, args: &[&Expr], times: &[i64]) -> Result<Value, PromqlError> {
    let input = vector(ev, arg(args, 0)?, times)?;
    let destination = string(ev, arg(args, 1)?, times)?;
    let separator = string(ev, arg(args, 2)?, times)?;
    let sources = args[3.min(args.len())..]
        .iter()
        .map(|expr| string(ev, expr, times))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(source) = sources.iter().find(|s| !valid_label_name(s)) {
        return Err(PromqlError::Execution(format!(
            "invalid source label name in label_join(): {source}"
        )));
    }
    if !valid_label_name(&destination) {
        return Err(PromqlError::Execution(format!(
            "invalid destination label name in label_join(): {destination}"
        )));
    }
    let out = input
        .into_iter()
        .map(|mut series| {
            let joined: Vec<&str> = sources.iter().map(|s| series.labels.get(s)).collect();
            let joined = joined.join(&separator);
            series.labels.set(&destination, &joined);
            series
        })
        .collect();
    merge_same_labels(out).map(Value::Vector)
}
