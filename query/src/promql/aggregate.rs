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
use super::format::{format_value, label_float};
use super::numeric::{keeps_infinite_mean, quantile};
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
            select_k(input, &groups, &k, op == T_TOPK)?
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
            count_values(&input, agg.modifier.as_ref(), &label, steps)?
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
                                T_AVG => mean(&present),
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
        let labels = group_labels(&series.labels, modifier, None);
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

/// The labels of the group `labels` falls in: those `by` keeps (and `also_kept`, when
/// given), or all but those `without` leaves out and the metric name.
fn group_labels(
    labels: &Labels,
    modifier: Option<&LabelModifier>,
    also_kept: Option<&str>,
) -> Labels {
    let mut labels = labels.clone();
    match modifier {
        Some(LabelModifier::Exclude(without)) => labels
            .retain(|name| name != METRIC_NAME_LABEL && !without.labels.iter().any(|l| l == name)),
        Some(LabelModifier::Include(by)) => {
            labels.retain(|name| also_kept == Some(name) || by.labels.iter().any(|l| l == name))
        }
        None => labels.retain(|name| also_kept == Some(name)),
    }
    labels
}

fn scalar_param(param: Option<Value>, what: &str) -> Result<Vec<f64>, PromqlError> {
    match param {
        Some(Value::Scalar(values)) => Ok(values),
        _ => Err(PromqlError::Execution(format!(
            "expected a scalar {what} parameter"
        ))),
    }
}

/// A plain running sum, as Prometheus 2.42's `sum` adds (uncompensated).
fn sum(values: &[f64]) -> f64 {
    values[1..].iter().fold(values[0], |sum, v| sum + v)
}

/// The mean as Prometheus 2.42's `avg` computes it: incrementally, an infinite mean kept.
fn mean(values: &[f64]) -> f64 {
    let (mut mean, mut seen) = (values[0], 1.0);
    for &v in &values[1..] {
        seen += 1.0;
        if keeps_infinite_mean(mean, v) {
            continue;
        }
        mean += v / seen - mean / seen;
    }
    mean
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

/// Population variance, by Welford's method from the first value (as Prometheus 2.42).
fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut m2) = (1.0, values[0], 0.0);
    for &v in &values[1..] {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// `topk`/`bottomk`: per step and group, the `k` largest (smallest) series keep their value.
/// NaN counts as the smallest for `topk` and the largest for `bottomk`. An instant query
/// lists the groups in order of appearance, each best first, as Prometheus does.
fn select_k(
    input: Vec<StepSeries>,
    groups: &[Group],
    k: &[f64],
    top: bool,
) -> Result<Vec<StepSeries>, PromqlError> {
    let steps = k.len();
    let mut keep = vec![vec![false; steps]; input.len()];
    // Where each series selected at the first step is listed: its group, then its rank.
    let mut place = vec![(usize::MAX, usize::MAX); input.len()];
    for (step, &k) in k.iter().enumerate() {
        let k = k_count(k)?;
        for (group_index, group) in groups.iter().enumerate() {
            let mut present: Vec<(usize, f64)> = group
                .members
                .iter()
                .filter_map(|&m| input[m].values[step].map(|v| (m, v)))
                .collect();
            present.sort_by(|a, b| rank(a.1, b.1, top));
            for (position, &(member, _)) in present.iter().take(k).enumerate() {
                keep[member][step] = true;
                if step == 0 {
                    place[member] = (group_index, position);
                }
            }
        }
    }
    let mut out: Vec<(usize, StepSeries)> = input
        .into_iter()
        .zip(keep)
        .enumerate()
        .filter_map(|(member, (mut series, keep))| {
            for (value, keep) in series.values.iter_mut().zip(keep) {
                if !keep {
                    *value = None;
                }
            }
            series
                .values
                .iter()
                .any(Option::is_some)
                .then_some((member, series))
        })
        .collect();
    if steps == 1 {
        out.sort_by_key(|(member, _)| place[*member]);
    }
    Ok(out.into_iter().map(|(_, series)| series).collect())
}

/// How many series `k` selects, as Prometheus takes it: truncated toward zero, none below
/// one, an error when it is NaN or beyond int64.
fn k_count(k: f64) -> Result<usize, PromqlError> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_POW_63..=TWO_POW_63).contains(&k) {
        return Err(PromqlError::Execution(format!(
            "Scalar value {} overflows int64",
            format_value(k)
        )));
    }
    // Go's int64(2^63) wraps to the minimum, so that k selects nothing too.
    Ok(if (1.0..TWO_POW_63).contains(&k) {
        k as usize
    } else {
        0
    })
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

/// `count_values`: per step, how many series have each value. As in Prometheus, the value
/// label is set on each series before grouping, so `by` keeps it and `without` may drop it.
fn count_values(
    input: &[StepSeries],
    modifier: Option<&LabelModifier>,
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
    for step in 0..steps {
        for series in input {
            let Some(value) = series.values[step] else {
                continue;
            };
            let mut labels = series.labels.clone();
            labels.set(label, &label_float(value));
            let labels = group_labels(&labels, modifier, Some(label));
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
