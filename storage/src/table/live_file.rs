//! A live data file as readers hold it: its manifest entry, its object path, and its Parquet
//! footer, read on first use and kept while the file is live.
//!
//! Readers hold `Arc<LiveFile>`s from a snapshot; a file that leaves the manifest is deleted
//! only once no reader holds it (see [`super::TableStore::delete_unreferenced`]).

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::PageIndexPolicy;
use tokio::sync::OnceCell;

use crate::StorageError;
use crate::catalog::DataFileMeta;
use crate::objects::Objects;
use crate::parquet_codec::{CodecError, MAX_TIME_METADATA_KEY, MIN_TIME_METADATA_KEY};

/// One live data file.
#[derive(Debug)]
pub struct LiveFile {
    /// Its manifest entry.
    pub meta: DataFileMeta,
    /// Its object path.
    pub path: ObjectPath,
    footer: OnceCell<ArrowReaderMetadata>,
}

impl LiveFile {
    /// A file as the manifest lists it; nothing is read yet.
    pub fn new(meta: DataFileMeta) -> Arc<Self> {
        Arc::new(Self {
            path: ObjectPath::from(meta.path.as_str()),
            meta,
            footer: OnceCell::new(),
        })
    }

    /// The parsed footer with its page index, read on first use.
    pub async fn footer(&self, objects: &Objects) -> Result<&ArrowReaderMetadata, StorageError> {
        self.footer
            .get_or_try_init(|| read_footer(objects, &self.path, self.meta.size_bytes))
            .await
    }

    /// Whether the file's time range meets `[start, end)`.
    pub fn overlaps(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        self.meta.min_time_unix_nano < end_unix_nano
            && self.meta.max_time_unix_nano >= start_unix_nano
    }

    /// Bytes of the footer held in memory (0 until it is read).
    pub fn footer_bytes(&self) -> usize {
        self.footer
            .get()
            .map_or(0, |footer| footer.metadata().memory_size())
    }
}

/// The page index (offset index: where each page starts; column index: per-page min/max of
/// the columns written with page statistics) is read with the footer: once a predicate has
/// picked a few pages, the reader fetches and decompresses only those.
pub fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional)
}

/// Reads and parses a file's footer.
pub async fn read_footer(
    objects: &Objects,
    path: &ObjectPath,
    size_bytes: u64,
) -> Result<ArrowReaderMetadata, StorageError> {
    let reader = ParquetObjectReader::new(Arc::clone(objects.store()), path.clone())
        .with_file_size(size_bytes);
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, reader_options())
        .await
        .map_err(|err| StorageError::Codec(CodecError::from(err)))?;
    ArrowReaderMetadata::try_new(Arc::clone(builder.metadata()), reader_options())
        .map_err(|err| StorageError::Codec(CodecError::from(err)))
}

/// What a footer says about a file written by any version: format, time range, rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterFacts {
    /// `skewer.format`, when present.
    pub format: Option<String>,
    /// Earliest record time.
    pub min_time_unix_nano: u64,
    /// Latest record time.
    pub max_time_unix_nano: u64,
    /// Rows.
    pub num_rows: u64,
}

/// Reads the facts a manifest entry needs from a footer (migration and repair).
pub fn footer_facts(footer: &ArrowReaderMetadata) -> FooterFacts {
    let file_metadata = footer.metadata().file_metadata();
    let key_value = |key: &str| -> Option<String> {
        file_metadata
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == key)?
            .value
            .clone()
    };
    let time = |key: &str| key_value(key).and_then(|value| value.parse().ok());
    FooterFacts {
        format: key_value(crate::parquet_codec::FORMAT_METADATA_KEY),
        min_time_unix_nano: time(MIN_TIME_METADATA_KEY).unwrap_or(0),
        max_time_unix_nano: time(MAX_TIME_METADATA_KEY).unwrap_or(u64::MAX),
        num_rows: u64::try_from(file_metadata.num_rows()).unwrap_or(0),
    }
}
