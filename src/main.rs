//! The `skewer` binary: command line, logging setup, and dispatch to the subcommands.

mod admin;
mod api;
mod cli;
mod config;
mod exposure;
mod keys;
mod self_metrics;
mod server;
mod tls;

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

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc.h; the Rust
/// bindings name only some options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once. mimalloc's default keeps it a second, and
/// only purges when the thread that freed it allocates again: an idle blocking thread after a
/// big decode kept its memory for good, and resident memory grew past the memory budget
/// (tests/integration/hostile.rs). `MIMALLOC_PURGE_DELAY` in the environment still decides.
fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an allocator option; mimalloc allows it at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skewer: error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `SKEWER_LOG`; colours only on a terminal; one JSON object a
/// line when `SKEWER_LOG_FORMAT=json` (for log shippers).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("SKEWER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
            runtime.block_on(server::serve(config))
        }
        Command::Backup(args) => admin::backup(&args),
        Command::Restore(args) => admin::restore(&args),
        Command::Check(args) => admin::check(&args),
        Command::Keys(command) => keys::run(&command),
        Command::Loadgen(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("skewer-loadgen")
                .build()?;
            Ok(runtime.block_on(skewer_loadgen::run(*args))?)
        }
    }
}
