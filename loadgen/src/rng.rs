//! The seeded random source of the generators: same seed, same data.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A deterministic PRNG with the few draws the generators need.
pub struct Random(SmallRng);

impl Random {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(SmallRng::seed_from_u64(seed))
    }

    /// A uniform integer in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p.clamp(0.0, 1.0))
    }

    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Random bytes that are never all zero (valid OTLP ids).
    pub fn id<const N: usize>(&mut self) -> [u8; N] {
        let mut id = [0u8; N];
        self.0.fill(&mut id[..]);
        id[0] |= 1;
        id
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random()
    }

    /// A uniform `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }
}
