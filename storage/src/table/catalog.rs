//! The catalog of immutable Parquet files: what each holds (tenant, time range, rows) and its
//! footer and per-row-group bloom filters kept in memory, so a lookup by id opens only files
//! that may hold it.
//!
//! The catalog is rebuilt at start by listing the object store and reading footers; there is no
//! separate manifest that could disagree with the files.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use tracing::warn;

use crate::StorageError;
use crate::layout;
use crate::model::{Signal, TenantId};
use crate::parquet_codec::{MAX_TIME_METADATA_KEY, MIN_TIME_METADATA_KEY};

/// One immutable data file.
#[derive(Debug)]
pub struct FileEntry {
    /// Object path.
    pub path: ObjectPath,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows in the file.
    pub num_rows: u64,
    /// Earliest record time.
    pub min_time_unix_nano: u64,
    /// Latest record time.
    pub max_time_unix_nano: u64,
    /// The parsed footer, reused by every read.
    pub metadata: ArrowReaderMetadata,
    /// Bloom filter of the id column per row group, where the file has one.
    pub row_group_blooms: Vec<Option<Sbbf>>,
}

impl FileEntry {
    /// Reads a file's footer and bloom filters.
    pub async fn load(
        store: &Arc<dyn ObjectStore>,
        path: ObjectPath,
        size_bytes: u64,
        bloom_column: Option<&str>,
    ) -> Result<Self, StorageError> {
        let object_error =
            |source: parquet::errors::ParquetError| StorageError::Codec(source.into());
        let reader =
            ParquetObjectReader::new(Arc::clone(store), path.clone()).with_file_size(size_bytes);
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_options(reader, reader_options())
                .await
                .map_err(object_error)?;
        let metadata = builder.metadata().clone();
        let file_metadata = metadata.file_metadata();
        let key_value = |key: &str| -> Option<u64> {
            file_metadata
                .key_value_metadata()?
                .iter()
                .find(|kv| kv.key == key)?
                .value
                .as_ref()?
                .parse()
                .ok()
        };
        let min_time_unix_nano = key_value(MIN_TIME_METADATA_KEY).unwrap_or(0);
        let max_time_unix_nano = key_value(MAX_TIME_METADATA_KEY).unwrap_or(u64::MAX);
        let num_rows = u64::try_from(file_metadata.num_rows()).unwrap_or(0);
        let column_index = bloom_column.and_then(|name| {
            metadata
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|column| column.path().string() == name)
        });
        let mut row_group_blooms = Vec::with_capacity(metadata.num_row_groups());
        for row_group in 0..metadata.num_row_groups() {
            let bloom = match column_index {
                Some(column) => builder
                    .get_row_group_column_bloom_filter(row_group, column)
                    .await
                    .map_err(object_error)?,
                None => None,
            };
            row_group_blooms.push(bloom);
        }
        Ok(Self {
            path,
            size_bytes,
            num_rows,
            min_time_unix_nano,
            max_time_unix_nano,
            metadata: ArrowReaderMetadata::try_new(metadata, reader_options())
                .map_err(object_error)?,
            row_group_blooms,
        })
    }

    /// Whether the file's time range meets `[start, end)`.
    pub fn overlaps(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        self.min_time_unix_nano < end_unix_nano && self.max_time_unix_nano >= start_unix_nano
    }

    /// Row groups whose bloom filter may hold `id` (all of them where there is no filter).
    pub fn row_groups_maybe_holding(&self, id: &[u8]) -> Vec<usize> {
        self.row_group_blooms
            .iter()
            .enumerate()
            .filter(|(_, bloom)| bloom.as_ref().is_none_or(|bloom| bloom.check(id)))
            .map(|(index, _)| index)
            .collect()
    }
}

/// The offset index (where each page starts, ~20 bytes per page and column) is kept with the
/// footer: once a row filter has picked a few rows, the reader fetches and decompresses only
/// the pages that hold them instead of whole column chunks. The column index (per-page min/max)
/// is left on disk.
fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional)
}

/// Files per tenant, for one signal.
pub type Catalog = HashMap<TenantId, Vec<Arc<FileEntry>>>;

/// Lists and loads every file of `signal` under the tenants prefix.
pub async fn load_catalog(
    store: &Arc<dyn ObjectStore>,
    signal: Signal,
    bloom_column: Option<&str>,
) -> Result<Catalog, StorageError> {
    let prefix = layout::tenants_prefix();
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| StorageError::ObjectStore {
            path: prefix.to_string(),
            source,
        })?;
    let mut catalog = Catalog::new();
    for object in objects {
        let Some((tenant, file_signal)) = layout::parse_object_path(&object.location) else {
            continue;
        };
        if file_signal != signal {
            continue;
        }
        match FileEntry::load(store, object.location.clone(), object.size, bloom_column).await {
            Ok(entry) => catalog.entry(tenant).or_default().push(Arc::new(entry)),
            Err(err) => {
                warn!(path = %object.location, error = %err, "unreadable data file skipped");
            }
        }
    }
    for files in catalog.values_mut() {
        files.sort_by_key(|file| file.min_time_unix_nano);
    }
    Ok(catalog)
}
