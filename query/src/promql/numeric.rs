//! The arithmetic behind PromQL's functions and aggregations, on plain numbers and sample
//! windows: compensated sums and means, variance, quantiles, `rate` extrapolation, linear
//! regression, Holt-Winters smoothing; NaN handling as in Go's math. Pure.

use super::series::Sample;

/// Neumaier's compensated addition, as Prometheus 2.42 sums: the new sum and compensation
/// (NaN once the sum is infinite, as there).
pub(super) fn kahan_add(value: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + value;
    let compensation = if sum.abs() >= value.abs() {
        compensation + ((sum - total) + value)
    } else {
        compensation + ((value - total) + sum)
    };
    (total, compensation)
}

pub(super) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0, 0.0);
    for value in values {
        (sum, compensation) = kahan_add(value, sum, compensation);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + compensation
    }
}

/// Whether a running mean that is already infinite stays as it is on `value` (an infinity
/// of its sign, or a finite value), as Prometheus's incremental means skip such updates.
pub(super) fn keeps_infinite_mean(mean: f64, value: f64) -> bool {
    mean.is_infinite()
        && (value.is_finite() || (value.is_infinite() && (mean > 0.0) == (value > 0.0)))
}

/// `avg_over_time` as Prometheus 2.42 computes it: an incremental mean, compensated.
pub(super) fn kahan_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut compensation, mut count) = (0.0, 0.0, 0.0);
    for value in values {
        count += 1.0;
        if keeps_infinite_mean(mean, value) {
            continue;
        }
        (mean, compensation) = kahan_add(value / count - mean / count, mean, compensation);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + compensation
    }
}

/// The larger of two values, NaN when either is (Go's `math.Max`, which PromQL follows).
pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The smaller of two values, NaN when either is (Go's `math.Min`).
pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

pub(super) fn extreme(window: &[Sample], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = window[0].value;
    for sample in &window[1..] {
        if better(sample.value, best) || best.is_nan() {
            best = sample.value;
        }
    }
    best
}

/// Population variance as `stdvar_over_time` computes it in Prometheus 2.42: Welford's
/// method with compensated sums.
pub(super) fn kahan_variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut mean_c, mut m2, mut m2_c) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - (mean + mean_c);
        (mean, mean_c) = kahan_add(delta / count, mean, mean_c);
        (m2, m2_c) = kahan_add(delta * (v - (mean + mean_c)), m2, m2_c);
    }
    (m2 + m2_c) / count
}

/// The `phi` quantile of `values` by linear interpolation between closest ranks, as
/// Prometheus's `quantile` computes it.
pub(super) fn quantile(phi: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Prometheus orders values for quantiles.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

/// `rate`, `increase` and `delta`: the change over the window, corrected for counter resets
/// and extrapolated toward the window's edges as Prometheus does.
pub(super) fn extrapolated_rate(
    window: &[Sample],
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let first = window[0];
    let last = window[window.len() - 1];
    let range_start = range_end - range_ms;
    let mut result = last.value - first.value;
    if is_counter {
        let mut previous = 0.0;
        for sample in window {
            if sample.value < previous {
                result += previous;
            }
            previous = sample.value;
        }
    }
    let mut to_start = (first.timestamp_ms - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.timestamp_ms) as f64 / 1000.0;
    let sampled = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let average_gap = sampled / (window.len() - 1) as f64;
    if is_counter && result > 0.0 && first.value >= 0.0 {
        // A counter is never negative: extrapolate no further back than its zero point.
        // (Prometheus 2.x takes the zero point before the threshold below; 3.x after.)
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (per second, counter-aware) and `idelta` from the last two samples.
pub(super) fn instant_rate(window: &[Sample], is_rate: bool) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let last = window[window.len() - 1];
    let previous = window[window.len() - 2];
    let change = if is_rate && last.value < previous.value {
        last.value
    } else {
        last.value - previous.value
    };
    if !is_rate {
        return Some(change);
    }
    let interval = last.timestamp_ms - previous.timestamp_ms;
    (interval != 0).then(|| change / (interval as f64 / 1000.0))
}

/// Least-squares slope and intercept of the window, x in seconds from `intercept_ms`.
pub(super) fn linear_regression(window: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let first = window[0].value;
    if window.iter().all(|s| s.value == first) {
        return if first.is_infinite() {
            (f64::NAN, f64::NAN)
        } else {
            (0.0, first)
        };
    }
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for sample in window {
        n += 1.0;
        let x = (sample.timestamp_ms - intercept_ms) as f64 / 1000.0;
        (sum_x, cx) = kahan_add(x, sum_x, cx);
        (sum_y, cy) = kahan_add(sample.value, sum_y, cy);
        (sum_xy, cxy) = kahan_add(x * sample.value, sum_xy, cxy);
        (sum_x2, cx2) = kahan_add(x * x, sum_x2, cx2);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let covariance = sum_xy - sum_x * sum_y / n;
    let variance = sum_x2 - sum_x * sum_x / n;
    let slope = covariance / variance;
    (slope, sum_y / n - slope * sum_x / n)
}

pub(super) fn holt_winters(window: &[Sample], smoothing: f64, trend_factor: f64) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let mut smoothed = window[0].value;
    let mut trend = window[1].value - window[0].value;
    let mut previous = smoothed;
    for (i, sample) in window.iter().enumerate().skip(1) {
        let next = smoothing * sample.value + (1.0 - smoothing) * (previous + trend);
        if i > 1 {
            trend = trend_factor * (next - previous) + (1.0 - trend_factor) * trend;
        } else {
            trend = trend_factor * (next - smoothed) + (1.0 - trend_factor) * trend;
        }
        previous = next;
        smoothed = next;
    }
    Some(smoothed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // A counter rising 10 per 10 s seen from 10 s to 290 s of a 300 s window.
        let window: Vec<Sample> = samples(
            &(1..=29)
                .map(|i| (i * 10_000, 100.0 + i as f64 * 10.0))
                .collect::<Vec<_>>(),
        );
        let rate = extrapolated_rate(&window, 300_000, 300_000, true, true);
        assert!((rate.unwrap_or_default() - 1.0).abs() < 1e-9, "{rate:?}");
    }

    #[test]
    fn increase_counts_counter_resets() {
        let window = samples(&[(0, 5.0), (10_000, 10.0), (20_000, 2.0), (30_000, 6.0)]);
        // Raw growth 5 + 2 + 4 = 11 over 30 s, window exactly covered.
        let increase = extrapolated_rate(&window, 30_000, 30_000, true, false);
        assert_eq!(increase, Some(11.0));
    }
}
