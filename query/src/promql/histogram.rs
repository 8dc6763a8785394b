//! `histogram_quantile` over classic `le` buckets, interpolating as Prometheus does.

use std::collections::HashMap;

use super::error::PromqlError;
use super::eval::{StepSeries, Value, merge_same_labels};
use super::series::Labels;

/// `histogram_quantile` over classic buckets: series grouped by their labels without `le`.
/// Buckets are grouped by their labels without `le` (names differ, groups differ); answers
/// drop the name, so two metrics with like labels are a duplicate-series error.
pub(super) fn histogram_quantile(
    phi: &[f64],
    input: Vec<StepSeries>,
) -> Result<Value, PromqlError> {
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (member, series) in input.iter().enumerate() {
        let Ok(upper) = parse_bound(series.labels.get("le")) else {
            continue;
        };
        let mut labels = series.labels.clone();
        labels.set("le", "");
        let at = *index.entry(labels.clone()).or_insert_with(|| {
            groups.push((labels, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push((upper, member));
    }
    let answers = groups
        .into_iter()
        .filter_map(|(labels, buckets)| {
            let values: Vec<Option<f64>> = phi
                .iter()
                .enumerate()
                .map(|(step, &phi)| {
                    let mut present: Vec<(f64, f64)> = buckets
                        .iter()
                        .filter_map(|&(upper, m)| input[m].values[step].map(|count| (upper, count)))
                        .collect();
                    (!present.is_empty()).then(|| bucket_quantile(phi, &mut present))
                })
                .collect();
            values.iter().any(Option::is_some).then(|| StepSeries {
                labels: labels.without_metric_name(),
                values,
            })
        })
        .collect();
    merge_same_labels(answers).map(Value::Vector)
}

fn parse_bound(le: &str) -> Result<f64, ()> {
    if le.is_empty() {
        return Err(());
    }
    le.parse::<f64>().map_err(|_| ())
}

/// The quantile of cumulative buckets `(upper bound, count)`, as Prometheus interpolates.
fn bucket_quantile(phi: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound are summed; counts are made monotonic (a NaN count
    // is left alone, and one at the start stops all corrections, as in Prometheus).
    buckets.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
    let mut max = buckets[0].1;
    for bucket in buckets.iter_mut().skip(1) {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = phi * observations;
    let b = go_search(buckets.len() - 1, |i| buckets[i].1 >= rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    let start = if b > 0 {
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
        buckets[b - 1].0
    } else {
        0.0
    };
    start + (end - start) * (rank / count)
}

/// Go's `sort.Search`: bisects `0..n` for the first `i` where `found(i)` holds (`n` when
/// none), assuming `found` is monotonic; where a NaN count breaks that, the answer is the
/// one Prometheus gets.
fn go_search(n: usize, found: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, n);
    while low < high {
        let middle = low + (high - low) / 2;
        if found(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantile_interpolates_within_the_bucket() {
        let mut buckets = vec![(0.1, 50.0), (0.5, 90.0), (f64::INFINITY, 100.0)];
        let median = bucket_quantile(0.5, &mut buckets);
        assert!((median - 0.1).abs() < 1e-12, "{median}");
        let p70 = bucket_quantile(0.7, &mut buckets);
        assert!((p70 - 0.3).abs() < 1e-12, "{p70}");
        assert_eq!(bucket_quantile(0.99, &mut buckets), 0.5);
    }
}
