//! The embedded catalog: each version of a table's manifest is a JSON object
//! `tenants/{tenant}/{signal}/_manifest/{version:020}.json` in the data's own object store.
//!
//! A commit writes the next version with create-only semantics, so two writers can never both
//! make version N+1 (the loser gets a conflict); writes are durable before they return (see
//! [`crate::objects`]). The newest version is the current one; a few older ones are kept for
//! operators and deleted after that. A damaged newest version is an error, never silently
//! skipped: falling back would make the files it added look like orphans.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::{
    Catalog, CatalogError, Manifest, ManifestChange, TableKey, lost_race, next_manifest,
    repair_raced,
};
use crate::layout;
use crate::model::Signal;
use crate::objects::Objects;

/// Manifest versions kept besides the current one.
const OLD_VERSIONS_KEPT: usize = 4;

/// Manifests stored as objects next to the data.
#[derive(Clone)]
pub struct ObjectCatalog {
    objects: Objects,
}

impl ObjectCatalog {
    /// A catalog in `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// The stored versions of a table's manifest, oldest first.
    async fn versions(&self, table: &TableKey) -> Result<Vec<(u64, ObjectPath)>, CatalogError> {
        let prefix = layout::manifest_prefix(&table.tenant, table.signal);
        let mut versions: Vec<(u64, ObjectPath)> = self
            .objects
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|object| {
                let version = layout::parse_manifest_version(&object.location)?;
                Some((version, object.location))
            })
            .collect();
        versions.sort_unstable_by_key(|(version, _)| *version);
        Ok(versions)
    }

    async fn read(&self, table: &TableKey, path: &ObjectPath) -> Result<Manifest, CatalogError> {
        let bytes = self.objects.get(path).await?;
        let damaged = |reason: String| CatalogError::Damaged {
            path: path.to_string(),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|err| damaged(err.to_string()))?;
        manifest.check_holds(table).map_err(damaged)?;
        Ok(manifest)
    }

    async fn write_version(
        &self,
        table: &TableKey,
        manifest: &Manifest,
    ) -> Result<bool, CatalogError> {
        let path = layout::manifest_path(&table.tenant, table.signal, manifest.version);
        let bytes = serde_json::to_vec(manifest).map_err(|err| CatalogError::Damaged {
            path: path.to_string(),
            reason: format!("cannot encode: {err}"),
        })?;
        Ok(self
            .objects
            .put_if_absent(&path, Bytes::from(bytes))
            .await?)
    }

    async fn trim_old_versions(&self, table: &TableKey) {
        let Ok(versions) = self.versions(table).await else {
            return;
        };
        let excess = versions.len().saturating_sub(OLD_VERSIONS_KEPT + 1);
        for (_, path) in versions.into_iter().take(excess) {
            if let Err(err) = self.objects.delete(&path).await {
                tracing::warn!(path = %path, error = %err, "could not delete an old manifest version");
            }
        }
    }
}

#[async_trait]
impl Catalog for ObjectCatalog {
    async fn list_tables(&self) -> Result<Vec<TableKey>, CatalogError> {
        let versions = self.table_versions().await?;
        Ok(versions.into_iter().map(|(table, _)| table).collect())
    }

    async fn table_versions(&self) -> Result<Vec<(TableKey, u64)>, CatalogError> {
        let mut tables = Vec::new();
        for tenant in self.objects.tenants().await? {
            for signal in [Signal::Traces, Signal::Metrics] {
                let table = TableKey {
                    tenant: tenant.clone(),
                    signal,
                };
                if let Some((version, _)) = self.versions(&table).await?.last() {
                    let version = *version;
                    tables.push((table, version));
                }
            }
        }
        Ok(tables)
    }

    async fn load(&self, table: &TableKey) -> Result<Option<Manifest>, CatalogError> {
        let versions = self.versions(table).await?;
        let Some((version, path)) = versions.last() else {
            return Ok(None);
        };
        let manifest = self.read(table, path).await?;
        if manifest.version != *version {
            return Err(CatalogError::Damaged {
                path: path.to_string(),
                reason: format!("holds version {}", manifest.version),
            });
        }
        Ok(Some(manifest))
    }

    async fn commit(
        &self,
        table: &TableKey,
        base: &Manifest,
        change: &ManifestChange,
    ) -> Result<Manifest, CatalogError> {
        let next = next_manifest(table, base, change)?;
        if !self.write_version(table, &next).await? {
            return Err(lost_race(table, base, &next));
        }
        if next.version as usize > OLD_VERSIONS_KEPT + 1 {
            self.trim_old_versions(table).await;
        }
        Ok(next)
    }

    async fn overwrite(&self, table: &TableKey, manifest: &Manifest) -> Result<(), CatalogError> {
        let newest = self.versions(table).await?.last().map_or(0, |(v, _)| *v);
        let replacement = Manifest {
            version: newest + 1,
            ..manifest.clone()
        };
        if !self.write_version(table, &replacement).await? {
            return Err(repair_raced(table, newest));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str) -> ManifestChange {
        ManifestChange {
            add: vec![crate::catalog::manifest::test_file(path)],
            ..ManifestChange::default()
        }
    }

    #[tokio::test]
    async fn commits_version_load_the_newest_and_refuse_stale_bases() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = ObjectCatalog::new(Objects::local(dir.path()).unwrap());
        let table = TableKey {
            tenant: "acme".parse().unwrap(),
            signal: Signal::Traces,
        };
        assert!(catalog.load(&table).await.unwrap().is_none());
        assert!(catalog.list_tables().await.unwrap().is_empty());
        let empty = Manifest::empty(&table);
        let mut current = catalog.commit(&table, &empty, &add("f0")).await.unwrap();
        for n in 1..10 {
            current = catalog
                .commit(&table, &current, &add(&format!("f{n}")))
                .await
                .unwrap();
        }
        assert_eq!(current.version, 10);
        let loaded = catalog.load(&table).await.unwrap().unwrap();
        assert_eq!(loaded, current);
        assert_eq!(
            catalog.list_tables().await.unwrap(),
            std::slice::from_ref(&table)
        );
        assert_eq!(
            catalog.table_versions().await.unwrap(),
            [(table.clone(), 10)],
            "versions without reading manifests"
        );
        assert_eq!(
            catalog.versions(&table).await.unwrap().len(),
            OLD_VERSIONS_KEPT + 1,
            "old versions are trimmed"
        );
        // A writer still on version 10 after someone else made version 11 loses.
        catalog.commit(&table, &current, &add("x")).await.unwrap();
        let stale = catalog.commit(&table, &current, &add("y")).await;
        assert!(
            matches!(stale, Err(CatalogError::Conflict { .. })),
            "{stale:?}"
        );
    }

    #[tokio::test]
    async fn a_damaged_newest_manifest_is_an_error_and_overwrite_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path()).unwrap();
        let catalog = ObjectCatalog::new(objects.clone());
        let table = TableKey {
            tenant: "acme".parse().unwrap(),
            signal: Signal::Metrics,
        };
        let one = catalog
            .commit(&table, &Manifest::empty(&table), &add("a"))
            .await
            .unwrap();
        let path = layout::manifest_path(&table.tenant, table.signal, 2);
        objects
            .put(&path, Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        let error = catalog.load(&table).await.unwrap_err();
        assert!(
            error.to_string().contains("skewer check --repair"),
            "{error}"
        );
        catalog.overwrite(&table, &one).await.unwrap();
        let repaired = catalog.load(&table).await.unwrap().unwrap();
        assert_eq!(repaired.version, 3);
        assert_eq!(repaired.files, one.files);
    }
}
