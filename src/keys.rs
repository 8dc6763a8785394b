//! `skewer keys create|list|revoke`: the operator's view of `{data_dir}/keys.json`, or of the
//! catalog database's keys when the config names one (`[catalog] url`: every node of a
//! deployment shares them). The key itself is printed once, by `create`, as the last line of
//! its output; only its hash is kept.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat};
use skewer_storage::auth::{KeyDatabase, KeyRecord, KeyStore, NewKeyRequest};

use crate::cli::{KeysCommand, KeysCreateArgs, KeysDirArgs, KeysRevokeArgs};
use crate::config::{Config, Overrides};

/// Runs one `skewer keys` subcommand.
pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    let dir = match command {
        KeysCommand::Create(args) => &args.dir,
        KeysCommand::List(args) => args,
        KeysCommand::Revoke(args) => &args.dir,
    };
    let (config, _) = Config::load(dir.config.as_deref(), Overrides::default())?;
    match config.catalog.url()? {
        None => run_on(command, &file_store(dir)?),
        Some(url) => {
            // The database client's connection runs on this runtime's worker while the
            // command waits for each call on the main thread.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let keys = runtime
                .block_on(KeyDatabase::connect(&url))
                .context("cannot reach the catalog database that keeps the keys")?;
            let store = KeyStore::in_database(Arc::new(keys), runtime.handle().clone());
            run_on(command, &store)
        }
    }
}

fn run_on(command: &KeysCommand, store: &KeyStore) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args, store),
        KeysCommand::List(_) => list(store),
        KeysCommand::Revoke(args) => revoke(args, store),
    }
}

fn file_store(dir: &KeysDirArgs) -> anyhow::Result<KeyStore> {
    std::fs::create_dir_all(&dir.data_dir)
        .with_context(|| format!("cannot create {}", dir.data_dir.display()))?;
    Ok(KeyStore::new(&dir.data_dir))
}

fn create(args: &KeysCreateArgs, store: &KeyStore) -> anyhow::Result<()> {
    let (record, key) = store.create(NewKeyRequest {
        name: args.name.clone(),
        tenant: args.tenant.clone(),
        scopes: args.scope.iter().copied().collect(),
        expires_in: args.expires,
    })?;
    println!(
        "created key {} for tenant {} with scopes {}, expires {}",
        record.id,
        record.tenant,
        record.scopes_text(),
        timestamp(record.expires_unix_seconds)
    );
    println!("it is shown once, here; skewer keeps only its hash");
    println!("{key}");
    Ok(())
}

fn list(store: &KeyStore) -> anyhow::Result<()> {
    let records = store.load()?;
    let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
    println!(
        "{:<16}  {:<20}  {:<16}  {:<18}  {:<7}  {:<20}  {:<20}",
        "ID", "NAME", "TENANT", "SCOPES", "STATUS", "CREATED", "EXPIRES"
    );
    for record in &records {
        println!("{}", row(record, now));
    }
    Ok(())
}

fn row(record: &KeyRecord, now: u64) -> String {
    format!(
        "{:<16}  {:<20}  {:<16}  {:<18}  {:<7}  {:<20}  {:<20}",
        record.id,
        if record.name.is_empty() {
            "-"
        } else {
            &record.name
        },
        record.tenant,
        record.scopes_text(),
        record.status(now),
        timestamp(Some(record.created_unix_seconds)),
        timestamp(record.expires_unix_seconds),
    )
}

fn revoke(args: &KeysRevokeArgs, store: &KeyStore) -> anyhow::Result<()> {
    let record = store.revoke(&args.id)?;
    println!(
        "revoked key {} (tenant {}, scopes {}); a running server refuses it within 5 seconds",
        record.id,
        record.tenant,
        record.scopes_text()
    );
    Ok(())
}

/// RFC 3339 to the second, or `never`.
fn timestamp(unix_seconds: Option<u64>) -> String {
    unix_seconds
        .and_then(|seconds| i64::try_from(seconds).ok())
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map_or_else(
            || "never".to_owned(),
            |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}
