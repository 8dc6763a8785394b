//! Backup and restore of a data directory, while a server runs on it.
//!
//! A backup is a data directory itself, consistent without stopping anything, because every
//! part is copied in an order that covers what changes meanwhile:
//!
//! 1. **The WAL first**: the checkpoint, then every segment (an open file survives its
//!    deletion). Every record acknowledged before the backup began is in a segment copied
//!    here, unless it was already flushed and checkpointed before this step.
//! 2. **Then each table's manifest and exactly its files.** Anything flushed before step 1
//!    is in them; anything flushed after is in both places, and replay skips what a manifest
//!    says is flushed. A file a merge replaced meanwhile (after its grace period) makes the
//!    table's copy start over from its newer manifest.
//! 3. **Then each log partition**: its `meta.json` and exactly the segment files it names
//!    (and its stream catalog),
//!    opened before copying; a merge that removed one meanwhile makes the partition's copy
//!    start over. Each commit records the WAL position it reached, so replay skips what the
//!    copied partition holds.
//!
//! Restore copies a backup into a new data directory; the server replays the copied WAL on
//! its first start.

pub mod deployment;
pub mod place;

use std::collections::HashSet;
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use tracing::info;

use crate::StorageError;
use crate::catalog::{Catalog, ObjectCatalog};
use crate::layout;
use crate::logs::streams::CATALOG_FILE as STREAM_CATALOG_FILE;
use crate::object_copy::copy_object;
use crate::objects::{Objects, sync_path};

/// How often a table or partition copy starts over when files vanish under it.
const ATTEMPTS: usize = 5;

/// What a backup or restore copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopySummary {
    /// WAL segments.
    pub wal_segments: u64,
    /// Data files and their filters.
    pub data_files: u64,
    /// Log index partitions.
    pub log_partitions: u64,
    /// Bytes copied in all.
    pub bytes: u64,
}

/// Errors of backup and restore, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target must be new or empty.
    #[error("{0} exists and is not empty; choose a new directory")]
    TargetNotEmpty(PathBuf),
    /// The source is not a skewer data directory.
    #[error("{0} is not a skewer data directory (no wal/ or objects/)")]
    NotADataDir(PathBuf),
    /// Files kept vanishing under a copy (an extremely busy compaction).
    #[error("{what} kept changing during the copy; try again")]
    Unstable {
        /// The table or partition.
        what: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The catalog database failed or cannot be reached.
    #[error("catalog database: {0}")]
    Database(String),
    /// A deployment restore needs a deployment backup.
    #[error(
        "{0} is not a deployment backup (no deployment-backup.json; `skewer backup --config` writes one)"
    )]
    NotADeploymentBackup(PathBuf),
    /// A deployment restore goes into a deployment without data.
    #[error(
        "the target deployment already holds {tables} tables and {replicas} log replicas: restore into \
         an empty bucket (or a new prefix) and a catalog database without tables"
    )]
    DeploymentNotEmpty {
        /// Tables in its catalog.
        tables: usize,
        /// Log replicas in its bucket.
        replicas: usize,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |err| StorageError::io(path, err)
}

fn ensure_empty(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            // The lock the caller may hold on the new directory is not content.
            let mut content = entries
                .flatten()
                .filter(|entry| entry.file_name() != ".lock");
            if content.next().is_some() {
                return Err(BackupError::TargetNotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(err) if err.kind() == IoErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            Ok(())
        }
        Err(err) => Err(StorageError::io(dir, err).into()),
    }
}

/// Copies an open file to `target` and fsyncs it; returns the bytes copied. Secret files
/// (`layout::OWNER_ONLY_FILES`) are created readable by their owner only from the start.
fn copy_open(source: &mut std::fs::File, target: &Path) -> Result<u64, StorageError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if target
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| layout::OWNER_ONLY_FILES.contains(&name))
    {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut out = options.open(target).map_err(io(target))?;
    let bytes = std::io::copy(source, &mut out).map_err(io(target))?;
    out.sync_all().map_err(io(target))?;
    Ok(bytes)
}

/// Backs `data_dir` up into `target` (new or empty), consistently, while a server may run.
pub async fn backup(data_dir: &Path, target: &Path) -> Result<CopySummary, BackupError> {
    if !layout::wal_dir(data_dir).is_dir() && !layout::objects_dir(data_dir).is_dir() {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    ensure_empty(target)?;
    let mut summary = CopySummary::default();
    let (source, target_owned) = (data_dir.to_path_buf(), target.to_path_buf());
    let wal = tokio::task::spawn_blocking(move || copy_wal(&source, &target_owned))
        .await
        .map_err(StorageError::from)??;
    summary.wal_segments = wal.0;
    summary.bytes += wal.1;
    let objects = Objects::local(&layout::objects_dir(data_dir))?;
    let target_objects = Objects::local(&layout::objects_dir(target))?;
    let catalog = ObjectCatalog::new(objects.clone());
    let target_catalog = ObjectCatalog::new(target_objects.clone());
    for table in catalog.list_tables().await.map_err(StorageError::from)? {
        let copied =
            copy_table(&catalog, &objects, &target_objects, &target_catalog, &table).await?;
        summary.data_files += copied.0;
        summary.bytes += copied.1;
    }
    let (source, target_owned) = (data_dir.to_path_buf(), target.to_path_buf());
    let logs = tokio::task::spawn_blocking(move || copy_log_partitions(&source, &target_owned))
        .await
        .map_err(StorageError::from)??;
    summary.log_partitions = logs.0;
    summary.bytes += logs.1;
    for name in layout::OWNER_ONLY_FILES {
        summary.bytes += copy_owner_only_file(data_dir, target, name)?;
    }
    sync_path(target)?;
    info!(?summary, target = %target.display(), "backup complete");
    Ok(summary)
}

/// A secret file (the API key hashes, the redaction key) travels with the data, readable by
/// its owner only; each is replaced whole when it changes, so one read is one version.
fn copy_owner_only_file(data_dir: &Path, target: &Path, name: &str) -> Result<u64, StorageError> {
    let source = data_dir.join(name);
    let mut file = match std::fs::File::open(&source) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(StorageError::io(&source, err)),
    };
    let destination = target.join(name);
    let bytes = copy_open(&mut file, &destination)?;
    owner_only(&destination)?;
    Ok(bytes)
}

/// Makes `path` readable and writable by its owner only.
fn owner_only(path: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

/// Step 1: the checkpoint, then every segment.
fn copy_wal(data_dir: &Path, target: &Path) -> Result<(u64, u64), StorageError> {
    let source = layout::wal_dir(data_dir);
    let destination = layout::wal_dir(target);
    std::fs::create_dir_all(&destination).map_err(io(&destination))?;
    let mut copied = (0, 0);
    let checkpoint = source.join("checkpoint.json");
    match std::fs::File::open(&checkpoint) {
        Ok(mut file) => copied.1 += copy_open(&mut file, &destination.join("checkpoint.json"))?,
        Err(err) if err.kind() == IoErrorKind::NotFound => {}
        Err(err) => return Err(StorageError::io(&checkpoint, err)),
    }
    for (_, path) in crate::wal::segment::list_segments(&source)? {
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            // Checkpointed and deleted meanwhile: its records are in the files copied next.
            Err(err) if err.kind() == IoErrorKind::NotFound => continue,
            Err(err) => return Err(StorageError::io(&path, err)),
        };
        let name = path.file_name().unwrap_or_default();
        copied.1 += copy_open(&mut file, &destination.join(name))?;
        copied.0 += 1;
    }
    sync_path(&destination)?;
    Ok(copied)
}

/// Step 2: a table's newest manifest in `catalog` and exactly its files, from `objects` to
/// `target`, the manifest last (into `target_catalog`); (files, bytes) copied.
pub(crate) async fn copy_table(
    catalog: &dyn Catalog,
    objects: &Objects,
    target: &Objects,
    target_catalog: &dyn Catalog,
    table: &crate::catalog::TableKey,
) -> Result<(u64, u64), BackupError> {
    'attempt: for _ in 0..ATTEMPTS {
        let Some(manifest) = catalog.load(table).await.map_err(StorageError::from)? else {
            return Ok((0, 0));
        };
        let mut copied = (0, 0);
        for file in &manifest.files {
            for path in file.object_paths() {
                // Gone: a merge replaced it after its grace; the newer manifest names its heir.
                let Some(bytes) = copy_object(objects, target, &ObjectPath::from(path)).await?
                else {
                    continue 'attempt;
                };
                copied.1 += bytes;
                copied.0 += 1;
            }
        }
        target_catalog
            .overwrite(table, &manifest)
            .await
            .map_err(StorageError::from)?;
        return Ok(copied);
    }
    Err(BackupError::Unstable {
        what: format!("table {table}"),
    })
}

/// Step 3: every log partition, each as its `meta.json` names it.
fn copy_log_partitions(data_dir: &Path, target: &Path) -> Result<(u64, u64), BackupError> {
    let logs = layout::log_indexes_dir(data_dir);
    let mut copied = (0, 0);
    let Ok(tenants) = std::fs::read_dir(&logs) else {
        return Ok(copied);
    };
    for tenant in tenants.flatten() {
        let Ok(partitions) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for partition in partitions.flatten() {
            let source = partition.path();
            if !source.join("meta.json").is_file() {
                continue;
            }
            let destination = layout::log_indexes_dir(target)
                .join(tenant.file_name())
                .join(partition.file_name());
            copied.1 += copy_partition(&source, &destination)?;
            copied.0 += 1;
        }
    }
    Ok(copied)
}

/// Copies one tantivy index as of one `meta.json`, with its stream catalog; returns the bytes
/// copied.
fn copy_partition(source: &Path, destination: &Path) -> Result<u64, BackupError> {
    for _ in 0..ATTEMPTS {
        let meta_path = source.join("meta.json");
        let meta = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let segments = segment_ids(&meta).map_err(|reason| {
            StorageError::InvalidQuery(format!("{}: {reason}", meta_path.display()))
        })?;
        let mut open = Vec::new();
        let mut vanished = false;
        for entry in std::fs::read_dir(source).map_err(io(source))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let belongs = name
                .split_once('.')
                .is_some_and(|(id, _)| segments.contains(id));
            if !belongs {
                continue;
            }
            match std::fs::File::open(entry.path()) {
                Ok(file) => open.push((name, file)),
                Err(err) if err.kind() == IoErrorKind::NotFound => vanished = true,
                Err(err) => return Err(StorageError::io(entry.path(), err).into()),
            }
        }
        let present: HashSet<&str> = open
            .iter()
            .filter_map(|(name, _)| name.split_once('.').map(|(id, _)| id))
            .collect();
        if vanished || segments.iter().any(|id| !present.contains(id.as_str())) {
            continue; // a merge replaced segments meanwhile: read the newer meta.json
        }
        std::fs::create_dir_all(destination).map_err(io(destination))?;
        let mut bytes = 0;
        for (name, mut file) in open {
            bytes += copy_open(&mut file, &destination.join(name))?;
        }
        // The stream catalog, read after `meta.json`: ids only grow, so it names every stream
        // id of the segments copied.
        let catalog = source.join(STREAM_CATALOG_FILE);
        match std::fs::read(&catalog) {
            Ok(content) => {
                let target_catalog = destination.join(STREAM_CATALOG_FILE);
                std::fs::write(&target_catalog, &content).map_err(io(&target_catalog))?;
                sync_path(&target_catalog)?;
                bytes += content.len() as u64;
            }
            Err(err) if err.kind() == IoErrorKind::NotFound => {}
            Err(err) => return Err(StorageError::io(&catalog, err).into()),
        }
        let target_meta = destination.join("meta.json");
        std::fs::write(&target_meta, &meta).map_err(io(&target_meta))?;
        sync_path(&target_meta)?;
        sync_path(destination)?;
        return Ok(bytes + meta.len() as u64);
    }
    Err(BackupError::Unstable {
        what: format!("log partition {}", source.display()),
    })
}

/// The segment ids a tantivy `meta.json` lists.
fn segment_ids(meta: &[u8]) -> Result<HashSet<String>, String> {
    let value: serde_json::Value = serde_json::from_slice(meta).map_err(|err| err.to_string())?;
    let segments = value
        .get("segments")
        .and_then(|segments| segments.as_array())
        .ok_or("no segments list")?;
    segments
        .iter()
        .map(|segment| {
            segment
                .get("segment_id")
                .and_then(|id| id.as_str())
                .map(|id| id.replace('-', ""))
                .ok_or_else(|| "a segment without an id".to_owned())
        })
        .collect()
}

/// Restores a backup into `data_dir` (new or empty): a plain copy of the backup's tree.
pub fn restore(backup_dir: &Path, data_dir: &Path) -> Result<CopySummary, BackupError> {
    if !layout::wal_dir(backup_dir).is_dir() {
        return Err(BackupError::NotADataDir(backup_dir.to_path_buf()));
    }
    ensure_empty(data_dir)?;
    let mut summary = CopySummary::default();
    copy_tree(backup_dir, data_dir, &mut summary)?;
    for name in layout::OWNER_ONLY_FILES {
        let path = data_dir.join(name);
        if path.is_file() {
            owner_only(&path)?;
        }
    }
    sync_path(data_dir)?;
    Ok(summary)
}

fn copy_tree(source: &Path, target: &Path, summary: &mut CopySummary) -> Result<(), StorageError> {
    std::fs::create_dir_all(target).map_err(io(target))?;
    for entry in std::fs::read_dir(source).map_err(io(source))?.flatten() {
        let path = entry.path();
        let destination = target.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &destination, summary)?;
            continue;
        }
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        summary.bytes += copy_open(&mut file, &destination)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wal") {
            summary.wal_segments += 1;
        } else if name.ends_with(".parquet") {
            summary.data_files += 1;
        } else if name == "meta.json" {
            summary.log_partitions += 1;
        }
    }
    sync_path(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_come_from_meta_json() {
        let meta = br#"{"segments":[{"segment_id":"0a1b2c","max_doc":3},{"segment_id":"ffee","max_doc":1}],"opstamp":4}"#;
        let ids = segment_ids(meta).unwrap();
        assert_eq!(ids, HashSet::from(["0a1b2c".to_owned(), "ffee".to_owned()]));
        assert!(segment_ids(b"{}").is_err());
    }

    #[test]
    fn targets_must_be_new_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        ensure_empty(&dir.path().join("new")).unwrap();
        assert!(dir.path().join("new").is_dir());
        std::fs::write(dir.path().join("new/x"), b"x").unwrap();
        assert!(matches!(
            ensure_empty(&dir.path().join("new")),
            Err(BackupError::TargetNotEmpty(_))
        ));
    }
}
