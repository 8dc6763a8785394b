//! The series indexes of a metric table: read from each file's sidecar once and kept in a
//! bounded cache with a slot for what a reader derives from them (the Prometheus label sets)
//! and one for the identity columns reads of format-2 rows restore, and built from the
//! buffered points at read time.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use object_store::path::Path as ObjectPath;
use tracing::warn;

use super::{LiveFile, TableSignal, TableStore};
use crate::StorageError;
use crate::metrics::{SeriesIndex, SeriesIndexBuilder};
use crate::model::{MetricPoint, TenantId};
use crate::parquet_codec::SeriesIdentities;
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
    identities: OnceLock<Arc<SeriesIdentities>>,
    /// Its weight in the cache, fixed when read: the index, its identity columns (about as
    /// large), and a label set per value its series' points carry for what a reader derives.
    weight: usize,
}

impl SharedSeriesIndex {
    fn new(index: SeriesIndex) -> Arc<Self> {
        let weight = 2 * index.memory_size() + index.value_series_bytes();
        Arc::new(Self {
            index,
            derived: OnceLock::new(),
            identities: OnceLock::new(),
            weight,
        })
    }

    /// The identity columns of the index's series (made once while the index is cached).
    pub fn identities(&self) -> Result<Arc<SeriesIdentities>, crate::parquet_codec::CodecError> {
        if let Some(identities) = self.identities.get() {
            return Ok(Arc::clone(identities));
        }
        let made = Arc::new(SeriesIdentities::of(&self.index)?);
        Ok(Arc::clone(self.identities.get_or_init(|| made)))
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
    /// sidecar is unreadable): then only its points tell its series (if it is of format 1;
    /// reading the points of a file of format 2 then fails, naming the file).
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

    /// Bytes of series indexes held in memory (with room for what readers derive).
    pub fn series_index_cache_bytes(&self) -> usize {
        self.series_indexes.bytes()
    }
}

impl<S: TableSignal> TableStore<S> {
    /// A file's series index, from the cache or read now; `None` (logged) when it has none
    /// or it is unreadable.
    pub(crate) async fn file_series_index(
        &self,
        file: &LiveFile,
    ) -> Option<Arc<SharedSeriesIndex>> {
        match self.read_file_series_index(file).await {
            Ok(index) => Some(index),
            Err(reason) => {
                warn!(path = %file.path, reason, "series index unreadable; the file's points are read instead (a file of format 2 cannot be read without it)");
                None
            }
        }
    }

    /// The identity columns of the series of a file whose rows leave them to its index.
    pub(crate) async fn series_identities(
        &self,
        file: &LiveFile,
    ) -> Result<Arc<SeriesIdentities>, StorageError> {
        let unreadable = |reason: String| StorageError::SeriesIndexUnreadable {
            path: file.path.to_string(),
            reason,
        };
        let index = self
            .read_file_series_index(file)
            .await
            .map_err(unreadable)?;
        index
            .identities()
            .map_err(|err| unreadable(err.to_string()))
    }

    async fn read_file_series_index(
        &self,
        file: &LiveFile,
    ) -> Result<Arc<SharedSeriesIndex>, String> {
        if let Some(index) = self.series_indexes.get(&file.path) {
            return Ok(index);
        }
        let path = file
            .meta
            .index_path
            .as_deref()
            .ok_or_else(|| "the file has no series index".to_owned())?;
        let bytes = self
            .objects
            .get(&ObjectPath::from(path))
            .await
            .map_err(|err| format!("{path}: {err}"))?;
        let decoded = tokio::task::spawn_blocking(move || SeriesIndex::from_bytes(&bytes))
            .await
            .map_err(|err| format!("{path} not decoded: {err}"))?;
        let index = decoded.map_err(|err| format!("{path}: {err}"))?;
        let shared = SharedSeriesIndex::new(index);
        self.series_indexes
            .insert(file.path.clone(), Arc::clone(&shared));
        Ok(shared)
    }
}
