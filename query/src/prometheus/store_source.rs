//! The stored metric points of one tenant as Prometheus series: PromQL's [`SeriesSource`]
//! over storage, and the listings the Prometheus HTTP API serves (`/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/metadata`).
//!
//! A Prometheus name does not map back to one OTLP name (sanitising loses characters and
//! the unit suffix may or may not have been in the name), so a read first asks storage's
//! metric catalog (the OTLP metrics of the time range, from file summaries kept at ingest)
//! which OTLP metrics have a Prometheus name the `__name__` matchers accept, and scans those
//! alone; metadata answers from the catalog without reading a point. Without a complete
//! catalog (files written before it) a read scans every metric point in the range. Each batch
//! is cut down before any grouping or conversion: the OTLP metrics whose Prometheus names
//! (the family name, with `_bucket`, `_sum`, `_count` where the kind has them) no `__name__`
//! matcher accepts are dropped, deciding once per descriptor. The rest are grouped into OTLP series, converted ([`super::convert`]), merged
//! where two OTLP series give the same labels, matched, and cut to the time range.
//! Resources with attributes beyond `job` and `instance` add a `target_info` series
//! (value 1) with a sample at each time one of their points has.
//!
//! Delta series accumulate from the start of the read window (see [`super::convert`]).
//! Knows no HTTP: the API adapter shapes these answers.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::label::Matcher;
use skewer_storage::catalog::MetricCatalog;
use skewer_storage::model::{MetricDescriptor, MetricPoint, TenantId};
use skewer_storage::parquet_codec::{
    SeriesRun, decode_metric_points, decode_metric_series_runs, metric_series_columns,
};
use skewer_storage::scan::{ScanLimits, ScanRequest, TimeRange};
use skewer_storage::{Storage, StorageError};

use super::convert::{convert_series, is_no_recorded_value, timestamp_ms};
use super::exemplars::{ExemplarSample, point_exemplars};
use super::labels::{TARGET_INFO, may_have_target_info, target_info_labels};
use super::naming::{PrometheusType, family_metric_names, family_name, prometheus_unit};
use crate::QueryError;
use crate::promql::{Labels, METRIC_NAME_LABEL, Sample, Selection, Series, SeriesSource};

/// The `HELP` text of `target_info`, as Prometheus's OTLP receiver writes it.
const TARGET_INFO_HELP: &str = "Target metadata";

/// One tenant's stored metrics, read as Prometheus series.
#[derive(Clone)]
pub struct StoreSource<'a> {
    pub(super) storage: &'a Storage,
    pub(super) tenant: TenantId,
    pub(super) limits: ScanLimits,
}

/// What `/api/v1/metadata` says of one metric family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricMetadata {
    /// The family name (`http_server_request_duration_seconds`).
    pub family: String,
    /// Its type.
    pub metric_type: PrometheusType,
    /// The OTLP description.
    pub help: String,
    /// The unit, spelled out (`seconds`); empty when none.
    pub unit: String,
}

impl<'a> StoreSource<'a> {
    /// Reads `tenant`'s metrics from `storage`; every scan is bounded by `limits`.
    pub fn new(storage: &'a Storage, tenant: TenantId, limits: ScanLimits) -> Self {
        Self {
            storage,
            tenant,
            limits,
        }
    }

    /// The label sets of the series with a sample in `[start_ms, end_ms]` that all matchers
    /// of at least one set accept (every series when there is no set), sorted, each once:
    /// `/api/v1/series`, and the ground of the label listings.
    pub async fn series_labels(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let filter = NameFilter::any_of(matcher_sets);
        if let Some(listed) = self
            .indexed_series_labels(&filter, matcher_sets, start_ms, end_ms)
            .await?
        {
            return Ok(listed);
        }
        self.point_series_labels(&filter, matcher_sets, start_ms, end_ms)
            .await
    }

    /// [`Self::series_labels`] by reading the points.
    pub(super) async fn point_series_labels(
        &self,
        filter: &NameFilter<'_>,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let series = self.read(filter, matcher_sets, start_ms, end_ms).await?;
        Ok(series
            .into_iter()
            .filter(|s| matcher_sets.is_empty() || matcher_sets.iter().any(|m| s.labels.matches(m)))
            .map(|s| s.labels)
            .collect())
    }

    /// The label names of those series, sorted (`/api/v1/labels`).
    pub async fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        let series = self.series_labels(matcher_sets, start_ms, end_ms).await?;
        let names: BTreeSet<&str> = series
            .iter()
            .flat_map(|labels| labels.iter().map(|(name, _)| name))
            .collect();
        Ok(names.into_iter().map(str::to_owned).collect())
    }

    /// The values of label `name` on those series, sorted (`/api/v1/label/{name}/values`).
    pub async fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, QueryError> {
        let series = self.series_labels(matcher_sets, start_ms, end_ms).await?;
        let values: BTreeSet<&str> = series
            .iter()
            .map(|labels| labels.get(name))
            .filter(|value| !value.is_empty())
            .collect();
        Ok(values.into_iter().map(str::to_owned).collect())
    }

    /// Type, help and unit of every family with a point in `[start_ms, end_ms]`, sorted by
    /// family; a family the senders described differently appears once per description
    /// (`/api/v1/metadata`).
    pub async fn metadata(
        &self,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MetricMetadata>, QueryError> {
        let mut found: BTreeSet<MetricMetadata> = BTreeSet::new();
        let mut has_target_info = false;
        if let Some(catalog) = self.catalog(start_ms, end_ms).await {
            for (name, families) in &catalog.names {
                for family in families {
                    found.extend(metadata_of(&family.descriptor(name)));
                }
            }
            has_target_info =
                may_have_target_info(&catalog.resource_keys) || catalog.resource_keys_truncated;
        } else {
            self.scan_metadata(start_ms, end_ms, &mut found, &mut has_target_info)
                .await?;
        }
        if has_target_info {
            found.insert(MetricMetadata {
                family: TARGET_INFO.to_owned(),
                metric_type: PrometheusType::Gauge,
                help: TARGET_INFO_HELP.to_owned(),
                unit: String::new(),
            });
        }
        Ok(found.into_iter().collect())
    }

    /// The metric catalog of `[start_ms, end_ms]` when complete (every file summarised, no
    /// name left out).
    async fn catalog(&self, start_ms: i64, end_ms: i64) -> Option<MetricCatalog> {
        let range = nano_range(start_ms, end_ms)?;
        self.storage
            .metric_catalog(&self.tenant, range)
            .await
            .filter(|catalog| !catalog.truncated)
    }

    /// Metadata by reading every point (files written before metric summaries).
    async fn scan_metadata(
        &self,
        start_ms: i64,
        end_ms: i64,
        found: &mut BTreeSet<MetricMetadata>,
        has_target_info: &mut bool,
    ) -> Result<(), QueryError> {
        let everything = NameFilter::any_of(&[]);
        self.scan(start_ms, end_ms, &everything, |runs| {
            let points: Vec<&MetricPoint> =
                runs.iter().filter_map(|run| run.points.first()).collect();
            // Descriptors and resources are shared within a batch: look at each once.
            let mut seen_descriptors: HashSet<usize> = HashSet::new();
            let mut seen_resources: HashSet<usize> = HashSet::new();
            for point in points {
                if seen_descriptors.insert(Arc::as_ptr(&point.series.metric) as usize) {
                    found.extend(metadata_of(&point.series.metric));
                }
                if !*has_target_info
                    && seen_resources.insert(Arc::as_ptr(&point.series.resource) as usize)
                {
                    *has_target_info = target_info_labels(&point.series.resource).is_some();
                }
            }
        })
        .await
    }

    /// Every series `filter` may want with its samples in `[start_ms, end_ms]`, merged by
    /// labels and sorted by them; matchers other than on the name are not applied, though
    /// fewer series may be read when the series indexes show that none of `matcher_sets`
    /// (the sets `filter` was made from) selects them.
    async fn read(
        &self,
        filter: &NameFilter<'_>,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let wants_target_info = filter.accepts(TARGET_INFO);
        if !wants_target_info
            && let Some(wanted) = self
                .indexed_identities(filter, matcher_sets, start_ms, end_ms)
                .await?
        {
            return self.read_values(wanted, start_ms, end_ms).await;
        }
        // Points by stored series id (each carries its series).
        let mut kept: HashMap<u64, Vec<MetricPoint>> = HashMap::new();
        let mut targets: BTreeMap<Labels, BTreeSet<i64>> = BTreeMap::new();
        self.scan(start_ms, end_ms, filter, |runs| {
            // Descriptors and resources are shared within a batch: decide once for each.
            let mut accepted: HashMap<usize, bool> = HashMap::new();
            let mut target_labels: HashMap<usize, Option<Labels>> = HashMap::new();
            for run in runs {
                let Some(first) = run.points.first() else {
                    continue;
                };
                if wants_target_info {
                    let labels = target_labels
                        .entry(Arc::as_ptr(&first.series.resource) as usize)
                        .or_insert_with(|| target_info_labels(&first.series.resource));
                    if let Some(labels) = labels {
                        let times = targets.entry(labels.clone()).or_default();
                        times.extend(
                            run.points
                                .iter()
                                .filter(|p| !is_no_recorded_value(p))
                                .map(timestamp_ms),
                        );
                    }
                }
                let wanted = *accepted
                    .entry(Arc::as_ptr(&first.series.metric) as usize)
                    .or_insert_with(|| filter.accepts_metric(&first.series.metric));
                if wanted {
                    match kept.entry(run.series_id) {
                        Entry::Occupied(mut points) => points.get_mut().extend(run.points),
                        Entry::Vacant(slot) => {
                            slot.insert(run.points);
                        }
                    }
                }
            }
        })
        .await?;
        Ok(assemble(kept, targets, start_ms, end_ms))
    }

    /// Scans the metric points with a time in `[start_ms, end_ms]` that `filter` may want,
    /// one decoded batch at a time: when the metric catalog is complete, only the OTLP
    /// metrics whose Prometheus names the filter accepts are read; otherwise (or for
    /// `target_info`, which any point's resource may make) every point.
    async fn scan(
        &self,
        start_ms: i64,
        end_ms: i64,
        filter: &NameFilter<'_>,
        mut each_batch: impl FnMut(Vec<SeriesRun>) + Send,
    ) -> Result<(), QueryError> {
        let Some(mut request) = self.scan_request(start_ms, end_ms, filter).await else {
            return Ok(());
        };
        request.columns = Some(metric_series_columns());
        let mut stream = self.storage.scan(request)?;
        while let Some(batch) = stream.next().await {
            each_batch(decode_metric_series_runs(&batch?).map_err(StorageError::from)?);
        }
        Ok(())
    }

    /// The scan of the points in `[start_ms, end_ms]` that `filter` may want: only the OTLP
    /// metrics it accepts when the catalog is complete (and `target_info` is not wanted),
    /// else every one; `None` when nothing can match.
    async fn scan_request(
        &self,
        start_ms: i64,
        end_ms: i64,
        filter: &NameFilter<'_>,
    ) -> Option<ScanRequest> {
        let range = nano_range(start_ms, end_ms)?;
        let mut names = None;
        if !filter.accepts(TARGET_INFO)
            && let Some(catalog) = self.catalog(start_ms, end_ms).await
        {
            let wanted: Vec<String> = catalog
                .names
                .iter()
                .filter(|(name, families)| {
                    families
                        .iter()
                        .any(|family| filter.accepts_metric(&family.descriptor(name)))
                })
                .map(|(name, _)| name.clone())
                .collect();
            if wanted.is_empty() {
                return None;
            }
            names = Some(wanted);
        }
        Some(ScanRequest::metrics(
            self.tenant.clone(),
            names,
            range,
            self.limits,
        ))
    }

    /// The exemplars recorded in `[start_ms, end_ms]` on the series any of `matcher_sets`
    /// selects, by series (sorted by labels), each series' exemplars in time order.
    pub async fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, Vec<ExemplarSample>)>, QueryError> {
        // A query without selectors (`vector(1)`) has no series, so no exemplars.
        if matcher_sets.is_empty() {
            return Ok(Vec::new());
        }
        let filter = NameFilter::any_of(matcher_sets);
        let Some(request) = self.scan_request(start_ms, end_ms, &filter).await else {
            return Ok(Vec::new());
        };
        let window = start_ms as f64..=(end_ms as f64 + 1.0);
        let mut found: BTreeMap<Labels, Vec<ExemplarSample>> = BTreeMap::new();
        let mut stream = self.storage.scan(request)?;
        while let Some(batch) = stream.next().await {
            let points = decode_metric_points(&batch?).map_err(StorageError::from)?;
            for point in points.iter().filter(|p| !p.exemplars.is_empty()) {
                if !filter.accepts_metric(&point.series.metric) {
                    continue;
                }
                for (labels, sample) in point_exemplars(point) {
                    let selected = matcher_sets.iter().any(|set| labels.matches(set));
                    if selected && window.contains(&sample.timestamp_ms) {
                        found.entry(labels).or_default().push(sample);
                    }
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by(|a, b| a.timestamp_ms.total_cmp(&b.timestamp_ms));
                samples.dedup_by(|a, b| a.timestamp_ms == b.timestamp_ms && a.labels == b.labels);
                (labels, samples)
            })
            .collect())
    }
}

impl StoreSource<'_> {
    /// Every series in `[start_ms, end_ms]` whose name the `__name__` matchers among
    /// `matchers` accept, the other matchers not applied: what selections with the same name
    /// matchers and range can share (alert rules evaluated at one time).
    pub async fn select_by_name(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let sets = [matchers.to_vec()];
        self.read(&NameFilter::any_of(&sets), &sets, start_ms, end_ms)
            .await
    }
}

impl SeriesSource for StoreSource<'_> {
    async fn select(&self, selection: &Selection) -> Result<Vec<Series>, QueryError> {
        let sets = std::slice::from_ref(&selection.matchers);
        let filter = NameFilter::any_of(sets);
        let mut series = self
            .read(&filter, sets, selection.start_ms, selection.end_ms)
            .await?;
        series.retain(|s| s.labels.matches(&selection.matchers));
        Ok(series)
    }
}

/// Points by stored series id (each carrying its series) as Prometheus
/// series merged by labels and sorted by them, with the `target_info` samples, cut to
/// `[start_ms, end_ms]`.
pub(super) fn assemble(
    kept: HashMap<u64, Vec<MetricPoint>>,
    targets: BTreeMap<Labels, BTreeSet<i64>>,
    start_ms: i64,
    end_ms: i64,
) -> Vec<Series> {
    let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for (_, mut points) in kept {
        // Runs of one series from several files: time order, each time once.
        let key = |p: &MetricPoint| (p.time_unix_nano, p.start_time_unix_nano);
        if !points.is_sorted_by_key(key) {
            points.sort_by_key(key);
        }
        points.dedup_by_key(|p| key(p));
        for series in convert_series(&points) {
            merged
                .entry(series.labels)
                .or_default()
                .extend(series.samples);
        }
    }
    for (labels, times) in targets {
        let ones = times.into_iter().map(|timestamp_ms| Sample {
            timestamp_ms,
            value: 1.0,
        });
        merged.entry(labels).or_default().extend(ones);
    }
    cut_to_range(merged, start_ms, end_ms)
}

/// Series merged by labels, their samples in time order, each time once, cut to
/// `[start_ms, end_ms]`; those left without a sample dropped.
pub(super) fn cut_to_range(
    merged: BTreeMap<Labels, Vec<Sample>>,
    start_ms: i64,
    end_ms: i64,
) -> Vec<Series> {
    merged
        .into_iter()
        .filter_map(|(labels, mut samples)| {
            samples.retain(|s| (start_ms..=end_ms).contains(&s.timestamp_ms));
            samples.sort_by_key(|s| s.timestamp_ms);
            samples.dedup_by_key(|s| s.timestamp_ms);
            (!samples.is_empty()).then_some(Series { labels, samples })
        })
        .collect()
}

/// The metadata entries of one OTLP metric: none when it has no Prometheus name.
fn metadata_of(descriptor: &MetricDescriptor) -> Option<MetricMetadata> {
    Some(MetricMetadata {
        family: family_name(descriptor)?,
        metric_type: PrometheusType::of(descriptor),
        help: descriptor.description.clone(),
        unit: prometheus_unit(descriptor),
    })
}

/// `[start_ms, end_ms]` as the scan's half-open nanosecond range; `None` when empty.
pub(super) fn nano_range(start_ms: i64, end_ms: i64) -> Option<TimeRange> {
    if end_ms < start_ms || end_ms < 0 {
        return None;
    }
    let start = u64::try_from(start_ms.max(0))
        .ok()?
        .saturating_mul(1_000_000);
    let end = u64::try_from(end_ms)
        .ok()?
        .saturating_add(1)
        .saturating_mul(1_000_000);
    (start < end).then_some(TimeRange {
        start_unix_nano: start,
        end_unix_nano: end,
    })
}

/// Which metric names a read wants: those all `__name__` matchers of at least one set
/// accept (a set without any accepts every name).
pub(super) struct NameFilter<'m> {
    sets: Vec<Vec<&'m Matcher>>,
}

impl<'m> NameFilter<'m> {
    /// The names any of `matcher_sets` may select; every name when there is no set.
    pub(super) fn any_of(matcher_sets: &'m [Vec<Matcher>]) -> Self {
        let sets = if matcher_sets.is_empty() {
            vec![Vec::new()]
        } else {
            matcher_sets
                .iter()
                .map(|set| set.iter().filter(|m| m.name == METRIC_NAME_LABEL).collect())
                .collect()
        };
        Self { sets }
    }

    /// Whether a series named `name` may be selected.
    pub(super) fn accepts(&self, name: &str) -> bool {
        self.sets
            .iter()
            .any(|set| set.iter().all(|matcher| matcher.is_match(name)))
    }

    /// Whether any series of the family an OTLP metric becomes may be selected.
    pub(super) fn accepts_metric(&self, descriptor: &MetricDescriptor) -> bool {
        family_name(descriptor).is_some_and(|family| {
            family_metric_names(&family, descriptor.kind)
                .iter()
                .any(|name| self.accepts(name))
        })
    }
}
