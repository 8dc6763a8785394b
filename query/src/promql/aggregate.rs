//! Aggregation operators: `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`, with `by` and `without`.

use std::cmp::Ordering;
use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::error::PromqlError;
use super::eval::{Evaluator, StepSeries, Value};
use super::format::label_float;
use super::numeric::{kahan_add, mean, quantile};
use super::series::{Labels, METRIC_NAME_LABEL};

/// Evaluates `agg` at `times`.
pub(super) fn evaluate(
    evaluator: &Evaluator,
    agg: &AggregateExpr,
    times: &[i64],
) -> Result<Value, PromqlError> {
    let op = agg.op.id();
    let param = match &agg.param {
        Some(param) => Some(evaluator.eval(param, times)?),
        None => None,
    };
    let input = match evaluator.eval(&agg.expr, times)? {
        Value::Vector(vector) => vector,
        other => {
            return Err(PromqlError::Execution(format!(
                "expected instant vector in aggregation expression, got {}",
                other.type_name()
            )));
        }
    };
    let steps = times.len();
    let groups = group(&input, agg.modifier.as_ref());
    let out = match op {
        T_TOPK | T_BOTTOMK => {
            let k = scalar_param(param, "k")?;
            select_k(input, &groups, &k, op == T_TOPK)
        }
        T_COUNT_VALUES => {
            let label = match param {
                Some(Value::String(label)) => label,
                _ => {
                    return Err(PromqlError::Execution(
                        "count_values needs a label name as its parameter".into(),
                    ));
                }
            };
            count_values(&input, &groups, &label, steps)?
        }
        _ => {
            let phi = if op == T_QUANTILE {
                scalar_param(param, "quantile")?
            } else {
                Vec::new()
            };
            groups
                .into_iter()
                .map(|group| {
                    let values = (0..steps)
                        .map(|step| {
                            let present: Vec<f64> = group
                                .members
                                .iter()
                                .filter_map(|&m| input[m].values[step])
                                .collect();
                            if present.is_empty() {
                                return Ok(None);
                            }
                            Ok(Some(match op {
                                T_SUM => sum(&present),
                                T_AVG => mean(present.iter().copied()),
                                T_COUNT => present.len() as f64,
                                T_GROUP => 1.0,
                                T_MIN => extreme(&present, |v, best| v < best),
                                T_MAX => extreme(&present, |v, best| v > best),
                                T_STDVAR => variance(&present),
                                T_STDDEV => variance(&present).sqrt(),
                                T_QUANTILE => quantile(phi[step], present),
                                _ => {
                                    return Err(PromqlError::Execution(format!(
                                        "aggregation {} is not supported",
                                        agg.op
                                    )));
                                }
                            }))
                        })
                        .collect::<Result<Vec<_>, PromqlError>>()?;
                    Ok(StepSeries {
                        labels: group.labels,
                        values,
                    })
                })
                .collect::<Result<Vec<_>, PromqlError>>()?
        }
    };
    Ok(Value::Vector(out))
}

struct Group {
    labels: Labels,
    members: Vec<usize>,
}

/// The input's series grouped by the labels `by` keeps (or `without` leaves).
fn group(input: &[StepSeries], modifier: Option<&LabelModifier>) -> Vec<Group> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (member, series) in input.iter().enumerate() {
        let mut labels = series.labels.clone();
        match modifier {
            None => labels = Labels::default(),
            Some(LabelModifier::Include(by)) => {
                labels.retain(|name| by.labels.iter().any(|l| l == name));
            }
            Some(LabelModifier::Exclude(without)) => labels.retain(|name| {
                name != METRIC_NAME_LABEL && !without.labels.iter().any(|l| l == name)
            }),
        }
        match index.get(&labels) {
            Some(&at) => groups[at].members.push(member),
            None => {
                index.insert(labels.clone(), groups.len());
                groups.push(Group {
                    labels,
                    members: vec![member],
                });
            }
        }
    }
    groups
}

fn scalar_param(param: Option<Value>, what: &str) -> Result<Vec<f64>, PromqlError> {
    match param {
        Some(Value::Scalar(values)) => Ok(values),
        _ => Err(PromqlError::Execution(format!(
            "expected a scalar {what} parameter"
        ))),
    }
}

fn sum(values: &[f64]) -> f64 {
    let (mut sum, mut compensation) = (0.0, 0.0);
    for &v in values {
        (sum, compensation) = kahan_add(v, sum, compensation);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + compensation
    }
}

/// The minimum or maximum; NaN only when every value is NaN.
fn extreme(values: &[f64], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = values[0];
    for &v in &values[1..] {
        if better(v, best) || best.is_nan() {
            best = v;
        }
    }
    best
}

/// Population variance, by Welford's method.
fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// `topk`/`bottomk`: per step and group, the `k` largest (smallest) series keep their value.
/// NaN counts as the smallest for `topk` and the largest for `bottomk`.
fn select_k(input: Vec<StepSeries>, groups: &[Group], k: &[f64], top: bool) -> Vec<StepSeries> {
    let steps = k.len();
    let mut keep = vec![vec![false; steps]; input.len()];
    for group in groups {
        for (step, &k) in k.iter().enumerate() {
            if k.is_nan() || k < 1.0 {
                continue;
            }
            let k = if k >= usize::MAX as f64 {
                usize::MAX
            } else {
                k as usize
            };
            let mut present: Vec<(usize, f64)> = group
                .members
                .iter()
                .filter_map(|&m| input[m].values[step].map(|v| (m, v)))
                .collect();
            present.sort_by(|a, b| rank(a.1, b.1, top));
            for &(member, _) in present.iter().take(k) {
                keep[member][step] = true;
            }
        }
    }
    let mut out: Vec<StepSeries> = input
        .into_iter()
        .zip(keep)
        .filter_map(|(mut series, keep)| {
            for (value, keep) in series.values.iter_mut().zip(keep) {
                if !keep {
                    *value = None;
                }
            }
            series.values.iter().any(Option::is_some).then_some(series)
        })
        .collect();
    // An instant query shows the selection in rank order.
    if steps == 1 {
        out.sort_by(|a, b| match (a.values[0], b.values[0]) {
            (Some(x), Some(y)) => rank(x, y, top),
            _ => Ordering::Equal,
        });
    }
    out
}

/// Orders best first: larger for top, smaller for bottom, NaN last.
fn rank(a: f64, b: f64, top: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if top => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

fn count_values(
    input: &[StepSeries],
    groups: &[Group],
    label: &str,
    steps: usize,
) -> Result<Vec<StepSeries>, PromqlError> {
    if !valid_label_name(label) {
        return Err(PromqlError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    for group in groups {
        for step in 0..steps {
            for &member in &group.members {
                let Some(value) = input[member].values[step] else {
                    continue;
                };
                let mut labels = group.labels.clone();
                labels.set(label, &label_float(value));
                let at = *index.entry(labels.clone()).or_insert_with(|| {
                    out.push(StepSeries {
                        labels,
                        values: vec![None; steps],
                    });
                    out.len() - 1
                });
                let slot = &mut out[at].values[step];
                *slot = Some(slot.unwrap_or(0.0) + 1.0);
            }
        }
    }
    Ok(out)
}

/// Whether `name` is a valid Prometheus label name.
pub(super) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
