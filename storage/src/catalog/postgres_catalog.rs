//! The catalog in PostgreSQL: each table's current manifest is a row (tenant, signal, version,
//! manifest JSON), and a commit is an `UPDATE … WHERE version = base`, so of two writers from
//! the same base exactly one wins (the other gets a conflict, as with the object catalog).
//! The schema is versioned: migrations are applied at start under an advisory lock, so nodes
//! starting together apply each once; a database migrated by a newer binary is refused. A
//! lost connection is reopened on the next call (a failed flush is retried; the WAL keeps
//! its data meanwhile).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};
use tracing::warn;

use super::{
    Catalog, CatalogError, Manifest, ManifestChange, TableKey, lost_race, next_manifest,
    repair_raced,
};
use crate::model::{Signal, TenantId};

/// The schema, one statement list per version, applied in order and never edited once released.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE skewer_manifests (
            tenant TEXT NOT NULL,
            signal TEXT NOT NULL,
            version BIGINT NOT NULL,
            manifest TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, signal)
        )",
    ),
    (
        2,
        "CREATE TABLE skewer_claims (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )",
    ),
];

/// The advisory lock migrations run under (any constant shared by every node).
const MIGRATION_LOCK: i64 = 0x736b_6577_6572; // "skewer"

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Manifests in a PostgreSQL database.
pub struct PostgresCatalog {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

fn database(err: impl std::fmt::Display) -> CatalogError {
    CatalogError::Database(err.to_string())
}

/// A driver error with its causes ("error connecting to server: Connection refused").
fn pg(err: tokio_postgres::Error) -> CatalogError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    CatalogError::Database(text)
}

impl PostgresCatalog {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| database(format!("invalid url: {err}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("skewer");
        let catalog = Self {
            config,
            client: tokio::sync::Mutex::new(None),
        };
        let mut client = catalog.open_connection().await?;
        migrate(&mut client).await?;
        *catalog.client.lock().await = Some(Arc::new(client));
        Ok(catalog)
    }

    async fn open_connection(&self) -> Result<Client, CatalogError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(pg)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                warn!(error = %err, "catalog database connection lost; reopened on next use");
            }
        });
        Ok(client)
    }

    /// The open connection, or a new one when it was lost.
    async fn client(&self) -> Result<Arc<Client>, CatalogError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|client| !client.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(self.open_connection().await?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// Applies the migrations the database lacks, under an advisory lock.
async fn migrate(client: &mut Client) -> Result<(), CatalogError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS skewer_schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(pg)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM skewer_schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied > latest {
        return Err(database(format!(
            "the schema is at version {applied}, newer than this binary's {latest}: run a newer skewer"
        )));
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        tx.batch_execute(statements).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO skewer_schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
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
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, signal FROM skewer_manifests ORDER BY tenant, signal",
                &[],
            )
            .await
            .map_err(pg)?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let (tenant, signal): (String, String) = (row.get(0), row.get(1));
            match (tenant.parse::<TenantId>(), signal_of(&signal)) {
                (Ok(tenant), Some(signal)) => tables.push(TableKey { tenant, signal }),
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
