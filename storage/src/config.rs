//! Storage settings with their defaults; the binary fills them from its layered config.

use std::path::PathBuf;
use std::time::Duration;

use crate::maintenance::CompactionConfig;
use crate::retention::RetentionPolicy;

/// Settings of the storage layer.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Root of everything skewer writes (the WAL and log indexes always; span and metric
    /// files unless `object_store` names a bucket).
    pub data_dir: PathBuf,
    /// The bucket span and metric files and their manifests live in; the data directory
    /// when `None`.
    pub object_store: Option<crate::remote::S3Config>,
    /// The PostgreSQL database manifests live in (`postgres://…`); beside the files (the
    /// object catalog) when `None`.
    pub catalog_url: Option<String>,
    /// Byte budget for data in flight and in buffers, across all signals.
    pub max_buffered_bytes: usize,
    /// Spans and metric points are written to files at least this often.
    pub flush_interval: Duration,
    /// A store is flushed early once its buffer holds this many bytes.
    pub flush_max_bytes: usize,
    /// Logs are committed to the index at least this often (their search visibility bound
    /// for committed data; buffered logs are searchable at once).
    pub log_commit_interval: Duration,
    /// Memory of the tantivy writer, per tenant index.
    pub log_writer_memory_bytes: usize,
    /// A log partition that takes no records this long has its writer closed (its arena and
    /// merge thread freed) and its small segments merged.
    pub log_writer_idle: Duration,
    /// A WAL segment is closed past this size.
    pub wal_segment_max_bytes: u64,
    /// Memory for parsed Parquet footers of recently read files, shared by all signals.
    pub footer_cache_bytes: usize,
    /// How small files are merged into large ones.
    pub compaction: CompactionConfig,
    /// How long data is kept.
    pub retention: RetentionPolicy,
    /// Whether this node compacts the span and metric tables and sweeps their expired files
    /// (off on nodes of a shared deployment that only ingest or only answer queries; logs,
    /// kept per node, are swept everywhere).
    pub table_maintenance: bool,
    /// How often a node sharing its tables (a bucket or a catalog database) reloads the
    /// manifests to see what other nodes flushed, merged and removed.
    pub catalog_refresh_interval: Duration,
    /// Files replaced by compaction stay this long before they are deleted (for readers in
    /// other processes that loaded an older manifest: backups, other nodes).
    pub file_delete_grace: Duration,
    /// Disk for other nodes' log partitions downloaded from the bucket (least recently read
    /// evicted past it).
    pub log_cache_bytes: u64,
    /// Whether this node takes data (OTLP, remote write): it then announces itself to the
    /// deployment's other nodes (their share of each tenant's rate limits).
    pub ingests: bool,
}

/// Default disk for other nodes' log partitions: 4 GiB.
pub const DEFAULT_LOG_CACHE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

impl StorageConfig {
    /// Whether other nodes may share the tables: they live in a bucket or their manifests in
    /// a catalog database. Then this node records WAL positions under its own id, reloads
    /// manifests now and then, and claims compactions in the catalog.
    pub fn shares_tables(&self) -> bool {
        self.object_store.is_some() || self.catalog_url.is_some()
    }

    /// Defaults rooted at `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            object_store: None,
            catalog_url: None,
            max_buffered_bytes: 512 * 1024 * 1024,
            flush_interval: Duration::from_secs(30),
            flush_max_bytes: 48 * 1024 * 1024,
            log_commit_interval: Duration::from_secs(5),
            log_writer_memory_bytes: 32 * 1024 * 1024,
            log_writer_idle: Duration::from_secs(300),
            wal_segment_max_bytes: 64 * 1024 * 1024,
            footer_cache_bytes: 128 * 1024 * 1024,
            compaction: CompactionConfig::default(),
            retention: RetentionPolicy::default(),
            table_maintenance: true,
            catalog_refresh_interval: Duration::from_secs(5),
            file_delete_grace: Duration::from_secs(60),
            log_cache_bytes: DEFAULT_LOG_CACHE_BYTES,
            ingests: true,
        }
    }
}
