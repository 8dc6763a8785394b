//! Counting what happened during a run and summarizing it: records sent, acknowledged,
//! refused, retryable answers, throughput and export latency percentiles.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::transport::Outcome;

/// Live counters, shared by the sending tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered (any outcome).
    pub requests: AtomicU64,
    /// Records in requests that were sent.
    pub records_sent: AtomicU64,
    /// Records acknowledged (accepted minus refused one by one).
    pub records_acked: AtomicU64,
    /// Records refused through partial success.
    pub records_rejected: AtomicU64,
    /// Requests answered with a retryable refusal.
    pub retryable: AtomicU64,
    /// Requests that failed otherwise.
    pub failed: AtomicU64,
    latencies_micros: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    /// Records one answer.
    pub fn record(&self, records: usize, latency: Duration, outcome: &Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.records_sent
            .fetch_add(records as u64, Ordering::Relaxed);
        match outcome {
            Outcome::Accepted { rejected } => {
                self.records_acked.fetch_add(
                    (records as u64).saturating_sub(*rejected),
                    Ordering::Relaxed,
                );
                self.records_rejected
                    .fetch_add(*rejected, Ordering::Relaxed);
            }
            Outcome::Retryable => {
                self.retryable.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(reason) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| reason.clone());
                }
            }
        }
        if let Ok(mut latencies) = self.latencies_micros.lock() {
            latencies.push(latency.as_micros() as u64);
        }
    }

    /// The summary of the run so far.
    pub fn summary(&self, label: String, elapsed: Duration) -> Summary {
        let mut latencies = self
            .latencies_micros
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        latencies.sort_unstable();
        let percentile = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[index.min(latencies.len() - 1)] as f64 / 1_000.0
        };
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let acked = self.records_acked.load(Ordering::Relaxed);
        Summary {
            label,
            seconds,
            requests: self.requests.load(Ordering::Relaxed),
            records_sent: self.records_sent.load(Ordering::Relaxed),
            records_acked: acked,
            records_rejected: self.records_rejected.load(Ordering::Relaxed),
            retryable_answers: self.retryable.load(Ordering::Relaxed),
            failed_requests: self.failed.load(Ordering::Relaxed),
            acked_records_per_second: acked as f64 / seconds,
            latency_p50_ms: percentile(0.50),
            latency_p99_ms: percentile(0.99),
            latency_max_ms: percentile(1.0),
            first_error: self.first_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What ran (signal, transport, mode).
    pub label: String,
    /// Wall-clock duration.
    pub seconds: f64,
    /// Requests answered.
    pub requests: u64,
    /// Records sent.
    pub records_sent: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records refused one by one.
    pub records_rejected: u64,
    /// Retryable answers (overload).
    pub retryable_answers: u64,
    /// Other failures.
    pub failed_requests: u64,
    /// Acknowledged records per wall-clock second.
    pub acked_records_per_second: f64,
    /// Export latency, median.
    pub latency_p50_ms: f64,
    /// Export latency, 99th percentile.
    pub latency_p99_ms: f64,
    /// Export latency, worst.
    pub latency_max_ms: f64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {:.1} s", self.label, self.seconds)?;
        writeln!(
            f,
            "  requests {}  records sent {}  acked {}  rejected {}  retryable answers {}  failed {}",
            self.requests,
            self.records_sent,
            self.records_acked,
            self.records_rejected,
            self.retryable_answers,
            self.failed_requests
        )?;
        writeln!(
            f,
            "  throughput {:.0} records/s",
            self.acked_records_per_second
        )?;
        write!(
            f,
            "  export latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        )?;
        if let Some(error) = &self.first_error {
            write!(f, "\n  first error: {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_percentiles() {
        let counters = Counters::default();
        for ms in 1..=100 {
            counters.record(
                10,
                Duration::from_millis(ms),
                &Outcome::Accepted { rejected: 1 },
            );
        }
        counters.record(10, Duration::from_millis(1), &Outcome::Retryable);
        counters.record(
            10,
            Duration::from_millis(1),
            &Outcome::Failed("boom".into()),
        );
        let summary = counters.summary("t".into(), Duration::from_secs(2));
        assert_eq!(summary.requests, 102);
        assert_eq!(summary.records_acked, 900);
        assert_eq!(summary.records_rejected, 100);
        assert_eq!(summary.retryable_answers, 1);
        assert_eq!(summary.failed_requests, 1);
        assert_eq!(summary.acked_records_per_second, 450.0);
        assert!((49.0..=52.0).contains(&summary.latency_p50_ms));
        assert_eq!(summary.latency_max_ms, 100.0);
        assert_eq!(summary.first_error.as_deref(), Some("boom"));
    }
}
