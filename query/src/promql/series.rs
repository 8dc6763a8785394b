//! What PromQL evaluates over: series of samples with their labels, and the source that
//! selects them by label matchers and time range.

use std::future::Future;

use promql_parser::label::Matcher;

use crate::QueryError;

/// The label holding a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// Bit pattern of the NaN Prometheus writes as a staleness marker: the series ended here.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `value` is a staleness marker (not any NaN: a NaN sample is a value).
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// A series' labels: unique names, sorted by name, no empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Labels from pairs in any order; an empty value means no label, the last of a repeated
    /// name wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        labels.reverse();
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        labels.dedup_by(|later, first| later.0 == first.0);
        labels.retain(|(_, value)| !value.is_empty());
        Self(labels)
    }

    /// The value of `name`, or `""` when absent (as PromQL treats a missing label).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|at| self.0[at].1.as_str())
            .unwrap_or("")
    }

    /// The metric name, `""` when none.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME_LABEL)
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(at) if value.is_empty() => {
                self.0.remove(at);
            }
            Ok(at) => value.clone_into(&mut self.0[at].1),
            Err(_) if value.is_empty() => {}
            Err(at) => self.0.insert(at, (name.to_owned(), value.to_owned())),
        }
    }

    /// These labels without the metric name.
    pub fn without_metric_name(mut self) -> Self {
        self.set(METRIC_NAME_LABEL, "");
        self
    }

    /// Whether every matcher accepts these labels (a missing label is matched as `""`).
    pub fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers
            .iter()
            .all(|matcher| matcher.is_match(self.get(&matcher.name)))
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the labels for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(name, _)| keep(name));
    }
}

/// One sample: a time in milliseconds since the epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; [`is_stale`] marks the end of a series.
    pub value: f64,
}

/// A series: labels and samples in time order, each time once.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels, the metric name among them.
    pub labels: Labels,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

/// What to select: series whose labels all matchers accept, samples with time in
/// `[start_ms, end_ms]` (both ends included, as PromQL ranges are).
#[derive(Debug, Clone)]
pub struct Selection {
    /// Label matchers, the metric name among them when the selector names one.
    pub matchers: Vec<Matcher>,
    /// First millisecond wanted.
    pub start_ms: i64,
    /// Last millisecond wanted.
    pub end_ms: i64,
}

/// Where series come from: the store, or memory in tests.
pub trait SeriesSource: Send + Sync {
    /// The series that match `selection`, with their samples in its time range. A series
    /// with no sample in the range may be left out.
    fn select(
        &self,
        selection: &Selection,
    ) -> impl Future<Output = Result<Vec<Series>, QueryError>> + Send;
}

/// Series held in memory: the corpus tests' store and small fixed sets.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    series: Vec<Series>,
}

impl MemorySource {
    /// A source holding `series`; samples are sorted by time.
    pub fn new(mut series: Vec<Series>) -> Self {
        for one in &mut series {
            one.samples.sort_by_key(|sample| sample.timestamp_ms);
        }
        Self { series }
    }

    /// Adds samples to the series with `labels`, creating it when new.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let at = match self.series.iter().position(|s| s.labels == labels) {
            Some(at) => at,
            None => {
                self.series.push(Series {
                    labels,
                    samples: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let series = &mut self.series[at];
        series.samples.extend(samples);
        series.samples.sort_by_key(|sample| sample.timestamp_ms);
        series.samples.dedup_by_key(|sample| sample.timestamp_ms);
    }

    /// Every series held.
    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

impl SeriesSource for MemorySource {
    async fn select(&self, selection: &Selection) -> Result<Vec<Series>, QueryError> {
        Ok(self
            .series
            .iter()
            .filter(|series| series.labels.matches(&selection.matchers))
            .map(|series| Series {
                labels: series.labels.clone(),
                samples: series
                    .samples
                    .iter()
                    .filter(|s| (selection.start_ms..=selection.end_ms).contains(&s.timestamp_ms))
                    .copied()
                    .collect(),
            })
            .filter(|series| !series.samples.is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_unique_and_without_empty_values() {
        let labels = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert_eq!(labels.get("c"), "");
    }

    #[test]
    fn set_inserts_replaces_and_removes() {
        let mut labels = Labels::from_pairs([("b", "1")]);
        labels.set("a", "x");
        labels.set("b", "2");
        labels.set("z", "");
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("a", "x"), ("b", "2")]);
        labels.set("a", "");
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("b", "2")]);
    }

    #[test]
    fn only_the_marker_nan_is_stale() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
        assert!(!is_stale(1.0));
    }
}
