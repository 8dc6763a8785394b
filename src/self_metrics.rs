//! skewer's own metrics: every name in one place, rendered as Prometheus text.

use std::fmt::Write;

use skewer_ingest::limits::TenantGate;
use skewer_ingest::stats::{IngestStats, SignalCounters};
use skewer_storage::Storage;
use skewer_storage::model::Signal;

/// Export requests by signal and outcome (accepted, invalid, retryable, failed).
pub const INGEST_REQUESTS_TOTAL: &str = "skewer_ingest_requests_total";
/// Records accepted, by tenant.
pub const TENANT_RECORDS_TOTAL: &str = "skewer_tenant_ingest_records_total";
/// Request bytes accepted, by tenant.
pub const TENANT_BYTES_TOTAL: &str = "skewer_tenant_ingest_bytes_total";
/// Export requests refused by a per-tenant limit, by tenant and limit.
pub const TENANT_LIMITED_TOTAL: &str = "skewer_tenant_limited_requests_total";
/// Metric series with a point in the last hour, by tenant (tenants with a series limit).
pub const TENANT_ACTIVE_SERIES: &str = "skewer_tenant_active_series";
/// Points of new series refused by a tenant's series limit, by tenant.
pub const TENANT_SERIES_REFUSED_TOTAL: &str = "skewer_tenant_series_limited_points_total";
/// Records made durable, by signal.
pub const INGEST_RECORDS_ACCEPTED_TOTAL: &str = "skewer_ingest_records_accepted_total";
/// Records refused one by one (partial success), by signal.
pub const INGEST_RECORDS_REJECTED_TOTAL: &str = "skewer_ingest_records_rejected_total";
/// What the record limits dropped or cut, by signal and by what (`attributes`, `events`,
/// `links`, `values`).
pub const INGEST_LIMITED_TOTAL: &str = "skewer_ingest_limited_total";
/// Request bytes received (decompressed), by signal.
pub const INGEST_BYTES_TOTAL: &str = "skewer_ingest_received_bytes_total";
/// Bytes appended to the WAL.
pub const WAL_BYTES_TOTAL: &str = "skewer_wal_written_bytes_total";
/// WAL fsyncs (one per group commit).
pub const WAL_FSYNCS_TOTAL: &str = "skewer_wal_fsyncs_total";
/// WAL records appended.
pub const WAL_RECORDS_TOTAL: &str = "skewer_wal_records_total";
/// Bytes held against the memory budget.
pub const MEMORY_BUDGET_USED_BYTES: &str = "skewer_memory_budget_used_bytes";
/// The memory budget.
pub const MEMORY_BUDGET_LIMIT_BYTES: &str = "skewer_memory_budget_limit_bytes";
/// Records waiting in memory for a flush (the queue depth), by signal.
pub const BUFFERED_RECORDS: &str = "skewer_buffered_records";
/// Estimated bytes waiting in memory, by signal.
pub const BUFFERED_BYTES: &str = "skewer_buffered_bytes";
/// Completed flushes, by signal.
pub const FLUSHES_TOTAL: &str = "skewer_flushes_total";
/// Time spent flushing, by signal.
pub const FLUSH_SECONDS_TOTAL: &str = "skewer_flush_seconds_total";
/// Failed flushes (retried), by signal.
pub const FLUSH_FAILURES_TOTAL: &str = "skewer_flush_failures_total";

/// Live data files per signal (Parquet files; log index partitions).
pub const STORAGE_FILES: &str = "skewer_storage_files";
/// Bytes of the live data files per signal.
pub const STORAGE_BYTES: &str = "skewer_storage_bytes";
/// Compaction merges completed, by signal.
pub const COMPACTION_MERGES_TOTAL: &str = "skewer_compaction_merges_total";
/// Compaction merges that failed (retried), by signal.
pub const COMPACTION_FAILURES_TOTAL: &str = "skewer_compaction_failures_total";
/// Bytes read by compaction, by signal.
pub const COMPACTION_BYTES_READ_TOTAL: &str = "skewer_compaction_read_bytes_total";
/// Bytes written by compaction, by signal.
pub const COMPACTION_BYTES_WRITTEN_TOTAL: &str = "skewer_compaction_written_bytes_total";
/// Files (log partitions) removed by retention, by signal.
pub const RETENTION_REMOVED_FILES_TOTAL: &str = "skewer_retention_removed_files_total";
/// Bytes removed by retention, by signal.
pub const RETENTION_REMOVED_BYTES_TOTAL: &str = "skewer_retention_removed_bytes_total";
/// Bytes of parsed Parquet footers cached for reads.
pub const FOOTER_CACHE_BYTES: &str = "skewer_footer_cache_bytes";
/// Bytes of span files' trace-id filters cached for lookups by id.
pub const ID_FILTER_CACHE_BYTES: &str = "skewer_id_filter_cache_bytes";
/// Bytes of other nodes' log partitions in the local cache.
pub const LOG_CACHE_BYTES: &str = "skewer_log_cache_bytes";
/// Bytes of other nodes' log partitions downloaded from the bucket.
pub const LOG_CACHE_DOWNLOADED_BYTES_TOTAL: &str = "skewer_log_cache_downloaded_bytes_total";
/// Other nodes' log partitions evicted from the local cache.
pub const LOG_CACHE_EVICTIONS_TOTAL: &str = "skewer_log_cache_evictions_total";
/// Ingest nodes of the deployment with a live heartbeat.
pub const INGEST_NODES: &str = "skewer_ingest_nodes";
/// Estimated clock offset of a server host against a client host, seconds.
pub const CLOCK_SKEW_SECONDS: &str = "skewer_clock_skew_seconds";

/// A per-signal ingest counter: name, help, reader.
type IngestSeries = (&'static str, &'static str, fn(&SignalCounters) -> u64);
/// A per-signal storage figure: name, type, help, reader.
type StorageSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&skewer_storage::storage::SignalStats) -> f64,
);

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The sources of skewer's own metrics that exist before storage opens.
pub struct SelfMetrics {
    ingest: std::sync::Arc<IngestStats>,
    tenants: std::sync::Arc<TenantGate>,
}

impl SelfMetrics {
    /// Metrics reading the ingest counters `ingest` and the per-tenant figures of `tenants`.
    pub fn new(ingest: std::sync::Arc<IngestStats>, tenants: std::sync::Arc<TenantGate>) -> Self {
        Self { ingest, tenants }
    }

    /// Prometheus text of every metric; storage figures once storage is open.
    pub fn render(&self, storage: Option<&Storage>) -> String {
        let mut out = render(&self.ingest, storage);
        render_tenants(&mut out, &self.tenants);
        out
    }
}

/// One per-tenant metric: its header, then a line per tenant.
fn per_tenant<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    values: impl Iterator<Item = (&'a skewer_storage::model::TenantId, u64)>,
) {
    header(out, name, kind, help);
    for (tenant, value) in values {
        let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {value}");
    }
}

/// Per-tenant ingest figures: what each tenant sent, and how often a limit held it back.
fn render_tenants(out: &mut String, tenants: &TenantGate) {
    let figures = tenants.figures();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    per_tenant(
        out,
        TENANT_RECORDS_TOTAL,
        "counter",
        "Records accepted, by tenant.",
        figures.iter().map(|(tenant, f)| (tenant, load(&f.records))),
    );
    per_tenant(
        out,
        TENANT_BYTES_TOTAL,
        "counter",
        "Request bytes accepted (decompressed), by tenant.",
        figures.iter().map(|(tenant, f)| (tenant, load(&f.bytes))),
    );
    header(
        out,
        TENANT_LIMITED_TOTAL,
        "counter",
        "Export requests refused by a per-tenant limit, by tenant and limit.",
    );
    for (tenant, f) in &figures {
        for (limit, counter) in [
            ("ingest_records_per_second", &f.limited_records),
            ("ingest_bytes_per_second", &f.limited_bytes),
        ] {
            let _ = writeln!(
                out,
                "{TENANT_LIMITED_TOTAL}{{tenant=\"{tenant}\",limit=\"{limit}\"}} {}",
                load(counter)
            );
        }
    }
    let series = tenants.series_figures();
    per_tenant(
        out,
        TENANT_ACTIVE_SERIES,
        "gauge",
        "Metric series with a point in the last hour, by tenant (tenants with max_active_series).",
        series.iter().map(|(tenant, active)| (tenant, active.len())),
    );
    per_tenant(
        out,
        TENANT_SERIES_REFUSED_TOTAL,
        "counter",
        "Points of new series refused by a tenant's max_active_series, by tenant.",
        series
            .iter()
            .map(|(tenant, active)| (tenant, active.refused_points())),
    );
}

/// Renders every metric.
pub fn render(ingest: &IngestStats, storage: Option<&Storage>) -> String {
    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        INGEST_REQUESTS_TOTAL,
        "counter",
        "OTLP export requests by outcome.",
    );
    for signal in Signal::ALL {
        let c = ingest.signal(signal);
        for (outcome, counter) in [
            ("accepted", &c.requests_accepted),
            ("invalid", &c.requests_invalid),
            ("retryable", &c.requests_retryable),
            ("failed", &c.requests_failed),
        ] {
            let _ = writeln!(
                out,
                "{INGEST_REQUESTS_TOTAL}{{signal=\"{}\",outcome=\"{outcome}\"}} {}",
                signal.name(),
                SignalCounters::get(counter)
            );
        }
    }
    let per_signal: [IngestSeries; 3] = [
        (
            INGEST_RECORDS_ACCEPTED_TOTAL,
            "Records made durable.",
            |c| SignalCounters::get(&c.records_accepted),
        ),
        (
            INGEST_RECORDS_REJECTED_TOTAL,
            "Records refused one by one.",
            |c| SignalCounters::get(&c.records_rejected),
        ),
        (
            INGEST_BYTES_TOTAL,
            "Request bytes received, decompressed.",
            |c| SignalCounters::get(&c.bytes_received),
        ),
    ];
    for (name, help, read) in per_signal {
        header(&mut out, name, "counter", help);
        for signal in Signal::ALL {
            let _ = writeln!(
                out,
                "{name}{{signal=\"{}\"}} {}",
                signal.name(),
                read(ingest.signal(signal))
            );
        }
    }
    header(
        &mut out,
        INGEST_LIMITED_TOTAL,
        "counter",
        "Attributes, span events and links dropped, and values cut, by the record limits.",
    );
    for signal in Signal::ALL {
        let c = ingest.signal(signal);
        for (what, counter) in [
            ("attributes", &c.limited_attributes),
            ("events", &c.limited_events),
            ("links", &c.limited_links),
            ("values", &c.limited_values),
        ] {
            let _ = writeln!(
                out,
                "{INGEST_LIMITED_TOTAL}{{signal=\"{}\",what=\"{what}\"}} {}",
                signal.name(),
                SignalCounters::get(counter)
            );
        }
    }
    let Some(storage) = storage else {
        return out;
    };
    let wal = storage.wal_stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            WAL_BYTES_TOTAL,
            "Bytes appended to the WAL.",
            load(&wal.bytes_written),
        ),
        (
            WAL_FSYNCS_TOTAL,
            "WAL fsyncs, one per group commit.",
            load(&wal.fsyncs),
        ),
        (
            WAL_RECORDS_TOTAL,
            "WAL records appended.",
            load(&wal.records),
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let budget = storage.budget();
    header(
        &mut out,
        MEMORY_BUDGET_USED_BYTES,
        "gauge",
        "Bytes held against the memory budget.",
    );
    let _ = writeln!(out, "{MEMORY_BUDGET_USED_BYTES} {}", budget.used_bytes());
    header(
        &mut out,
        MEMORY_BUDGET_LIMIT_BYTES,
        "gauge",
        "The memory budget.",
    );
    let _ = writeln!(out, "{MEMORY_BUDGET_LIMIT_BYTES} {}", budget.limit_bytes());
    let stats: Vec<_> = Signal::ALL
        .iter()
        .map(|s| (s.name(), storage.signal_stats(*s)))
        .collect();
    let series: [StorageSeries; 13] = [
        (
            BUFFERED_RECORDS,
            "gauge",
            "Records waiting in memory for a flush.",
            |s| s.buffered_records as f64,
        ),
        (
            BUFFERED_BYTES,
            "gauge",
            "Estimated bytes waiting in memory.",
            |s| s.buffered_bytes as f64,
        ),
        (FLUSHES_TOTAL, "counter", "Completed flushes.", |s| {
            s.flushes as f64
        }),
        (
            FLUSH_SECONDS_TOTAL,
            "counter",
            "Time spent flushing.",
            |s| s.flush_seconds,
        ),
        (
            FLUSH_FAILURES_TOTAL,
            "counter",
            "Failed flushes, retried later.",
            |s| s.flush_failures as f64,
        ),
        (
            STORAGE_FILES,
            "gauge",
            "Live data files (log index partitions for logs).",
            |s| s.files as f64,
        ),
        (
            STORAGE_BYTES,
            "gauge",
            "Bytes of the live data files.",
            |s| s.file_bytes as f64,
        ),
        (
            COMPACTION_MERGES_TOTAL,
            "counter",
            "Compaction merges completed.",
            |s| s.merges as f64,
        ),
        (
            COMPACTION_FAILURES_TOTAL,
            "counter",
            "Compaction merges that failed, retried later.",
            |s| s.merge_failures as f64,
        ),
        (
            COMPACTION_BYTES_READ_TOTAL,
            "counter",
            "Bytes read by compaction.",
            |s| s.merged_bytes_read as f64,
        ),
        (
            COMPACTION_BYTES_WRITTEN_TOTAL,
            "counter",
            "Bytes written by compaction.",
            |s| s.merged_bytes_written as f64,
        ),
        (
            RETENTION_REMOVED_FILES_TOTAL,
            "counter",
            "Files (log partitions) removed by retention.",
            |s| s.retention_files_removed as f64,
        ),
        (
            RETENTION_REMOVED_BYTES_TOTAL,
            "counter",
            "Bytes removed by retention.",
            |s| s.retention_bytes_removed as f64,
        ),
    ];
    for (name, kind, help, read) in series {
        header(&mut out, name, kind, help);
        for (signal, stat) in &stats {
            let _ = writeln!(out, "{name}{{signal=\"{signal}\"}} {}", read(stat));
        }
    }
    header(
        &mut out,
        FOOTER_CACHE_BYTES,
        "gauge",
        "Bytes of parsed Parquet footers cached for reads.",
    );
    let _ = writeln!(out, "{FOOTER_CACHE_BYTES} {}", storage.footer_cache_bytes());
    header(
        &mut out,
        ID_FILTER_CACHE_BYTES,
        "gauge",
        "Bytes of span files' trace-id filters cached for lookups by id.",
    );
    let _ = writeln!(
        out,
        "{ID_FILTER_CACHE_BYTES} {}",
        storage.id_filter_cache_bytes()
    );
    header(
        &mut out,
        INGEST_NODES,
        "gauge",
        "Ingest nodes of the deployment with a live heartbeat (each enforces its share of a tenant's rates).",
    );
    let _ = writeln!(out, "{INGEST_NODES} {}", storage.ingest_nodes());
    if let Some(cache) = storage.log_cache() {
        let stats = cache.stats();
        let families = [
            (
                LOG_CACHE_BYTES,
                "gauge",
                "Bytes of other nodes' log partitions in the local cache.",
                cache.cached_bytes(),
            ),
            (
                LOG_CACHE_DOWNLOADED_BYTES_TOTAL,
                "counter",
                "Bytes of other nodes' log partitions downloaded from the bucket.",
                stats
                    .downloaded_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                LOG_CACHE_EVICTIONS_TOTAL,
                "counter",
                "Other nodes' log partitions evicted from the local cache.",
                stats.evictions.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in families {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
    header(
        &mut out,
        CLOCK_SKEW_SECONDS,
        "gauge",
        "How far the server host's clock is ahead of the client host's, estimated from client/server span pairs.",
    );
    for (tenant, estimate) in storage.all_clock_skew() {
        let pair = &estimate.pair;
        let _ = writeln!(
            out,
            "{CLOCK_SKEW_SECONDS}{{tenant=\"{}\",client_service=\"{}\",client_host=\"{}\",server_service=\"{}\",server_host=\"{}\"}} {}",
            escape_label(tenant.as_str()),
            escape_label(&pair.client_service),
            escape_label(&pair.client_host),
            escape_label(&pair.server_service),
            escape_label(&pair.server_host),
            estimate.offset_nanos as f64 / 1e9
        );
    }
    out
}

/// A label value escaped for the Prometheus text format.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
