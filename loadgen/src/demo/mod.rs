//! `--scenario demo`: a small coffee-gear shop to look at after a first `serve` (see
//! [`shop`]): a visitor's request every half second, each followed through frontend,
//! checkout, payment and inventory with one request id on every log line, some checkouts
//! declined or failed, the shop's metrics every 5 s, and `payment`'s clock 250 ms ahead.

mod request;
mod shop;
mod shop_metrics;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use self::request::ShopService;
use self::shop::Shop;
use self::shop_metrics::ShopMetrics;
use super::common::scope;
use super::rng::Random;
use super::traces::hex;
use super::transport::{Endpoints, Outcome, Sender};
use super::{LoadgenArgs, Signal, encode, now_unix_nano};

/// How often the shop's metrics are exported.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Sends the story until `--duration` (or `--count` requests) is reached.
pub async fn run(args: &LoadgenArgs, endpoints: &Endpoints) -> Result<(), crate::LoadgenError> {
    let mut rng = Random::new(args.seed);
    let skewed = args.skew_service.as_deref().unwrap_or("payment");
    let skew_ms = if args.skew_ms == 0 { 250 } else { args.skew_ms };
    let shop = Shop::new(skewed, skew_ms);
    let encoding = args.transport.encoding();
    let connect = |signal| Sender::connect(args.transport, signal, endpoints);
    let mut trace_sender = connect(Signal::Traces).await?;
    let mut log_sender = connect(Signal::Logs).await?;
    let mut metric_sender = connect(Signal::Metrics).await?;
    let mut metrics = ShopMetrics::new(shop.services.len(), now_unix_nano());

    let started = Instant::now();
    let max_requests = args.count.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut failures = 0u64;
    // The first metrics go out with the first request.
    let mut last_metrics = Instant::now()
        .checked_sub(METRICS_INTERVAL)
        .unwrap_or_else(Instant::now);
    let mut example = None;
    while started.elapsed().as_secs_f64() < args.duration && sent < max_requests {
        let request = shop.next(&mut rng, sent, now_unix_nano());
        let built = request.built;
        metrics.record(built.trace_id, &built.served, request.order);
        let traces = trace_export(&shop.services, built.spans);
        let logs = log_export(&shop.services, built.logs);
        failures += u64::from(send(&mut trace_sender, encoding, &traces).await);
        failures += u64::from(send(&mut log_sender, encoding, &logs).await);
        if last_metrics.elapsed() >= METRICS_INTERVAL {
            let export = metrics.export(&mut rng, &shop.services, now_unix_nano());
            failures += u64::from(send(&mut metric_sender, encoding, &export).await);
            last_metrics = Instant::now();
        }
        if request.order.is_some() {
            example.get_or_insert((built.trace_id, built.request_id));
        }
        sent += 1;
        if sent.is_multiple_of(10) {
            eprintln!("demo: {sent} requests traced, {failures} failed exports");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The last interval's metrics, so a short run still has them.
    let export = metrics.export(&mut rng, &shop.services, now_unix_nano());
    failures += u64::from(send(&mut metric_sender, encoding, &export).await);
    println!(
        "demo: sent {sent} requests with their logs, and metrics every {} s; {failures} exports failed",
        METRICS_INTERVAL.as_secs()
    );
    if let Some((trace_id, request_id)) = example {
        println!(
            "demo: look at one: curl {}/api/traces/{}",
            args.query_url(),
            hex(&trace_id)
        );
        println!(
            "demo: the whole request by its id: curl {}/api/stitch/{request_id}",
            args.query_url()
        );
    }
    println!("demo: {skewed}'s clock runs {skew_ms} ms ahead of the others");
    if sent > 0 && failures >= sent * 2 {
        return Err(crate::LoadgenError::DemoFailed);
    }
    Ok(())
}

/// The spans of one request, one resource per service that wrote some.
fn trace_export(services: &[ShopService], spans: Vec<(usize, Span)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: group(services.len(), spans)
            .map(|(index, spans)| ResourceSpans {
                resource: Some(services[index].resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// The log records of one request, one resource per service that wrote some.
fn log_export(
    services: &[ShopService],
    records: Vec<(usize, LogRecord)>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: group(services.len(), records)
            .map(|(index, log_records)| ResourceLogs {
                resource: Some(services[index].resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope()),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// Items grouped by the service index they carry, services without items left out.
fn group<T>(services: usize, items: Vec<(usize, T)>) -> impl Iterator<Item = (usize, Vec<T>)> {
    let mut groups: Vec<Vec<T>> = (0..services).map(|_| Vec::new()).collect();
    for (index, item) in items {
        groups[index].push(item);
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, items)| !items.is_empty())
}

/// Sends one export; true when it was not accepted.
async fn send<M: Message + serde::Serialize>(
    sender: &mut Sender,
    encoding: super::pool::Encoding,
    message: &M,
) -> bool {
    let body = match encode(encoding, message) {
        Ok(body) => body,
        Err(_) => return true,
    };
    !matches!(sender.send(body.into()).await, Outcome::Accepted { .. })
}
