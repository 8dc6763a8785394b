//! skewer-loadgen: the load generator behind `skewer loadgen`. Realistic OTLP load from a
//! seeded generator, pre-encoded so it stays cheap next to the server, sent over gRPC, HTTP
//! protobuf or HTTP JSON in a closed or open loop, with a summary of what was acknowledged and
//! how fast. `--scenario demo` sends a small, readable e-commerce story instead. No server
//! crate depends on this one.

mod common;
mod demo;
mod drive;
mod error;
mod logs;
mod metrics;
mod pool;
mod report;
mod rng;
mod traces;
mod transport;
mod vocabulary;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use prost::Message;

use self::drive::RunLimits;
use self::metrics::MetricSeriesGenerator;
use self::pool::{Encoding, Prepared};
use self::report::Counters;
use self::rng::Random;
use self::traces::{Service, TraceShape};
pub use self::transport::TransportKind;
use self::transport::{Endpoints, Sender};
use self::vocabulary::SERVICES;
pub use error::LoadgenError;

/// The signal to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Signal {
    /// Multi-service traces.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// The OTLP/HTTP path segment.
    pub fn path(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Logs => "logs",
            Self::Metrics => "metrics",
        }
    }
}

impl LoadgenArgs {
    /// Where skewer's query API is, for printed links.
    pub fn query_url(&self) -> String {
        let url = self.query_url.clone().unwrap_or_else(|| {
            let addr = std::env::var("SKEWER_HTTP_ADDR")
                .ok()
                .filter(|addr| !addr.is_empty())
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
            format!("http://{addr}")
        });
        url.trim_end_matches('/').to_owned()
    }
}

pub use metrics::MetricValues;

/// A canned scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// A small e-commerce story (frontend → checkout → payment / inventory) with logs,
    /// metrics, some errors and a skewed clock on `payment`: something to look at.
    Demo,
}

/// Flags of `loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// What to send.
    #[arg(long, value_enum, default_value = "traces")]
    pub signal: Signal,
    /// How to send it.
    #[arg(long, value_enum, default_value = "grpc")]
    pub transport: TransportKind,
    /// A canned scenario instead of a load test (ignores --signal).
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// OTLP/gRPC address of the target.
    #[arg(long, default_value = "127.0.0.1:4317", value_name = "ADDR")]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP address of the target.
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR")]
    pub otlp_http_addr: SocketAddr,
    /// skewer's query API, for the links printed; default `http://` and the server's
    /// `SKEWER_HTTP_ADDR` when set, else `http://127.0.0.1:8080`.
    #[arg(long, value_name = "URL")]
    pub query_url: Option<String>,
    /// Extra request header, `Name: value` (repeatable), e.g. `X-Scope-OrgID: team-a`.
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// PEM CA certificate(s) of a server that speaks TLS: exports go over https / TLS gRPC
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PRNG seed: the same seed generates the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub duration: f64,
    /// Stop after about this many records (spans, log records or points).
    #[arg(long, value_name = "RECORDS")]
    pub count: Option<u64>,
    /// Concurrent exports (closed loop) or the in-flight cap (open loop).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Open loop at this many records per second; without it, a closed loop at full speed.
    #[arg(long, value_name = "RECORDS_PER_SECOND")]
    pub rate: Option<f64>,
    /// Records per export.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Distinct pre-encoded exports; replays rewrite trace ids and timestamps.
    #[arg(long, default_value_t = 32)]
    pub pool_size: usize,
    /// Services in generated traces.
    #[arg(long, default_value_t = 5)]
    pub services: usize,
    /// Call depth below the entry service.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Calls each service makes to the next level.
    #[arg(long, default_value_t = 2)]
    pub fan_out: usize,
    /// Share of traces that fail (0.0–1.0).
    #[arg(long, default_value_t = 0.05)]
    pub error_rate: f64,
    /// Shift this service's clock (e.g. `payment`), for clock-skew work.
    #[arg(long, value_name = "SERVICE")]
    pub skew_service: Option<String>,
    /// The clock shift of --skew-service, milliseconds (negative: behind).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "MS"
    )]
    pub skew_ms: i64,
    /// Metric series (metrics signal).
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// How metric values move from one interval to the next.
    #[arg(long, value_enum, default_value = "random")]
    pub metric_values: MetricValues,
    /// Spread the start times of traces and logs over this many past hours (the pool's
    /// requests are dated round-robin, one hour apart), like a backfill, so data lands in many
    /// hourly partitions; 1 keeps everything at the present.
    #[arg(long, default_value_t = 1, value_name = "HOURS")]
    pub spread_hours: u64,
    /// Date the pool's requests (traces and logs) evenly over this many past seconds, as
    /// steady traffic would be, instead of all at the present: a search of the last hour then
    /// finds an hour of data, not a burst. Replays keep their request's times.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub spread_seconds: u64,
    /// Date log records as a backfill of this many past hours that arrives in time order: the
    /// run's exports go forward evenly from that long ago to the present, each replay of the
    /// pool later than the last, as a day of steady traffic would be stored. Logs only; needs
    /// --count.
    #[arg(long, value_name = "HOURS", requires = "count", conflicts_with_all = ["spread_hours", "spread_seconds"])]
    pub backfill_hours: Option<u64>,
    /// Resend an export refused with a retryable answer up to this many times, 100 ms apart,
    /// as OTLP exporters do (closed loop). Every answer is counted.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Write up to 10,000 of the trace ids sent (hex, one per line) to this file.
    #[arg(long, value_name = "FILE")]
    pub trace_ids_out: Option<PathBuf>,
    /// Write up to 10,000 of the log correlation (request) ids sent, one per line, to this file.
    #[arg(long, value_name = "FILE")]
    pub correlation_ids_out: Option<PathBuf>,
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The addresses, headers and TLS trust `args` ask for.
fn endpoints(args: &LoadgenArgs) -> Result<Endpoints, LoadgenError> {
    let tls_ca_pem = match &args.tls_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| LoadgenError::Read {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    Ok(Endpoints {
        grpc_addr: args.otlp_grpc_addr,
        http_addr: args.otlp_http_addr,
        headers: parse_headers(&args.headers)?,
        tls_ca_pem,
    })
}

fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>, LoadgenError> {
    headers
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| LoadgenError::BadHeader(header.clone()))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Services for generated data, with the requested clock skew applied.
fn services(args: &LoadgenArgs, rng: &mut Random) -> Vec<Service> {
    let count = args.services.clamp(1, SERVICES.len());
    SERVICES[..count]
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let mut service = Service::new(name, index, rng);
            if args.skew_service.as_deref() == Some(*name) {
                service.clock_offset_nanos = args.skew_ms.saturating_mul(1_000_000);
            }
            service
        })
        .collect()
}

fn encode<M: Message + serde::Serialize>(
    encoding: Encoding,
    message: &M,
) -> Result<Vec<u8>, LoadgenError> {
    Ok(match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message)?,
    })
}

/// The base time of pool request `index` when requests are spread over `hours` past hours.
fn spread_base(now: u64, index: usize, args: &LoadgenArgs) -> u64 {
    const HOUR: u64 = 3_600_000_000_000;
    let hours_back = (index as u64 % args.spread_hours.max(1)) * HOUR;
    // Evenly over the spread, the first request oldest.
    let pool_size = args.pool_size.max(1) as u64;
    let spread_nanos = args.spread_seconds.saturating_mul(1_000_000_000);
    let seconds_back = spread_nanos / pool_size * (pool_size - 1 - index as u64 % pool_size);
    now.saturating_sub(hours_back).saturating_sub(seconds_back)
}

/// How a backfill dates exports: export `n` of the run (pool request `n % pool`, replay
/// `n / pool`) starts `n` slots after the backfill's start, the last one at the present.
struct Backfill {
    start_unix_nano: u64,
    slot_nanos: u64,
    replay_step_nanos: u64,
}

impl Backfill {
    /// A backfill of `hours` up to `now` for a run of `records` records in exports of
    /// `batch`, replaying a pool of `pool` requests.
    fn new(hours: u64, records: u64, batch: usize, pool: usize, now: u64) -> Self {
        const HOUR: u64 = 3_600_000_000_000;
        let span = hours.saturating_mul(HOUR);
        let exports = records.div_ceil(batch.max(1) as u64).max(1);
        let slot_nanos = span / exports;
        Self {
            start_unix_nano: now.saturating_sub(span),
            slot_nanos,
            replay_step_nanos: slot_nanos.saturating_mul(pool.max(1) as u64),
        }
    }

    /// The base time of pool request `index` in the first replay.
    fn base(&self, index: usize) -> u64 {
        self.start_unix_nano + self.slot_nanos.saturating_mul(index as u64)
    }
}

/// Generates and encodes the pool; returns it with the time step between replays.
fn build_pool(args: &LoadgenArgs, rng: &mut Random) -> Result<(Vec<Prepared>, u64), LoadgenError> {
    let encoding = args.transport.encoding();
    let services = services(args, rng);
    let base = now_unix_nano();
    let pool_size = args.pool_size.max(1);
    let mut pool = Vec::with_capacity(pool_size);
    match args.signal {
        Signal::Traces => {
            let shape = TraceShape {
                services,
                depth: args.depth,
                fan_out: args.fan_out,
                error_rate: args.error_rate,
            };
            for index in 0..pool_size {
                let base = spread_base(base, index, args);
                let (request, ids) = traces::traces_request(rng, &shape, args.batch_size, base);
                let records = request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                let span_ids = traces::span_ids(&request);
                pool.push(Prepared::new(
                    encoding,
                    encode(encoding, &request)?,
                    records,
                    ids,
                    &span_ids,
                    &[],
                ));
            }
            Ok((pool, 0))
        }
        Signal::Logs => {
            let backfill = args.backfill_hours.map(|hours| {
                let records = args.count.unwrap_or(0);
                Backfill::new(hours, records, args.batch_size, pool_size, base)
            });
            for index in 0..pool_size {
                let base = match &backfill {
                    Some(backfill) => backfill.base(index),
                    None => spread_base(base, index, args),
                };
                let (request, ids) = logs::logs_request(rng, &services, args.batch_size, base);
                let span_ids = logs::span_ids(&request);
                // Backfilled records' times move on with each replay.
                let times = match backfill {
                    Some(_) => logs::record_times(&request),
                    None => Vec::new(),
                };
                pool.push(Prepared::new(
                    encoding,
                    encode(encoding, &request)?,
                    args.batch_size,
                    ids,
                    &span_ids,
                    &times,
                ));
            }
            Ok((
                pool,
                backfill.map_or(0, |backfill| backfill.replay_step_nanos),
            ))
        }
        Signal::Metrics => {
            let interval = 10_000_000_000;
            let mut generator = MetricSeriesGenerator::new(services, args.series, interval, base)
                .with_values(args.metric_values);
            let mut step_time = base;
            for _ in 0..pool_size {
                step_time += interval;
                let request = generator.next_request(rng);
                let records = generator.points_per_export();
                pool.push(Prepared::new(
                    encoding,
                    encode(encoding, &request)?,
                    records,
                    Vec::new(),
                    &[],
                    &[step_time],
                ));
            }
            Ok((pool, interval * pool_size as u64))
        }
    }
}

/// Runs `skewer loadgen`.
pub async fn run(args: LoadgenArgs) -> Result<(), LoadgenError> {
    let endpoints = endpoints(&args)?;
    if let Some(Scenario::Demo) = args.scenario {
        return demo::run(&args, &endpoints).await;
    }
    if args.backfill_hours.is_some() && !matches!(args.signal, Signal::Logs) {
        return Err(LoadgenError::BackfillLogsOnly);
    }
    let mut rng = Random::new(args.seed);
    let (pool, time_step_nanos) = build_pool(&args, &mut rng)?;
    let label = format!("{} over {:?}", args.signal.path(), args.transport);
    let mut senders = Vec::with_capacity(args.concurrency.max(1));
    for _ in 0..args.concurrency.max(1) {
        senders.push(Sender::connect(args.transport, args.signal, &endpoints).await?);
    }
    let counters = Arc::new(Counters::default());
    let limits = RunLimits {
        max_records: args.count,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        concurrency: args.concurrency.max(1),
        rate_records_per_second: args.rate,
        time_step_nanos,
        retries: args.retries,
    };
    let pool_for_ids = if args.trace_ids_out.is_some() || args.correlation_ids_out.is_some() {
        pool.clone()
    } else {
        Vec::new()
    };
    let end = drive::run(pool, senders, limits, Arc::clone(&counters), label.clone()).await;
    let summary = counters.summary(label, end.elapsed);
    println!("{summary}");
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?).map_err(|source| {
            LoadgenError::Write {
                path: path.clone(),
                source,
            }
        })?;
    }
    if let Some(path) = &args.trace_ids_out {
        write_sampled_ids(path, &pool_for_ids, &end, |prepared, cycle| {
            prepared
                .trace_ids(cycle)
                .iter()
                .map(|id| traces::hex(id))
                .collect()
        })?;
    }
    if let Some(path) = &args.correlation_ids_out {
        write_sampled_ids(path, &pool_for_ids, &end, Prepared::request_ids)?;
    }
    if summary.records_acked == 0 {
        return Err(LoadgenError::NothingAcknowledged);
    }
    Ok(())
}

/// Writes up to 10,000 ids (up to 8 per export) of the exports acknowledged whole, evenly
/// sampled (an export refused or partly rejected may not be stored, so its ids are not).
fn write_sampled_ids(
    path: &std::path::Path,
    pool: &[Prepared],
    end: &drive::RunEnd,
    ids_of: impl Fn(&Prepared, u64) -> Vec<String>,
) -> Result<(), LoadgenError> {
    const MAX_IDS: usize = 10_000;
    let exports_sent = end.exports_sent;
    let mut ids = Vec::new();
    let stride = (exports_sent / (MAX_IDS as u64 / 8).max(1)).max(1);
    let mut index = 0;
    while index < exports_sent && ids.len() < MAX_IDS && !pool.is_empty() {
        // The first acknowledged export of this stride.
        let Some(acked) =
            (index..(index + stride).min(exports_sent)).find(|&i| end.acknowledged.contains(i))
        else {
            index += stride;
            continue;
        };
        let prepared = &pool[(acked % pool.len() as u64) as usize];
        ids.extend(
            ids_of(prepared, acked / pool.len() as u64)
                .into_iter()
                .take(8),
        );
        index += stride;
    }
    ids.truncate(MAX_IDS);
    std::fs::write(path, ids.join("\n") + "\n").map_err(|source| LoadgenError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_dates_the_run_evenly_up_to_the_present() {
        const HOUR: u64 = 3_600_000_000_000;
        let now = 1_704_067_200_000_000_000;
        // 10,000 records in exports of 100 (100 exports), a pool of 8 replayed.
        let backfill = Backfill::new(24, 10_000, 100, 8, now);
        let export_start = |n: u64| {
            let replay = n / 8;
            backfill.base((n % 8) as usize) + replay * backfill.replay_step_nanos
        };
        assert_eq!(export_start(0), now - 24 * HOUR);
        let slot = 24 * HOUR / 100;
        for n in 1..100 {
            assert_eq!(export_start(n) - export_start(n - 1), slot, "export {n}");
        }
        assert_eq!(export_start(99), now - slot);
    }
}
