//! `skewer serve`: binds every port first (clear errors), serves health at once, opens storage
//! (WAL replay) before turning ready, then opens ingest. Shutdown runs in reverse: stop
//! accepting, drain in-flight exports, flush every store, checkpoint, stop the query port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skewer_ingest::Pipeline;
use skewer_ingest::grpc::{GrpcConfig, serve_grpc};
use skewer_ingest::http::{HttpConfig, otlp_http_router};
use skewer_ingest::limits::{LimitsConfig, TenantGate};
use skewer_ingest::payload::{DecodeOptions, OtlpWalDecoder};
use skewer_ingest::redact::{Redactor, load_or_create_hash_key};
use skewer_ingest::span_metrics::SpanMetrics;
use skewer_ingest::stats::IngestStats;
use skewer_storage::Storage;
use skewer_storage::auth::{KeyDatabase, KeyRing, KeyStore};
use skewer_storage::layout::{REDACTION_KEY_FILE, tenants_on_disk};
use skewer_storage::metrics::SeriesTable;
use skewer_storage::model::TenantId;
use skewer_storage::scan::ScanLimits;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::alerting::Alerting;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::connection_cap::capped;
use crate::exposure::check_exposure;
use crate::http_serve::{self, ServeLimits};
use crate::limits::{DeploymentLimits, SharedLimits};
use crate::per_address::PerAddress;
use crate::self_metrics::SelfMetrics;
use crate::tls::{TlsListener, TlsReloader};

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

/// How often the key file and the TLS files are looked at: a revoked key stops working within
/// this (plus the time one look takes), well inside the promised 5 seconds.
const CREDENTIAL_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Re-reads the key file and the TLS files when they change, until `stop`. A file that cannot
/// be used is logged once per distinct error, and the previous keys or certificate stay.
async fn refresh_credentials(
    keys: Arc<KeyRing>,
    tls: Option<Arc<TlsReloader>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(CREDENTIAL_REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_errors: [Option<String>; 2] = [None, None];
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let (keys, tls) = (Arc::clone(&keys), tls.clone());
        let looked = tokio::task::spawn_blocking(move || {
            let keys = keys.refresh().map_err(|err| err.to_string());
            let tls = tls.map(|tls| tls.refresh().map_err(|err| err.to_string()));
            (keys, tls.unwrap_or(Ok(false)))
        })
        .await;
        let Ok((keys, tls)) = looked else {
            warn!("credential refresh task failed");
            continue;
        };
        for ((what, outcome), last_error) in [("API keys", keys), ("TLS certificate", tls)]
            .into_iter()
            .zip(&mut last_errors)
        {
            match outcome {
                Ok(true) => {
                    info!("{what} reloaded");
                    *last_error = None;
                }
                Ok(false) => {}
                Err(err) => {
                    if last_error.as_deref() != Some(err.as_str()) {
                        warn!(error = %err, "{what} not reloaded; the previous ones stay in force");
                    }
                    *last_error = Some(err);
                }
            }
        }
    }
}

/// Writes the span metrics and clock-skew estimates to the metric store every `interval`
/// until `stop`.
async fn write_derived_metrics(
    pipeline: Arc<Pipeline>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
        pipeline.export_derived_metrics(now).await;
    }
}

/// Writes what recording rules produce until ingest stops (with the rest of ingest, before
/// storage shuts down).
async fn write_recorded_series(
    pipeline: Arc<Pipeline>,
    mut recorded: tokio::sync::mpsc::Receiver<crate::alerting::RecordedSeries>,
    stop: CancellationToken,
) {
    loop {
        let (tenant, request) = tokio::select! {
            next = recorded.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        if let Err(err) = pipeline.export_recorded(tenant.clone(), &request).await {
            warn!(%tenant, error = %err, "recorded series not written this evaluation");
        }
    }
}

/// Reloads the alerting rules on each SIGHUP until `stop` (a file with errors keeps the
/// running rules, and says what is wrong in the log).
async fn reload_rules_on_hangup(alerting: Arc<Alerting>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(stream) => stream,
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGHUP; rules reload over HTTP only");
                    return;
                }
            };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                }
                () = stop.cancelled() => return,
            }
            info!("SIGHUP: reloading alerting rules");
            let alerting = Arc::clone(&alerting);
            match tokio::task::spawn_blocking(move || alerting.reload()).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    for problem in &err.0 {
                        error!(%problem, "rule file error");
                    }
                    warn!("{err}");
                }
                Err(err) => error!(error = %err, "rule reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (alerting, stop);
    }
}

/// The redaction rules of `config`, with their hash key (the configured file, else one made
/// once in the data directory); `None` without rules.
fn redactor(config: &Config) -> anyhow::Result<Option<Arc<Redactor>>> {
    let redaction = &config.redaction;
    let hash_key = if redaction.needs_hash_key() {
        let key = match &redaction.hash_key_file {
            Some(path) => load_or_create_hash_key(path, false)?,
            None => load_or_create_hash_key(&config.data_dir.join(REDACTION_KEY_FILE), true)?,
        };
        Some(key)
    } else {
        None
    };
    let redactor = Redactor::new(redaction, hash_key)?;
    if redactor.is_some() {
        info!(
            rules = redaction.rules.len(),
            "redaction rules applied to every export before the WAL"
        );
    }
    Ok(redactor.map(Arc::new))
}

/// Serves `app` on `listener`, TLS-terminated when `tls` is set, until `stop` (then within
/// the grace period of `limits`).
fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<&Arc<TlsReloader>>,
    limits: ServeLimits,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    Ok(match tls {
        Some(tls) => {
            let per_address = PerAddress::new(limits.max_connections_per_address);
            let listener =
                TlsListener::spawn(listener, Arc::clone(tls), per_address, stop.clone())?;
            tokio::spawn(http_serve::serve(listener, app, limits, stop))
        }
        None => tokio::spawn(http_serve::serve(listener, app, limits, stop)),
    })
}

/// The API keys: the data directory's key file, or the catalog database's keys that every
/// node of a deployment shares.
async fn open_keys(config: &Config) -> anyhow::Result<KeyRing> {
    let Some(url) = config.catalog.url()? else {
        return KeyRing::open(&config.data_dir).context("cannot load API keys");
    };
    let database = KeyDatabase::connect(&url)
        .await
        .context("cannot load API keys")?;
    let file = config.data_dir.join(skewer_storage::auth::KEYS_FILE);
    if file.exists() {
        warn!(file = %file.display(), "API keys come from the catalog database; this key file is ignored");
    }
    let store = KeyStore::in_database(Arc::new(database), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || KeyRing::open_store(store))
        .await
        .context("cannot load API keys")?
        .context("cannot load API keys")
}

/// The tenant limits of a deployment with a catalog database: the stored ones (the config
/// file's written there first when none are), their version and the connection to follow them.
async fn open_shared_limits(
    config: &Config,
) -> anyhow::Result<Option<(SharedLimits, i64, LimitsConfig)>> {
    let Some(url) = config.catalog.url()? else {
        return Ok(None);
    };
    let shared = SharedLimits::connect(&url)
        .await
        .context("cannot load the tenant limits")?;
    let (version, limits) = shared
        .seed(&config.limits)
        .await
        .context("cannot load the tenant limits")?;
    Ok(Some((shared, version, limits)))
}

/// How long queries in flight get once ingest is flushed.
const QUERY_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Runs the server until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_data_dir(&config)?;
    let keys = Arc::new(open_keys(&config).await?);
    let tls = match config.tls.files() {
        Some(files) => Some(Arc::new(
            TlsReloader::open(files).context("cannot set up TLS")?,
        )),
        None => None,
    };
    let role = config.role;
    let mut exposed = vec![("http_addr", config.http_addr)];
    if role.ingests() {
        exposed.push(("otlp_grpc_addr", config.otlp_grpc_addr));
        exposed.push(("otlp_http_addr", config.otlp_http_addr));
    }
    check_exposure(
        &exposed,
        keys.keys_required(),
        tls.is_some(),
        config.insecure,
    )?;
    if !keys.keys_required() {
        info!(
            "no API keys in the data directory: requests need none (`skewer keys create` adds one)"
        );
    }
    // A node that does not ingest opens no OTLP port.
    let (grpc_listener, otlp_http_listener) = if role.ingests() {
        (
            Some(bind(config.otlp_grpc_addr, "otlp_grpc_addr").await?),
            Some(bind(config.otlp_http_addr, "otlp_http_addr").await?),
        )
    } else {
        (None, None)
    };
    let http_listener = bind(config.http_addr, "http_addr").await?;
    // The addresses really bound (a port of 0 in the config picks a free one).
    let bound = |listener: &TcpListener, configured: std::net::SocketAddr| {
        listener.local_addr().unwrap_or(configured)
    };
    let shown = |listener: &Option<TcpListener>, configured| {
        listener.as_ref().map_or_else(
            || "off".to_owned(),
            |listener| bound(listener, configured).to_string(),
        )
    };
    let grpc_addr = shown(&grpc_listener, config.otlp_grpc_addr);
    let otlp_http_addr = shown(&otlp_http_listener, config.otlp_http_addr);
    let http_addr = bound(&http_listener, config.http_addr);

    let scheme = if tls.is_some() { "https" } else { "http" };
    let alerting_settings = config
        .alerting
        .settings(&format!("{scheme}://{http_addr}"))?;
    let alerting =
        Alerting::open(alerting_settings, &config.data_dir).context("cannot set up alerting")?;

    let ingest_stats = Arc::new(IngestStats::default());
    let shared_limits = open_shared_limits(&config).await?;
    let tenants = Arc::new(TenantGate::new(
        shared_limits
            .as_ref()
            .map_or_else(|| config.limits.clone(), |(_, _, limits)| limits.clone()),
        tenants_on_disk(&config.data_dir),
    ));
    let deployment_limits = shared_limits.map(|(shared, version, _)| {
        Arc::new(DeploymentLimits::new(shared, Arc::clone(&tenants), version))
    });
    let state = AppState::new(
        Arc::new(SelfMetrics::new(
            Arc::clone(&ingest_stats),
            Arc::clone(&tenants),
        )),
        config.query.clone(),
        Arc::clone(&keys),
    )
    .with_tenant_limits(tenants.limits().clone())
    .with_deployment_limits(deployment_limits.clone())
    .with_alerting(Arc::clone(&alerting));
    let stop_ingest = CancellationToken::new();
    let stop_query = CancellationToken::new();
    tokio::spawn(refresh_credentials(
        Arc::clone(&keys),
        tls.clone(),
        stop_query.clone(),
    ));
    {
        let stop_ingest = stop_ingest.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("shutdown requested");
            stop_ingest.cancel();
        });
    }

    let connections = &config.connections;
    let limits = ServeLimits {
        max_connections: connections.max_connections,
        max_connections_per_address: connections.max_connections_per_address,
        header_read_timeout: Duration::from_secs(connections.header_read_timeout_seconds),
        shutdown_grace: Duration::from_secs(config.shutdown_grace_seconds),
    };
    let query_server = serve_http(
        http_listener,
        api::router(state.clone()),
        tls.as_ref(),
        ServeLimits {
            shutdown_grace: QUERY_SHUTDOWN_GRACE,
            ..limits
        },
        stop_query.clone(),
    )?;
    info!(addr = %http_addr, "query API listening (not ready until the WAL is replayed)");

    let options = DecodeOptions {
        correlation_keys: Arc::from(config.correlation_id_attributes.clone()),
        redactor: redactor(&config).context("cannot set up redaction")?,
        record_limits: Some(Arc::new(config.record_limits.clone())),
        active_series: None,
        series: Arc::new(SeriesTable::for_budget(config.max_buffered_bytes)),
    };
    let storage_config = config.storage_config()?;
    let storage_shares_tables = storage_config.shares_tables();
    let refresh_interval = storage_config.catalog_refresh_interval;
    if let Some(limits) = &deployment_limits {
        tokio::spawn(crate::limits::follow(
            Arc::clone(limits),
            refresh_interval,
            stop_query.clone(),
        ));
    }
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
    tenants.add_existing(storage.table_tenants());
    if storage_shares_tables {
        tenants.set_ingest_nodes(storage.ingest_nodes());
        tokio::spawn(follow_the_deployment(
            Arc::clone(&storage),
            Arc::clone(&tenants),
            refresh_interval,
            stop_query.clone(),
        ));
    }
    let stop_alerting = CancellationToken::new();
    // One node of a deployment evaluates the rules (all, or the compactor).
    let alerting_task = role.evaluates_rules().then(|| {
        let limits_state = state.clone();
        let limits: Arc<dyn Fn(&TenantId) -> ScanLimits + Send + Sync> =
            Arc::new(move |tenant: &TenantId| limits_state.scan_limits(tenant));
        tokio::spawn(Arc::clone(&alerting).run(Arc::clone(&storage), limits, stop_alerting.clone()))
    });
    tokio::spawn(reload_rules_on_hangup(
        Arc::clone(&alerting),
        stop_query.clone(),
    ));
    let mut pipeline = Pipeline::new(Arc::clone(&storage), options, ingest_stats, tenants)
        .with_memory_release(crate::release_freed_memory);
    if config.span_metrics.enabled {
        let started =
            u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
        pipeline = pipeline.with_span_metrics(Arc::new(SpanMetrics::new(
            config.span_metrics.clone(),
            started,
        )));
    }
    let pipeline = Arc::new(pipeline);
    let (recorded, to_write) = tokio::sync::mpsc::channel(crate::alerting::RECORDED_QUEUE);
    alerting.record_into(recorded);
    tokio::spawn(write_recorded_series(
        Arc::clone(&pipeline),
        to_write,
        stop_ingest.clone(),
    ));
    tokio::spawn(write_derived_metrics(
        Arc::clone(&pipeline),
        Duration::from_secs(config.span_metrics.interval_seconds),
        stop_ingest.clone(),
    ));

    let grpc_server = grpc_listener
        .map(|grpc_listener| -> std::io::Result<_> {
            let config = GrpcConfig {
                max_message_bytes: config.max_request_bytes,
                keys: Arc::clone(&keys),
                body_limits: config.connections.body_limits(),
                max_connection_age: Duration::from_secs(
                    config.connections.grpc_max_connection_age_seconds,
                ),
                ..GrpcConfig::default()
            };
            let stop = stop_ingest.clone();
            let max_connections = limits.max_connections;
            let per_address = PerAddress::new(limits.max_connections_per_address);
            match &tls {
                Some(tls) => {
                    let incoming = TlsListener::spawn(
                        grpc_listener,
                        Arc::clone(tls),
                        per_address,
                        stop.clone(),
                    )?;
                    Ok(tokio::spawn(serve_grpc(
                        // Counted per address before the handshake.
                        capped(incoming.into_stream(), max_connections, PerAddress::new(0)),
                        Arc::clone(&pipeline),
                        config,
                        stop.cancelled_owned(),
                    )))
                }
                None => Ok(tokio::spawn(serve_grpc(
                    capped(
                        TcpListenerStream::new(grpc_listener),
                        max_connections,
                        per_address,
                    ),
                    Arc::clone(&pipeline),
                    config,
                    stop.cancelled_owned(),
                ))),
            }
        })
        .transpose()?;
    let otlp_http_server = otlp_http_listener
        .map(|listener| {
            serve_http(
                listener,
                otlp_http_router(
                    Arc::clone(&pipeline),
                    &HttpConfig {
                        max_body_bytes: config.max_request_bytes,
                        keys: Arc::clone(&keys),
                        body_limits: config.connections.body_limits(),
                    },
                ),
                tls.as_ref(),
                limits,
                stop_ingest.clone(),
            )
        })
        .transpose()?;
    state.set_ready(true);
    info!(
        role = role.name(),
        otlp_grpc = %grpc_addr,
        otlp_http = %otlp_http_addr,
        http = %http_addr,
        data_dir = %config.data_dir.display(),
        tls = tls.is_some(),
        api_keys = keys.keys_required(),
        "skewer ready"
    );

    stop_ingest.cancelled().await;
    state.set_ready(false);
    // Both ingest servers stopped accepting at once; requests in flight share one grace period.
    let grace_ends = tokio::time::Instant::now() + limits.shutdown_grace;
    if let Some(mut grpc_server) = grpc_server {
        match tokio::time::timeout_at(grace_ends, &mut grpc_server).await {
            Ok(Ok(Err(err))) => error!(error = %err, "OTLP/gRPC server failed"),
            Ok(Err(err)) => error!(error = %err, "OTLP/gRPC server task failed"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => {
                warn!("OTLP/gRPC calls still open after the shutdown grace period: cut");
                grpc_server.abort();
            }
        }
    }
    if let Some(Err(err)) = match otlp_http_server {
        Some(server) => Some(server.await),
        None => None,
    } {
        error!(error = %err, "OTLP/HTTP server task failed");
    }
    stop_alerting.cancel();
    if let Some(Err(err)) = match alerting_task {
        Some(task) => Some(task.await),
        None => None,
    } {
        error!(error = %err, "alerting task failed");
    }
    info!("ingest stopped; flushing");
    // Bounded, so that with the default 20 s grace a shutdown under full load (a long log
    // commit in flight) ends within Kubernetes' 30 s; the WAL keeps what was not written.
    let flush_timeout = Duration::from_secs(config.shutdown_flush_timeout_seconds);
    let flushed = match tokio::time::timeout(flush_timeout, storage.shutdown()).await {
        Ok(flushed) => flushed,
        Err(_) => {
            warn!(
                timeout_seconds = flush_timeout.as_secs(),
                "final flush unfinished; the WAL keeps the rest for the next start"
            );
            Ok(())
        }
    };
    stop_query.cancel();
    if let Err(err) = query_server.await {
        error!(error = %err, "query server task failed");
    }
    flushed.context("final flush failed; the WAL keeps the data for the next start")?;
    info!("shutdown complete");
    Ok(())
}

/// Follows the rest of a shared deployment after each catalog refresh: the tenants other
/// nodes wrote count toward this node's tenant cap, so `max_tenants` holds for the deployment
/// (give or take the tenants several nodes admit within one refresh), and each tenant's rates
/// are shared among the live ingest nodes.
async fn follow_the_deployment(
    storage: Arc<Storage>,
    tenants: Arc<TenantGate>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        tenants.add_existing(storage.table_tenants());
        tenants.set_ingest_nodes(storage.ingest_nodes());
    }
}
