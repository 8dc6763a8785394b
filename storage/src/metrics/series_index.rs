//! The series index of a metric file: each distinct series once (descriptor, resource, scope,
//! attributes), with its time span, point count and the bucket layouts its points had, and no
//! point. Kept beside every metric file as a sidecar object (and built from the buffers at
//! read time), so series listings and label lookups answer without reading points.
//!
//! The stored form is one format byte, then the ZSTD-compressed [postcard] encoding of
//! [`SeriesIndex`]: postcard is not self-describing, so the fields *are* the format; a change
//! needs a new format byte (`the_encoding_is_pinned` fails when it changes).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::series_content::{same_attributes, same_descriptor, same_resource, same_scope};
use crate::model::attributes::attributes_bytes;
use crate::model::{
    Attribute, InstrumentationScope, MetricDescriptor, MetricPoint, MetricSeries, PointValue,
    Resource,
};

/// The format byte of the stored form.
const FORMAT_V1: u8 = 1;
/// ZSTD level of the stored form (attribute keys repeat from series to series).
const ZSTD_LEVEL: i32 = 3;
/// Distinct layouts kept per series; past it the series says its layouts are incomplete.
pub const MAX_LAYOUTS_PER_SERIES: usize = 4;

/// The distinct series of a metric file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesIndex {
    /// Each distinct (descriptor, resource, scope) of the file.
    pub groups: Vec<SeriesGroup>,
    /// Each distinct series, in file order.
    pub series: Vec<IndexedSeries>,
}

/// What the series of one export group share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesGroup {
    /// Name, unit, kind, temporality.
    pub metric: MetricDescriptor,
    /// The producing service instance.
    pub resource: Resource,
    /// The instrumentation library.
    pub scope: InstrumentationScope,
}

/// One series of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedSeries {
    /// The stored series id (what the file's `series_id` column holds for its points).
    pub series_id: u64,
    /// Its group, an index into [`SeriesIndex::groups`].
    pub group: u32,
    /// The point attributes.
    pub attributes: Vec<Attribute>,
    /// Time of its first point, Unix ns.
    pub first_time_unix_nano: u64,
    /// Time of its last point, Unix ns.
    pub last_time_unix_nano: u64,
    /// Its points.
    pub points: u64,
    /// The bucket layouts of its points (the series a histogram or summary makes depend on
    /// them): one for most series.
    pub layouts: Vec<Layout>,
    /// A layout was left out (more than [`MAX_LAYOUTS_PER_SERIES`], or an exponential
    /// histogram, whose buckets move with every point): listing this series needs its points.
    pub layouts_incomplete: bool,
}

/// The shape of a point, as far as the series it makes depend on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Layout {
    /// A gauge or sum: one number.
    Number,
    /// An explicit-bucket histogram.
    Histogram {
        /// The bucket bounds.
        explicit_bounds: Vec<f64>,
        /// Whether the point had a sum.
        has_sum: bool,
    },
    /// A summary.
    Summary {
        /// The quantiles (0..=1) it reported.
        quantiles: Vec<f64>,
    },
}

impl Layout {
    /// The values a point of this layout carries.
    fn values(&self) -> usize {
        match self {
            Self::Number => 1,
            Self::Histogram {
                explicit_bounds, ..
            } => explicit_bounds.len() + 3,
            Self::Summary { quantiles } => quantiles.len() + 2,
        }
    }

    /// The layout of a point; `None` for exponential histograms (not kept).
    fn of(value: &PointValue) -> Option<Self> {
        match value {
            PointValue::Number { .. } => Some(Self::Number),
            PointValue::Histogram {
                explicit_bounds,
                sum,
                ..
            } => Some(Self::Histogram {
                explicit_bounds: explicit_bounds.clone(),
                has_sum: sum.is_some(),
            }),
            PointValue::Summary { quantiles, .. } => Some(Self::Summary {
                quantiles: quantiles.iter().map(|q| q.quantile).collect(),
            }),
            PointValue::ExponentialHistogram { .. } => None,
        }
    }

    /// Whether a point has this layout (without building the point's).
    fn fits(&self, value: &PointValue) -> bool {
        match (self, value) {
            (Self::Number, PointValue::Number { .. }) => true,
            (
                Self::Histogram {
                    explicit_bounds,
                    has_sum,
                },
                PointValue::Histogram {
                    explicit_bounds: bounds,
                    sum,
                    ..
                },
            ) => explicit_bounds == bounds && *has_sum == sum.is_some(),
            (Self::Summary { quantiles }, PointValue::Summary { quantiles: q, .. }) => {
                quantiles.len() == q.len() && quantiles.iter().zip(q).all(|(a, b)| *a == b.quantile)
            }
            _ => false,
        }
    }
}

/// Errors reading or writing a series index.
#[derive(Debug, thiserror::Error)]
pub enum SeriesIndexError {
    /// The bytes are not a series index this version reads.
    #[error("series index unreadable: {0}")]
    Corrupt(String),
    /// Encoding failed.
    #[error("series index not encoded: {0}")]
    Encode(String),
}

impl SeriesIndex {
    /// The stored form.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SeriesIndexError> {
        let plain =
            postcard::to_stdvec(self).map_err(|err| SeriesIndexError::Encode(err.to_string()))?;
        let mut out = vec![FORMAT_V1];
        let compressed = zstd::bulk::compress(&plain, ZSTD_LEVEL)
            .map_err(|err| SeriesIndexError::Encode(err.to_string()))?;
        out.extend_from_slice(&(plain.len() as u64).to_le_bytes());
        out.extend(compressed);
        Ok(out)
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SeriesIndexError> {
        let corrupt = |reason: String| SeriesIndexError::Corrupt(reason);
        let Some((&FORMAT_V1, rest)) = bytes.split_first() else {
            return Err(corrupt(format!("unknown format byte {:?}", bytes.first())));
        };
        let (size, compressed) = rest
            .split_at_checked(8)
            .ok_or_else(|| corrupt("truncated".to_owned()))?;
        let size = u64::from_le_bytes(size.try_into().map_err(|_| corrupt("size".to_owned()))?);
        // The size is the sender's word: bounded so a damaged sidecar cannot ask for anything.
        let capacity = usize::try_from(size)
            .ok()
            .filter(|size| *size <= compressed.len().saturating_mul(1024).max(1 << 20))
            .ok_or_else(|| corrupt(format!("implausible size {size}")))?;
        let plain =
            zstd::bulk::decompress(compressed, capacity).map_err(|err| corrupt(err.to_string()))?;
        let (index, tail) =
            postcard::take_from_bytes(&plain).map_err(|err| corrupt(err.to_string()))?;
        if !tail.is_empty() {
            return Err(corrupt(format!("{} bytes after the index", tail.len())));
        }
        Ok(index)
    }

    /// Rough heap bytes held (the caches weigh it by this).
    pub fn memory_size(&self) -> usize {
        let attributes = attributes_bytes;
        let groups: usize = self
            .groups
            .iter()
            .map(|g| {
                std::mem::size_of::<SeriesGroup>()
                    + g.metric.name.len()
                    + g.metric.description.len()
                    + g.metric.unit.len()
                    + attributes(&g.resource.attributes)
                    + attributes(&g.scope.attributes)
            })
            .sum();
        let series: usize = self
            .series
            .iter()
            .map(|s| {
                let layouts: usize = s
                    .layouts
                    .iter()
                    .map(|l| match l {
                        Layout::Number => 0,
                        Layout::Histogram {
                            explicit_bounds, ..
                        } => explicit_bounds.len() * 8,
                        Layout::Summary { quantiles } => quantiles.len() * 8,
                    })
                    .sum();
                std::mem::size_of::<IndexedSeries>()
                    + attributes(&s.attributes)
                    + s.layouts.len() * std::mem::size_of::<Layout>()
                    + layouts
            })
            .sum();
        groups + series
    }

    /// The values a point of each layout of each series carries (one for a number; buckets,
    /// sum and count for a histogram; quantiles, sum and count for a summary) weighted by the
    /// bytes of the series' attributes: what a reader that derives one label set per value
    /// (the Prometheus view) holds, roughly.
    pub fn value_series_bytes(&self) -> usize {
        /// A label set's own bytes beside its attributes (name, job, instance, scope...).
        const LABEL_SET_BYTES: usize = 192;
        self.series
            .iter()
            .map(|series| {
                let values: usize = series.layouts.iter().map(Layout::values).sum();
                values * (LABEL_SET_BYTES + attributes_bytes(&series.attributes))
            })
            .sum()
    }

    /// Whether every series' layouts are known (listings need no point).
    pub fn is_complete(&self) -> bool {
        self.series.iter().all(|s| !s.layouts_incomplete)
    }
}

/// Whether two different series of these indexes share a series id (or an index is damaged:
/// a series of a group it lacks).
pub fn series_ids_collide<'a>(indexes: impl IntoIterator<Item = &'a SeriesIndex>) -> bool {
    let mut seen: HashMap<u64, (&SeriesGroup, &[Attribute])> = HashMap::new();
    for index in indexes {
        for series in &index.series {
            let Some(group) = index.groups.get(series.group as usize) else {
                return true;
            };
            match seen.entry(series.series_id) {
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert((group, &series.attributes));
                }
                std::collections::hash_map::Entry::Occupied(entry) => {
                    let (known_group, known_attributes) = *entry.get();
                    let same = same_descriptor(&known_group.metric, &group.metric)
                        && same_resource(&known_group.resource, &group.resource)
                        && same_scope(&known_group.scope, &group.scope)
                        && same_attributes(known_attributes, &series.attributes);
                    if !same {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Notes the layout of a value of `series`.
fn add_layout(series: &mut IndexedSeries, value: &PointValue) {
    if series.layouts_incomplete || series.layouts.iter().any(|l| l.fits(value)) {
        return;
    }
    match Layout::of(value) {
        Some(layout) if series.layouts.len() < MAX_LAYOUTS_PER_SERIES => {
            series.layouts.push(layout);
        }
        _ => series.layouts_incomplete = true,
    }
}

/// A run of one series' points read back from a file, as far as its index entry goes.
#[derive(Debug, Clone, Copy)]
pub struct StoredRun {
    /// The stored series id.
    pub series_id: u64,
    /// Its earliest point time, Unix ns.
    pub first_time_unix_nano: u64,
    /// Its latest point time, Unix ns.
    pub last_time_unix_nano: u64,
    /// Its points.
    pub points: u64,
}

/// What one call of the builder remembers: the shared parts of its points (`Arc`s are
/// shared within one call, a batch or an export, not beyond) and the series last added to.
#[derive(Default)]
struct CallState {
    group_of_arcs: HashMap<(usize, usize, usize), u32>,
    last: Option<(u64, u32, (usize, usize, usize))>,
}

/// Builds a [`SeriesIndex`] from points in file order (records of a flush or buffer, rows of
/// a merge read back batch by batch).
#[derive(Debug, Default)]
pub struct SeriesIndexBuilder {
    index: SeriesIndex,
    /// Groups by their content hash (several on a collision).
    groups_by_hash: HashMap<u64, Vec<u32>>,
    /// Series by stored id (several on a collision).
    series_by_id: HashMap<u64, Vec<u32>>,
}

impl SeriesIndexBuilder {
    /// Adds points in file order (records of a flush or buffer, rows read back). A series'
    /// points mostly follow each other, so most only extend the series before them.
    pub fn add_points<'a>(&mut self, points: impl IntoIterator<Item = &'a MetricPoint>) {
        let mut call = CallState::default();
        for point in points {
            let series_id = point.series_id();
            self.add_point(&mut call, series_id, &point.series, point);
        }
    }

    /// Adds a run of one series' points read back from a file without decoding them:
    /// `identity` is one of them (its attributes the series'), `values` the values whose
    /// layouts count (every point's for histograms and summaries, one for numbers).
    pub fn add_stored(
        &mut self,
        run: &StoredRun,
        identity: &MetricSeries,
        values: impl IntoIterator<Item = PointValue>,
    ) {
        let group = self.group(identity);
        let at = self.series(run.series_id, group, identity);
        let Some(series) = self.index.series.get_mut(at as usize) else {
            return;
        };
        series.points += run.points;
        series.first_time_unix_nano = series.first_time_unix_nano.min(run.first_time_unix_nano);
        series.last_time_unix_nano = series.last_time_unix_nano.max(run.last_time_unix_nano);
        for value in values {
            add_layout(series, &value);
        }
    }

    fn add_point(
        &mut self,
        call: &mut CallState,
        series_id: u64,
        identity: &MetricSeries,
        point: &MetricPoint,
    ) {
        let arcs = (
            Arc::as_ptr(&identity.metric) as usize,
            Arc::as_ptr(&identity.resource) as usize,
            Arc::as_ptr(&identity.scope) as usize,
        );
        let at = match call.last {
            Some((id, at, last_arcs)) if id == series_id && last_arcs == arcs => at,
            _ => {
                let group = match call.group_of_arcs.get(&arcs) {
                    Some(&group) => group,
                    None => {
                        let group = self.group(identity);
                        call.group_of_arcs.insert(arcs, group);
                        group
                    }
                };
                self.series(series_id, group, identity)
            }
        };
        call.last = Some((series_id, at, arcs));
        self.count(at, point);
    }

    /// The group of a series' descriptor, resource and scope, added when new.
    fn group(&mut self, point: &MetricSeries) -> u32 {
        let hash = point.group_id();
        let candidates = self.groups_by_hash.entry(hash).or_default();
        for &group in candidates.iter() {
            let known = &self.index.groups[group as usize];
            // By bits, as series are told apart everywhere (a NaN label is one series).
            if same_descriptor(&known.metric, &point.metric)
                && same_resource(&known.resource, &point.resource)
                && same_scope(&known.scope, &point.scope)
            {
                return group;
            }
        }
        let group = u32::try_from(self.index.groups.len()).unwrap_or(u32::MAX);
        self.index.groups.push(SeriesGroup {
            metric: (*point.metric).clone(),
            resource: (*point.resource).clone(),
            scope: (*point.scope).clone(),
        });
        candidates.push(group);
        group
    }

    /// The position of a series, added when new.
    fn series(&mut self, series_id: u64, group: u32, point: &MetricSeries) -> u32 {
        let candidates = self.series_by_id.entry(series_id).or_default();
        for &at in candidates.iter() {
            let known = &self.index.series[at as usize];
            if known.group == group && same_attributes(&known.attributes, &point.attributes) {
                return at;
            }
        }
        let at = u32::try_from(self.index.series.len()).unwrap_or(u32::MAX);
        self.index.series.push(IndexedSeries {
            series_id,
            group,
            attributes: point.attributes.clone(),
            // Set by the first point or stored run counted.
            first_time_unix_nano: u64::MAX,
            last_time_unix_nano: 0,
            points: 0,
            layouts: Vec::new(),
            layouts_incomplete: false,
        });
        candidates.push(at);
        at
    }

    fn count(&mut self, at: u32, point: &MetricPoint) {
        let Some(series) = self.index.series.get_mut(at as usize) else {
            return;
        };
        series.points += 1;
        series.first_time_unix_nano = series.first_time_unix_nano.min(point.time_unix_nano);
        series.last_time_unix_nano = series.last_time_unix_nano.max(point.time_unix_nano);
        add_layout(series, &point.value);
    }

    /// The index of the points added.
    pub fn finish(self) -> SeriesIndex {
        self.index
    }

    /// Whether no point was added.
    pub fn is_empty(&self) -> bool {
        self.index.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetricKind, NumberValue, Quantile, Temporality};

    fn point(name: &str, kind: MetricKind, attributes: &[(&str, &str)], time: u64) -> MetricPoint {
        let value = match kind {
            MetricKind::Histogram => PointValue::Histogram {
                count: 1,
                sum: Some(1.0),
                min: None,
                max: None,
                explicit_bounds: vec![1.0, 5.0],
                bucket_counts: vec![1, 0, 0],
            },
            MetricKind::Summary => PointValue::Summary {
                count: 1,
                sum: 1.0,
                quantiles: vec![Quantile {
                    quantile: 0.5,
                    value: 1.0,
                }],
            },
            MetricKind::ExponentialHistogram => PointValue::ExponentialHistogram {
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
            _ => PointValue::Number {
                value: NumberValue::Double(1.0),
            },
        };
        MetricPoint {
            series: Arc::new(MetricSeries::new(
                Arc::new(Resource {
                    attributes: vec![Attribute::string("service.name", "api")],
                    ..Resource::default()
                }),
                Arc::new(InstrumentationScope::default()),
                Arc::new(MetricDescriptor {
                    name: name.to_owned(),
                    description: String::new(),
                    unit: String::new(),
                    kind,
                    temporality: Temporality::Cumulative,
                    is_monotonic: false,
                }),
                attributes
                    .iter()
                    .map(|(k, v)| Attribute::string(*k, *v))
                    .collect(),
            )),
            start_time_unix_nano: 0,
            time_unix_nano: time,
            flags: 0,
            value,
            exemplars: Vec::new(),
        }
    }

    #[test]
    fn each_series_is_kept_once_with_its_span_and_count() {
        let points = [
            point("a", MetricKind::Gauge, &[("k", "1")], 10),
            point("a", MetricKind::Gauge, &[("k", "1")], 30),
            point("a", MetricKind::Gauge, &[("k", "2")], 20),
            point("b", MetricKind::Histogram, &[], 5),
        ];
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points(&points[..2]);
        // Another call: fresh Arcs, the same content. Groups and series are found by content.
        let again = [point("a", MetricKind::Gauge, &[("k", "1")], 40)];
        builder.add_points(&again);
        builder.add_points(&points[2..]);
        let index = builder.finish();
        assert_eq!(index.groups.len(), 2, "one per descriptor");
        assert_eq!(index.series.len(), 3);
        let first = &index.series[0];
        assert_eq!(
            (
                first.first_time_unix_nano,
                first.last_time_unix_nano,
                first.points
            ),
            (10, 40, 3)
        );
        assert_eq!(first.layouts, [Layout::Number]);
        assert_eq!(
            index.series[2].layouts,
            [Layout::Histogram {
                explicit_bounds: vec![1.0, 5.0],
                has_sum: true
            }]
        );
        assert!(index.is_complete());
    }

    #[test]
    fn layouts_that_are_not_kept_make_the_series_incomplete() {
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points(&[point("e", MetricKind::ExponentialHistogram, &[], 1)]);
        let mut summary = point("s", MetricKind::Summary, &[], 1);
        builder.add_points([&summary]);
        for quantile in 1..=MAX_LAYOUTS_PER_SERIES {
            summary.value = PointValue::Summary {
                count: 1,
                sum: 1.0,
                quantiles: vec![Quantile {
                    quantile: quantile as f64 / 10.0,
                    value: 1.0,
                }],
            };
            builder.add_points([&summary]);
        }
        let index = builder.finish();
        assert!(index.series[0].layouts_incomplete, "exponential");
        assert!(index.series[1].layouts_incomplete, "too many layouts");
        assert_eq!(index.series[1].layouts.len(), MAX_LAYOUTS_PER_SERIES);
        assert!(!index.is_complete());
    }

    #[test]
    fn the_stored_form_reads_back_and_refuses_damage() {
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points(&[
            point("a", MetricKind::Gauge, &[("k", "1")], 10),
            point("b", MetricKind::Summary, &[("k", "2")], 10),
        ]);
        let index = builder.finish();
        let bytes = index.to_bytes().unwrap();
        assert_eq!(SeriesIndex::from_bytes(&bytes).unwrap(), index);
        assert!(SeriesIndex::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        assert!(SeriesIndex::from_bytes(&[9, 0, 0]).is_err());
        assert!(SeriesIndex::from_bytes(&[]).is_err());
    }

    #[test]
    fn the_encoding_is_pinned() {
        let mut builder = SeriesIndexBuilder::default();
        builder.add_points(&[point("a", MetricKind::Gauge, &[("k", "1")], 10)]);
        let plain = postcard::to_stdvec(&builder.finish()).unwrap();
        assert_eq!(
            hex::encode(plain),
            "0101610000000200010c736572766963652e6e616d6501036170690000000000000001\
             8983c99487b4c7ae1c0001016b0101310a0a01010000"
        );
    }
}
