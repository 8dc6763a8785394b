//! The memory budget: one byte limit for data in flight and in buffers, shared by all signals.
//!
//! Admission reserves bytes before decoding; the reservation travels with the data into a
//! buffer and is released only when the data is in files. When the budget is spent the
//! caller answers with OTLP's retryable error instead of queueing without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::StorageError;

/// A byte limit with an atomic counter of what is reserved.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: usize,
    used_bytes: AtomicUsize,
    /// What long-lived holders (open log index writers) may keep of the limit at most.
    standing_bytes: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            limit_bytes,
            used_bytes: AtomicUsize::new(0),
            standing_bytes: AtomicUsize::new(0),
        })
    }

    /// Reserves `bytes`, or says how much was left.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, StorageError> {
        let mut used = self.used_bytes.load(Ordering::Relaxed);
        loop {
            let available_bytes = self.limit_bytes.saturating_sub(used);
            if bytes > available_bytes {
                return Err(StorageError::BudgetExhausted {
                    requested_bytes: bytes,
                    available_bytes,
                });
            }
            match self.used_bytes.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: Some(Arc::clone(self)),
                        bytes,
                    });
                }
                Err(actual) => used = actual,
            }
        }
    }

    /// Reserves `bytes` even past the limit: for data accepted before (WAL replay), which
    /// must not be refused but must still be accounted for.
    pub fn reserve_unchecked(self: &Arc<Self>, bytes: usize) -> Reservation {
        self.used_bytes.fetch_add(bytes, Ordering::AcqRel);
        Reservation {
            budget: Some(Arc::clone(self)),
            bytes,
        }
    }

    /// Bytes still free.
    pub fn available_bytes(&self) -> usize {
        self.limit_bytes.saturating_sub(self.used_bytes())
    }

    /// Bytes reserved now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// Declares that long-lived holders (open log index writers) may keep up to `bytes` of
    /// the limit: a request needing more than the rest could wait for it forever.
    pub fn set_standing_bytes(&self, bytes: usize) {
        self.standing_bytes
            .store(bytes.min(self.limit_bytes), Ordering::Relaxed);
    }

    /// The most one request can ever be given: the limit less what long-lived holders may
    /// keep ([`Self::set_standing_bytes`]).
    pub fn admission_limit_bytes(&self) -> usize {
        self.limit_bytes
            .saturating_sub(self.standing_bytes.load(Ordering::Relaxed))
    }
}

/// Bytes held against a budget; released on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes over another reservation of the same budget, so both are released together.
    pub fn merge(&mut self, mut other: Reservation) {
        match (&self.budget, other.budget.take()) {
            (_, None) => {}
            (None, Some(budget)) => {
                self.budget = Some(budget);
                self.bytes = other.bytes;
            }
            (Some(_), Some(budget)) => {
                // Same budget in practice; if not, release the other's bytes where they belong.
                if self
                    .budget
                    .as_ref()
                    .is_some_and(|own| Arc::ptr_eq(own, &budget))
                {
                    self.bytes += other.bytes;
                } else {
                    budget.used_bytes.fetch_sub(other.bytes, Ordering::AcqRel);
                }
            }
        }
        other.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.used_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_released_on_drop() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(matches!(
            budget.try_reserve(41),
            Err(StorageError::BudgetExhausted {
                available_bytes: 40,
                ..
            })
        ));
        let mut b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.used_bytes(), 100);
        b.merge(a);
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn standing_holders_shrink_what_one_request_can_ever_get() {
        let budget = MemoryBudget::new(100);
        assert_eq!(budget.admission_limit_bytes(), 100);
        budget.set_standing_bytes(25);
        assert_eq!(budget.admission_limit_bytes(), 75);
        budget.set_standing_bytes(1000);
        assert_eq!(budget.admission_limit_bytes(), 0);
        assert_eq!(budget.limit_bytes(), 100);
    }

    #[test]
    fn merging_into_an_empty_reservation_keeps_the_bytes() {
        let budget = MemoryBudget::new(10);
        let mut held = Reservation::default();
        held.merge(budget.try_reserve(7).unwrap());
        assert_eq!(budget.used_bytes(), 7);
        drop(held);
        assert_eq!(budget.used_bytes(), 0);
    }
}
