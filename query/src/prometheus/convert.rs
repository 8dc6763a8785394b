//! The points of one OTLP series as Prometheus series, after the OpenTelemetry
//! specification's "Prometheus and OpenMetrics compatibility" section:
//!
//! - gauges and sums: one series, the point values (`_total` on monotonic sums);
//! - histograms: `_bucket{le}` series with cumulative counts, one per explicit bound and
//!   `le="+Inf"` (the point's count), `_sum` when the point has a sum, and `_count`;
//! - exponential histograms: the same, at the exponential bucket boundaries (the private
//!   `exponential` module says how; both histogram kinds are in `histogram`);
//! - summaries: `{quantile}` series under the family name, `_sum` and `_count`.
//!
//! Sample times are the point times in milliseconds (truncated); two points in the same
//! millisecond keep the later one. A point flagged *no recorded value* (flags bit 0) becomes
//! a staleness marker ([`crate::promql::stale_nan`]) on every series of its family seen so far.
//!
//! **Delta temporality.** Prometheus only has cumulative counters, so delta sums,
//! histograms and exponential histograms are accumulated: each sample is the running total
//! of the deltas from the first point given. Read through the store, that is the first
//! point of the read window, so a delta series restarts from 0 at the start of each read:
//! `rate`, `increase` and `delta` over it are right, but its raw values are offsets from
//! the window's start, not totals since the process started. (The specification drops
//! non-monotonic delta sums; they are accumulated the same way here, so `delta()` over them
//! is right.) A cumulative series whose start time jumps forward (a restart) needs nothing
//! special: PromQL's counter-reset handling covers it.
//!
//! Pure: points in, series out. Knows no storage, and no matcher.

use skewer_storage::model::{MetricKind, MetricPoint, PointValue, Temporality};
use skewer_storage::parquet_codec::NumberSample;

use super::histogram::{exponential_histograms, histograms};
use super::labels::series_labels;
use super::naming::family_name;
use super::parts::{Part, Parts};
use crate::promql::Series;
use crate::promql::label_float;

/// OTLP data point flag: the point has no recorded value (the series ended).
pub const NO_RECORDED_VALUE_FLAG: u32 = 1;

/// Converts the points of one OTLP series (one descriptor, resource, scope and attribute
/// set; in time order) into its Prometheus series. Empty when there are no points or the
/// metric name has nothing valid to make a Prometheus name from. Points whose value is not
/// of the first point's kind are skipped.
pub fn convert_series(points: &[MetricPoint]) -> Vec<Series> {
    let Some(first) = points.first() else {
        return Vec::new();
    };
    let Some(family) = family_name(&first.series.metric) else {
        return Vec::new();
    };
    let base = series_labels(
        &first.series.resource,
        &first.series.scope,
        &first.series.attributes,
    );
    let delta = first.series.metric.temporality == Temporality::Delta;
    let mut parts = Parts::default();
    match first.series.metric.kind {
        MetricKind::Gauge => numbers(points.iter().filter_map(number_sample), false, &mut parts),
        MetricKind::Sum => numbers(points.iter().filter_map(number_sample), delta, &mut parts),
        MetricKind::Histogram => histograms(points, delta, &mut parts),
        MetricKind::ExponentialHistogram => exponential_histograms(points, delta, &mut parts),
        MetricKind::Summary => summaries(points, &mut parts),
    }
    parts.into_series(&family, &base)
}

/// Whether a point carries no value: the sender marks its series as ended.
pub fn is_no_recorded_value(point: &MetricPoint) -> bool {
    point.flags & NO_RECORDED_VALUE_FLAG != 0
}

/// A point's time in milliseconds since the epoch.
pub fn timestamp_ms(point: &MetricPoint) -> i64 {
    i64::try_from(point.time_unix_nano / 1_000_000).unwrap_or(i64::MAX)
}

/// Converts the number points of one OTLP series (a gauge or sum; in time order), given as
/// samples with `identity` (a point of the series carrying its descriptor, resource, scope
/// and attributes; its value of no account): what [`convert_series`] makes of the points, from
/// a read that decoded times and values alone.
pub fn convert_number_series(identity: &MetricPoint, samples: &[NumberSample]) -> Vec<Series> {
    let Some(family) = family_name(&identity.series.metric) else {
        return Vec::new();
    };
    let base = series_labels(
        &identity.series.resource,
        &identity.series.scope,
        &identity.series.attributes,
    );
    let delta = identity.series.metric.kind == MetricKind::Sum
        && identity.series.metric.temporality == Temporality::Delta;
    let mut parts = Parts::default();
    let samples = samples.iter().map(|sample| NumberInput {
        at: i64::try_from(sample.time_unix_nano / 1_000_000).unwrap_or(i64::MAX),
        no_value: sample.flags & NO_RECORDED_VALUE_FLAG != 0,
        value: sample.value,
    });
    numbers(samples, delta, &mut parts);
    parts.into_series(&family, &base)
}

/// A number point as [`numbers`] reads it.
struct NumberInput {
    at: i64,
    no_value: bool,
    value: f64,
}

/// A point as a number input; `None` for a value of another kind (skipped).
fn number_sample(point: &MetricPoint) -> Option<NumberInput> {
    let at = timestamp_ms(point);
    if is_no_recorded_value(point) {
        return Some(NumberInput {
            at,
            no_value: true,
            value: 0.0,
        });
    }
    let PointValue::Number { value } = &point.value else {
        return None;
    };
    Some(NumberInput {
        at,
        no_value: false,
        value: value.as_f64(),
    })
}

/// Gauge and sum values; with `delta`, their running total.
fn numbers(points: impl Iterator<Item = NumberInput>, delta: bool, parts: &mut Parts) {
    let mut running = 0.0;
    for point in points {
        let at = point.at;
        if point.no_value {
            parts.mark_stale(at, [Part::Main]);
            continue;
        }
        let mut value = point.value;
        if delta {
            running += value;
            value = running;
        }
        parts.push(Part::Main, at, value);
    }
}

/// Summary quantiles, `_sum` and `_count`.
fn summaries(points: &[MetricPoint], parts: &mut Parts) {
    for point in points {
        let at = timestamp_ms(point);
        if is_no_recorded_value(point) {
            parts.mark_stale(at, [Part::Sum, Part::Count]);
            continue;
        }
        let PointValue::Summary {
            count,
            sum,
            quantiles,
        } = &point.value
        else {
            continue;
        };
        for quantile in quantiles {
            let label = label_float(quantile.quantile);
            parts.push(Part::Quantile(label), at, quantile.value);
        }
        parts.push(Part::Sum, at, *sum);
        parts.push(Part::Count, at, *count as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{MetricDescriptor, MetricSeries, Quantile};

    use super::super::test_support::{SECOND_NS, flat, number, points, series};
    use super::*;
    use crate::promql::is_stale;

    #[test]
    fn gauges_are_one_series_in_milliseconds() {
        let input = points(
            MetricKind::Gauge,
            Temporality::Unspecified,
            vec![
                (1_500_000, number(1.5)),
                (2 * SECOND_NS + 999_999, number(2.0)),
            ],
        );
        let output = convert_series(&input);
        assert_eq!(flat(&output), [series("m", "", &[(1, 1.5), (2000, 2.0)])]);
        let labels: Vec<(&str, &str)> = output[0].labels.iter().collect();
        assert_eq!(labels, [("__name__", "m"), ("job", "api"), ("k", "v")]);
    }

    #[test]
    fn cumulative_sums_keep_their_values_and_get_total() {
        let input = points(
            MetricKind::Sum,
            Temporality::Cumulative,
            vec![(SECOND_NS, number(5.0)), (2 * SECOND_NS, number(2.0))],
        );
        assert_eq!(
            flat(&convert_series(&input)),
            [series("m_total", "", &[(1000, 5.0), (2000, 2.0)])],
            "a reset stays a reset: PromQL handles it"
        );
    }

    #[test]
    fn delta_sums_add_up_from_the_first_point() {
        let input = points(
            MetricKind::Sum,
            Temporality::Delta,
            vec![
                (SECOND_NS, number(3.0)),
                (2 * SECOND_NS, number(1.0)),
                (3 * SECOND_NS, number(4.0)),
            ],
        );
        assert_eq!(
            flat(&convert_series(&input)),
            [series(
                "m_total",
                "",
                &[(1000, 3.0), (2000, 4.0), (3000, 8.0)]
            )]
        );
    }

    #[test]
    fn points_in_one_millisecond_keep_the_last() {
        let input = points(
            MetricKind::Gauge,
            Temporality::Unspecified,
            vec![(SECOND_NS, number(1.0)), (SECOND_NS + 10, number(2.0))],
        );
        assert_eq!(
            flat(&convert_series(&input)),
            [series("m", "", &[(1000, 2.0)])]
        );
    }

    #[test]
    fn no_recorded_value_is_a_staleness_marker() {
        let mut input = points(
            MetricKind::Gauge,
            Temporality::Unspecified,
            vec![
                (SECOND_NS, number(1.0)),
                (2 * SECOND_NS, number(0.0)),
                (3 * SECOND_NS, number(7.0)),
            ],
        );
        input[1].flags = NO_RECORDED_VALUE_FLAG;
        let output = convert_series(&input);
        assert!(is_stale(output[0].samples[1].value));
        assert_eq!(
            flat(&output),
            [series("m", "", &[(1000, 1.0), (2000, -1.0), (3000, 7.0)])]
        );
    }

    #[test]
    fn number_samples_convert_as_their_points_do() {
        for (kind, temporality) in [
            (MetricKind::Gauge, Temporality::Unspecified),
            (MetricKind::Sum, Temporality::Cumulative),
            (MetricKind::Sum, Temporality::Delta),
        ] {
            let mut input = points(
                kind,
                temporality,
                vec![
                    (SECOND_NS, number(3.0)),
                    (2 * SECOND_NS, number(1.0)),
                    (2 * SECOND_NS + 10, number(5.0)),
                    (3 * SECOND_NS, number(0.0)),
                    (4 * SECOND_NS, number(4.0)),
                ],
            );
            input[3].flags = NO_RECORDED_VALUE_FLAG;
            let samples: Vec<NumberSample> = input
                .iter()
                .map(|p| NumberSample {
                    time_unix_nano: p.time_unix_nano,
                    start_time_unix_nano: p.start_time_unix_nano,
                    flags: p.flags,
                    value: match p.value {
                        PointValue::Number { value } => value.as_f64(),
                        _ => f64::NAN,
                    },
                })
                .collect();
            let from_samples = convert_number_series(&input[0], &samples);
            let from_points = convert_series(&input);
            assert_eq!(
                flat(&from_samples),
                flat(&from_points),
                "{kind:?} {temporality:?}"
            );
            assert_eq!(from_samples[0].labels, from_points[0].labels);
        }
    }

    #[test]
    fn summaries_become_quantile_sum_and_count_series() {
        let value = PointValue::Summary {
            count: 10,
            sum: 20.0,
            quantiles: vec![
                Quantile {
                    quantile: 0.5,
                    value: 1.5,
                },
                Quantile {
                    quantile: 0.99,
                    value: 9.0,
                },
            ],
        };
        let input = points(
            MetricKind::Summary,
            Temporality::Unspecified,
            vec![(SECOND_NS, value)],
        );
        let mut output = flat(&convert_series(&input));
        output.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(
            output,
            [
                series("m", "0.5", &[(1000, 1.5)]),
                series("m", "0.99", &[(1000, 9.0)]),
                series("m_count", "", &[(1000, 10.0)]),
                series("m_sum", "", &[(1000, 20.0)]),
            ]
        );
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(convert_series(&[]).is_empty());
        let mut unnamed = points(
            MetricKind::Gauge,
            Temporality::Unspecified,
            vec![(SECOND_NS, number(1.0))],
        );
        let series = &unnamed[0].series;
        unnamed[0].series = Arc::new(MetricSeries::new(
            Arc::clone(&series.resource),
            Arc::clone(&series.scope),
            Arc::new(MetricDescriptor {
                name: "...".into(),
                ..(*series.metric).clone()
            }),
            series.attributes.clone(),
        ));
        assert!(convert_series(&unnamed).is_empty());
    }
}
