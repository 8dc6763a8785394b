//! Opening a table store: every tenant's manifest from the catalog; a manifest built from the
//! files' footers for data written before manifests existed; and removal of objects no
//! manifest lists (files of a flush or compaction cut short by a crash, whose records the WAL
//! or the inputs still hold, and files whose removal was committed but not yet carried out).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tracing::{info, warn};

use super::live_file::{footer_facts, read_footer};
use super::{LiveFile, TableFiles, TableSignal, now_unix_ms};
use crate::StorageError;
use crate::catalog::{Catalog, DataFileMeta, Manifest, ManifestChange, TableKey};
use crate::layout;
use crate::model::TenantId;
use crate::objects::Objects;

/// Suffix given to a data file whose footer cannot be read while building a manifest: kept
/// for inspection, never read and never deleted automatically.
pub const DAMAGED_SUFFIX: &str = ".damaged";

/// Every tenant's live files of signal `S`.
pub(super) async fn load_tables<S: TableSignal>(
    objects: &Objects,
    catalog: &dyn Catalog,
) -> Result<HashMap<TenantId, TableFiles>, StorageError> {
    let mut tables = HashMap::new();
    for table in catalog.list_tables().await? {
        if table.signal != S::SIGNAL {
            continue;
        }
        if let Some(manifest) = catalog.load(&table).await? {
            tables.insert(table.tenant, table_files(manifest));
        }
    }
    for tenant in objects.tenants().await? {
        if tables.contains_key(&tenant) {
            continue;
        }
        if let Some(manifest) = build_from_files::<S>(objects, catalog, &tenant).await? {
            tables.insert(tenant, table_files(manifest));
        }
    }
    let mut removed = 0;
    for (tenant, table) in &tables {
        removed += remove_orphans::<S>(objects, tenant, &table.manifest).await?;
    }
    let num_files: usize = tables.values().map(|table| table.files.len()).sum();
    info!(
        signal = S::SIGNAL.name(),
        num_tenants = tables.len(),
        num_files,
        orphans_removed = removed,
        "catalog loaded"
    );
    Ok(tables)
}

fn table_files(manifest: Manifest) -> TableFiles {
    let files: Vec<Arc<LiveFile>> = manifest.files.iter().cloned().map(LiveFile::new).collect();
    TableFiles::new(Arc::new(manifest), files)
}

/// The manifest of a tenant's files of signal `S` read from their footers, committed as the
/// table's first version; `None` when the tenant has no such files.
pub async fn build_from_files<S: TableSignal>(
    objects: &Objects,
    catalog: &dyn Catalog,
    tenant: &TenantId,
) -> Result<Option<Manifest>, StorageError> {
    let table = TableKey {
        tenant: tenant.clone(),
        signal: S::SIGNAL,
    };
    let files = files_from_footers(objects, &table, S::FORMAT).await?;
    if files.is_empty() {
        return Ok(None);
    }
    let change = ManifestChange {
        add: files,
        ..ManifestChange::default()
    };
    let manifest = catalog
        .commit(&table, &Manifest::empty(&table), &change)
        .await?;
    info!(
        table = %table,
        num_files = manifest.files.len(),
        "built a manifest from the files' footers"
    );
    Ok(Some(manifest))
}

/// Manifest entries for every readable data file of a table, read from footers; unreadable
/// files are renamed with [`DAMAGED_SUFFIX`].
pub async fn files_from_footers(
    objects: &Objects,
    table: &TableKey,
    default_format: &str,
) -> Result<Vec<DataFileMeta>, StorageError> {
    let listed = objects
        .list(&layout::signal_prefix(&table.tenant, table.signal))
        .await?;
    let sizes: std::collections::HashMap<String, u64> = listed
        .iter()
        .map(|object| (object.location.to_string(), object.size))
        .collect();
    let mut files = Vec::new();
    for object in listed {
        if layout::parse_object_path(&object.location).is_none() {
            continue;
        }
        // A trace-id filter written beside the file is kept: its size gives its block count.
        let filter_path = layout::trace_id_filter_path(&object.location).to_string();
        let trace_id_filter = sizes
            .get(&filter_path)
            .filter(|size| **size > 0 && **size % 32 == 0)
            .map(|size| crate::catalog::IdFilterMeta {
                path: filter_path.clone(),
                num_blocks: u32::try_from(size / 32).unwrap_or(u32::MAX),
                num_ids: 0,
            });
        let summary_path = layout::summary_path(&object.location).to_string();
        let summary_path = sizes.contains_key(&summary_path).then_some(summary_path);
        let index_path = layout::index_path(table.signal, &object.location).to_string();
        let index_path = sizes.contains_key(&index_path).then_some(index_path);
        match read_footer(objects, &object.location, object.size).await {
            Ok(footer) => {
                let facts = footer_facts(&footer);
                files.push(DataFileMeta {
                    path: object.location.to_string(),
                    format: facts.format.unwrap_or_else(|| default_format.to_owned()),
                    size_bytes: object.size,
                    num_rows: facts.num_rows,
                    min_time_unix_nano: facts.min_time_unix_nano,
                    max_time_unix_nano: facts.max_time_unix_nano,
                    partition_hour: facts.min_time_unix_nano / layout::WINDOW_NANOS,
                    level: 0,
                    created_unix_ms: now_unix_ms(),
                    trace_id_filter,
                    summary_path,
                    index_path,
                });
            }
            Err(err) => {
                let damaged = ObjectPath::from(format!("{}{DAMAGED_SUFFIX}", object.location));
                warn!(path = %object.location, error = %err, renamed_to = %damaged, "unreadable data file set aside");
                objects
                    .store()
                    .rename(&object.location, &damaged)
                    .await
                    .map_err(|source| crate::objects::object_error(&object.location, source))?;
            }
        }
    }
    files.sort_by_key(|file| file.min_time_unix_nano);
    Ok(files)
}

/// Deletes objects under the table's prefix that its manifest does not reference; returns how
/// many. Only safe while no flush or compaction of the table runs (at open).
pub async fn remove_orphans<S: TableSignal>(
    objects: &Objects,
    tenant: &TenantId,
    manifest: &Manifest,
) -> Result<usize, StorageError> {
    let orphans = find_orphans(objects, tenant, S::SIGNAL, manifest).await?;
    for path in &orphans {
        objects.delete(path).await?;
    }
    if !orphans.is_empty() {
        info!(tenant = %tenant, signal = S::SIGNAL.name(), removed = orphans.len(), "removed files no manifest lists");
    }
    Ok(orphans.len())
}

/// In a remote store other nodes may be writing files they have not committed yet: only
/// objects older than this are taken for a crashed flush's leftovers there.
pub const REMOTE_ORPHAN_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Objects under a table's prefix that its manifest does not reference (manifest versions and
/// set-aside damaged files excepted). In a remote store (shared with other nodes), only those
/// older than [`REMOTE_ORPHAN_MIN_AGE`]: a younger one may be another node's upload in flight.
pub async fn find_orphans(
    objects: &Objects,
    tenant: &TenantId,
    signal: crate::model::Signal,
    manifest: &Manifest,
) -> Result<Vec<ObjectPath>, StorageError> {
    let mut referenced: HashSet<&str> = HashSet::new();
    for file in &manifest.files {
        referenced.extend(file.object_paths());
    }
    let listed = objects.list(&layout::signal_prefix(tenant, signal)).await?;
    let shared = objects.local_root().is_none();
    let min_age = chrono::Duration::from_std(REMOTE_ORPHAN_MIN_AGE).unwrap_or_default();
    let old_enough = |object: &object_store::ObjectMeta| {
        !shared || chrono::Utc::now() - object.last_modified >= min_age
    };
    Ok(listed
        .into_iter()
        .filter(old_enough)
        .map(|object| object.location)
        .filter(|path| {
            !referenced.contains(path.as_ref())
                && layout::parse_manifest_version(path).is_none()
                && !path.as_ref().ends_with(DAMAGED_SUFFIX)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::TableKey;
    use crate::model::Signal;

    /// A young unlisted object in a shared store may be another node's upload: it stays; in
    /// the data directory (one writer, under its lock) it is a leftover and goes.
    #[tokio::test]
    async fn young_unlisted_objects_stay_in_a_shared_store_only() {
        let tenant: TenantId = "t".parse().unwrap();
        let table = TableKey {
            tenant: tenant.clone(),
            signal: Signal::Traces,
        };
        let manifest = Manifest::empty(&table);
        let path = layout::data_file_path(&tenant, Signal::Traces, 1_700_000_000_000_000_000, 7);
        let shared = Objects::remote(Arc::new(object_store::memory::InMemory::new()));
        let dir = tempfile::tempdir().unwrap();
        let local = Objects::local(dir.path()).unwrap();
        for objects in [&shared, &local] {
            objects
                .put(&path, bytes::Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let orphans = |objects: Objects| {
            let manifest = manifest.clone();
            let tenant = tenant.clone();
            async move {
                find_orphans(&objects, &tenant, Signal::Traces, &manifest)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(orphans(shared).await, Vec::<ObjectPath>::new());
        assert_eq!(orphans(local).await, vec![path]);
    }
}
