//! Exponential histograms as classic cumulative buckets, for PromQL's `histogram_quantile`
//! over `_bucket{le}` series (skewer has no native histograms).
//!
//! At scale `s` the base is `2^(2^-s)`; positive bucket `i` holds values in
//! `(base^i, base^(i+1)]`, so its `le` is `base^(i+1)`. Negative bucket `i` holds values in
//! `[-base^(i+1), -base^i)`: it becomes the bucket `le = -base^i`, so negative observations
//! keep their place below zero instead of being folded into the lowest bucket. The zero
//! bucket (`[-threshold, threshold]`) is `le = threshold` (`0` when the threshold is 0), and
//! is only shown when some point counted a zero.
//!
//! All points of a series are first brought to one scale (the smallest among them;
//! downscaling merges `2^k` neighbours exactly), so every point yields the same `le` set,
//! each point's cumulative count at every bound of the union: `le` series do not come and
//! go when the sender rescales. The union is bounded: while it has more than
//! [`MAX_BUCKETS`] bounds the scale is lowered further.
//!
//! Pure: values in, bounds and counts out; labels and staleness are the caller's.

use std::collections::BTreeMap;

use skewer_storage::model::{ExponentialBuckets, PointValue};

/// The most `le` bounds (besides `+Inf`) one exponential histogram series becomes.
pub(crate) const MAX_BUCKETS: usize = 256;

/// The smallest scale OpenTelemetry defines; no downscaling goes below it.
const MIN_SCALE: i32 = -10;

/// One point as classic buckets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassicPoint {
    /// Observations: the `+Inf` bucket and `_count`.
    pub(crate) count: u64,
    /// Sum of observations, when sent.
    pub(crate) sum: Option<f64>,
    /// Cumulative count at each of [`ClassicBuckets::bounds`].
    pub(crate) cumulative: Vec<u64>,
}

/// A series of exponential histogram points as classic buckets sharing one set of bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassicBuckets {
    /// Finite upper bounds, ascending.
    pub(crate) bounds: Vec<f64>,
    /// One entry per input value; `None` where the input was `None` or not an exponential
    /// histogram.
    pub(crate) points: Vec<Option<ClassicPoint>>,
}

/// Converts a series' values (in time order; `None` for a point with no recorded value).
/// With `delta`, each point counts the observations since the one before and the result
/// is their running total from the first point.
pub(crate) fn classic_buckets(values: &[Option<&PointValue>], delta: bool) -> ClassicBuckets {
    let mut states: Vec<Option<Sparse>> = values
        .iter()
        .map(|value| value.and_then(Sparse::from_value))
        .collect();
    let Some(mut scale) = states.iter().flatten().map(|s| s.scale).min() else {
        return ClassicBuckets {
            bounds: Vec::new(),
            points: vec![None; values.len()],
        };
    };
    states
        .iter_mut()
        .flatten()
        .for_each(|s| s.downscale_to(scale));
    if delta {
        let mut running: Option<Sparse> = None;
        for state in states.iter_mut().flatten() {
            let total = match running.take() {
                Some(mut total) => {
                    total.add(state);
                    total
                }
                None => state.clone(),
            };
            *state = Sparse {
                sum: state.sum.map(|_| total.sum.unwrap_or(0.0)),
                ..total.clone()
            };
            running = Some(total);
        }
    }
    let bounds = loop {
        let bounds = union_bounds(&states);
        if bounds.len() <= MAX_BUCKETS || scale <= MIN_SCALE {
            break bounds;
        }
        scale -= 1;
        states
            .iter_mut()
            .flatten()
            .for_each(|s| s.downscale_to(scale));
    };
    let points = states
        .iter()
        .map(|state| {
            state.as_ref().map(|state| ClassicPoint {
                count: state.count,
                sum: state.sum,
                cumulative: cumulative_at(&state.entries(), &bounds),
            })
        })
        .collect();
    ClassicBuckets { bounds, points }
}

/// An exponential histogram point with sparse buckets by index, at one scale.
#[derive(Debug, Clone)]
struct Sparse {
    scale: i32,
    count: u64,
    sum: Option<f64>,
    zero_count: u64,
    zero_threshold: f64,
    positive: BTreeMap<i64, u64>,
    negative: BTreeMap<i64, u64>,
}

impl Sparse {
    fn from_value(value: &PointValue) -> Option<Self> {
        let PointValue::ExponentialHistogram {
            count,
            sum,
            scale,
            zero_count,
            zero_threshold,
            positive,
            negative,
            ..
        } = value
        else {
            return None;
        };
        Some(Self {
            scale: *scale,
            count: *count,
            sum: *sum,
            zero_count: *zero_count,
            zero_threshold: *zero_threshold,
            positive: sparse(positive),
            negative: sparse(negative),
        })
    }

    /// Merges buckets down to `scale` (no-op when already there or coarser).
    fn downscale_to(&mut self, scale: i32) {
        if scale >= self.scale {
            return;
        }
        let by = (self.scale - scale).unsigned_abs();
        self.positive = downscale(&self.positive, by);
        self.negative = downscale(&self.negative, by);
        self.scale = scale;
    }

    /// Adds another point at the same scale (delta accumulation); the zero threshold is
    /// the newer point's.
    fn add(&mut self, newer: &Self) {
        self.count += newer.count;
        self.sum = Some(self.sum.unwrap_or(0.0) + newer.sum.unwrap_or(0.0));
        self.zero_count += newer.zero_count;
        self.zero_threshold = newer.zero_threshold;
        for (index, count) in &newer.positive {
            *self.positive.entry(*index).or_default() += count;
        }
        for (index, count) in &newer.negative {
            *self.negative.entry(*index).or_default() += count;
        }
    }

    /// `(upper bound, count)` of every non-empty bucket, ascending by bound; bounds beyond
    /// the largest float are left to `+Inf`.
    fn entries(&self) -> Vec<(f64, u64)> {
        let mut entries: Vec<(f64, u64)> = Vec::new();
        for (index, count) in self.negative.iter().rev() {
            let bound = -upper_bound(index - 1, self.scale);
            entries.push((bound.max(f64::MIN), *count));
        }
        if self.zero_count > 0 {
            entries.push((self.zero_threshold.max(0.0), self.zero_count));
        }
        for (index, count) in &self.positive {
            entries.push((upper_bound(*index, self.scale), *count));
        }
        entries.retain(|(bound, count)| bound.is_finite() && *count > 0);
        entries.sort_by(|a, b| a.0.total_cmp(&b.0));
        entries
    }
}

/// The non-zero buckets of one side by absolute index.
fn sparse(buckets: &ExponentialBuckets) -> BTreeMap<i64, u64> {
    buckets
        .bucket_counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(at, count)| (i64::from(buckets.offset) + at as i64, *count))
        .collect()
}

/// Buckets at a scale `by` lower: index `i` becomes `i >> by` (floor division by `2^by`).
fn downscale(buckets: &BTreeMap<i64, u64>, by: u32) -> BTreeMap<i64, u64> {
    let mut merged = BTreeMap::new();
    for (index, count) in buckets {
        let shifted = index
            .checked_shr(by)
            .unwrap_or(if *index < 0 { -1 } else { 0 });
        *merged.entry(shifted).or_default() += count;
    }
    merged
}

/// The upper bound of positive bucket `index` at `scale`: `2^((index + 1) * 2^-scale)`.
fn upper_bound(index: i64, scale: i32) -> f64 {
    ((index + 1) as f64 * f64::from(-scale).exp2()).exp2()
}

/// Every bound any state has, ascending, each once.
fn union_bounds(states: &[Option<Sparse>]) -> Vec<f64> {
    let mut bounds: Vec<f64> = states
        .iter()
        .flatten()
        .flat_map(|state| state.entries().into_iter().map(|(bound, _)| bound))
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    bounds
}

/// The cumulative count of `entries` (ascending) at each of `bounds` (ascending).
fn cumulative_at(entries: &[(f64, u64)], bounds: &[f64]) -> Vec<u64> {
    let mut next = entries.iter().peekable();
    let mut total = 0;
    bounds
        .iter()
        .map(|bound| {
            while let Some((_, count)) = next.next_if(|(entry_bound, _)| entry_bound <= bound) {
                total += count;
            }
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(
        scale: i32,
        zero_count: u64,
        positive: (i32, Vec<u64>),
        negative: (i32, Vec<u64>),
    ) -> PointValue {
        let count = zero_count + positive.1.iter().sum::<u64>() + negative.1.iter().sum::<u64>();
        PointValue::ExponentialHistogram {
            count,
            sum: Some(count as f64),
            min: None,
            max: None,
            scale,
            zero_count,
            zero_threshold: 0.0,
            positive: ExponentialBuckets {
                offset: positive.0,
                bucket_counts: positive.1,
            },
            negative: ExponentialBuckets {
                offset: negative.0,
                bucket_counts: negative.1,
            },
        }
    }

    fn convert(values: &[PointValue], delta: bool) -> ClassicBuckets {
        let refs: Vec<Option<&PointValue>> = values.iter().map(Some).collect();
        classic_buckets(&refs, delta)
    }

    #[test]
    fn positive_buckets_end_at_base_to_the_next_index() {
        // Scale 0: base 2; bucket 0 is (1, 2], bucket 1 (2, 4], bucket 2 (4, 8].
        let buckets = convert(&[value(0, 0, (0, vec![1, 2, 3]), (0, vec![]))], false);
        assert_eq!(buckets.bounds, [2.0, 4.0, 8.0]);
        let point = buckets.points[0].as_ref().unwrap();
        assert_eq!(point.cumulative, [1, 3, 6]);
        assert_eq!((point.count, point.sum), (6, Some(6.0)));
    }

    #[test]
    fn finer_scales_have_fractional_bounds() {
        // Scale 1: base sqrt(2); bucket 1 is (sqrt 2, 2], bucket 2 (2, 2 sqrt 2].
        let buckets = convert(&[value(1, 0, (1, vec![1, 1]), (0, vec![]))], false);
        assert_eq!(buckets.bounds[0], 2.0);
        assert!((buckets.bounds[1] - 2.0 * 2f64.sqrt()).abs() < 1e-12);
        // Scale -1: base 4; bucket 0 is (1, 4].
        let coarse = convert(&[value(-1, 0, (0, vec![5]), (0, vec![]))], false);
        assert_eq!(coarse.bounds, [4.0]);
    }

    #[test]
    fn zeros_and_negatives_sit_below_the_positive_buckets() {
        // Negative bucket 1 holds [-4, -2): le = -2; bucket 0 holds [-2, -1): le = -1.
        let buckets = convert(&[value(0, 2, (0, vec![3]), (0, vec![4, 5]))], false);
        assert_eq!(buckets.bounds, [-2.0, -1.0, 0.0, 2.0]);
        assert_eq!(
            buckets.points[0].as_ref().unwrap().cumulative,
            [5, 9, 11, 14]
        );
    }

    #[test]
    fn the_zero_bucket_uses_its_threshold() {
        let mut with_threshold = value(0, 1, (0, vec![1]), (0, vec![]));
        if let PointValue::ExponentialHistogram { zero_threshold, .. } = &mut with_threshold {
            *zero_threshold = 0.5;
        }
        let buckets = convert(&[with_threshold], false);
        assert_eq!(buckets.bounds, [0.5, 2.0]);
        assert_eq!(buckets.points[0].as_ref().unwrap().cumulative, [1, 2]);
    }

    #[test]
    fn points_share_the_smallest_scale_and_every_bound() {
        // Scale 1 buckets 2 and 3 ((2, 2.83], (2.83, 4]) merge into scale 0 bucket 1 (2, 4].
        let values = [
            value(1, 0, (2, vec![1, 1]), (0, vec![])),
            value(0, 0, (0, vec![1, 2, 0, 1]), (0, vec![])),
        ];
        let buckets = convert(&values, false);
        assert_eq!(buckets.bounds, [2.0, 4.0, 16.0]);
        assert_eq!(buckets.points[0].as_ref().unwrap().cumulative, [0, 2, 2]);
        assert_eq!(buckets.points[1].as_ref().unwrap().cumulative, [1, 3, 4]);
    }

    #[test]
    fn delta_points_add_up_from_the_first() {
        let values = [
            value(0, 0, (0, vec![1]), (0, vec![])),
            value(0, 1, (1, vec![2]), (0, vec![])),
        ];
        let buckets = convert(&values, true);
        assert_eq!(buckets.bounds, [0.0, 2.0, 4.0]);
        let first = buckets.points[0].as_ref().unwrap();
        let second = buckets.points[1].as_ref().unwrap();
        assert_eq!(
            (first.count, first.cumulative.as_slice()),
            (1, &[0, 1, 1][..])
        );
        assert_eq!(
            (second.count, second.cumulative.as_slice()),
            (4, &[1, 2, 4][..])
        );
        assert_eq!(second.sum, Some(4.0));
    }

    #[test]
    fn too_many_bounds_lower_the_scale() {
        let wide = value(4, 0, (0, vec![1; 1000]), (0, vec![]));
        let buckets = convert(&[wide], false);
        assert!(
            buckets.bounds.len() <= MAX_BUCKETS,
            "{}",
            buckets.bounds.len()
        );
        assert!(
            buckets.bounds.len() > MAX_BUCKETS / 4,
            "{}",
            buckets.bounds.len()
        );
        let point = buckets.points[0].as_ref().unwrap();
        assert_eq!(point.cumulative.last(), Some(&1000));
        assert!(point.cumulative.is_sorted());
    }

    #[test]
    fn missing_values_stay_missing() {
        let present = value(0, 0, (0, vec![1]), (0, vec![]));
        let buckets = classic_buckets(&[None, Some(&present)], false);
        assert_eq!(buckets.points[0], None);
        assert_eq!(buckets.points[1].as_ref().unwrap().cumulative, [1]);
        let none = classic_buckets(&[None], false);
        assert!(none.bounds.is_empty() && none.points == [None]);
    }
}
