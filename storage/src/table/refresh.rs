//! Catching up with other writers: when several nodes share the tables (a bucket and a shared
//! catalog), each reloads the manifests now and then and shows readers the newest version, so
//! a query node sees what ingest nodes flushed and what a compactor merged or retention
//! removed. Files another writer removed are that writer's to delete (after its grace);
//! a refresh only stops listing them.

use std::sync::Arc;

use super::{TableSignal, TableStore};
use crate::StorageError;
use crate::catalog::TableKey;

impl<S: TableSignal> TableStore<S> {
    /// Asks the catalog for every table's version and loads the tables of this signal whose
    /// version is newer than the one readers see, publishing them. Returns how many moved on.
    pub async fn refresh(&self) -> Result<usize, StorageError> {
        let versions = self.catalog.table_versions().await?;
        let mut moved = 0;
        for (table, version) in versions {
            if table.signal != S::SIGNAL || version <= self.seen_version(&table) {
                continue;
            }
            if self.refresh_table(&table).await? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// The manifest version readers of `table` see (0 before its first).
    fn seen_version(&self, table: &TableKey) -> u64 {
        self.table_files(&table.tenant)
            .map_or(0, |files| files.manifest.version)
    }

    async fn refresh_table(&self, table: &TableKey) -> Result<bool, StorageError> {
        let seen = |store: &Self| store.seen_version(table);
        let Some(current) = self.catalog.load(table).await? else {
            return Ok(false);
        };
        if current.version <= seen(self) {
            return Ok(false);
        }
        // Under the commit lock: a commit of this node in flight publishes first, and the
        // check below keeps a refresh from going back past it.
        let lock = self.commit_lock(&table.tenant);
        let _serial = lock.lock().await;
        if current.version <= seen(self) {
            return Ok(false);
        }
        self.publish(&table.tenant, Arc::new(current), None, |_| {});
        Ok(true)
    }
}

impl<S: TableSignal> TableStore<S> {
    /// Whether other nodes may commit to these tables (this node has a node id).
    pub fn shares_tables(&self) -> bool {
        self.wal_owner.node_id().is_some()
    }

    /// Shows readers `tenant`'s newest manifest when another writer moved it on.
    pub async fn refresh_tenant(
        &self,
        tenant: &crate::model::TenantId,
    ) -> Result<(), StorageError> {
        self.refresh_table(&TableKey {
            tenant: tenant.clone(),
            signal: S::SIGNAL,
        })
        .await
        .map(|_| ())
    }

    /// Claims the work `name` for this node until `ttl` from now (see
    /// [`crate::catalog::Catalog::claim`]).
    pub async fn claim(&self, name: &str, ttl: std::time::Duration) -> Result<bool, StorageError> {
        Ok(self.catalog.claim(name, self.claim_holder(), ttl).await?)
    }

    /// Gives up this node's claim of `name`.
    pub async fn release(&self, name: &str) -> Result<(), StorageError> {
        Ok(self.catalog.release(name, self.claim_holder()).await?)
    }

    fn claim_holder(&self) -> &str {
        self.wal_owner.node_id().unwrap_or("local")
    }
}
