//! A metric file's series index seen as Prometheus series: every label set its series make
//! (a histogram's `_bucket{le}`, `_sum` and `_count`, a summary's quantiles, the
//! resources' `target_info`), each with the time span of its points. Built once per index
//! and kept with it, so series listings and label lookups match label sets without reading a
//! point.
//!
//! The label sets are made the way points are converted: one point of each layout the index
//! kept goes through [`convert_series`], so a listing and a query never disagree on a name.

use std::collections::BTreeMap;
use std::sync::Arc;

use promql_parser::label::Matcher;

use skewer_storage::metrics::{IndexedSeries, Layout, SeriesGroup, SeriesIndex};
use skewer_storage::model::{
    MetricDescriptor, MetricKind, MetricPoint, MetricSeries, NumberValue, PointValue, Quantile,
};

use super::convert::convert_series;
use super::labels::target_info_labels;
use crate::promql::{Labels, METRIC_NAME_LABEL};

/// One Prometheus series an index holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewEntry {
    /// Its labels, the metric name among them.
    pub labels: Labels,
    /// The first point's time, ms.
    pub first_ms: i64,
    /// The last point's time, ms.
    pub last_ms: i64,
    /// The index series it comes from (`None` for `target_info`, which its resource makes).
    pub series: Option<u32>,
}

impl ViewEntry {
    /// Whether a point of it may lie in `[start_ms, end_ms]`.
    pub fn meets(&self, start_ms: i64, end_ms: i64) -> bool {
        self.first_ms <= end_ms && self.last_ms >= start_ms
    }
}

/// An index's Prometheus series.
#[derive(Default)]
pub struct SeriesView {
    /// The index's groups as the shared parts of points.
    groups: Vec<GroupParts>,
    /// Every label set, with its time span.
    pub entries: Vec<ViewEntry>,
    /// The metrics whose series the index cannot list (layouts it did not keep): a read that
    /// may want one of them reads points.
    pub unlisted: Vec<MetricDescriptor>,
    /// Entries by metric name (postings of `__name__`).
    by_name: BTreeMap<String, Vec<usize>>,
}

impl SeriesView {
    /// The Prometheus series of `index`.
    pub fn of(index: &SeriesIndex) -> Self {
        let groups: Vec<GroupParts> = index.groups.iter().map(GroupParts::of).collect();
        let mut view = Self::default();
        let mut group_spans: Vec<Option<(u64, u64)>> = vec![None; groups.len()];
        for (ordinal, series) in (0u32..).zip(&index.series) {
            let Some(group) = groups.get(series.group as usize) else {
                continue;
            };
            let span = &mut group_spans[series.group as usize];
            *span = Some(span.map_or(
                (series.first_time_unix_nano, series.last_time_unix_nano),
                |(first, last)| {
                    (
                        first.min(series.first_time_unix_nano),
                        last.max(series.last_time_unix_nano),
                    )
                },
            ));
            if series.layouts_incomplete {
                if !view.unlisted.contains(&group.metric) {
                    view.unlisted.push((*group.metric).clone());
                }
                continue;
            }
            view.add_series(group, series, ordinal);
        }
        // `target_info`: one per resource, over the time its points span.
        let mut targets: Vec<ViewEntry> = Vec::new();
        for (group, span) in groups.iter().zip(group_spans) {
            let (Some((first, last)), Some(labels)) = (span, target_info_labels(&group.resource))
            else {
                continue;
            };
            let (first_ms, last_ms) = (to_ms(first), to_ms(last));
            match targets.iter_mut().find(|t| t.labels == labels) {
                Some(known) => {
                    known.first_ms = known.first_ms.min(first_ms);
                    known.last_ms = known.last_ms.max(last_ms);
                }
                None => targets.push(ViewEntry {
                    labels,
                    first_ms,
                    last_ms,
                    series: None,
                }),
            }
        }
        view.entries.extend(targets);
        view.groups = groups;
        for (at, entry) in view.entries.iter().enumerate() {
            let name = entry.labels.metric_name();
            match view.by_name.get_mut(name) {
                Some(postings) => postings.push(at),
                None => {
                    view.by_name.insert(name.to_owned(), vec![at]);
                }
            }
        }
        view
    }

    /// The entries with a point that may lie in `[start_ms, end_ms]` that all matchers of one
    /// of `matcher_sets` accept (every such entry when there is no set). Only the entries of
    /// the metric names a set's `__name__` matchers accept are looked at.
    pub fn select(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<&ViewEntry> {
        let mut candidates: Vec<usize> = Vec::new();
        let mut everything = matcher_sets.is_empty();
        for set in matcher_sets {
            let name_matchers: Vec<&Matcher> =
                set.iter().filter(|m| m.name == METRIC_NAME_LABEL).collect();
            if name_matchers.is_empty() {
                everything = true;
                break;
            }
            for (name, postings) in &self.by_name {
                if name_matchers.iter().all(|m| m.is_match(name)) {
                    candidates.extend(postings);
                }
            }
        }
        let selected = |entry: &&ViewEntry| {
            entry.meets(start_ms, end_ms)
                && (matcher_sets.is_empty() || matcher_sets.iter().any(|m| entry.labels.matches(m)))
        };
        if everything {
            return self.entries.iter().filter(selected).collect();
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|at| self.entries.get(at))
            .filter(selected)
            .collect()
    }

    /// A point of index series `series` carrying its identity (descriptor, resource, scope,
    /// attributes), its value of no account: what a reader of the series' values needs.
    pub fn identity(&self, index: &SeriesIndex, series: u32) -> Option<MetricPoint> {
        let series = index.series.get(series as usize)?;
        let group = self.groups.get(series.group as usize)?;
        Some(group.point(
            series,
            PointValue::Number {
                value: NumberValue::Double(0.0),
            },
        ))
    }

    fn add_series(&mut self, group: &GroupParts, series: &IndexedSeries, ordinal: u32) {
        for layout in &series.layouts {
            let point = group.point(series, layout_value(group.metric.kind, layout));
            // Two layouts share some series (`_sum`, `_count`): listings dedupe.
            for converted in convert_series(std::slice::from_ref(&point)) {
                self.entries.push(ViewEntry {
                    labels: converted.labels,
                    first_ms: to_ms(series.first_time_unix_nano),
                    last_ms: to_ms(series.last_time_unix_nano),
                    series: Some(ordinal),
                });
            }
        }
    }
}

/// A group's parts as the shared pieces of a point.
struct GroupParts {
    metric: Arc<MetricDescriptor>,
    resource: Arc<skewer_storage::model::Resource>,
    scope: Arc<skewer_storage::model::InstrumentationScope>,
}

impl GroupParts {
    fn of(group: &SeriesGroup) -> Self {
        Self {
            metric: Arc::new(group.metric.clone()),
            resource: Arc::new(group.resource.clone()),
            scope: Arc::new(group.scope.clone()),
        }
    }

    /// A point of `series` (of this group) with `value`, at its first time.
    fn point(&self, series: &IndexedSeries, value: PointValue) -> MetricPoint {
        MetricPoint {
            series: Arc::new(MetricSeries::stored(
                series.series_id,
                Arc::clone(&self.resource),
                Arc::clone(&self.scope),
                Arc::clone(&self.metric),
                series.attributes.clone(),
            )),
            start_time_unix_nano: 0,
            time_unix_nano: series.first_time_unix_nano,
            flags: 0,
            value,
            exemplars: Vec::new(),
        }
    }
}

/// A value of `layout` (its numbers do not matter: only the series it makes).
fn layout_value(kind: MetricKind, layout: &Layout) -> PointValue {
    match layout {
        Layout::Histogram {
            explicit_bounds,
            has_sum,
        } => PointValue::Histogram {
            count: 0,
            sum: has_sum.then_some(0.0),
            min: None,
            max: None,
            explicit_bounds: explicit_bounds.clone(),
            bucket_counts: vec![0; explicit_bounds.len() + 1],
        },
        Layout::Summary { quantiles } => PointValue::Summary {
            count: 0,
            sum: 0.0,
            quantiles: quantiles
                .iter()
                .map(|&quantile| Quantile {
                    quantile,
                    value: 0.0,
                })
                .collect(),
        },
        Layout::Number => {
            debug_assert!(matches!(kind, MetricKind::Gauge | MetricKind::Sum));
            PointValue::Number {
                value: NumberValue::Double(0.0),
            }
        }
    }
}

fn to_ms(unix_nano: u64) -> i64 {
    i64::try_from(unix_nano / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use skewer_storage::metrics::SeriesIndexBuilder;
    use skewer_storage::model::{Attribute, Temporality};

    use super::*;
    use crate::prometheus::test_support::SECOND_NS;

    fn point(kind: MetricKind, value: PointValue, time: u64) -> MetricPoint {
        MetricPoint {
            series: Arc::new(MetricSeries::new(
                Arc::new(skewer_storage::model::Resource {
                    attributes: vec![
                        Attribute::string("service.name", "api"),
                        Attribute::string("host.name", "h1"),
                    ],
                    ..Default::default()
                }),
                Arc::default(),
                Arc::new(MetricDescriptor {
                    name: "req.duration".into(),
                    description: String::new(),
                    unit: "s".into(),
                    kind,
                    temporality: Temporality::Cumulative,
                    is_monotonic: true,
                }),
                vec![Attribute::string("route", "/a")],
            )),
            start_time_unix_nano: 0,
            time_unix_nano: time,
            flags: 0,
            value,
            exemplars: Vec::new(),
        }
    }

    fn histogram(time: u64) -> MetricPoint {
        point(
            MetricKind::Histogram,
            PointValue::Histogram {
                count: 3,
                sum: Some(2.0),
                min: None,
                max: None,
                explicit_bounds: vec![0.1, 1.0],
                bucket_counts: vec![1, 1, 1],
            },
            time,
        )
    }

    #[test]
    fn the_view_lists_what_converting_the_points_makes() {
        let points = [histogram(SECOND_NS), histogram(5 * SECOND_NS)];
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points(&points);
        let view = SeriesView::of(&builder.finish());
        let mut listed: Vec<Labels> = view.entries.iter().map(|e| e.labels.clone()).collect();
        listed.sort();
        let mut converted: Vec<Labels> = convert_series(&points)
            .into_iter()
            .map(|s| s.labels)
            .collect();
        converted.extend(target_info_labels(&points[0].series.resource));
        converted.sort();
        assert_eq!(listed, converted);
        assert_eq!(listed.len(), 6, "3 buckets, sum, count, target_info");
        let bucket = &view.entries[0];
        assert_eq!((bucket.first_ms, bucket.last_ms), (1000, 5000));
        assert!(bucket.meets(5000, 9000) && !bucket.meets(5001, 9000));
        assert!(view.unlisted.is_empty());
    }

    #[test]
    fn series_without_kept_layouts_are_named_unlisted() {
        let exponential = point(
            MetricKind::ExponentialHistogram,
            PointValue::ExponentialHistogram {
                count: 0,
                sum: None,
                min: None,
                max: None,
                scale: 0,
                zero_count: 0,
                zero_threshold: 0.0,
                positive: Default::default(),
                negative: Default::default(),
            },
            SECOND_NS,
        );
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points([&exponential]);
        let view = SeriesView::of(&builder.finish());
        assert_eq!(view.unlisted, [(*exponential.series.metric).clone()]);
        assert_eq!(view.entries.len(), 1, "target_info alone");
    }
}
