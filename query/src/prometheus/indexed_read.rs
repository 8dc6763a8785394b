//! Reads of [`StoreSource`] through the metric series indexes: listings answered from each
//! index's Prometheus view without a point, and PromQL selections resolved on the views to
//! the OTLP series they want, whose value columns alone are then scanned (identity from the
//! index). Each answers `None` when the indexes cannot tell (a file without one, or a series
//! an index could not list), and the caller reads points as before.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use promql_parser::label::Matcher;
use skewer_storage::StorageError;
use skewer_storage::model::{MetricKind, MetricPoint};
use skewer_storage::parquet_codec::{
    NumberSample, decode_metric_number_runs, decode_metric_value_runs, metric_value_columns,
};
use skewer_storage::scan::{ScanRequest, ScanStream, TimeRange};
use skewer_storage::table::SharedSeriesIndex;

use super::convert::convert_number_series;
use super::series_view::SeriesView;
use super::store_source::{NameFilter, StoreSource, assemble, cut_to_range, nano_range};
use crate::QueryError;
use crate::promql::{Labels, Sample, Series};

impl StoreSource<'_> {
    /// [`Self::series_labels`] from the series indexes, no point read; `None` when they
    /// cannot tell (a file without one, or a metric the filter accepts whose series an index
    /// could not list).
    pub(super) async fn indexed_series_labels(
        &self,
        filter: &NameFilter<'_>,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<Vec<Labels>>, QueryError> {
        let Some(range) = nano_range(start_ms, end_ms) else {
            return Ok(Some(Vec::new()));
        };
        let Some(indexes) = self.indexes(range).await else {
            return Ok(None);
        };
        let mut views = Vec::with_capacity(indexes.len());
        for shared in &indexes {
            self.check_deadline()?;
            let view = series_view(shared).await;
            if view.unlisted.iter().any(|m| filter.accepts_metric(m)) {
                return Ok(None);
            }
            views.push(view);
        }
        let mut found: BTreeSet<&Labels> = BTreeSet::new();
        for view in &views {
            let selected = view.select(matcher_sets, start_ms, end_ms);
            found.extend(selected.into_iter().map(|entry| &entry.labels));
        }
        Ok(Some(found.into_iter().cloned().collect()))
    }

    /// The series of the OTLP series in `wanted` (the identities the series indexes give,
    /// with the OTLP names to scan), their values read from the points' value columns alone.
    pub(super) async fn read_values(
        &self,
        wanted: WantedSeries,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let Some(range) = nano_range(start_ms, end_ms) else {
            return Ok(Vec::new());
        };
        if wanted.names.is_empty() {
            return Ok(Vec::new());
        }
        let numbers_only = wanted.identities.values().all(|identity| {
            matches!(
                identity.series.metric.kind,
                MetricKind::Gauge | MetricKind::Sum
            )
        });
        let names = wanted.names.iter().cloned().collect();
        let mut request =
            ScanRequest::metrics(self.tenant.clone(), Some(names), range, self.limits);
        request.columns = Some(metric_value_columns(numbers_only));
        let mut stream = self.storage.scan(request)?;
        if numbers_only {
            return self.read_numbers(&wanted, stream, start_ms, end_ms).await;
        }
        let mut kept: HashMap<u64, Vec<MetricPoint>> = HashMap::new();
        while let Some(batch) = stream.next().await {
            let runs = decode_metric_value_runs(&batch?, |id| {
                wanted.identities.get(&id).map(|p| Arc::clone(&p.series))
            })
            .map_err(StorageError::from)?;
            for run in runs {
                match kept.entry(run.series_id) {
                    Entry::Occupied(mut points) => points.get_mut().extend(run.points),
                    Entry::Vacant(slot) => {
                        let mut points = run.points;
                        points.reserve(self.room(&wanted, run.series_id, points.len()));
                        slot.insert(points);
                    }
                }
            }
        }
        Ok(assemble(kept, BTreeMap::new(), start_ms, end_ms))
    }

    /// [`Self::read_values`] of gauges and sums alone: samples (time, value, flags) instead of
    /// whole points, a fifth of the memory and of the copying.
    async fn read_numbers(
        &self,
        wanted: &WantedSeries,
        mut stream: ScanStream,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let mut kept: HashMap<u64, Vec<NumberSample>> = HashMap::new();
        while let Some(batch) = stream.next().await {
            let runs = decode_metric_number_runs(&batch?, |id| wanted.identities.contains_key(&id))
                .map_err(StorageError::from)?;
            for (series_id, samples) in runs {
                match kept.entry(series_id) {
                    Entry::Occupied(mut kept) => kept.get_mut().extend(samples),
                    Entry::Vacant(slot) => {
                        let mut all = samples;
                        all.reserve(self.room(wanted, series_id, all.len()));
                        slot.insert(all);
                    }
                }
            }
        }
        let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for (series_id, mut samples) in kept {
            let Some(identity) = wanted.identities.get(&series_id) else {
                continue;
            };
            // Runs of one series from several files: time order, each time once.
            let key = |s: &NumberSample| (s.time_unix_nano, s.start_time_unix_nano);
            if !samples.is_sorted_by_key(key) {
                samples.sort_by_key(key);
            }
            samples.dedup_by_key(|s| key(s));
            for series in convert_number_series(identity, &samples) {
                merged
                    .entry(series.labels)
                    .or_default()
                    .extend(series.samples);
            }
        }
        Ok(cut_to_range(merged, start_ms, end_ms))
    }

    /// How many more points to make room for beside the `held` first read of a series: every
    /// point the indexes counted (points are large, and a series' runs come in many batches),
    /// never past the rows the scan may return.
    fn room(&self, wanted: &WantedSeries, series_id: u64, held: usize) -> usize {
        let expected = wanted.points.get(&series_id).copied().flatten();
        let bound = expected.unwrap_or(0).min(self.limits.max_rows);
        usize::try_from(bound).unwrap_or(0).saturating_sub(held)
    }

    /// The OTLP series any of `matcher_sets` may select in `[start_ms, end_ms]`, by the
    /// series indexes: those with a Prometheus series the matchers accept, and those whose
    /// metric `filter` accepts but whose series an index cannot list. `None` when a file has
    /// no index.
    pub(super) async fn indexed_identities(
        &self,
        filter: &NameFilter<'_>,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<WantedSeries>, QueryError> {
        let mut wanted = WantedSeries::default();
        let Some(range) = nano_range(start_ms, end_ms) else {
            return Ok(Some(wanted));
        };
        let Some(indexes) = self.indexes(range).await else {
            return Ok(None);
        };
        for shared in &indexes {
            self.check_deadline()?;
            let view = series_view(shared).await;
            let mut selected: BTreeSet<u32> = view
                .select(matcher_sets, start_ms, end_ms)
                .into_iter()
                .filter_map(|entry| entry.series)
                .collect();
            if !view.unlisted.is_empty() {
                let unlisted = (0u32..).zip(&shared.index.series).filter(|(_, series)| {
                    series.layouts_incomplete
                        && shared
                            .index
                            .groups
                            .get(series.group as usize)
                            .is_some_and(|group| filter.accepts_metric(&group.metric))
                });
                selected.extend(unlisted.map(|(ordinal, _)| ordinal));
            }
            for ordinal in selected {
                let Some(series) = shared.index.series.get(ordinal as usize) else {
                    continue;
                };
                // Counted only while every point is in the range (a bound, not a guess).
                let all_in_range = range.start_unix_nano <= series.first_time_unix_nano
                    && series.last_time_unix_nano < range.end_unix_nano;
                let points = wanted.points.entry(series.series_id).or_insert(Some(0));
                *points = points.filter(|_| all_in_range).map(|p| p + series.points);
                if let Entry::Vacant(slot) = wanted.identities.entry(series.series_id)
                    && let Some(identity) = view.identity(&shared.index, ordinal)
                {
                    wanted.names.insert(identity.series.metric.name.clone());
                    slot.insert(identity);
                }
            }
        }
        Ok(Some(wanted))
    }

    /// The series indexes of this tenant's metrics in `range`; `None` when a file has none.
    async fn indexes(&self, range: TimeRange) -> Option<Vec<Arc<SharedSeriesIndex>>> {
        self.storage
            .metric_series_indexes(&self.tenant, range)
            .await
    }

    /// An error once the read's deadline has passed.
    fn check_deadline(&self) -> Result<(), QueryError> {
        match self.limits.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(StorageError::DeadlineExceeded.into())
            }
            _ => Ok(()),
        }
    }
}

/// The OTLP series a read wants, as the series indexes give them.
#[derive(Default)]
pub(super) struct WantedSeries {
    /// A point of each, carrying its identity, by stored series id.
    identities: HashMap<u64, MetricPoint>,
    /// Their OTLP metric names.
    names: BTreeSet<String>,
    /// Their points in the indexed files and buffers, when all lie in the read's range.
    points: HashMap<u64, Option<u64>>,
}

/// The Prometheus view of a shared index, made once while it is cached, off the async
/// threads (a view of 100,000 series takes a while to make).
async fn series_view(shared: &Arc<SharedSeriesIndex>) -> Arc<SeriesView> {
    if let Some(view) = shared.already_derived::<SeriesView>() {
        return view;
    }
    let made = {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || shared.derived(SeriesView::of)).await
    };
    match made {
        Ok(Some(view)) => view,
        // Something else was derived from the index (or the task failed): a view of its own.
        _ => Arc::new(SeriesView::of(&shared.index)),
    }
}
