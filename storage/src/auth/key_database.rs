//! API keys in the catalog database, so every node of a deployment lets in the same keys and
//! a revocation reaches all of them. One row per key ever made (the same record `keys.json`
//! holds); every change bumps the one row of `skewer_api_key_changes` in the same
//! transaction, which also serialises writers, and servers reload the keys when that version
//! moves.

use super::AuthError;
use super::store::KeyRecord;
use crate::catalog::{CatalogError, Database};

/// The keys table of a catalog database.
pub struct KeyDatabase {
    db: Database,
}

fn failed(err: impl std::fmt::Display) -> AuthError {
    AuthError::Database(err.to_string())
}

fn pg(err: tokio_postgres::Error) -> AuthError {
    match crate::catalog::database::pg(err) {
        CatalogError::Database(text) => AuthError::Database(text),
        other => failed(other),
    }
}

impl KeyDatabase {
    /// Connects to the catalog database at `url` (migrating its schema).
    pub async fn connect(url: &str) -> Result<Self, AuthError> {
        Self::connect_with(url, crate::catalog::database::Schema::Migrate).await
    }

    /// Connects to `url`, doing `schema` with the schema.
    pub async fn connect_with(
        url: &str,
        schema: crate::catalog::database::Schema,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            db: Database::connect_with(url, schema).await.map_err(failed)?,
        })
    }

    async fn client(
        &self,
    ) -> Result<std::sync::Arc<crate::catalog::database::Connection>, AuthError> {
        self.db.client().await.map_err(failed)
    }

    /// The change counter: it moves with every change of the keys.
    pub async fn version(&self) -> Result<i64, AuthError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT version FROM skewer_api_key_changes", &[])
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    /// Every record, oldest first.
    pub async fn load(&self) -> Result<Vec<KeyRecord>, AuthError> {
        let rows = self
            .client()
            .await?
            .query("SELECT record FROM skewer_api_keys ORDER BY seq", &[])
            .await
            .map_err(pg)?;
        rows.iter().map(|row| parse(row.get(0))).collect()
    }

    /// Reads, changes and writes back the records in one transaction (writers wait for each
    /// other on the change counter's row). Records are never deleted.
    pub async fn modify(
        &self,
        change: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        // A transaction needs the client to itself: a connection of its own.
        let mut client = self.db.open_connection().await.map_err(failed)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "UPDATE skewer_api_key_changes SET version = version + 1",
            &[],
        )
        .await
        .map_err(pg)?;
        let rows = tx
            .query("SELECT record FROM skewer_api_keys ORDER BY seq", &[])
            .await
            .map_err(pg)?;
        let before: Vec<KeyRecord> = rows
            .iter()
            .map(|row| parse(row.get(0)))
            .collect::<Result<_, _>>()?;
        let mut records = before.clone();
        change(&mut records)?;
        for record in records.iter().filter(|record| !before.contains(record)) {
            let text = serde_json::to_string(record).map_err(failed)?;
            tx.execute(
                "INSERT INTO skewer_api_keys (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                &[&record.id, &text],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
}

fn parse(text: &str) -> Result<KeyRecord, AuthError> {
    serde_json::from_str(text).map_err(|err| AuthError::Corrupt {
        path: std::path::PathBuf::from("skewer_api_keys"),
        reason: err.to_string(),
    })
}
