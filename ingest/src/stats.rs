//! Ingest counters, counted per request (never per record), read by the binary's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use skewer_storage::model::Signal;

use crate::record_limits::LimitedCounts;

/// Counters of one signal.
#[derive(Debug, Default)]
pub struct SignalCounters {
    /// Export requests answered with success (full or partial).
    pub requests_accepted: AtomicU64,
    /// Export requests refused as invalid.
    pub requests_invalid: AtomicU64,
    /// Export requests refused with a retryable answer (overload, not ready).
    pub requests_retryable: AtomicU64,
    /// Export requests that failed internally.
    pub requests_failed: AtomicU64,
    /// Records accepted (durable).
    pub records_accepted: AtomicU64,
    /// Records refused one by one through `partial_success`.
    pub records_rejected: AtomicU64,
    /// Request body bytes received (after decompression).
    pub bytes_received: AtomicU64,
    /// Attributes dropped by the record limits.
    pub limited_attributes: AtomicU64,
    /// Span events dropped by the record limits.
    pub limited_events: AtomicU64,
    /// Span links dropped by the record limits.
    pub limited_links: AtomicU64,
    /// Values cut by the record limits.
    pub limited_values: AtomicU64,
}

/// Counters of all signals.
#[derive(Debug, Default)]
pub struct IngestStats {
    traces: SignalCounters,
    logs: SignalCounters,
    metrics: SignalCounters,
}

impl IngestStats {
    /// The counters of `signal`.
    pub fn signal(&self, signal: Signal) -> &SignalCounters {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
        }
    }
}

impl SignalCounters {
    /// Adds `value` to `counter`.
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts what the record limits dropped or cut in one export.
    pub fn count_limited(&self, limited: &LimitedCounts) {
        if !limited.any() {
            return;
        }
        Self::add(&self.limited_attributes, limited.attributes);
        Self::add(&self.limited_events, limited.events);
        Self::add(&self.limited_links, limited.links);
        Self::add(&self.limited_values, limited.values);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
