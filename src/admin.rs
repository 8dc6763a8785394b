//! The operator's subcommands on a data directory: `backup` (beside a running server),
//! `restore` (into a new directory) and `check` (with `--repair`, which needs the server
//! stopped); `backup` and `restore` also take a shared deployment's bucket and catalog
//! database (`--config`). Each prints what it did; `check` fails when problems remain.

use std::path::{Path, PathBuf};

use anyhow::Context;
use skewer_storage::backup::CopySummary;
use skewer_storage::backup::deployment::{self, DeploymentSummary};
use skewer_storage::backup::place::BackupPlace;
use skewer_storage::config::StorageConfig;
use skewer_storage::lock::DataDirLock;

use crate::cli::{BackupArgs, CheckArgs, RestoreArgs};
use crate::config::{Config, Overrides};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skewer-admin")
        .build()?)
}

fn print_summary(verb: &str, summary: &CopySummary) {
    println!(
        "{verb}: {} WAL segments, {} data files, {} log partitions, {} bytes",
        summary.wal_segments, summary.data_files, summary.log_partitions, summary.bytes
    );
}

/// The storage a config names, and whether it is a shared deployment's (a bucket or a
/// catalog database).
fn storage_of(config: &Path) -> anyhow::Result<(StorageConfig, bool)> {
    let (config, _) = Config::load(Some(config), Overrides::default())?;
    let storage = config.storage_config()?;
    let shared = storage.shares_tables();
    Ok((storage, shared))
}

/// The data directory meant: `--data-dir`, else the config's.
fn data_dir_of(data_dir: Option<&PathBuf>, config: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match (data_dir, config) {
        (Some(dir), _) => Ok(dir.clone()),
        (None, Some(config)) => Ok(storage_of(config)?.0.data_dir),
        (None, None) => {
            anyhow::bail!("name the data directory (--data-dir) or a config (--config)")
        }
    }
}

fn print_deployment_summary(verb: &str, summary: &DeploymentSummary) {
    println!(
        "{verb}: {} tables with {} data files, {} log replicas with {} files, {} settings, {} API keys, {} bytes",
        summary.tables,
        summary.data_files,
        summary.log_replicas,
        summary.log_files,
        summary.settings,
        summary.api_keys,
        summary.bytes
    );
}

/// `skewer backup --data-dir D --to DIR`, or `--config shared.toml` for a deployment's bucket
/// and catalog database.
pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    if let Some(config) = &args.config {
        let (storage, shared) = storage_of(config)?;
        if shared {
            if let Some(dir) = &args.data_dir {
                eprintln!(
                    "note: {} names a shared deployment: its bucket and catalog are backed up, \
                     not {} (back up data directories with --data-dir alone, before the deployment)",
                    config.display(),
                    dir.display()
                );
            }
            let place =
                BackupPlace::parse(&args.to.to_string_lossy(), storage.object_store.as_ref());
            let summary = runtime()?
                .block_on(deployment::backup_deployment(&storage, &place))
                .context("backup of the deployment failed")?;
            print_deployment_summary("backed up", &summary);
            println!("{}", args.to.display());
            return Ok(());
        }
    }
    let data_dir = data_dir_of(args.data_dir.as_ref(), args.config.as_ref())?;
    let summary = runtime()?
        .block_on(skewer_storage::backup::backup(&data_dir, &args.to))
        .with_context(|| format!("backup of {} failed", data_dir.display()))?;
    print_summary("backed up", &summary);
    println!("{}", args.to.display());
    Ok(())
}

/// `skewer restore --from DIR --data-dir NEW`, or `--config new.toml` for a deployment backup.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let from = args.from.to_string_lossy();
    if deployment::is_deployment_backup(&BackupPlace::parse(&from, None)) {
        let Some(config) = &args.config else {
            anyhow::bail!(
                "{} is a deployment backup: name the deployment to restore into (--config, with an \
                 empty [storage] url bucket and [catalog] url database)",
                args.from.display()
            );
        };
        let (storage, shared) = storage_of(config)?;
        anyhow::ensure!(
            shared,
            "{} names no shared deployment ([storage] url or [catalog] url) to restore into",
            config.display()
        );
        let place = BackupPlace::parse(&from, storage.object_store.as_ref());
        let summary = runtime()?
            .block_on(deployment::restore_deployment(&place, &storage))
            .context("restore of the deployment failed")?;
        print_deployment_summary("restored", &summary);
        println!(
            "restored {}; start the deployment's nodes with {}",
            args.from.display(),
            config.display()
        );
        return Ok(());
    }
    let data_dir = data_dir_of(args.data_dir.as_ref(), args.config.as_ref())?;
    let _lock = DataDirLock::acquire(&data_dir)?;
    let summary = skewer_storage::backup::restore(&args.from, &data_dir)
        .with_context(|| format!("restore into {} failed", data_dir.display()))?;
    print_summary("restored", &summary);
    let report = runtime()?.block_on(skewer_storage::check::check(&data_dir, false))?;
    anyhow::ensure!(
        report.problems.is_empty(),
        "the restored directory has problems:\n{}",
        report.problems.join("\n")
    );
    println!(
        "restored {} into {}; `skewer serve --data-dir {}` replays its WAL on start",
        args.from.display(),
        data_dir.display(),
        data_dir.display()
    );
    Ok(())
}

/// `skewer check --data-dir D [--repair]`, or `--config shared.toml` for a deployment.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    if let Some(config) = &args.config {
        let (storage, shared) = storage_of(config)?;
        if shared {
            anyhow::ensure!(
                !args.repair,
                "a shared deployment is checked read-only: its nodes keep writing to it (repair \
                 one node's data directory with --data-dir and --repair, that node stopped)"
            );
            let report = runtime()?.block_on(skewer_storage::check::check_deployment(&storage))?;
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            println!(
                "checked {} tables, {} data files, {} log replicas: {}",
                report.tables,
                report.data_files,
                report.log_partitions,
                if report.problems.is_empty() {
                    "ok"
                } else {
                    "problems found"
                }
            );
            anyhow::ensure!(report.problems.is_empty(), "the deployment has problems");
            return Ok(());
        }
    }
    let data_dir = data_dir_of(args.data_dir.as_ref(), args.config.as_ref())?;
    anyhow::ensure!(
        data_dir.is_dir(),
        "{} is not a directory",
        data_dir.display()
    );
    let _lock = if args.repair {
        Some(DataDirLock::acquire(&data_dir).context("stop the server before --repair")?)
    } else {
        None
    };
    let report = runtime()?.block_on(skewer_storage::check::check(&data_dir, args.repair))?;
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    for repair in &report.repairs {
        println!("repaired: {repair}");
    }
    println!(
        "checked {} tables, {} data files, {} log partitions, {} WAL segments: {}",
        report.tables,
        report.data_files,
        report.log_partitions,
        report.wal_segments,
        if report.problems.is_empty() {
            "no problems"
        } else if report.healthy() {
            "every problem repaired"
        } else {
            "problems remain"
        }
    );
    anyhow::ensure!(
        report.healthy(),
        "{} problems found{}",
        report.problems.len() - report.repairs.len(),
        if args.repair {
            ""
        } else {
            "; --repair fixes what can be fixed"
        }
    );
    Ok(())
}
