//! Settings every node of a deployment shares (the tenant limits), kept in the catalog
//! database: one JSON document per name with a version that moves on every change, so nodes
//! poll a number and reload only what changed. Writers are serialised per name by a row lock.

use super::database::pg;
use super::{CatalogError, Database};

/// One stored document and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Moves on every change (1 for the first).
    pub version: i64,
    /// The document, JSON.
    pub document: String,
}

/// The settings table of a catalog database.
pub struct SettingsDatabase {
    db: Database,
}

impl SettingsDatabase {
    /// Connects to the catalog database at `url` (migrating its schema).
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

    /// The version of setting `name`, `None` while it was never written.
    pub async fn version(&self, name: &str) -> Result<Option<i64>, CatalogError> {
        let row = self
            .db
            .client()
            .await?
            .query_opt(
                "SELECT version FROM skewer_settings WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Setting `name`, `None` while it was never written.
    pub async fn load(&self, name: &str) -> Result<Option<Setting>, CatalogError> {
        let row = self
            .db
            .client()
            .await?
            .query_opt(
                "SELECT version, document FROM skewer_settings WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|row| Setting {
            version: row.get(0),
            document: row.get(1),
        }))
    }

    /// Every setting by name (a backup of the database).
    pub async fn all(&self) -> Result<Vec<(String, Setting)>, CatalogError> {
        let rows = self
            .db
            .client()
            .await?
            .query(
                "SELECT name, version, document FROM skewer_settings ORDER BY name",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| {
                let setting = Setting {
                    version: row.get(1),
                    document: row.get(2),
                };
                (row.get(0), setting)
            })
            .collect())
    }

    /// Writes `document` as setting `name` unless it exists; the setting in force afterwards.
    pub async fn insert_if_absent(
        &self,
        name: &str,
        document: &str,
    ) -> Result<Setting, CatalogError> {
        self.db
            .client()
            .await?
            .execute(
                "INSERT INTO skewer_settings (name, version, document) VALUES ($1, 1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &document],
            )
            .await
            .map_err(pg)?;
        self.load(name)
            .await?
            .ok_or_else(|| CatalogError::Database(format!("setting {name} vanished")))
    }

    /// Reads setting `name` (`None` when never written), changes it and writes it back in
    /// one transaction that holds its row against other writers; the new setting. An error
    /// of `change` leaves the setting as it was.
    pub async fn modify<E>(
        &self,
        name: &str,
        change: impl FnOnce(Option<&str>) -> Result<String, E>,
    ) -> Result<Setting, E>
    where
        E: From<CatalogError>,
    {
        let mut client = self.db.open_connection().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The row exists before it is locked, so a first write is serialised like the others.
        tx.execute(
            "INSERT INTO skewer_settings (name, version, document) VALUES ($1, 0, '')
             ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await
        .map_err(pg)?;
        let row = tx
            .query_one(
                "SELECT version, document FROM skewer_settings WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(pg)?;
        let version: i64 = row.get(0);
        let before: String = row.get(1);
        let document = change((version > 0).then_some(before.as_str()))?;
        let version = version + 1;
        tx.execute(
            "UPDATE skewer_settings SET version = $2, document = $3, updated_at = now()
             WHERE name = $1",
            &[&name, &version, &document],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Setting { version, document })
    }
}
