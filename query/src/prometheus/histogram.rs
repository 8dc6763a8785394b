//! Histogram points as Prometheus histogram series: cumulative `_bucket{le}` counts ending
//! in `le="+Inf"` (the point's count), `_sum` when the point has one, and `_count`.
//! Explicit bounds are used as they are; exponential histograms go through
//! [`super::exponential`]. Delta points are accumulated from the first one given (see
//! [`super::convert`]).
//!
//! Pure: points in, samples into [`Parts`] out.

use skewer_storage::model::{MetricPoint, PointValue};

use super::convert::{is_no_recorded_value, timestamp_ms};
use super::exponential::classic_buckets;
use super::parts::{Part, Parts};
use crate::promql::label_float;

/// Explicit-bucket histograms; with `delta`, accumulated while the bounds stay the same
/// (new bounds start a new total, which PromQL reads as a counter reset).
pub(super) fn histograms(points: &[MetricPoint], delta: bool, parts: &mut Parts) {
    let mut running: Option<(Vec<f64>, Vec<u64>, u64, f64)> = None;
    for point in points {
        let at = timestamp_ms(point);
        if is_no_recorded_value(point) {
            parts.mark_stale(at, [Part::Count, Part::Bucket("+Inf".to_owned())]);
            continue;
        }
        let PointValue::Histogram {
            count,
            sum,
            explicit_bounds,
            bucket_counts,
            ..
        } = &point.value
        else {
            continue;
        };
        if !delta {
            push_histogram(parts, at, explicit_bounds, bucket_counts, *count, *sum);
            continue;
        }
        let total = match running.take() {
            Some((bounds, mut counts, total_count, total_sum))
                if bounds == *explicit_bounds && counts.len() == bucket_counts.len() =>
            {
                counts
                    .iter_mut()
                    .zip(bucket_counts)
                    .for_each(|(total, add)| *total += add);
                (
                    bounds,
                    counts,
                    total_count + count,
                    total_sum + sum.unwrap_or(0.0),
                )
            }
            _ => (
                explicit_bounds.clone(),
                bucket_counts.clone(),
                *count,
                sum.unwrap_or(0.0),
            ),
        };
        let (bounds, counts, total_count, total_sum) = &total;
        let total_sum = sum.map(|_| *total_sum);
        push_histogram(parts, at, bounds, counts, *total_count, total_sum);
        running = Some(total);
    }
}

/// One histogram point's samples: cumulative buckets, `+Inf`, `_sum` and `_count`.
fn push_histogram(
    parts: &mut Parts,
    at: i64,
    bounds: &[f64],
    counts: &[u64],
    count: u64,
    sum: Option<f64>,
) {
    let mut cumulative = 0;
    for (bound, bucket_count) in bounds.iter().zip(counts) {
        cumulative += bucket_count;
        parts.push(Part::Bucket(label_float(*bound)), at, cumulative as f64);
    }
    push_histogram_totals(parts, at, count, sum);
}

/// The `+Inf` bucket, `_sum` (when sent) and `_count` of one histogram point.
fn push_histogram_totals(parts: &mut Parts, at: i64, count: u64, sum: Option<f64>) {
    parts.push(Part::Bucket("+Inf".to_owned()), at, count as f64);
    if let Some(sum) = sum {
        parts.push(Part::Sum, at, sum);
    }
    parts.push(Part::Count, at, count as f64);
}

/// Exponential histograms as classic buckets.
pub(super) fn exponential_histograms(points: &[MetricPoint], delta: bool, parts: &mut Parts) {
    let values: Vec<Option<&PointValue>> = points
        .iter()
        .map(|point| (!is_no_recorded_value(point)).then_some(&point.value))
        .collect();
    let buckets = classic_buckets(&values, delta);
    let le_values: Vec<String> = buckets.bounds.iter().map(|b| label_float(*b)).collect();
    for (point, classic) in points.iter().zip(&buckets.points) {
        let at = timestamp_ms(point);
        if is_no_recorded_value(point) {
            parts.mark_stale(at, [Part::Count, Part::Bucket("+Inf".to_owned())]);
            continue;
        }
        let Some(classic) = classic else {
            continue;
        };
        for (le, cumulative) in le_values.iter().zip(&classic.cumulative) {
            parts.push(Part::Bucket(le.clone()), at, *cumulative as f64);
        }
        push_histogram_totals(parts, at, classic.count, classic.sum);
    }
}

#[cfg(test)]
mod tests {
    use skewer_storage::model::{MetricKind, Temporality};

    use super::super::convert::{NO_RECORDED_VALUE_FLAG, convert_series};
    use super::super::test_support::{SECOND_NS, flat, histogram, points, series};
    use super::*;
    use crate::promql::is_stale;

    #[test]
    fn histograms_become_cumulative_buckets_sum_and_count() {
        let input = points(
            MetricKind::Histogram,
            Temporality::Cumulative,
            vec![(SECOND_NS, histogram(&[0.1, 1.0], &[2, 3, 1], Some(4.5)))],
        );
        let mut output = flat(&convert_series(&input));
        output.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(
            output,
            [
                series("m_bucket", "+Inf", &[(1000, 6.0)]),
                series("m_bucket", "0.1", &[(1000, 2.0)]),
                series("m_bucket", "1", &[(1000, 5.0)]),
                series("m_count", "", &[(1000, 6.0)]),
                series("m_sum", "", &[(1000, 4.5)]),
            ]
        );
    }

    #[test]
    fn histograms_without_a_sum_have_no_sum_series() {
        let input = points(
            MetricKind::Histogram,
            Temporality::Cumulative,
            vec![(SECOND_NS, histogram(&[], &[4], None))],
        );
        let names: Vec<String> = flat(&convert_series(&input))
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(names, ["m_bucket", "m_count"]);
    }

    #[test]
    fn delta_histograms_accumulate_until_the_bounds_change() {
        let input = points(
            MetricKind::Histogram,
            Temporality::Delta,
            vec![
                (SECOND_NS, histogram(&[1.0], &[1, 1], Some(3.0))),
                (2 * SECOND_NS, histogram(&[1.0], &[2, 0], Some(1.0))),
                (3 * SECOND_NS, histogram(&[5.0], &[1, 0], Some(2.0))),
            ],
        );
        let output = flat(&convert_series(&input));
        let find = |name: &str, le: &str| {
            output
                .iter()
                .find(|s| s.0 == name && s.1 == le)
                .unwrap()
                .2
                .clone()
        };
        assert_eq!(find("m_bucket", "1"), [(1000, 1.0), (2000, 3.0)]);
        assert_eq!(find("m_bucket", "5"), [(3000, 1.0)]);
        assert_eq!(find("m_count", ""), [(1000, 2.0), (2000, 4.0), (3000, 1.0)]);
        assert_eq!(find("m_sum", ""), [(1000, 3.0), (2000, 4.0), (3000, 2.0)]);
    }

    #[test]
    fn a_stale_histogram_point_marks_every_series() {
        let mut input = points(
            MetricKind::Histogram,
            Temporality::Cumulative,
            vec![
                (SECOND_NS, histogram(&[1.0], &[1, 1], Some(3.0))),
                (2 * SECOND_NS, histogram(&[], &[], None)),
            ],
        );
        input[1].flags = NO_RECORDED_VALUE_FLAG;
        let output = convert_series(&input);
        assert_eq!(output.len(), 4);
        for one in &output {
            assert_eq!(one.samples.len(), 2, "{:?}", one.labels);
            assert!(is_stale(one.samples[1].value));
        }
    }

    #[test]
    fn exponential_histograms_become_classic_buckets() {
        let value = PointValue::ExponentialHistogram {
            count: 3,
            sum: Some(7.0),
            min: None,
            max: None,
            scale: 0,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: skewer_storage::model::ExponentialBuckets {
                offset: 1,
                bucket_counts: vec![1, 2],
            },
            negative: skewer_storage::model::ExponentialBuckets::default(),
        };
        let input = points(
            MetricKind::ExponentialHistogram,
            Temporality::Cumulative,
            vec![(SECOND_NS, value)],
        );
        let mut output = flat(&convert_series(&input));
        output.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(
            output,
            [
                series("m_bucket", "+Inf", &[(1000, 3.0)]),
                series("m_bucket", "4", &[(1000, 1.0)]),
                series("m_bucket", "8", &[(1000, 3.0)]),
                series("m_count", "", &[(1000, 3.0)]),
                series("m_sum", "", &[(1000, 7.0)]),
            ]
        );
    }
}
