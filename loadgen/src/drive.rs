//! Drives a pool of prepared exports at the server: closed loop (N streams, each sending as
//! soon as its last export is answered) or open loop (a fixed rate; latency is measured from
//! each export's scheduled time, so a slow server cannot hide queueing).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::pool::Prepared;
use super::report::Counters;
use super::transport::{Outcome, Sender};

/// When to stop and how hard to push.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Stop after this many records (checked per export).
    pub max_records: Option<u64>,
    /// Stop after this long.
    pub duration: Duration,
    /// Concurrent exports (closed loop) or the in-flight cap (open loop).
    pub concurrency: usize,
    /// Records per second for an open loop; `None` for a closed loop.
    pub rate_records_per_second: Option<f64>,
    /// How far point timestamps move per replay cycle of the pool.
    pub time_step_nanos: u64,
    /// Resends of an export answered with a retryable refusal, as OTLP exporters do.
    pub retries: u32,
}

/// Which exports (by dispense index) were acknowledged whole: one bit each.
#[derive(Debug, Default)]
pub struct Acknowledged(std::sync::Mutex<Vec<u64>>);

impl Acknowledged {
    fn mark(&self, index: u64) {
        let (word, bit) = ((index / 64) as usize, index % 64);
        if let Ok(mut bits) = self.0.lock() {
            if bits.len() <= word {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << bit;
        }
    }

    /// Whether export `index` was acknowledged with nothing rejected.
    pub fn contains(&self, index: u64) -> bool {
        let (word, bit) = ((index / 64) as usize, index % 64);
        self.0
            .lock()
            .is_ok_and(|bits| bits.get(word).is_some_and(|w| w & (1 << bit) != 0))
    }

    fn note(&self, index: u64, outcome: &Outcome) {
        if *outcome == (Outcome::Accepted { rejected: 0 }) {
            self.mark(index);
        }
    }
}

/// Backoff between resends of a refused export.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Hands out exports in order: pool index and replay cycle.
struct Dispenser {
    pool: Arc<Vec<Prepared>>,
    next: AtomicU64,
    records_claimed: AtomicU64,
    max_records: Option<u64>,
    time_step_nanos: u64,
    /// Exports handed out (each sent at least once).
    dispensed: AtomicU64,
}

impl Dispenser {
    fn next(&self) -> Option<(u64, bytes::Bytes, usize)> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let prepared = &self.pool[(index % self.pool.len() as u64) as usize];
        let claimed = self
            .records_claimed
            .fetch_add(prepared.records as u64, Ordering::Relaxed);
        if self.max_records.is_some_and(|max| claimed >= max) {
            return None;
        }
        let cycle = index / self.pool.len() as u64;
        self.dispensed.fetch_add(1, Ordering::Relaxed);
        Some((
            index,
            prepared.materialize(cycle, self.time_step_nanos),
            prepared.records,
        ))
    }
}

/// What a run did beyond its counters.
#[derive(Debug)]
pub struct RunEnd {
    /// Wall-clock time taken.
    pub elapsed: Duration,
    /// Distinct exports sent (retries not counted), in pool order from the first.
    pub exports_sent: u64,
    /// Which of them were acknowledged whole.
    pub acknowledged: Arc<Acknowledged>,
}

/// Runs until a limit is hit.
pub async fn run(
    pool: Vec<Prepared>,
    senders: Vec<Sender>,
    limits: RunLimits,
    counters: Arc<Counters>,
    progress_label: String,
) -> RunEnd {
    let acknowledged = Arc::new(Acknowledged::default());
    let dispenser = Arc::new(Dispenser {
        pool: Arc::new(pool),
        next: AtomicU64::new(0),
        records_claimed: AtomicU64::new(0),
        max_records: limits.max_records,
        time_step_nanos: limits.time_step_nanos,
        dispensed: AtomicU64::new(0),
    });
    let started = Instant::now();
    let deadline = started + limits.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(progress(
        Arc::clone(&counters),
        Arc::clone(&stop),
        progress_label,
    ));
    match limits.rate_records_per_second {
        None => {
            let retries = limits.retries;
            closed_loop(
                &dispenser,
                senders,
                (deadline, retries),
                &counters,
                &acknowledged,
            )
            .await
        }
        Some(rate) => {
            open_loop(
                &dispenser,
                senders,
                (deadline, rate, limits.concurrency),
                &counters,
                &acknowledged,
            )
            .await
        }
    }
    stop.store(true, Ordering::Relaxed);
    // The progress line is cosmetic; its end needs no handling.
    let _ = progress.await;
    RunEnd {
        elapsed: started.elapsed(),
        exports_sent: dispenser.dispensed.load(Ordering::Relaxed),
        acknowledged,
    }
}

async fn closed_loop(
    dispenser: &Arc<Dispenser>,
    senders: Vec<Sender>,
    (deadline, retries): (Instant, u32),
    counters: &Arc<Counters>,
    acknowledged: &Arc<Acknowledged>,
) {
    let mut tasks = Vec::with_capacity(senders.len());
    for mut sender in senders {
        let dispenser = Arc::clone(dispenser);
        let counters = Arc::clone(counters);
        let acknowledged = Arc::clone(acknowledged);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Some((index, body, records)) = dispenser.next() else {
                    break;
                };
                for attempt in 0..=retries {
                    let started = Instant::now();
                    let outcome = sender.send(body.clone()).await;
                    counters.record(records, started.elapsed(), &outcome);
                    acknowledged.note(index, &outcome);
                    if outcome != Outcome::Retryable
                        || attempt == retries
                        || Instant::now() >= deadline
                    {
                        break;
                    }
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn open_loop(
    dispenser: &Arc<Dispenser>,
    senders: Vec<Sender>,
    (deadline, rate_records_per_second, max_in_flight): (Instant, f64, usize),
    counters: &Arc<Counters>,
    acknowledged: &Arc<Acknowledged>,
) {
    let records_per_export = dispenser.pool.iter().map(|p| p.records).sum::<usize>() as f64
        / dispenser.pool.len().max(1) as f64;
    let interval = Duration::from_secs_f64(records_per_export / rate_records_per_second.max(1e-9));
    let in_flight = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0u64.. {
        let scheduled = start + interval.mul_f64(i as f64);
        if scheduled.into_std() >= deadline {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let Some((index, body, records)) = dispenser.next() else {
            break;
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let mut sender = senders[(i as usize) % senders.len()].clone();
        let counters = Arc::clone(counters);
        let acknowledged = Arc::clone(acknowledged);
        tasks.push(tokio::spawn(async move {
            let outcome = sender.send(body).await;
            counters.record(records, scheduled.elapsed(), &outcome);
            acknowledged.note(index, &outcome);
            drop(permit);
        }));
        if tasks.len() >= 4096 {
            tasks.retain(|t| !t.is_finished());
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn progress(counters: Arc<Counters>, stop: Arc<AtomicBool>, label: String) {
    let started = Instant::now();
    let mut last = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let elapsed = started.elapsed();
        if elapsed.as_millis() / 1000 == last as u128 {
            continue;
        }
        last = elapsed.as_secs();
        eprintln!(
            "{label}: {:>4}s  acked {:>10}  retryable {:>6}  failed {:>6}",
            last,
            counters.records_acked.load(Ordering::Relaxed),
            counters.retryable.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_acknowledgements_are_marked() {
        let acknowledged = Acknowledged::default();
        acknowledged.note(3, &Outcome::Accepted { rejected: 0 });
        acknowledged.note(130, &Outcome::Accepted { rejected: 0 });
        acknowledged.note(4, &Outcome::Accepted { rejected: 1 });
        acknowledged.note(5, &Outcome::Retryable);
        acknowledged.note(6, &Outcome::Failed("x".into()));
        let marked: Vec<u64> = (0..200).filter(|&i| acknowledged.contains(i)).collect();
        assert_eq!(marked, [3, 130]);
    }
}
