//! The operator's subcommands on a data directory: `backup` (beside a running server),
//! `restore` (into a new directory) and `check` (with `--repair`, which needs the server
//! stopped). Each prints what it did; `check` fails when problems remain.

use anyhow::Context;
use skewer_storage::backup::CopySummary;
use skewer_storage::lock::DataDirLock;

use crate::cli::{BackupArgs, CheckArgs, RestoreArgs};

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

/// `skewer backup --data-dir D --to DIR`.
pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let summary = runtime()?
        .block_on(skewer_storage::backup::backup(&args.data_dir, &args.to))
        .with_context(|| format!("backup of {} failed", args.data_dir.display()))?;
    print_summary("backed up", &summary);
    println!("{}", args.to.display());
    Ok(())
}

/// `skewer restore --from DIR --data-dir NEW`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let _lock = DataDirLock::acquire(&args.data_dir)?;
    let summary = skewer_storage::backup::restore(&args.from, &args.data_dir)
        .with_context(|| format!("restore into {} failed", args.data_dir.display()))?;
    print_summary("restored", &summary);
    let report = runtime()?.block_on(skewer_storage::check::check(&args.data_dir, false))?;
    anyhow::ensure!(
        report.problems.is_empty(),
        "the restored directory has problems:\n{}",
        report.problems.join("\n")
    );
    println!(
        "restored {} into {}; `skewer serve --data-dir {}` replays its WAL on start",
        args.from.display(),
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}

/// `skewer check --data-dir D [--repair]`.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "{} is not a directory",
        args.data_dir.display()
    );
    let _lock = if args.repair {
        Some(DataDirLock::acquire(&args.data_dir).context("stop the server before --repair")?)
    } else {
        None
    };
    let report = runtime()?.block_on(skewer_storage::check::check(&args.data_dir, args.repair))?;
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
