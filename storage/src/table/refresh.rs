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
    /// Loads every table of this signal from the catalog and publishes the versions newer
    /// than the ones readers see. Returns how many tables moved on.
    pub async fn refresh(&self) -> Result<usize, StorageError> {
        let tables = self.catalog.list_tables().await?;
        let mut moved = 0;
        for table in tables.into_iter().filter(|table| table.signal == S::SIGNAL) {
            if self.refresh_table(&table).await? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    async fn refresh_table(&self, table: &TableKey) -> Result<bool, StorageError> {
        let seen = |store: &Self| {
            store
                .table_files(&table.tenant)
                .map_or(0, |files| files.manifest.version)
        };
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
