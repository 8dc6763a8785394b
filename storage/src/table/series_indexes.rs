//! The series indexes of a metric table: read from each file's sidecar once and kept in a
//! bounded cache with a slot for what a reader derives from them (the Prometheus label sets),
//! and built from the buffered points at read time.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use object_store::path::Path as ObjectPath;
use tracing::warn;

use super::{LiveFile, TableSignal, TableStore};
use crate::metrics::{SeriesIndex, SeriesIndexBuilder};
use crate::model::{MetricPoint, TenantId};
use crate::scan::TimeRange;

/// Bytes of series indexes (and what readers derive from them) kept in memory, roughly (the
/// last index read is kept whatever its size): 100,000 series of a few labels take ~10 MB
/// decoded and about twice that derived.
pub(super) const SERIES_INDEX_CACHE_BYTES: usize = 256 << 20;

/// A series index as readers share it, with room for one thing derived from it.
#[derive(Debug)]
pub struct SharedSeriesIndex {
    /// The index.
    pub index: SeriesIndex,
    derived: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// Its weight in the cache, fixed when read: the index, and a label set per value its
    /// series' points carry for what a reader derives.
    weight: usize,
}

impl SharedSeriesIndex {
    fn new(index: SeriesIndex) -> Arc<Self> {
        let weight = index.memory_size() + index.value_series_bytes();
        Arc::new(Self {
            index,
            derived: OnceLock::new(),
            weight,
        })
    }

    /// What was derived from the index, if anything of type `T` was yet.
    pub fn already_derived<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        Arc::clone(self.derived.get()?).downcast::<T>().ok()
    }

    /// An index shared as the cache would share it (tests).
    #[cfg(test)]
    pub(crate) fn for_tests(index: SeriesIndex) -> Arc<Self> {
        Self::new(index)
    }

    /// What `derive` makes of the index, made once while the index is cached; `None` when
    /// something of another type was derived first (the caller derives its own).
    pub fn derived<T: Any + Send + Sync>(
        &self,
        derive: impl FnOnce(&SeriesIndex) -> T,
    ) -> Option<Arc<T>> {
        let derived = self
            .derived
            .get_or_init(|| Arc::new(derive(&self.index)) as Arc<dyn Any + Send + Sync>);
        Arc::clone(derived).downcast::<T>().ok()
    }

    /// Bytes it is weighed at in the cache.
    pub(super) fn weight(shared: &Arc<Self>) -> usize {
        shared.weight
    }
}

impl<S: TableSignal<Record = MetricPoint>> TableStore<S> {
    /// The series indexes of one tenant's metric data whose time span meets `range`: one per
    /// live file, and one built now from the buffered points in the range (when there are
    /// any). `None` when a file in the range has none (written before series indexes, or its
    /// sidecar is unreadable): then only its points tell its series.
    pub async fn series_indexes_in(
        &self,
        tenant: &TenantId,
        range: TimeRange,
    ) -> Option<Vec<Arc<SharedSeriesIndex>>> {
        let snapshot = self.snapshot(tenant);
        let mut indexes = Vec::new();
        let in_range = snapshot
            .files
            .iter()
            .filter(|file| file.overlaps(range.start_unix_nano, range.end_unix_nano));
        for file in in_range {
            indexes.push(self.file_series_index(file).await?);
        }
        let buffered = tokio::task::spawn_blocking(move || {
            let mut builder = SeriesIndexBuilder::default();
            for chunks in &snapshot.buffered {
                builder.add_points(chunks.iter().filter(|point| {
                    (range.start_unix_nano..range.end_unix_nano).contains(&point.time_unix_nano)
                }));
            }
            builder
        })
        .await;
        let buffered = match buffered {
            Ok(buffered) => buffered,
            Err(err) => {
                warn!(error = %err, "buffered series not indexed; points are read instead");
                return None;
            }
        };
        if !buffered.is_empty() {
            indexes.push(SharedSeriesIndex::new(buffered.finish()));
        }
        Some(indexes)
    }

    /// A file's series index, from the cache or read now.
    async fn file_series_index(&self, file: &LiveFile) -> Option<Arc<SharedSeriesIndex>> {
        if let Some(index) = self.series_indexes.get(&file.path) {
            return Some(index);
        }
        let path = ObjectPath::from(file.meta.index_path.as_deref()?);
        let bytes = match self.objects.get(&path).await {
            Ok(bytes) => bytes,
            Err(err) => {
                warn!(path = %path, error = %err, "series index unreadable; the file's points are read instead");
                return None;
            }
        };
        let decoded = tokio::task::spawn_blocking(move || SeriesIndex::from_bytes(&bytes)).await;
        match decoded {
            Ok(Ok(index)) => {
                let shared = SharedSeriesIndex::new(index);
                self.series_indexes
                    .insert(file.path.clone(), Arc::clone(&shared));
                Some(shared)
            }
            Ok(Err(err)) => {
                warn!(path = %path, error = %err, "series index unreadable; the file's points are read instead");
                None
            }
            Err(err) => {
                warn!(path = %path, error = %err, "series index not decoded; the file's points are read instead");
                None
            }
        }
    }

    /// Bytes of series indexes held in memory (with room for what readers derive).
    pub fn series_index_cache_bytes(&self) -> usize {
        self.series_indexes.bytes()
    }
}
