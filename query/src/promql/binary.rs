//! Binary operators: arithmetic, comparisons (filtering or with `bool`), and the set
//! operators `and`, `or`, `unless`, with Prometheus's vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`).

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::error::PromqlError;
use super::eval::{StepSeries, Value, merge_same_labels};
use super::series::{Labels, METRIC_NAME_LABEL};

/// Evaluates `bin` on its evaluated sides.
pub(super) fn evaluate(bin: &BinaryExpr, lhs: Value, rhs: Value) -> Result<Value, PromqlError> {
    let op = bin.op.id();
    let return_bool = bin.modifier.as_ref().is_some_and(|m| m.return_bool);
    if let Some(modifier) = &bin.modifier
        && (modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some())
    {
        return Err(PromqlError::Execution(
            "fill modifiers are not supported".into(),
        ));
    }
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let values = l
                .into_iter()
                .zip(r)
                .map(|(l, r)| {
                    let (value, keep) = apply(op, l, r)?;
                    // Scalar comparisons need `bool`; the parser enforces it.
                    Ok(if is_comparison(op) {
                        f64::from(u8::from(keep))
                    } else {
                        value
                    })
                })
                .collect::<Result<_, PromqlError>>()?;
            Ok(Value::Scalar(values))
        }
        (Value::Vector(vector), Value::Scalar(scalar)) => {
            vector_scalar(op, vector, &scalar, false, return_bool).map(Value::Vector)
        }
        (Value::Scalar(scalar), Value::Vector(vector)) => {
            vector_scalar(op, vector, &scalar, true, return_bool).map(Value::Vector)
        }
        (Value::Vector(l), Value::Vector(r)) => {
            let modifier = bin.modifier.clone().unwrap_or_default();
            match op {
                T_LAND => Ok(Value::Vector(and_unless(l, &r, &modifier, true))),
                T_LUNLESS => Ok(Value::Vector(and_unless(l, &r, &modifier, false))),
                T_LOR => or(l, r, &modifier).map(Value::Vector),
                _ => vector_vector(op, l, r, &modifier).map(Value::Vector),
            }
        }
        (l, r) => Err(PromqlError::Execution(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops the metric name, as does a comparison with `bool`; `atan2` keeps it
/// (Prometheus 2.x leaves it out of its name-dropping operators).
fn drops_name(op: TokenId, return_bool: bool) -> bool {
    (!is_comparison(op) && op != T_ATAN2) || return_bool
}

/// `l op r`: the value and, for comparisons, whether the pair is kept.
fn apply(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), PromqlError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(PromqlError::Execution(format!(
                "operator {op} is not a value operator"
            )));
        }
    })
}

fn vector_scalar(
    op: TokenId,
    vector: Vec<StepSeries>,
    scalar: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Result<Vec<StepSeries>, PromqlError> {
    let comparison = is_comparison(op);
    let mut out = Vec::with_capacity(vector.len());
    for series in vector {
        let mut values = Vec::with_capacity(series.values.len());
        for (value, &s) in series.values.into_iter().zip(scalar) {
            let Some(v) = value else {
                values.push(None);
                continue;
            };
            let (l, r) = if scalar_left { (s, v) } else { (v, s) };
            let (result, keep) = apply(op, l, r)?;
            values.push(match (comparison, return_bool) {
                (false, _) => Some(result),
                (true, true) => Some(f64::from(u8::from(keep))),
                // A filtering comparison keeps the vector's value, whichever side it is on.
                (true, false) => keep.then_some(v),
            });
        }
        if values.iter().any(Option::is_some) {
            let labels = if drops_name(op, return_bool) {
                series.labels.without_metric_name()
            } else {
                series.labels
            };
            out.push(StepSeries { labels, values });
        }
    }
    if drops_name(op, return_bool) {
        merge_same_labels(out)
    } else {
        Ok(out)
    }
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    let mut signature = labels.clone();
    match matching {
        Some(LabelModifier::Include(on)) => {
            signature.retain(|name| on.labels.iter().any(|l| l == name));
        }
        Some(LabelModifier::Exclude(ignoring)) => {
            signature.retain(|name| {
                name != METRIC_NAME_LABEL && !ignoring.labels.iter().any(|l| l == name)
            });
        }
        None => signature.retain(|name| name != METRIC_NAME_LABEL),
    }
    signature
}

fn and_unless(
    lhs: Vec<StepSeries>,
    rhs: &[StepSeries],
    modifier: &BinModifier,
    keep_matched: bool,
) -> Vec<StepSeries> {
    let matching = modifier.matching.as_ref();
    let mut rhs_by_signature: HashMap<Labels, Vec<&StepSeries>> = HashMap::new();
    for series in rhs {
        rhs_by_signature
            .entry(signature(&series.labels, matching))
            .or_default()
            .push(series);
    }
    lhs.into_iter()
        .filter_map(|mut series| {
            let matches = rhs_by_signature.get(&signature(&series.labels, matching));
            for (step, value) in series.values.iter_mut().enumerate() {
                let matched = matches.is_some_and(|m| {
                    m.iter()
                        .any(|r| r.values.get(step).copied().flatten().is_some())
                });
                if matched != keep_matched {
                    *value = None;
                }
            }
            series.values.iter().any(Option::is_some).then_some(series)
        })
        .collect()
}

fn or(
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    modifier: &BinModifier,
) -> Result<Vec<StepSeries>, PromqlError> {
    let matching = modifier.matching.as_ref();
    let steps = lhs
        .first()
        .or(rhs.first())
        .map_or(0, |series| series.values.len());
    // Per signature, the steps at which the left side has a value.
    let mut lhs_steps: HashMap<Labels, Vec<bool>> = HashMap::new();
    for series in &lhs {
        let present = lhs_steps
            .entry(signature(&series.labels, matching))
            .or_insert_with(|| vec![false; steps]);
        for (slot, value) in present.iter_mut().zip(&series.values) {
            *slot |= value.is_some();
        }
    }
    let mut out = lhs;
    for mut series in rhs {
        if let Some(present) = lhs_steps.get(&signature(&series.labels, matching)) {
            for (value, &taken) in series.values.iter_mut().zip(present) {
                if taken {
                    *value = None;
                }
            }
        }
        if series.values.iter().any(Option::is_some) {
            out.push(series);
        }
    }
    // A right-hand series with the labels of a left-hand one (kept where the left has no
    // value) is the same series in the result, as Prometheus assembles it.
    merge_same_labels(out)
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    modifier: &BinModifier,
) -> Result<Vec<StepSeries>, PromqlError> {
    let matching = modifier.matching.as_ref();
    let return_bool = modifier.return_bool;
    // The "many" side drives; for group_right that is the right side.
    let (many, one, swapped, include) = match &modifier.card {
        VectorMatchCardinality::OneToMany(include) => (rhs, lhs, true, include.labels.clone()),
        VectorMatchCardinality::ManyToOne(include) => (lhs, rhs, false, include.labels.clone()),
        VectorMatchCardinality::OneToOne => (lhs, rhs, false, Vec::new()),
        VectorMatchCardinality::ManyToMany => {
            return Err(PromqlError::Execution(
                "many-to-many matching is only allowed for set operators".into(),
            ));
        }
    };
    let one_to_one = matches!(modifier.card, VectorMatchCardinality::OneToOne);
    let steps = many
        .first()
        .or(one.first())
        .map_or(0, |series| series.values.len());
    let mut one_by_signature: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (index, series) in one.iter().enumerate() {
        one_by_signature
            .entry(signature(&series.labels, matching))
            .or_default()
            .push(index);
    }
    let many_signatures: Vec<Labels> = many
        .iter()
        .map(|series| signature(&series.labels, matching))
        .collect();
    // Steps at which both sides have a value; at the others nothing matches and, as in
    // Prometheus, nothing is checked.
    let active: Vec<bool> = (0..steps)
        .map(|step| {
            let has = |side: &[StepSeries]| side.iter().any(|s| s.values[step].is_some());
            has(&many) && has(&one)
        })
        .collect();
    // The "one" side must hold one series per signature at each step.
    for (sig, members) in &one_by_signature {
        if members.len() < 2 {
            continue;
        }
        for step in (0..steps).filter(|&step| active[step]) {
            let present = members.iter().filter(|&&i| one[i].values[step].is_some());
            if present.count() > 1 {
                return Err(PromqlError::Execution(format!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                    format_labels(sig),
                    if swapped { "left" } else { "right" }
                )));
            }
        }
    }
    // A one-to-one match takes each signature once per step.
    let mut matched_steps: HashMap<&Labels, Vec<bool>> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    for (many_index, many_series) in many.iter().enumerate() {
        let Some(candidates) = one_by_signature.get(&many_signatures[many_index]) else {
            continue;
        };
        for step in 0..steps {
            let Some(many_value) = many_series.values[step] else {
                continue;
            };
            let Some((one_index, one_value)) = candidates
                .iter()
                .find_map(|&candidate| one[candidate].values[step].map(|v| (candidate, v)))
            else {
                continue;
            };
            let (l, r) = if swapped {
                (one_value, many_value)
            } else {
                (many_value, one_value)
            };
            let (value, keep) = apply(op, l, r)?;
            let value = match (is_comparison(op), return_bool) {
                (false, _) => value,
                (true, true) => f64::from(u8::from(keep)),
                (true, false) if keep => value,
                (true, false) => continue,
            };
            // Only a kept pair counts as a match (a filtered comparison does not).
            if one_to_one {
                let taken = matched_steps
                    .entry(&many_signatures[many_index])
                    .or_insert_with(|| vec![false; steps]);
                if taken[step] {
                    return Err(PromqlError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                taken[step] = true;
            }
            let labels = result_labels(
                &many_series.labels,
                &one[one_index].labels,
                op,
                modifier,
                &include,
            );
            let index = match out_index.get(&labels) {
                Some(&index) => {
                    if out[index].values[step].is_some() {
                        return Err(PromqlError::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches".into(),
                        ));
                    }
                    index
                }
                None => {
                    out_index.insert(labels.clone(), out.len());
                    out.push(StepSeries {
                        labels,
                        values: vec![None; steps],
                    });
                    out.len() - 1
                }
            };
            out[index].values[step] = Some(value);
        }
    }
    Ok(out)
}

/// The labels of a result: the "many" side's, without the name where the operator drops
/// it, narrowed to the matching labels for one-to-one `on`/`ignoring`, plus the `group_x`
/// labels taken from the "one" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: TokenId,
    modifier: &BinModifier,
    include: &[String],
) -> Labels {
    let mut labels = many.clone();
    if drops_name(op, modifier.return_bool) {
        labels.set(METRIC_NAME_LABEL, "");
    }
    if matches!(modifier.card, VectorMatchCardinality::OneToOne) {
        match &modifier.matching {
            Some(LabelModifier::Include(on)) => {
                labels.retain(|name| on.labels.iter().any(|l| l == name));
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.retain(|name| !ignoring.labels.iter().any(|l| l == name));
            }
            None => {}
        }
    }
    for name in include {
        labels.set(name, one.get(name));
    }
    labels
}

/// `{a="1", b="2"}`, as Prometheus prints label sets in errors.
pub(super) fn format_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}
