//! A token bucket that may go into debt: a request is let in while the bucket is not in debt
//! and then pays its whole cost, so a request larger than one second's allowance still passes
//! (once), and the debt it leaves is what the next requests wait for.

use std::time::Instant;

/// Tokens refilled at `rate` per second up to one second's worth.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// A full bucket of `rate` tokens per second.
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate as f64;
        Self {
            rate,
            tokens: rate,
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
    }

    /// Seconds until the bucket is out of debt; 0 when a request may pass now.
    pub fn wait_seconds(&mut self, now: Instant) -> f64 {
        self.refill(now);
        if self.tokens >= 0.0 {
            0.0
        } else {
            -self.tokens / self.rate
        }
    }

    /// Refills at `rate` from now on (this node's share of a deployment's rate, which moves
    /// as ingest nodes come and go); tokens past one second's worth of it are dropped.
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        if rate == self.rate {
            return;
        }
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(rate);
    }

    /// Takes `cost` tokens (possibly into debt).
    pub fn take(&mut self, cost: u64, now: Instant) {
        self.refill(now);
        self.tokens -= cost as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn debt_is_waited_out_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, start);
        assert_eq!(bucket.wait_seconds(start), 0.0);
        bucket.take(300, start);
        let wait = bucket.wait_seconds(start);
        assert!((wait - 2.0).abs() < 1e-9, "{wait}");
        let later = start + Duration::from_secs(1);
        assert!((bucket.wait_seconds(later) - 1.0).abs() < 1e-9);
        let paid = start + Duration::from_secs(2);
        assert_eq!(bucket.wait_seconds(paid), 0.0);
        // Idle time refills one second's worth, no more.
        let much_later = start + Duration::from_secs(60);
        bucket.take(100, much_later);
        assert_eq!(bucket.wait_seconds(much_later), 0.0);
        bucket.take(1, much_later);
        assert!(bucket.wait_seconds(much_later) > 0.0);
    }

    #[test]
    fn a_lower_share_of_the_rate_caps_the_tokens_and_slows_the_refill() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, start);
        bucket.set_rate(50.0, start);
        bucket.take(60, start);
        assert!((bucket.wait_seconds(start) - 0.2).abs() < 1e-9);
        bucket.set_rate(100.0, start);
        assert!((bucket.wait_seconds(start) - 0.1).abs() < 1e-9);
    }
}
