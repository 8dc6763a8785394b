//! The catalog database (PostgreSQL): one connection per use (manifests, API keys, settings), reopened
//! when lost, with its statements prepared once, and the versioned schema every part of skewer keeps there. Migrations are applied
//! at connect under an advisory lock, so nodes starting together apply each once; a database
//! migrated by a newer binary is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};
use tracing::warn;

use super::CatalogError;

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
    (
        3,
        "CREATE TABLE skewer_api_keys (
            id TEXT PRIMARY KEY,
            seq BIGSERIAL NOT NULL,
            record TEXT NOT NULL
        );
        CREATE TABLE skewer_api_key_changes (
            only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
            version BIGINT NOT NULL
        );
        INSERT INTO skewer_api_key_changes (version) VALUES (0);",
    ),
    (
        4,
        "CREATE TABLE skewer_settings (
            name TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            document TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    ),
];

/// The advisory lock migrations run under (any constant shared by every node).
const MIGRATION_LOCK: i64 = 0x736b_6577_6572; // "skewer"

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the catalog database.
pub struct Database {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// The shared connection and the statements prepared on it: each statement is parsed once
/// per connection, then only executed (one round trip, and one transaction in the server's
/// count, instead of two).
pub struct Connection {
    client: Client,
    statements: tokio::sync::Mutex<HashMap<&'static str, Statement>>,
}

impl Connection {
    fn new(client: Client) -> Self {
        Self {
            client,
            statements: tokio::sync::Mutex::default(),
        }
    }

    async fn prepared(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        let mut statements = self.statements.lock().await;
        if let Some(statement) = statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// [`Client::query`] with the statement prepared once.
    pub async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query(&self.prepared(sql).await?, params).await
    }

    /// [`Client::query_one`] with the statement prepared once.
    pub async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        self.client
            .query_one(&self.prepared(sql).await?, params)
            .await
    }

    /// [`Client::query_opt`] with the statement prepared once.
    pub async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        self.client
            .query_opt(&self.prepared(sql).await?, params)
            .await
    }

    /// [`Client::execute`] with the statement prepared once.
    pub async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.client
            .execute(&self.prepared(sql).await?, params)
            .await
    }
}

pub(crate) fn database(err: impl std::fmt::Display) -> CatalogError {
    CatalogError::Database(err.to_string())
}

/// A driver error with its causes ("error connecting to server: Connection refused").
pub(crate) fn pg(err: tokio_postgres::Error) -> CatalogError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    CatalogError::Database(text)
}

/// What a new connection does with the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Brings it up to date (servers; tools that write).
    Migrate,
    /// Only checks it is this binary's: tools that read a live deployment (backup, check)
    /// must not move its schema ahead of the nodes running on it.
    Existing,
}

impl Database {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        Self::connect_with(url, Schema::Migrate).await
    }

    /// Connects to `url`, doing `schema` with the schema.
    pub async fn connect_with(url: &str, schema: Schema) -> Result<Self, CatalogError> {
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
        match schema {
            Schema::Migrate => migrate(&mut client).await?,
            Schema::Existing => check_schema(&client).await?,
        }
        *catalog.client.lock().await = Some(Arc::new(Connection::new(client)));
        Ok(catalog)
    }

    /// A new connection of its own (a transaction needs one).
    pub async fn open_connection(&self) -> Result<Client, CatalogError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(pg)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                warn!(error = %err, "catalog database connection lost; reopened on next use");
            }
        });
        Ok(client)
    }

    /// The open connection, or a new one when it was lost.
    pub async fn client(&self) -> Result<Arc<Connection>, CatalogError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|open| !open.client.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(Connection::new(self.open_connection().await?));
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// Refuses a database whose schema is not this binary's (none yet, older or newer).
async fn check_schema(client: &Client) -> Result<(), CatalogError> {
    let present: bool = client
        .query_one(
            "SELECT to_regclass('skewer_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let applied: i32 = if present {
        client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM skewer_schema_migrations",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0)
    } else {
        0
    };
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied != latest {
        return Err(database(format!(
            "the schema is at version {applied} and this binary's is {latest}: use the binary the \
             deployment's nodes run (a node of this version migrates the schema when it starts)"
        )));
    }
    Ok(())
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
