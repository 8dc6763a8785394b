//! `skewer keys create|list|revoke`: the operator's view of `{data_dir}/keys.json`. The key
//! itself is printed once, by `create`, as the last line of its output; only its hash is kept.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat};
use skewer_storage::auth::{KeyRecord, KeyStore, NewKeyRequest};

use crate::cli::{KeysCommand, KeysCreateArgs, KeysDirArgs, KeysRevokeArgs};

/// Runs one `skewer keys` subcommand.
pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args),
        KeysCommand::List(args) => list(args),
        KeysCommand::Revoke(args) => revoke(args),
    }
}

fn store(dir: &KeysDirArgs) -> anyhow::Result<KeyStore> {
    std::fs::create_dir_all(&dir.data_dir)
        .with_context(|| format!("cannot create {}", dir.data_dir.display()))?;
    Ok(KeyStore::new(&dir.data_dir))
}

fn create(args: &KeysCreateArgs) -> anyhow::Result<()> {
    let store = store(&args.dir)?;
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

fn list(args: &KeysDirArgs) -> anyhow::Result<()> {
    let records = KeyStore::new(&args.data_dir).load()?;
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

fn revoke(args: &KeysRevokeArgs) -> anyhow::Result<()> {
    let record = KeyStore::new(&args.dir.data_dir).revoke(&args.id)?;
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
