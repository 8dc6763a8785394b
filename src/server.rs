//! `skewer serve`: binds every port first (clear errors), serves health at once, opens storage
//! (WAL replay) before turning ready, then opens ingest. Shutdown runs in reverse: stop
//! accepting, drain in-flight exports, flush every store, checkpoint, stop the query port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skewer_ingest::Pipeline;
use skewer_ingest::grpc::{GrpcConfig, serve_grpc};
use skewer_ingest::http::{HttpConfig, otlp_http_router};
use skewer_ingest::payload::{DecodeOptions, OtlpWalDecoder};
use skewer_ingest::stats::IngestStats;
use skewer_storage::Storage;
use skewer_storage::auth::KeyRing;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::exposure::check_exposure;
use crate::self_metrics::SelfMetrics;

async fn bind(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key}): is another process using it?"))
}

fn check_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let probe = dir.join(".skewer-write-probe");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("data dir {} is not writable", dir.display()))
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// How often the key file is looked at: a revoked key stops working within this (plus the
/// time one look takes), well inside the promised 5 seconds.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Re-reads the key file when it changes, until `stop`.
async fn refresh_keys(keys: Arc<KeyRing>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(KEY_REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let keys = Arc::clone(&keys);
        match tokio::task::spawn_blocking(move || keys.refresh()).await {
            Ok(Ok(true)) => info!("API keys reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(err)) => {
                warn!(error = %err, "API keys not reloaded; the previous keys stay in force")
            }
            Err(err) => warn!(error = %err, "API key refresh task failed"),
        }
    }
}

/// Runs the server until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_data_dir(&config)?;
    let keys = Arc::new(KeyRing::open(&config.data_dir).context("cannot load API keys")?);
    check_exposure(
        &[
            ("otlp_grpc_addr", config.otlp_grpc_addr),
            ("otlp_http_addr", config.otlp_http_addr),
            ("http_addr", config.http_addr),
        ],
        keys.keys_required(),
        false,
        config.insecure,
    )?;
    if !keys.keys_required() {
        info!(
            "no API keys in the data directory: requests need none (`skewer keys create` adds one)"
        );
    }
    let grpc_listener = bind(config.otlp_grpc_addr, "otlp_grpc_addr").await?;
    let otlp_http_listener = bind(config.otlp_http_addr, "otlp_http_addr").await?;
    let http_listener = bind(config.http_addr, "http_addr").await?;

    let ingest_stats = Arc::new(IngestStats::default());
    let state = AppState::new(
        Arc::new(SelfMetrics::new(Arc::clone(&ingest_stats))),
        config.query.clone(),
        Arc::clone(&keys),
    );
    let stop_ingest = CancellationToken::new();
    let stop_query = CancellationToken::new();
    tokio::spawn(refresh_keys(Arc::clone(&keys), stop_query.clone()));
    {
        let stop_ingest = stop_ingest.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("shutdown requested");
            stop_ingest.cancel();
        });
    }

    let query_server = {
        let app = api::router(state.clone());
        let stop = stop_query.clone();
        tokio::spawn(async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };
    info!(addr = %config.http_addr, "query API listening (not ready until the WAL is replayed)");

    let options = DecodeOptions {
        correlation_keys: Arc::from(config.correlation_id_attributes.clone()),
    };
    let storage_config = config.storage_config()?;
    let storage = tokio::select! {
        opened = Storage::open(storage_config, Arc::new(OtlpWalDecoder::new(options.clone()))) => {
            opened.context("cannot open storage")?
        }
        () = stop_ingest.cancelled() => {
            stop_query.cancel();
            return Ok(());
        }
    };
    state.set_storage(Arc::clone(&storage));
    let pipeline = Arc::new(Pipeline::new(Arc::clone(&storage), options, ingest_stats));

    let grpc_server = {
        let config = GrpcConfig {
            max_message_bytes: config.max_request_bytes,
            keys: Arc::clone(&keys),
            ..GrpcConfig::default()
        };
        tokio::spawn(serve_grpc(
            grpc_listener,
            Arc::clone(&pipeline),
            config,
            stop_ingest.clone().cancelled_owned(),
        ))
    };
    let otlp_http_server = {
        let app = otlp_http_router(
            Arc::clone(&pipeline),
            &HttpConfig {
                max_body_bytes: config.max_request_bytes,
                keys: Arc::clone(&keys),
            },
        );
        let stop = stop_ingest.clone();
        tokio::spawn(async move {
            axum::serve(otlp_http_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };
    state.set_ready(true);
    info!(
        otlp_grpc = %config.otlp_grpc_addr,
        otlp_http = %config.otlp_http_addr,
        http = %config.http_addr,
        data_dir = %config.data_dir.display(),
        "skewer ready"
    );

    stop_ingest.cancelled().await;
    state.set_ready(false);
    match grpc_server.await {
        Ok(Err(err)) => error!(error = %err, "OTLP/gRPC server failed"),
        Err(err) => error!(error = %err, "OTLP/gRPC server task failed"),
        Ok(Ok(())) => {}
    }
    match otlp_http_server.await {
        Ok(Err(err)) => error!(error = %err, "OTLP/HTTP server failed"),
        Err(err) => error!(error = %err, "OTLP/HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    info!("ingest stopped; flushing");
    let flushed = storage.shutdown().await;
    stop_query.cancel();
    if let Ok(Err(err)) = query_server.await {
        error!(error = %err, "query server failed");
    }
    flushed.context("final flush failed; the WAL keeps the data for the next start")?;
    info!("shutdown complete");
    Ok(())
}
