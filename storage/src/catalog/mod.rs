//! The catalog: which data files are live, per tenant and signal, as versioned manifests.
//!
//! [`Catalog`] is the seam a shared database could fill later (several stateless nodes over one
//! object store, as Quickwit's metastore does with PostgreSQL): list the tables, load a table's
//! manifest, commit a change on top of a known version (optimistic concurrency). The embedded
//! default, [`ObjectCatalog`], keeps the manifests as versioned JSON objects next to the data, in
//! the same object store, so nothing in it depends on one node's disk.
//!
//! The catalog decides nothing about when files change: flushes add, compaction replaces and
//! retention removes, each through [`Catalog::commit`].

pub mod database;
pub mod manifest;
pub mod metric_summary;
mod object_catalog;
mod postgres_catalog;
mod settings;
pub mod summary;

use std::time::Duration;

use async_trait::async_trait;

pub use database::Database;
pub use manifest::{
    DataFileMeta, FlushedPosition, IdFilterMeta, MANIFEST_FORMAT, Manifest, ManifestChange,
    ManifestConflict, TableKey,
};
pub use metric_summary::{MetricCatalog, MetricFamily};
pub use object_catalog::ObjectCatalog;
pub use postgres_catalog::PostgresCatalog;
pub use settings::{Setting, SettingsDatabase};
pub use summary::FileSummary;

/// Errors of a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The change does not apply to the current version (another writer changed the table).
    #[error("catalog conflict on {table} at version {version}: {reason}")]
    Conflict {
        /// The table.
        table: String,
        /// The version the change was based on.
        version: u64,
        /// What collided.
        reason: String,
    },
    /// A stored manifest cannot be read; `skewer check --repair` rebuilds it from the files.
    #[error("manifest {path} is damaged ({reason}); run `skewer check --repair`")]
    Damaged {
        /// The manifest object.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(Box<crate::StorageError>),
    /// The catalog database failed or cannot be reached.
    #[error("catalog database: {0}")]
    Database(String),
}

impl CatalogError {
    fn conflict(table: &TableKey, version: u64, reason: impl Into<String>) -> Self {
        Self::Conflict {
            table: table.to_string(),
            version,
            reason: reason.into(),
        }
    }
}

/// The manifest `change` makes of `base`, or the conflict that stops it (every catalog's
/// commit starts here).
fn next_manifest(
    table: &TableKey,
    base: &Manifest,
    change: &ManifestChange,
) -> Result<Manifest, CatalogError> {
    base.apply(change)
        .map_err(|err| CatalogError::conflict(table, base.version, err.to_string()))
}

/// What a commit from `base` gets when another writer made `next`'s version first.
fn lost_race(table: &TableKey, base: &Manifest, next: &Manifest) -> CatalogError {
    CatalogError::conflict(
        table,
        base.version,
        format!("version {} was written by another writer", next.version),
    )
}

/// What a repair gets when a writer changed the table (from version `newest`) meanwhile.
fn repair_raced(table: &TableKey, newest: u64) -> CatalogError {
    CatalogError::conflict(
        table,
        newest,
        "a writer changed the table during the repair",
    )
}

impl From<crate::StorageError> for CatalogError {
    fn from(err: crate::StorageError) -> Self {
        Self::Storage(Box::new(err))
    }
}

/// Persisted manifests of every table.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Every table that has a manifest.
    async fn list_tables(&self) -> Result<Vec<TableKey>, CatalogError>;

    /// The current manifest of `table`, `None` when it has none yet.
    async fn load(&self, table: &TableKey) -> Result<Option<Manifest>, CatalogError>;

    /// Every table with the version of its current manifest, without reading the manifests:
    /// a refresh loads only the tables that moved on.
    async fn table_versions(&self) -> Result<Vec<(TableKey, u64)>, CatalogError>;

    /// Applies `change` on top of `base` (the version the caller last saw; an empty manifest
    /// for a new table) and returns the new manifest. Fails with [`CatalogError::Conflict`]
    /// when `base` is no longer current or the change does not apply to it.
    async fn commit(
        &self,
        table: &TableKey,
        base: &Manifest,
        change: &ManifestChange,
    ) -> Result<Manifest, CatalogError>;

    /// Replaces the manifest of `table` outright (repair: rebuilt from the files).
    async fn overwrite(&self, table: &TableKey, manifest: &Manifest) -> Result<(), CatalogError>;

    /// Claims the work `name` (a partition's compaction, a table's retention sweep) for
    /// `holder` until `ttl` from now: `true` when `holder` has it (it was free, its claim
    /// expired, or `holder` had it already), `false` while another holder's claim lasts.
    /// A crashed holder's claims expire. The embedded catalog serves one writer and grants
    /// every claim.
    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, CatalogError> {
        let _ = (name, holder, ttl);
        Ok(true)
    }

    /// Gives up `holder`'s claim of `name` (the work is done); nothing when it holds none.
    async fn release(&self, name: &str, holder: &str) -> Result<(), CatalogError> {
        let _ = (name, holder);
        Ok(())
    }
}
