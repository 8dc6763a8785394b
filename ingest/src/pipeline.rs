//! The export path shared by the gRPC and HTTP receivers: admit against the memory budget,
//! decode, append to the WAL (durable and visible), and report what was kept and refused.

use std::sync::Arc;

use bytes::Bytes;
use skewer_storage::budget::{MemoryBudget, Reservation};
use skewer_storage::model::{Signal, SignalBatch, TenantId};
use skewer_storage::wal::WalEntry;
use skewer_storage::{ErrorKind, Storage, StorageError};
use tracing::warn;

use crate::IngestError;
use crate::body_guard::BodyError;
use crate::decoded_size::decoding_cost;
use crate::limits::TenantGate;
use crate::payload::{DecodeOptions, DecodedExport, PayloadFormat, decode_export};
use crate::skew_metrics::clock_skew_export;
use crate::span_metrics::{SpanMetrics, SpanTally};
use crate::stats::{IngestStats, SignalCounters};

/// The most of the budget one signal's buffers may hold: 3/5.
const SIGNAL_SHARE_NUMERATOR: usize = 3;
const SIGNAL_SHARE_DENOMINATOR: usize = 5;

/// Requests are refused before decoding once less than 1/N of the budget is free.
const EARLY_REFUSAL_FRACTION: usize = 32;

/// Bodies above this size are decoded on a blocking thread, so big decodes never stall the runtime.
const INLINE_DECODE_MAX_BYTES: usize = 64 * 1024;

/// Decodes that take more memory than this hand it back to the system once done (see
/// [`Pipeline::with_memory_release`]), at most once a [`RELEASE_INTERVAL`] unless they took
/// more than [`RELEASE_ALWAYS_AFTER_DECODING_BYTES`].
const RELEASE_AFTER_DECODING_BYTES: usize = 8 * 1024 * 1024;
const RELEASE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const RELEASE_ALWAYS_AFTER_DECODING_BYTES: usize = 32 * 1024 * 1024;

/// What happened to an accepted export, for OTLP's `partial_success`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Records made durable.
    pub accepted: u64,
    /// Records refused one by one.
    pub rejected: u64,
    /// Why the first refused record was refused.
    pub message: Option<String>,
}

/// The shared ingest path.
pub struct Pipeline {
    storage: Arc<Storage>,
    options: DecodeOptions,
    stats: Arc<IngestStats>,
    tenants: Arc<TenantGate>,
    release_memory: Option<Arc<MemoryRelease>>,
    span_metrics: Option<Arc<SpanMetrics>>,
}

/// The binary's way to hand freed memory back, called at most once an interval.
struct MemoryRelease {
    release: fn(),
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl MemoryRelease {
    /// Releases after a decode of `decoded_bytes`, unless it did within the interval and the
    /// decode was not that big (a forced purge costs page faults after it).
    fn release_after(&self, decoded_bytes: usize) {
        let now = std::time::Instant::now();
        let due = match self.last.lock() {
            Ok(mut last) => {
                let due = decoded_bytes >= RELEASE_ALWAYS_AFTER_DECODING_BYTES
                    || last.is_none_or(|at| now.duration_since(at) >= RELEASE_INTERVAL);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            (self.release)();
        }
    }
}

impl Pipeline {
    /// A pipeline writing to `storage`, holding each tenant to the limits of `tenants`.
    pub fn new(
        storage: Arc<Storage>,
        options: DecodeOptions,
        stats: Arc<IngestStats>,
        tenants: Arc<TenantGate>,
    ) -> Self {
        Self {
            storage,
            options,
            stats,
            tenants,
            release_memory: None,
            span_metrics: None,
        }
    }

    /// Counts every durable span into `span_metrics` ([`Self::export_span_metrics`] writes
    /// them to the metric store).
    pub fn with_span_metrics(mut self, span_metrics: Arc<SpanMetrics>) -> Self {
        self.span_metrics = Some(span_metrics);
        self
    }

    /// Writes the metrics skewer derives at `now_unix_nano` to the metric store: every
    /// tenant's span metrics (when kept) and clock-skew estimates, each as an OTLP metrics
    /// export of the tenant's (outside its ingest rates and request counters, inside the
    /// memory budget and its active-series limit). An export refused (the budget is full) is
    /// logged; the next interval's values replace it.
    pub async fn export_derived_metrics(&self, now_unix_nano: u64) {
        let mut exports = self
            .span_metrics
            .as_ref()
            .map(|span_metrics| span_metrics.exports(now_unix_nano))
            .unwrap_or_default();
        let mut skew: std::collections::BTreeMap<TenantId, Vec<_>> = Default::default();
        for (tenant, estimate) in self.storage.all_clock_skew() {
            skew.entry(tenant).or_default().push(estimate);
        }
        exports.extend(skew.into_iter().filter_map(|(tenant, estimates)| {
            clock_skew_export(&estimates, now_unix_nano).map(|request| (tenant, request))
        }));
        for (tenant, request) in exports {
            let body = Bytes::from(prost::Message::encode_to_vec(&request));
            if let Err(err) = self
                .export_internal(
                    Signal::Metrics,
                    tenant.clone(),
                    body,
                    PayloadFormat::Protobuf,
                )
                .await
            {
                warn!(%tenant, error = %err, "derived metrics not written this interval");
            }
        }
    }

    /// Writes series skewer computed itself (recording rules' results) to `tenant`'s metrics,
    /// durably, as a Prometheus remote write request: the labels stay exactly as given.
    pub async fn export_recorded(
        &self,
        tenant: TenantId,
        request: &crate::remote_write::proto::WriteRequest,
    ) -> Result<ExportOutcome, IngestError> {
        let body = Bytes::from(prost::Message::encode_to_vec(request));
        self.export_internal(Signal::Metrics, tenant, body, PayloadFormat::RemoteWrite)
            .await
    }

    /// Decodes and persists a body skewer made itself.
    async fn export_internal(
        &self,
        signal: Signal,
        tenant: TenantId,
        body: Bytes,
        format: PayloadFormat,
    ) -> Result<ExportOutcome, IngestError> {
        let budget = Arc::clone(self.storage.budget());
        // Made from data that was redacted and limited when it came in: a second pass would
        // hash hashed values again (and so no longer match their source series).
        let options = DecodeOptions {
            active_series: self.tenants.active_series(&tenant),
            redactor: None,
            record_limits: None,
            ..self.options.clone()
        };
        let decode_body = body.clone();
        let (decoded, reservation) = tokio::task::spawn_blocking(move || {
            decode_within_budget(
                &budget,
                signal,
                format,
                &decode_body,
                &options,
                Reservation::default(),
                None,
            )
        })
        .await
        .map_err(|err| IngestError::Storage(StorageError::from(err)))??;
        self.persist(signal, tenant, format, body, decoded, reservation)
            .await
    }

    /// Calls `release` (on the decoding thread) after every decode that took more than a few
    /// MiB: the allocator may keep freed memory for a while, and resident memory must not
    /// stay past the budget the decode was charged to. The binary, which owns the allocator,
    /// says how.
    pub fn with_memory_release(mut self, release: fn()) -> Self {
        self.release_memory = Some(Arc::new(MemoryRelease {
            release,
            last: std::sync::Mutex::new(None),
        }));
        self
    }

    /// Refuses (as retryable, naming the limit) an export of a tenant over one of its limits,
    /// or of a new tenant past the cap. Cheap: called before a body is read.
    pub fn admit_tenant(&self, signal: Signal, tenant: &TenantId) -> Result<(), IngestError> {
        self.tenants.admit(tenant).map_err(|limit| {
            SignalCounters::add(&self.stats.signal(signal).requests_retryable, 1);
            IngestError::TenantLimit(limit)
        })
    }

    /// The memory budget exports are admitted against.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        self.storage.budget()
    }

    /// The export error for a body cut while it arrived; a budget too full for its next frame
    /// counts as a retryable answer.
    pub fn body_error(&self, signal: Signal, err: BodyError) -> IngestError {
        match err {
            BodyError::TooSlow { .. } => IngestError::BodyTooSlow(err.to_string()),
            BodyError::TooLarge { max_bytes } => IngestError::TooLarge { max_bytes },
            BodyError::Budget(err) => {
                SignalCounters::add(&self.stats.signal(signal).requests_retryable, 1);
                IngestError::Storage(err)
            }
            BodyError::Transport(reason) => IngestError::Malformed {
                format: "body",
                reason,
            },
        }
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Early admission, before a body is read or decoded: refuses (and counts as a retryable
    /// answer) when the budget cannot take `expected_bytes` or is nearly spent, so an
    /// overloaded server does not burn CPU decoding requests it will refuse anyway.
    pub fn admit_early(&self, signal: Signal, expected_bytes: usize) -> Result<(), IngestError> {
        let budget = self.storage.budget();
        let floor = budget.limit_bytes() / EARLY_REFUSAL_FRACTION;
        let available_bytes = budget.available_bytes();
        // No signal may hold more than its share, so one signal's backlog (a slow index
        // commit) cannot starve the others.
        let signal_share_exceeded = self.storage.buffered_bytes(signal)
            > budget.limit_bytes() / SIGNAL_SHARE_DENOMINATOR * SIGNAL_SHARE_NUMERATOR;
        if signal_share_exceeded || available_bytes < expected_bytes.max(floor) {
            SignalCounters::add(&self.stats.signal(signal).requests_retryable, 1);
            return Err(IngestError::Storage(StorageError::BudgetExhausted {
                requested_bytes: expected_bytes,
                available_bytes,
            }));
        }
        Ok(())
    }

    /// Accepts an encoded body. `held` is budget already held for it (while it was received):
    /// the export tops it up to its decoded-size estimate rather than reserving afresh.
    pub async fn export_body(
        &self,
        signal: Signal,
        tenant: TenantId,
        format: PayloadFormat,
        body: Bytes,
        held: Reservation,
    ) -> Result<ExportOutcome, IngestError> {
        let body_len = body.len();
        let result = self
            .export_body_inner(signal, tenant, format, body, held)
            .await;
        self.count(signal, body_len, &result);
        result
    }

    async fn export_body_inner(
        &self,
        signal: Signal,
        tenant: TenantId,
        format: PayloadFormat,
        body: Bytes,
        held: Reservation,
    ) -> Result<ExportOutcome, IngestError> {
        // Counted as retryable by `count`, not here.
        self.tenants.admit(&tenant)?;
        let decode = {
            let budget = Arc::clone(self.storage.budget());
            let options = match signal {
                Signal::Metrics => DecodeOptions {
                    active_series: self.tenants.active_series(&tenant),
                    ..self.options.clone()
                },
                Signal::Traces | Signal::Logs => self.options.clone(),
            };
            let body = body.clone();
            let release_memory = self.release_memory.clone();
            move || {
                decode_within_budget(
                    &budget,
                    signal,
                    format,
                    &body,
                    &options,
                    held,
                    release_memory,
                )
            }
        };
        let (decoded, reservation) = if body.len() <= INLINE_DECODE_MAX_BYTES {
            decode()?
        } else {
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|err| IngestError::Storage(StorageError::from(err)))??
        };
        self.stats.signal(signal).count_limited(&decoded.limited);
        let body_len = body.len() as u64;
        let charged_to = tenant.clone();
        let outcome = self
            .persist(signal, tenant, format, body, decoded, reservation)
            .await?;
        self.tenants.charge(&charged_to, outcome.accepted, body_len);
        Ok(outcome)
    }

    /// Reserves budget for (part of) an HTTP body being received, so bodies in flight count
    /// against the memory budget like decoded data: many slow uploads at once get retryable
    /// answers instead of growing memory without bound. Pass the reservation on to
    /// [`Self::export_body`].
    pub fn reserve_body(&self, signal: Signal, bytes: usize) -> Result<Reservation, IngestError> {
        let limit_bytes = self.storage.budget().admission_limit_bytes();
        self.reserve(bytes.min(limit_bytes), Reservation::default())
            .inspect_err(|err| {
                if matches!(
                    err,
                    IngestError::Storage(StorageError::BudgetExhausted { .. })
                ) {
                    SignalCounters::add(&self.stats.signal(signal).requests_retryable, 1);
                }
            })
    }

    fn reserve(&self, bytes: usize, held: Reservation) -> Result<Reservation, IngestError> {
        reserve(self.storage.budget(), bytes, held)
    }

    async fn persist(
        &self,
        signal: Signal,
        tenant: TenantId,
        format: PayloadFormat,
        body: Bytes,
        decoded: DecodedExport,
        reservation: skewer_storage::budget::Reservation,
    ) -> Result<ExportOutcome, IngestError> {
        let outcome = ExportOutcome {
            accepted: decoded.batch.len() as u64,
            rejected: decoded.rejections.count,
            message: decoded.rejections.first_message,
        };
        if decoded.batch.is_empty() {
            return Ok(outcome);
        }
        // Limits or redaction rewrote the export: the WAL keeps only the rewritten one, as
        // protobuf (remote write stays remote write).
        let (format, body) = match decoded.rewritten_body {
            Some(rewritten) => {
                let format = match format {
                    PayloadFormat::RemoteWrite => PayloadFormat::RemoteWrite,
                    PayloadFormat::Protobuf | PayloadFormat::Json => PayloadFormat::Protobuf,
                };
                (format, rewritten)
            }
            None => (format, body),
        };
        let tally = match (&self.span_metrics, &decoded.batch) {
            (Some(_), SignalBatch::Spans(spans)) => Some(SpanTally::of(spans)),
            _ => None,
        };
        let counted_tenant = tally.as_ref().map(|_| tenant.clone());
        let entry = WalEntry {
            signal,
            payload_format: format as u8,
            tenant,
            body,
        };
        self.storage
            .write(entry, decoded.batch, reservation)
            .await?;
        if let (Some(span_metrics), Some(tally), Some(tenant)) =
            (&self.span_metrics, tally, counted_tenant)
        {
            span_metrics.add(&tenant, tally);
        }
        Ok(outcome)
    }

    fn count(&self, signal: Signal, body_len: usize, result: &Result<ExportOutcome, IngestError>) {
        let counters = self.stats.signal(signal);
        SignalCounters::add(&counters.bytes_received, body_len as u64);
        match result {
            Ok(outcome) => {
                SignalCounters::add(&counters.requests_accepted, 1);
                SignalCounters::add(&counters.records_accepted, outcome.accepted);
                SignalCounters::add(&counters.records_rejected, outcome.rejected);
            }
            Err(err) => match err.kind() {
                ErrorKind::ResourceExhausted | ErrorKind::Unavailable => {
                    SignalCounters::add(&counters.requests_retryable, 1);
                }
                ErrorKind::Internal => {
                    warn!(signal = signal.name(), error = %err, "export failed");
                    SignalCounters::add(&counters.requests_failed, 1);
                }
                _ => SignalCounters::add(&counters.requests_invalid, 1),
            },
        }
    }
}

/// Tops `held` up to `bytes`; a request that could never fit the budget (less what open log
/// writers may keep of it) is refused for good (retrying it would loop forever), any other
/// shortfall is retryable.
fn reserve(
    budget: &Arc<MemoryBudget>,
    bytes: usize,
    mut held: Reservation,
) -> Result<Reservation, IngestError> {
    if bytes > budget.admission_limit_bytes() {
        return Err(IngestError::TooCostly {
            needed_bytes: bytes,
            budget_bytes: budget.admission_limit_bytes(),
        });
    }
    held.merge(budget.try_reserve(bytes.saturating_sub(held.bytes()))?);
    Ok(held)
}

/// Past this decoded size, an export whose lists the record limits may cut is cut on the wire
/// before it is decoded (below it, decoding first costs less than the extra pass).
const CUT_ON_WIRE_ABOVE_BYTES: usize = 32 << 20;

/// Reads what decoding `body` will cost from its encoded form, holds that (with the body) in
/// the budget, then decodes: the budget is charged what decoding really takes, however small
/// the body that asks for it.
fn decode_within_budget(
    budget: &Arc<MemoryBudget>,
    signal: Signal,
    format: PayloadFormat,
    body: &Bytes,
    options: &DecodeOptions,
    held: Reservation,
    release_memory: Option<Arc<MemoryRelease>>,
) -> Result<(DecodedExport, Reservation), IngestError> {
    let malformed = |err: crate::decoded_size::WireError| IngestError::Malformed {
        format: format.name(),
        reason: err.to_string(),
    };
    let mut cost = decoding_cost(signal, format, body).map_err(malformed)?;
    let received_cost_bytes = cost.bytes;
    // An export that decodes large only for lists past the record limits (millions of empty
    // attributes) is cut on the wire first: it decodes as small as the limits leave it.
    let mut cut_on_wire = None;
    let mut held = held;
    if let (Some(limits), Some(shape)) = (&options.record_limits, cost.shape)
        && cost.bytes > CUT_ON_WIRE_ABOVE_BYTES.min(budget.limit_bytes() / 2)
        && limits.may_cut(&shape)
    {
        // The copy is never longer than the body (its buffer grows to at most twice that).
        held = reserve(budget, body.len().saturating_mul(3), held)?;
        let (cut, counts) =
            crate::decoded_size::cut_lists(signal, body, limits).map_err(malformed)?;
        cost = decoding_cost(signal, format, &cut).map_err(malformed)?;
        // The body received stays alive beside its cut copy until the export is persisted.
        cost.bytes = cost.bytes.saturating_add(body.len());
        cut_on_wire = Some((Bytes::from(cut), counts));
    }
    let body = cut_on_wire.as_ref().map_or(body, |(cut, _)| cut);
    // An export the scan shows within every record limit is not walked by them (a cut one
    // always is: what the cut saw per occurrence, the decoder may have merged).
    let within_limits = cut_on_wire.is_none()
        && match (&options.record_limits, cost.shape) {
            (Some(limits), Some(shape)) => !limits.may_cut(&shape),
            _ => false,
        };
    let unlimited;
    let options = if within_limits {
        unlimited = DecodeOptions {
            record_limits: None,
            ..options.clone()
        };
        &unlimited
    } else {
        options
    };
    let reencoding = crate::payload::reencoding_bytes(signal, format, body.len(), options);
    let reservation = reserve(
        budget,
        body.len()
            .saturating_add(cost.bytes)
            .saturating_add(reencoding),
        held,
    )?;
    let decoded = decode_export(signal, format, body, options);
    // (A cut export is released after as the export it was: its body and cut copy are gone.)
    let released_bytes = cost.bytes.max(received_cost_bytes);
    if released_bytes > RELEASE_AFTER_DECODING_BYTES
        && let Some(release) = release_memory
    {
        release.release_after(released_bytes);
    }
    let mut decoded = decoded?;
    if let Some((cut, counts)) = cut_on_wire {
        // The WAL keeps the export as cut (or as the limits and redaction rewrote it after).
        decoded.rewritten_body.get_or_insert(cut);
        decoded.limited.add(counts);
    }
    Ok((decoded, reservation))
}
