//! Backup and restore of a shared deployment (a bucket and a catalog database), while its
//! nodes run.
//!
//! A deployment backup goes to a new directory or bucket prefix ([`BackupPlace`]): every
//! table's newest manifest (in the embedded catalog's layout) and exactly its files, and every
//! log replica's manifest and its files, under the keys they have in the deployment, each
//! copied as in a data directory backup (files first, the manifest last, a copy starting over
//! from a newer manifest when a merge removed a file under it); `catalog-database.json` holds
//! the catalog database's settings (the tenant limits) and API key records, and
//! `deployment-backup.json`, written last, marks the backup whole. What ingest nodes have not
//! flushed or uploaded yet is in their WALs and local log partitions, not in the bucket: a
//! backup covers the deployment as of one flush interval (spans, metrics) or one commit
//! interval plus an upload (logs) before it started.
//!
//! Restore copies a backup into a new deployment: an empty bucket (or prefix) and a catalog
//! without tables; the settings and keys are written to its database first, then the objects,
//! each manifest committed through its catalog after its files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::info;

use super::place::BackupPlace;
use super::{ATTEMPTS, BackupError};
use crate::StorageError;
use crate::auth::{KeyDatabase, KeyRecord};
use crate::catalog::database::Schema;
use crate::catalog::{Catalog, ObjectCatalog, SettingsDatabase};
use crate::config::StorageConfig;
use crate::deployment::Deployment;
use crate::log_store::shared::upload::parse_manifest;
use crate::log_store::shared::{
    ReplicaKey, file_path, manifest_path, manifests_prefix, parse_manifest_path,
};
use crate::object_copy::copy_object;
use crate::objects::Objects;

/// The file that makes a directory a deployment backup (and says what it holds).
pub const MARKER_FILE: &str = "deployment-backup.json";

/// The catalog database's content in a backup.
pub const DATABASE_FILE: &str = "catalog-database.json";

/// What a deployment backup or restore copied.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    /// Span and metric tables (a manifest each).
    pub tables: u64,
    /// Their data files and filters.
    pub data_files: u64,
    /// Log replicas (one node's copy of one tenant's day).
    pub log_replicas: u64,
    /// Their segment files.
    pub log_files: u64,
    /// Settings of the catalog database (the tenant limits).
    pub settings: u64,
    /// API key records of the catalog database.
    pub api_keys: u64,
    /// Bytes of objects copied.
    pub bytes: u64,
}

/// What a backup holds of the catalog database.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DatabaseContent {
    /// `(name, document)` of every setting.
    settings: Vec<(String, String)>,
    /// Every key record, revoked ones included.
    api_keys: Vec<KeyRecord>,
}

/// The marker: the format and what was copied.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    created_unix_seconds: u64,
    summary: DeploymentSummary,
}

/// The marker format written today.
const FORMAT: u32 = 1;

fn database_error(err: impl std::fmt::Display) -> BackupError {
    BackupError::Database(err.to_string())
}

/// Copies every table and log replica from `source` to `target`, manifests after files.
async fn copy_data(
    source: &Objects,
    source_catalog: &dyn Catalog,
    target: &Objects,
    target_catalog: &dyn Catalog,
    summary: &mut DeploymentSummary,
) -> Result<(), BackupError> {
    for table in source_catalog
        .list_tables()
        .await
        .map_err(StorageError::from)?
    {
        let (files, bytes) =
            super::copy_table(source_catalog, source, target, target_catalog, &table).await?;
        summary.tables += 1;
        summary.data_files += files;
        summary.bytes += bytes;
    }
    for object in source.list(&manifests_prefix()).await? {
        if let Some(replica) = parse_manifest_path(&object.location) {
            copy_replica(source, target, &replica, summary).await?;
        }
    }
    Ok(())
}

/// One log replica: its files, then its manifest; nothing when it expired meanwhile.
async fn copy_replica(
    source: &Objects,
    target: &Objects,
    replica: &ReplicaKey,
    summary: &mut DeploymentSummary,
) -> Result<(), BackupError> {
    let path = manifest_path(replica);
    'attempt: for _ in 0..ATTEMPTS {
        let body = match source.get(&path).await {
            Ok(body) => body,
            Err(StorageError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let manifest = parse_manifest(&path, &body)?;
        let (mut files, mut bytes) = (0, body.len() as u64);
        for file in &manifest.files {
            // Gone: a merge retired it after its grace; the newer manifest names its heirs.
            let Some(copied) = copy_object(source, target, &file_path(replica, &file.name)).await?
            else {
                continue 'attempt;
            };
            files += 1;
            bytes += copied;
        }
        target.put(&path, body).await?;
        summary.log_replicas += 1;
        summary.log_files += files;
        summary.bytes += bytes;
        return Ok(());
    }
    Err(BackupError::Unstable {
        what: format!("log replica {path}"),
    })
}

/// Backs up the deployment `config` names (its bucket and catalog database) into `target`
/// (a new or empty directory or bucket prefix), while its nodes run.
pub async fn backup_deployment(
    config: &StorageConfig,
    target: &BackupPlace,
) -> Result<DeploymentSummary, BackupError> {
    let target_objects = target.open().await?;
    target.ensure_empty(&target_objects).await?;
    // Read only: a newer binary must not migrate the schema under the running nodes.
    let source = Deployment::open(config, Schema::Existing).await?;
    let target_catalog = ObjectCatalog::new(target_objects.clone());
    let mut summary = DeploymentSummary::default();
    copy_data(
        &source.objects,
        source.catalog.as_ref(),
        &target_objects,
        &target_catalog,
        &mut summary,
    )
    .await?;
    if let Some(url) = &source.database_url {
        let content = DatabaseContent {
            settings: SettingsDatabase::connect_with(url, Schema::Existing)
                .await
                .map_err(database_error)?
                .all()
                .await
                .map_err(database_error)?
                .into_iter()
                .map(|(name, setting)| (name, setting.document))
                .collect(),
            api_keys: KeyDatabase::connect_with(url, Schema::Existing)
                .await
                .map_err(database_error)?
                .load()
                .await
                .map_err(database_error)?,
        };
        summary.settings = content.settings.len() as u64;
        summary.api_keys = content.api_keys.len() as u64;
        target
            .put_document(&target_objects, DATABASE_FILE, &content, true)
            .await?;
    }
    let marker = Marker {
        format: FORMAT,
        created_unix_seconds: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
        summary: summary.clone(),
    };
    // Written last: a place with the marker holds a whole backup.
    target
        .put_document(&target_objects, MARKER_FILE, &marker, false)
        .await?;
    info!(?summary, target = %target.describe(), "deployment backup complete");
    Ok(summary)
}

/// Whether `place` looks like a deployment backup: a directory with the marker, or any bucket
/// (the marker is read when restoring).
pub fn is_deployment_backup(place: &BackupPlace) -> bool {
    match place {
        BackupPlace::Directory(dir) => dir.join(MARKER_FILE).is_file(),
        BackupPlace::Bucket(_) => true,
    }
}

/// Restores the deployment backup at `backup` into the deployment `config` names: its bucket
/// must hold no tables nor log replicas yet.
pub async fn restore_deployment(
    backup: &BackupPlace,
    config: &StorageConfig,
) -> Result<DeploymentSummary, BackupError> {
    let not_a_backup = || BackupError::NotADeploymentBackup(PathBuf::from(backup.describe()));
    if let BackupPlace::Directory(dir) = backup
        && !dir.join(MARKER_FILE).is_file()
    {
        return Err(not_a_backup());
    }
    let source = backup.open().await?;
    let marker: Marker = backup
        .get_document(&source, MARKER_FILE)
        .await
        .map_err(|_| not_a_backup())?
        .ok_or_else(not_a_backup)?;
    if marker.format != FORMAT {
        return Err(not_a_backup());
    }
    let target = Deployment::open(config, Schema::Migrate).await?;
    let tables = target
        .catalog
        .list_tables()
        .await
        .map_err(StorageError::from)?;
    let replicas = target.objects.list(&manifests_prefix()).await?;
    if !tables.is_empty() || !replicas.is_empty() {
        return Err(BackupError::DeploymentNotEmpty {
            tables: tables.len(),
            replicas: replicas.len(),
        });
    }
    let mut summary = DeploymentSummary::default();
    // The database first: it can be written again, so a restore cut short after it can be
    // run once more, while data in the bucket makes the target count as taken.
    if let Some(content) = backup
        .get_document::<DatabaseContent>(&source, DATABASE_FILE)
        .await?
    {
        let Some(url) = &target.database_url else {
            return Err(BackupError::Database(
                "the backup holds a catalog database's limits and API keys, but this config names \
                 no [catalog] url to restore them into"
                    .to_owned(),
            ));
        };
        restore_database(url, &content).await?;
        summary.settings = content.settings.len() as u64;
        summary.api_keys = content.api_keys.len() as u64;
    }
    let source_catalog = ObjectCatalog::new(source.clone());
    copy_data(
        &source,
        &source_catalog,
        &target.objects,
        target.catalog.as_ref(),
        &mut summary,
    )
    .await?;
    info!(?summary, "deployment restore complete");
    Ok(summary)
}

/// Writes the settings and key records of a backup into the catalog database at `url`
/// (settings replaced, keys added where their id is new).
async fn restore_database(url: &str, content: &DatabaseContent) -> Result<(), BackupError> {
    let settings = SettingsDatabase::connect(url)
        .await
        .map_err(database_error)?;
    for (name, document) in &content.settings {
        settings
            .modify(name, |_| {
                Ok::<_, crate::catalog::CatalogError>(document.clone())
            })
            .await
            .map_err(database_error)?;
    }
    let keys = KeyDatabase::connect(url).await.map_err(database_error)?;
    let restored = content.api_keys.clone();
    keys.modify(move |records| {
        for record in restored {
            if !records.iter().any(|known| known.id == record.id) {
                records.push(record);
            }
        }
        Ok(())
    })
    .await
    .map_err(database_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ManifestChange;
    use crate::catalog::manifest::test_file;
    use crate::layout;
    use crate::model::Signal;
    use object_store::path::Path as ObjectPath;
    use std::path::Path;

    /// A bucket stand-in on disk with one table of one file and one log replica of one file.
    async fn deployment(dir: &Path) -> StorageConfig {
        let config = StorageConfig::new(dir.to_path_buf());
        let objects = Objects::local(&layout::objects_dir(dir)).unwrap();
        let catalog = ObjectCatalog::new(objects.clone());
        let table = crate::catalog::TableKey {
            tenant: "acme".parse().unwrap(),
            signal: Signal::Traces,
        };
        let file = test_file("tenants/acme/traces/one.parquet");
        for path in file.object_paths() {
            objects
                .put(&ObjectPath::from(path), bytes::Bytes::from_static(b"PAR1"))
                .await
                .unwrap();
        }
        catalog
            .commit(
                &table,
                &crate::catalog::Manifest::empty(&table),
                &ManifestChange {
                    add: vec![file],
                    ..ManifestChange::default()
                },
            )
            .await
            .unwrap();
        crate::log_store::shared::put_test_replica(&objects, "acme").await;
        config
    }

    #[tokio::test]
    async fn a_backup_restores_into_an_empty_deployment_and_not_into_one_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let source = deployment(&dir.path().join("source")).await;
        let backup = BackupPlace::Directory(dir.path().join("backup"));
        let taken = backup_deployment(&source, &backup).await.unwrap();
        assert_eq!(
            (taken.tables, taken.log_replicas, taken.log_files),
            (1, 1, 1),
            "{taken:?}"
        );
        assert!(taken.data_files >= 1);
        assert!(is_deployment_backup(&backup));
        assert!(matches!(
            backup_deployment(&source, &backup).await,
            Err(BackupError::TargetNotEmpty(_))
        ));

        let fresh = StorageConfig::new(dir.path().join("fresh"));
        let restored = restore_deployment(&backup, &fresh).await.unwrap();
        assert_eq!(restored, DeploymentSummary { ..taken.clone() });
        let objects = Objects::local(&layout::objects_dir(&fresh.data_dir)).unwrap();
        let tables = ObjectCatalog::new(objects.clone())
            .list_tables()
            .await
            .unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(objects.list(&manifests_prefix()).await.unwrap().len(), 1);
        assert!(matches!(
            restore_deployment(&backup, &fresh).await,
            Err(BackupError::DeploymentNotEmpty {
                tables: 1,
                replicas: 1
            })
        ));
        assert!(matches!(
            restore_deployment(&BackupPlace::Directory(dir.path().join("source")), &fresh).await,
            Err(BackupError::NotADeploymentBackup(_))
        ));
    }
}
