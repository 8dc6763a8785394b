//! A live data file as readers hold it (its manifest entry and object path), and the bounded
//! cache of parsed Parquet footers that reads share.
//!
//! Readers hold `Arc<LiveFile>`s from a snapshot; a file that leaves the manifest is deleted
//! only once no reader holds it (see [`super::TableStore::delete_unreferenced`]). Footers grow
//! with the rows of a file (about 0.5 byte per span in memory), so they are not kept per file
//! but in one least-recently-used cache with a byte limit: memory stays flat however much
//! data accumulates, and a lookup that misses it reads one footer.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::PageIndexPolicy;
use tracing::warn;

use super::byte_lru::ByteLru;
use crate::StorageError;
use crate::catalog::{DataFileMeta, FileSummary};
use crate::objects::Objects;
use crate::parquet_codec::{CodecError, MAX_TIME_METADATA_KEY, MIN_TIME_METADATA_KEY};

/// One live data file.
#[derive(Debug)]
pub struct LiveFile {
    /// Its manifest entry.
    pub meta: DataFileMeta,
    /// Its object path.
    pub path: ObjectPath,
    /// Its summary sidecar, read on first use.
    summary: tokio::sync::OnceCell<Option<Arc<FileSummary>>>,
}

impl LiveFile {
    /// A file as the manifest lists it; nothing is read yet.
    pub fn new(meta: DataFileMeta) -> Arc<Self> {
        Arc::new(Self {
            path: ObjectPath::from(meta.path.as_str()),
            meta,
            summary: tokio::sync::OnceCell::new(),
        })
    }

    /// The file's summary, read once from its sidecar; `None` when it has none (written before
    /// summaries existed, or the sidecar is unreadable: then nothing is known and every
    /// question about the file must be answered "maybe").
    pub async fn summary(&self, objects: &Objects) -> Option<Arc<FileSummary>> {
        self.summary
            .get_or_init(|| async {
                let path = ObjectPath::from(self.meta.summary_path.as_deref()?);
                let read = async {
                    let bytes = objects.get(&path).await.map_err(|err| err.to_string())?;
                    serde_json::from_slice::<FileSummary>(&bytes).map_err(|err| err.to_string())
                };
                match read.await {
                    Ok(summary) => Some(Arc::new(summary)),
                    Err(err) => {
                        warn!(path = %path, error = %err, "file summary unreadable; the file is scanned instead");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// Whether the file's time range meets `[start, end)`.
    pub fn overlaps(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        self.meta.min_time_unix_nano < end_unix_nano
            && self.meta.max_time_unix_nano >= start_unix_nano
    }
}

/// Parsed footers of recently read files, bounded in bytes.
pub struct FooterCache(ByteLru<Arc<ArrowReaderMetadata>>);

impl FooterCache {
    /// A cache holding at most `limit_bytes` of parsed footers (at least the last one read).
    pub fn new(limit_bytes: usize) -> Self {
        Self(ByteLru::new(limit_bytes, |footer| {
            footer.metadata().memory_size()
        }))
    }

    /// The footer of `file`, from the cache or read and parsed now.
    pub async fn footer(
        &self,
        objects: &Objects,
        file: &LiveFile,
    ) -> Result<Arc<ArrowReaderMetadata>, StorageError> {
        if let Some(footer) = self.0.get(&file.path) {
            return Ok(footer);
        }
        let footer = Arc::new(read_footer(objects, &file.path, file.meta.size_bytes).await?);
        self.0.insert(file.path.clone(), Arc::clone(&footer));
        Ok(footer)
    }

    /// Forgets a deleted file's footer.
    pub fn forget(&self, path: &ObjectPath) {
        self.0.forget(path);
    }

    /// Bytes of parsed footers held.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// Number of footers held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no footer is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
