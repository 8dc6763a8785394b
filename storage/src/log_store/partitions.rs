//! The log partitions: one tantivy index per tenant and UTC day, found on disk at start,
//! created when the first record of a day arrives, and dropped whole by retention.
//!
//! A partition knows the time range it can hold (its day), the WAL position its last commit
//! reached (the commit payload, so replay adds no record twice), and whether it holds a writer.
//! An index of the first format (one per tenant, all days) is moved aside as the tenant's
//! `legacy` partition: searched with the time range its records span, never written again,
//! and dropped once all of it has expired.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::{info, warn};

use crate::StorageError;
use crate::buffer::Chunks;
use crate::layout::{self, DAY_NANOS};
use crate::logs::streams::StreamCatalog;
use crate::logs::streams::stream_labels;
use crate::logs::{LogIndex, LogIndexConfig};
use crate::model::{LogRecord, TenantId};
use crate::wal::Lsn;

/// Which slice of a tenant's logs a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionId {
    /// The index of the first format: every day before partitions existed.
    Legacy,
    /// One UTC day, counted from the Unix epoch.
    Day(u64),
}

impl PartitionId {
    /// The partition a record with this effective time belongs to.
    pub fn of_time(time_unix_nano: u64) -> Self {
        Self::Day(time_unix_nano / DAY_NANOS)
    }

    /// The directory name under the tenant's log directory.
    pub fn dir_name(self) -> String {
        match self {
            Self::Legacy => LEGACY_DIR.to_owned(),
            Self::Day(day) => layout::day_name(day),
        }
    }
}

/// The tenant's pre-partition index, moved aside.
const LEGACY_DIR: &str = "legacy";

/// A partition's identity: tenant and slice.
pub type PartitionKey = (TenantId, PartitionId);

/// One open partition.
pub struct Partition {
    /// Its tenant and slice.
    pub key: PartitionKey,
    /// Its directory.
    pub dir: PathBuf,
    /// The index; a commit adds under the read lock and reloads under the write lock, a
    /// search holds the read lock, retention and the closing of idle writers the write lock.
    pub index: RwLock<LogIndex>,
    /// The WAL position of the last commit: records of this partition up to it are indexed.
    pub committed_lsn: std::sync::atomic::AtomicU64,
    /// When records were last added (idle writers are closed).
    pub last_write: std::sync::Mutex<Option<Instant>>,
    /// When it was opened: a partition that took no records since counts as quiet from then
    /// (a restart does not make every day quiet at once).
    pub opened_at: Instant,
    /// Its segments are not merged because it is quiet before this (`quiet_merge`).
    quiet_merge_not_before: std::sync::Mutex<Option<Instant>>,
    /// The streams of the partition, by id (what the index's `stream_id` values name).
    pub streams: std::sync::Mutex<StreamCatalog>,
    /// Time range for pruning: a day's bounds, or what the legacy index holds.
    time_range: (u64, u64),
}

impl Partition {
    /// Opens (or creates) the index of `key` in `dir`.
    pub fn open(
        key: PartitionKey,
        dir: PathBuf,
        config: &LogIndexConfig,
    ) -> Result<Self, StorageError> {
        let index = LogIndex::open(&dir, config)?;
        let committed_lsn = index
            .committed_payload()?
            .and_then(|payload| parse_payload(&payload))
            .unwrap_or(0);
        let time_range = match key.1 {
            PartitionId::Day(day) => (day * DAY_NANOS, (day + 1) * DAY_NANOS - 1),
            PartitionId::Legacy => index.time_range().unwrap_or((0, 0)),
        };
        // A partition without a catalog has one started now: complete only if the index is
        // new (every record it will hold gets interned).
        let streams = match StreamCatalog::load(&dir)? {
            Some(catalog) => catalog,
            None => StreamCatalog::new(index.format() >= 2 && index.num_docs() == 0),
        };
        Ok(Self {
            key,
            dir,
            streams: std::sync::Mutex::new(streams),
            index: RwLock::new(index),
            committed_lsn: std::sync::atomic::AtomicU64::new(committed_lsn),
            last_write: std::sync::Mutex::new(None),
            opened_at: Instant::now(),
            quiet_merge_not_before: std::sync::Mutex::new(None),
            time_range,
        })
    }

    /// Before when its segments are not merged because it is quiet (`None`: no bound).
    pub fn quiet_merge_not_before(&self) -> Option<Instant> {
        *self
            .quiet_merge_not_before
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Its segments are not merged because it is quiet before `at`.
    pub fn set_quiet_merge_not_before(&self, at: Instant) {
        *self
            .quiet_merge_not_before
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// The latest record time the partition can hold.
    pub fn max_time_unix_nano(&self) -> u64 {
        self.time_range.1
    }

    /// Whether the partition may hold records in `[start, end)`.
    pub fn overlaps(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        self.time_range.0 < end_unix_nano && self.time_range.1 >= start_unix_nano
    }

    /// The catalog, locked.
    pub fn streams(&self) -> std::sync::MutexGuard<'_, StreamCatalog> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Interns the streams of `records` (their time bounds widened); the id of each record,
    /// in order. The catalog must be saved ([`Self::save_streams`]) before the commit that
    /// uses the ids.
    pub fn intern_streams(&self, records: &[&LogRecord]) -> Vec<u32> {
        let mut catalog = self.streams();
        // Records of one export share their resource: label it once.
        let mut by_resource: HashMap<usize, u32> = HashMap::new();
        let mut bounds: HashMap<u32, (u64, u64)> = HashMap::new();
        let ids = records
            .iter()
            .map(|record| {
                let time = record.effective_time_unix_nano();
                let id = *by_resource
                    .entry(Arc::as_ptr(&record.resource) as usize)
                    .or_insert_with(|| catalog.intern(&stream_labels(&record.resource), time));
                let bound = bounds.entry(id).or_insert((time, time));
                *bound = (bound.0.min(time), bound.1.max(time));
                id
            })
            .collect();
        for (id, (first, last)) in bounds {
            catalog.widen(id, first, last);
        }
        ids
    }

    /// Saves the stream catalog if it changed since it was last saved.
    pub fn save_streams(&self) -> Result<(), StorageError> {
        self.streams().save_if_changed(&self.dir)
    }

    /// Bytes of the index on disk.
    pub fn bytes_on_disk(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| entry.metadata().ok())
                    .filter(|metadata| metadata.is_file())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// The records of each tenant's chunks from `first_chunk` on, grouped by partition in key
/// order, each with the number of its chunk, in apply order.
pub fn group_by_partition<'a>(
    tenants: impl Iterator<Item = (&'a TenantId, &'a Chunks<LogRecord>)>,
    first_chunk: usize,
) -> BTreeMap<PartitionKey, Vec<(usize, &'a LogRecord)>> {
    let mut groups: BTreeMap<PartitionKey, Vec<(usize, &LogRecord)>> = BTreeMap::new();
    for (tenant, chunks) in tenants {
        for (number, chunk) in chunks.0.iter().enumerate().skip(first_chunk) {
            for record in chunk.iter() {
                let id = PartitionId::of_time(record.effective_time_unix_nano());
                groups
                    .entry((tenant.clone(), id))
                    .or_default()
                    .push((number, record));
            }
        }
    }
    groups
}

/// The records of a group (see [`group_by_partition`]) in chunks from `first_chunk` on.
pub fn records_from_chunk<'a>(
    group: &[(usize, &'a LogRecord)],
    first_chunk: usize,
) -> Vec<&'a LogRecord> {
    let first = group.partition_point(|&(number, _)| number < first_chunk);
    group[first..].iter().map(|&(_, record)| record).collect()
}

/// The commit payload naming the WAL position a commit reached.
pub fn commit_payload(lsn: Lsn) -> String {
    format!("{{\"lsn\":{lsn}}}")
}

fn parse_payload(payload: &str) -> Option<Lsn> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    value.get("lsn")?.as_u64()
}

/// Opens every partition under the log directory, moving first-format indexes aside.
pub fn open_all(
    logs_dir: &Path,
    config: &LogIndexConfig,
) -> Result<BTreeMap<PartitionKey, Arc<Partition>>, StorageError> {
    std::fs::create_dir_all(logs_dir).map_err(|err| StorageError::io(logs_dir, err))?;
    let mut partitions = BTreeMap::new();
    for tenant_entry in
        std::fs::read_dir(logs_dir).map_err(|err| StorageError::io(logs_dir, err))?
    {
        let tenant_entry = tenant_entry.map_err(|err| StorageError::io(logs_dir, err))?;
        let Some(tenant) = tenant_entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<TenantId>().ok())
        else {
            continue;
        };
        let tenant_dir = tenant_entry.path();
        move_first_format_aside(&tenant_dir)?;
        for entry in
            std::fs::read_dir(&tenant_dir).map_err(|err| StorageError::io(&tenant_dir, err))?
        {
            let entry = entry.map_err(|err| StorageError::io(&tenant_dir, err))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let id = if name == LEGACY_DIR {
                PartitionId::Legacy
            } else if let Some(day) = layout::parse_day_name(&name) {
                PartitionId::Day(day)
            } else {
                continue;
            };
            let key = (tenant.clone(), id);
            match Partition::open(key.clone(), entry.path(), config) {
                Ok(partition) => {
                    partitions.insert(key, Arc::new(partition));
                }
                Err(err) => {
                    // Kept for inspection, out of the way: new records of the day start a
                    // fresh index instead of failing every commit.
                    let aside = entry.path().with_extension("damaged");
                    warn!(dir = %entry.path().display(), error = %err, renamed_to = %aside.display(), "unreadable log partition set aside");
                    std::fs::rename(entry.path(), &aside)
                        .map_err(|err| StorageError::io(&aside, err))?;
                }
            }
        }
    }
    info!(num_partitions = partitions.len(), "log partitions opened");
    Ok(partitions)
}

/// A tenant directory of the first format holds a tantivy index itself (`meta.json`): move
/// its files into `legacy/` so the directory holds partitions only.
fn move_first_format_aside(tenant_dir: &Path) -> Result<(), StorageError> {
    if !tenant_dir.join("meta.json").is_file() {
        return Ok(());
    }
    let legacy = tenant_dir.join(LEGACY_DIR);
    std::fs::create_dir_all(&legacy).map_err(|err| StorageError::io(&legacy, err))?;
    let entries: Vec<_> = std::fs::read_dir(tenant_dir)
        .map_err(|err| StorageError::io(tenant_dir, err))?
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .collect();
    // meta.json last: until it moves, a crash leaves a tenant directory that is still
    // recognised as the first format, and the move resumes on the next start.
    let (meta, others): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|entry| entry.file_name() == "meta.json");
    for entry in others.into_iter().chain(meta) {
        let target = legacy.join(entry.file_name());
        std::fs::rename(entry.path(), &target).map_err(|err| StorageError::io(&target, err))?;
    }
    crate::objects::sync_path(&legacy)?;
    crate::objects::sync_path(tenant_dir)?;
    info!(dir = %tenant_dir.display(), "moved a first-format log index to its legacy partition");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_days_bound_partitions() {
        assert_eq!(parse_payload(&commit_payload(42)), Some(42));
        assert_eq!(parse_payload(""), None);
        assert_eq!(PartitionId::of_time(DAY_NANOS * 3 + 5), PartitionId::Day(3));
        assert_eq!(PartitionId::Day(19_000).dir_name(), "2022-01-08");
    }
}
