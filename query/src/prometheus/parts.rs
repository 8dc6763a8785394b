//! The series of one Prometheus family as a conversion builds them: samples by part
//! (the family's own series, a quantile, a bucket, `_sum`, `_count`), labelled at the end.
//!
//! Pure and small: it knows sample order and staleness markers, not OTLP.

use std::collections::BTreeMap;

use super::labels::{LE_LABEL, QUANTILE_LABEL};
use super::naming::{BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX};
use crate::promql::{Labels, METRIC_NAME_LABEL, Sample, Series, stale_nan};

/// Which series of a family a sample belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Part {
    /// The family name itself: a gauge's or counter's only series.
    Main,
    /// A summary quantile (under the family name), by its label value.
    Quantile(String),
    /// A histogram bucket, by its `le` value.
    Bucket(String),
    /// `_sum`.
    Sum,
    /// `_count`.
    Count,
}

/// The samples of a family's series as they are built.
#[derive(Default)]
pub(super) struct Parts {
    samples: BTreeMap<Part, Vec<Sample>>,
}

impl Parts {
    /// Appends a sample; one at the same millisecond as the last is replaced.
    pub(super) fn push(&mut self, part: Part, timestamp_ms: i64, value: f64) {
        let samples = self.samples.entry(part).or_default();
        match samples.last_mut() {
            Some(last) if last.timestamp_ms == timestamp_ms => last.value = value,
            _ => samples.push(Sample {
                timestamp_ms,
                value,
            }),
        }
    }

    /// A staleness marker on every series seen so far and on `always` (the series every
    /// point of the kind has).
    pub(super) fn mark_stale(&mut self, timestamp_ms: i64, always: impl IntoIterator<Item = Part>) {
        for part in always {
            self.samples.entry(part).or_default();
        }
        let parts: Vec<Part> = self.samples.keys().cloned().collect();
        for part in parts {
            self.push(part, timestamp_ms, stale_nan());
        }
    }

    /// The series, labelled: `base` plus the metric name and `le` or `quantile`.
    pub(super) fn into_series(self, family: &str, base: &Labels) -> Vec<Series> {
        self.samples
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(part, samples)| {
                let mut labels = base.clone();
                let (suffix, extra) = match &part {
                    Part::Main => ("", None),
                    Part::Quantile(q) => ("", Some((QUANTILE_LABEL, q.as_str()))),
                    Part::Bucket(le) => (BUCKET_SUFFIX, Some((LE_LABEL, le.as_str()))),
                    Part::Sum => (SUM_SUFFIX, None),
                    Part::Count => (COUNT_SUFFIX, None),
                };
                labels.set(METRIC_NAME_LABEL, &format!("{family}{suffix}"));
                if let Some((name, value)) = extra {
                    labels.set(name, value);
                }
                Series { labels, samples }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::is_stale;

    #[test]
    fn a_sample_in_the_same_millisecond_replaces_the_last() {
        let mut parts = Parts::default();
        parts.push(Part::Main, 1, 1.0);
        parts.push(Part::Main, 1, 2.0);
        parts.push(Part::Main, 2, 3.0);
        let series = parts.into_series("m", &Labels::from_pairs([("a", "b")]));
        assert_eq!(series.len(), 1);
        let samples: Vec<(i64, f64)> = series[0]
            .samples
            .iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect();
        assert_eq!(samples, [(1, 2.0), (2, 3.0)]);
        assert_eq!(
            series[0].labels,
            Labels::from_pairs([("__name__", "m"), ("a", "b")])
        );
    }

    #[test]
    fn staleness_reaches_every_part_seen_and_the_given_ones() {
        let mut parts = Parts::default();
        parts.push(Part::Bucket("1".into()), 1, 1.0);
        parts.mark_stale(2, [Part::Count]);
        let series = parts.into_series("h", &Labels::default());
        assert_eq!(series.len(), 2);
        for one in &series {
            assert!(
                is_stale(one.samples.last().unwrap().value),
                "{:?}",
                one.labels
            );
        }
        assert_eq!(series[0].labels.get("le"), "1");
        assert_eq!(series[0].labels.metric_name(), "h_bucket");
        assert_eq!(series[1].labels.metric_name(), "h_count");
    }
}
