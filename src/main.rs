//! The `skewer` binary: command line, logging setup, and dispatch to the subcommands.

mod admin;
mod alerting;
mod api;
mod cli;
mod config;
mod connection_cap;
mod exposure;
mod http_serve;
mod keys;
mod limits;
mod per_address;
mod role;
mod self_metrics;
mod server;
mod tls;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// mimalloc: the server's hot path allocates per record (decoded OTLP, model, Arrow
/// builders); glibc's allocator spent ~20% of CPU there and kept returning and re-faulting
/// pages. See docs/benchmarks.md for the measured difference.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::config::Config;

/// Gives memory freed by this thread back to the system now, program-wide. mimalloc otherwise
/// keeps freed memory for seconds (purging it at once costs ~18% of ingest throughput,
/// measured), so after a big decode resident memory stayed past the memory budget
/// (tests/integration/hostile.rs). Called only after decodes that big.
pub fn release_freed_memory() {
    // SAFETY: a collection of this thread's allocator state; allowed at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// How long tasks left at exit get to stop.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "skewer: error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `SKEWER_LOG`; colours only on a terminal; one JSON object a
/// line when `SKEWER_LOG_FORMAT=json` (for log shippers).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("SKEWER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn,object_store=warn"));
    // A closed stderr (`skewer serve | head`, a log shipper gone) drops log lines: the default
    // reports each failed write with eprintln!, which panics on that same stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let json = std::env::var("SKEWER_LOG_FORMAT").is_ok_and(|format| format == "json");
    if json {
        builder.json().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// An error and its causes, each said once (a message that already includes its cause's
/// text does not repeat it).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let (config, file) = Config::load(args.config.as_deref(), args.overrides())?;
            if let Some(file) = file {
                tracing::info!(file = %file.display(), "config file loaded");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("skewer")
                .build()?;
            let served = runtime.block_on(server::serve(config));
            // A flush cut short at shutdown may still run on a blocking thread: it is not
            // waited for (the WAL keeps its data).
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
            served
        }
        Command::Backup(args) => admin::backup(&args),
        Command::Restore(args) => admin::restore(&args),
        Command::Check(args) => admin::check(&args),
        Command::Keys(command) => keys::run(&command),
        Command::Limits(command) => limits::cli::run(&command),
        Command::Loadgen(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("skewer-loadgen")
                .build()?;
            Ok(runtime.block_on(skewer_loadgen::run(*args))?)
        }
    }
}
