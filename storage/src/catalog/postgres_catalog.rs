//! The catalog in PostgreSQL: each table's current manifest is a row (tenant, signal, version,
//! manifest JSON), and a commit is an `UPDATE … WHERE version = base`, so of two writers from
//! the same base exactly one wins (the other gets a conflict, as with the object catalog).
//! The schema and connection are [`super::database`]'s: a lost connection is reopened on the
//! next call (a failed flush is retried; the WAL keeps its data meanwhile).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::warn;

use super::database::{Database, database, pg};
use super::{
    Catalog, CatalogError, Manifest, ManifestChange, TableKey, lost_race, next_manifest,
    repair_raced,
};
use crate::model::{Signal, TenantId};

/// Manifests in a PostgreSQL database.
pub struct PostgresCatalog {
    db: Database,
}

impl PostgresCatalog {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        Self::connect_with(url, super::database::Schema::Migrate).await
    }

    /// Connects to `url`, doing `schema` with the schema.
    pub async fn connect_with(
        url: &str,
        schema: super::database::Schema,
    ) -> Result<Self, CatalogError> {
        Ok(Self {
            db: Database::connect_with(url, schema).await?,
        })
    }

    async fn client(&self) -> Result<Arc<super::database::Connection>, CatalogError> {
        self.db.client().await
    }
}

fn signal_of(name: &str) -> Option<Signal> {
    [Signal::Traces, Signal::Metrics, Signal::Logs]
        .into_iter()
        .find(|signal| signal.name() == name)
}

fn parse(table: &TableKey, text: &str) -> Result<Manifest, CatalogError> {
    let damaged = |reason: String| CatalogError::Damaged {
        path: format!("skewer_manifests {table}"),
        reason,
    };
    let manifest: Manifest = serde_json::from_str(text).map_err(|err| damaged(err.to_string()))?;
    manifest.check_holds(table).map_err(damaged)?;
    Ok(manifest)
}

fn encode(manifest: &Manifest) -> Result<String, CatalogError> {
    serde_json::to_string(manifest).map_err(database)
}

fn version(manifest: &Manifest) -> Result<i64, CatalogError> {
    i64::try_from(manifest.version).map_err(database)
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn list_tables(&self) -> Result<Vec<TableKey>, CatalogError> {
        let versions = self.table_versions().await?;
        Ok(versions.into_iter().map(|(table, _)| table).collect())
    }

    async fn table_versions(&self) -> Result<Vec<(TableKey, u64)>, CatalogError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, signal, version FROM skewer_manifests ORDER BY tenant, signal",
                &[],
            )
            .await
            .map_err(pg)?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let (tenant, signal, version): (String, String, i64) =
                (row.get(0), row.get(1), row.get(2));
            match (tenant.parse::<TenantId>(), signal_of(&signal)) {
                (Ok(tenant), Some(signal)) => tables.push((
                    TableKey { tenant, signal },
                    u64::try_from(version).unwrap_or(0),
                )),
                _ => warn!(%tenant, %signal, "catalog row names no table; skipped"),
            }
        }
        Ok(tables)
    }

    async fn load(&self, table: &TableKey) -> Result<Option<Manifest>, CatalogError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT manifest FROM skewer_manifests WHERE tenant = $1 AND signal = $2",
                &[&table.tenant.as_str(), &table.signal.name()],
            )
            .await
            .map_err(pg)?;
        row.map(|row| parse(table, row.get(0))).transpose()
    }

    async fn commit(
        &self,
        table: &TableKey,
        base: &Manifest,
        change: &ManifestChange,
    ) -> Result<Manifest, CatalogError> {
        let next = next_manifest(table, base, change)?;
        let (tenant, signal) = (table.tenant.as_str(), table.signal.name());
        let (text, next_version) = (encode(&next)?, version(&next)?);
        let client = self.client().await?;
        let written = if base.version == 0 {
            client
                .execute(
                    "INSERT INTO skewer_manifests (tenant, signal, version, manifest)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&tenant, &signal, &next_version, &text],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE skewer_manifests SET version = $3, manifest = $4, updated_at = now()
                     WHERE tenant = $1 AND signal = $2 AND version = $5",
                    &[&tenant, &signal, &next_version, &text, &version(base)?],
                )
                .await
        }
        .map_err(pg)?;
        if written == 0 {
            return Err(lost_race(table, base, &next));
        }
        Ok(next)
    }

    async fn overwrite(&self, table: &TableKey, manifest: &Manifest) -> Result<(), CatalogError> {
        let (tenant, signal) = (table.tenant.as_str(), table.signal.name());
        let client = self.client().await?;
        let newest: i64 = client
            .query_opt(
                "SELECT version FROM skewer_manifests WHERE tenant = $1 AND signal = $2",
                &[&tenant, &signal],
            )
            .await
            .map_err(pg)?
            .map_or(0, |row| row.get(0));
        let replacement = Manifest {
            version: u64::try_from(newest).unwrap_or(0) + 1,
            ..manifest.clone()
        };
        let written = client
            .execute(
                "INSERT INTO skewer_manifests (tenant, signal, version, manifest)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, signal) DO UPDATE
                 SET version = EXCLUDED.version, manifest = EXCLUDED.manifest, updated_at = now()
                 WHERE skewer_manifests.version = $5",
                &[
                    &tenant,
                    &signal,
                    &version(&replacement)?,
                    &encode(&replacement)?,
                    &newest,
                ],
            )
            .await
            .map_err(pg)?;
        if written == 0 {
            return Err(repair_raced(table, u64::try_from(newest).unwrap_or(0)));
        }
        Ok(())
    }

    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, CatalogError> {
        // One statement: the row is taken when absent, expired or already the holder's; the
        // row lock makes two claimants of a free name see one winner.
        let taken = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO skewer_claims (name, holder, expires_at)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE
                 SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE skewer_claims.expires_at < now() OR skewer_claims.holder = EXCLUDED.holder
                 RETURNING holder",
                &[&name, &holder, &ttl.as_secs_f64()],
            )
            .await
            .map_err(pg)?;
        Ok(taken.is_some())
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), CatalogError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM skewer_claims WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }
}
