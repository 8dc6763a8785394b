//! One request across services: every trace it touched and every log record of it, with
//! clock skew found and (optionally) corrected.
//!
//! The id is a trace id or a correlation / request id. From it the request grows in rounds:
//! a trace brings its spans, the traces its spans link to and the traces whose spans link to
//! it (one hop each way: a consumer's trace pointing back at its producer's, found in file
//! summaries within [`INCOMING_LINK_WINDOW_NANOS`] of the trace) and its log records; log
//! records bring their correlation ids, and a correlation id brings every record that carries
//! it (also records with no trace context) and the traces those records belong to (a retry
//! that started a new trace, work carried through a queue). Bounded: at most
//! [`StitchLimits::max_traces`] traces and [`MAX_LOG_LIMIT`] records per lookup; an answer
//! that hit a bound says so.

use std::collections::{BTreeSet, HashMap, HashSet};

use skewer_storage::Storage;
use skewer_storage::logs::LogQuery;
use skewer_storage::model::{LogRecord, Span, TenantId, TraceId};
use skewer_storage::scan::ScanLimits;

use crate::QueryError;
use crate::logs::{MAX_LOG_LIMIT, search_logs};
use crate::skew::{SkewOptions, SpanTiming, adjust_trace, host_deltas, host_of, known_offsets};
use crate::trace::trace_by_id;

/// How far past a trace's last span a trace linking to it is looked for (and
/// [`INCOMING_LINK_LEAD_NANOS`] before its first): work queued by a request usually runs
/// within the hour.
pub const INCOMING_LINK_WINDOW_NANOS: u64 = 3_600 * 1_000_000_000;
/// How far before a trace's first span a trace linking to it is looked for (clocks differ).
pub const INCOMING_LINK_LEAD_NANOS: u64 = 300 * 1_000_000_000;

/// Bounds of one stitch.
#[derive(Debug, Clone, Copy)]
pub struct StitchLimits {
    /// Traces gathered at most.
    pub max_traces: usize,
    /// The bounds of each trace read.
    pub scan: ScanLimits,
}

/// What the id named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StitchedBy {
    /// A trace id.
    TraceId,
    /// A correlation / request id.
    CorrelationId,
}

/// One trace of the request, with its spans' timings.
#[derive(Debug, Clone)]
pub struct StitchedTrace {
    /// Its id.
    pub trace_id: TraceId,
    /// Whether it was reached through a span link rather than the request's own ids.
    pub linked: bool,
    /// Its spans in start order.
    pub spans: Vec<Span>,
    /// Each span's adjusted times and skew finding (same order).
    pub timings: Vec<SpanTiming>,
}

/// A log record of the request and the delta its host's clock got.
#[derive(Debug, Clone)]
pub struct StitchedLog {
    /// The record as stored.
    pub record: LogRecord,
    /// Nanoseconds added to its time (0 when its host was not adjusted).
    pub delta_nanos: i64,
}

/// The whole request.
#[derive(Debug, Clone)]
pub struct Stitched {
    /// What the id named.
    pub by: StitchedBy,
    /// Its traces, in the order they were reached.
    pub traces: Vec<StitchedTrace>,
    /// Its correlation ids.
    pub correlation_ids: BTreeSet<String>,
    /// Its log records, by adjusted time.
    pub logs: Vec<StitchedLog>,
    /// The delta applied per host (first trace that adjusted it).
    pub host_deltas: HashMap<String, i64>,
    /// Whether a bound left part of the request out.
    pub truncated: bool,
    /// Whether every trace linking to the request's traces could be looked for (not when
    /// some file's links are unknown: written before links were kept, or too many).
    pub incoming_links_complete: bool,
}

impl Stitched {
    /// Whether nothing at all was found.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.logs.is_empty()
    }
}

/// Gathers the request `id` names.
pub async fn stitch(
    storage: &Storage,
    tenant: &TenantId,
    id: &str,
    options: &SkewOptions,
    limits: &StitchLimits,
) -> Result<Stitched, QueryError> {
    let mut pending_traces: Vec<(TraceId, bool)> = Vec::new();
    let mut pending_correlations: Vec<String> = Vec::new();
    let by = match id.parse::<TraceId>() {
        Ok(trace_id) => {
            pending_traces.push((trace_id, false));
            StitchedBy::TraceId
        }
        Err(_) => {
            pending_correlations.push(id.to_owned());
            StitchedBy::CorrelationId
        }
    };
    let mut seen_traces: HashSet<TraceId> = HashSet::new();
    let mut correlation_ids: BTreeSet<String> = BTreeSet::new();
    let mut traces: Vec<StitchedTrace> = Vec::new();
    let mut records: Vec<LogRecord> = Vec::new();
    let mut truncated = false;
    let mut incoming_links_complete = true;
    let known = known_offsets(&storage.clock_skew(tenant));
    let logs_of = |query: LogQuery| async move {
        let limited = LogQuery {
            limit: MAX_LOG_LIMIT,
            ..query
        };
        search_logs(storage, tenant, limited).await
    };
    while !pending_traces.is_empty() || !pending_correlations.is_empty() {
        for correlation_id in std::mem::take(&mut pending_correlations) {
            if !correlation_ids.insert(correlation_id.clone()) {
                continue;
            }
            let found = logs_of(LogQuery {
                correlation_id: Some(correlation_id),
                ..LogQuery::default()
            })
            .await?;
            truncated |= found.len() >= MAX_LOG_LIMIT;
            pending_traces.extend(found.iter().filter_map(|r| r.trace_id).map(|t| (t, false)));
            records.extend(found);
        }
        // The request's own traces first: traces reached through links must not crowd them
        // out of the bound.
        let mut round = std::mem::take(&mut pending_traces);
        round.sort_by_key(|(_, linked)| *linked);
        for (trace_id, linked) in round {
            if !seen_traces.insert(trace_id) {
                continue;
            }
            if traces.len() >= limits.max_traces {
                truncated = true;
                continue;
            }
            let read = trace_by_id(storage, tenant, trace_id, limits.scan).await?;
            truncated |= read.truncated.is_some();
            let spans = read.spans;
            if !linked {
                // Links are followed one hop, both ways: from the request's own traces only.
                pending_traces.extend(
                    spans
                        .iter()
                        .flat_map(|span| &span.links)
                        .map(|link| (link.trace_id, true)),
                );
                if let Some(range) = incoming_link_range(&spans) {
                    let (linking, complete) =
                        storage.traces_linking_to(tenant, trace_id, range).await;
                    incoming_links_complete &= complete;
                    pending_traces.extend(linking.into_iter().map(|id| (id, true)));
                }
            }
            let found = logs_of(LogQuery {
                trace_id: Some(trace_id),
                ..LogQuery::default()
            })
            .await?;
            truncated |= found.len() >= MAX_LOG_LIMIT;
            if !linked {
                // A linked trace's own correlation ids name other requests (a batch consumer
                // serves many): they are not followed.
                pending_correlations.extend(found.iter().filter_map(|r| r.correlation_id.clone()));
            }
            records.extend(found);
            if !spans.is_empty() {
                let timings = adjust_trace(&spans, options, &known);
                traces.push(StitchedTrace {
                    trace_id,
                    linked,
                    spans,
                    timings,
                });
            }
        }
    }
    // Each host keeps the delta of the first trace that adjusted it.
    let mut deltas: HashMap<String, i64> = HashMap::new();
    let mut per_trace: HashMap<TraceId, HashMap<String, i64>> = HashMap::new();
    for trace in &traces {
        let trace_deltas = host_deltas(&trace.spans, &trace.timings);
        for (host, delta) in &trace_deltas {
            deltas.entry(host.clone()).or_insert(*delta);
        }
        per_trace.insert(trace.trace_id, trace_deltas);
    }
    let logs = order_logs(records, &deltas, &per_trace);
    Ok(Stitched {
        by,
        traces,
        correlation_ids,
        logs,
        host_deltas: deltas,
        truncated,
        incoming_links_complete,
    })
}

/// Where traces linking to a trace of these spans are looked for.
fn incoming_link_range(spans: &[Span]) -> Option<skewer_storage::scan::TimeRange> {
    let first = spans.iter().map(|span| span.start_time_unix_nano).min()?;
    let last = spans.iter().map(|span| span.end_time_unix_nano).max()?;
    Some(skewer_storage::scan::TimeRange {
        start_unix_nano: first.saturating_sub(INCOMING_LINK_LEAD_NANOS),
        end_unix_nano: last.max(first).saturating_add(INCOMING_LINK_WINDOW_NANOS),
    })
}

/// Records once each, moved with their host (by their own trace's deltas first), in adjusted
/// time order.
fn order_logs(
    mut records: Vec<LogRecord>,
    deltas: &HashMap<String, i64>,
    per_trace: &HashMap<TraceId, HashMap<String, i64>>,
) -> Vec<StitchedLog> {
    records.sort_by_key(LogRecord::effective_time_unix_nano);
    let mut unique: Vec<LogRecord> = Vec::with_capacity(records.len());
    for record in records {
        let time = record.effective_time_unix_nano();
        let repeated = unique
            .iter()
            .rev()
            .take_while(|kept| kept.effective_time_unix_nano() == time)
            .any(|kept| *kept == record);
        if !repeated {
            unique.push(record);
        }
    }
    let mut logs: Vec<StitchedLog> = unique
        .into_iter()
        .map(|record| {
            let host = host_of(&record.resource);
            let delta = record
                .trace_id
                .and_then(|trace| per_trace.get(&trace))
                .and_then(|trace_deltas| trace_deltas.get(&host))
                .or_else(|| deltas.get(&host))
                .copied()
                .unwrap_or(0);
            StitchedLog {
                record,
                delta_nanos: delta,
            }
        })
        .collect();
    logs.sort_by_key(|log| {
        log.record
            .effective_time_unix_nano()
            .saturating_add_signed(log.delta_nanos)
    });
    logs
}
