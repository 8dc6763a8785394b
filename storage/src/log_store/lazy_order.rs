//! Items in key order, sorted only as far as they are taken: a scan that stops after the
//! newest hundred matches of an hour need not sort the hour's hundreds of thousands.
//!
//! Each round moves the next `chunk` items to the front (`select_nth_unstable_by`, linear)
//! and sorts just those; the chunk doubles every round, so taking everything costs about
//! what one sort does, and taking a few costs a couple of linear passes.

/// Items of the first round; later rounds double it.
const FIRST_CHUNK: usize = 256;

/// `items` in ascending key order (descending when `descending`), as an iterator. Keys
/// should be distinct: items of equal keys come in no particular order.
pub(super) struct LazyOrder<T, K> {
    items: Vec<T>,
    key: K,
    descending: bool,
    /// The next item to yield.
    next: usize,
    /// Items before this are in their final order.
    sorted_until: usize,
    chunk: usize,
}

impl<T: Copy, O: Ord, K: Fn(&T) -> O> LazyOrder<T, K> {
    pub(super) fn new(items: Vec<T>, key: K, descending: bool) -> Self {
        Self {
            items,
            key,
            descending,
            next: 0,
            sorted_until: 0,
            chunk: FIRST_CHUNK,
        }
    }

    /// Puts the next chunk of items in their final order.
    fn sort_next_chunk(&mut self) {
        let (key, descending) = (&self.key, self.descending);
        let compare = |a: &T, b: &T| {
            let order = key(a).cmp(&key(b));
            if descending { order.reverse() } else { order }
        };
        let tail = &mut self.items[self.next..];
        let take = self.chunk.min(tail.len());
        if take < tail.len() {
            tail.select_nth_unstable_by(take - 1, compare);
        }
        tail[..take].sort_unstable_by(compare);
        self.sorted_until = self.next + take;
        self.chunk = self.chunk.saturating_mul(2);
    }
}

impl<T: Copy, O: Ord, K: Fn(&T) -> O> Iterator for LazyOrder<T, K> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next >= self.items.len() {
            return None;
        }
        if self.next == self.sorted_until {
            self.sort_next_chunk();
        }
        let item = self.items[self.next];
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.items.len() - self.next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic shuffle of 0..n with distinct keys.
    fn shuffled(n: u64) -> Vec<(u64, u32)> {
        (0..n)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1_000_003, i as u32))
            .collect()
    }

    #[test]
    fn yields_the_full_sort_in_either_direction_across_rounds() {
        for n in [0, 1, 255, 256, 257, 5_000] {
            let items = shuffled(n);
            let mut ascending = items.clone();
            ascending.sort();
            let lazy: Vec<_> = LazyOrder::new(items.clone(), |&item| item, false).collect();
            assert_eq!(lazy, ascending, "{n} ascending");
            let mut descending = ascending.clone();
            descending.reverse();
            let lazy: Vec<_> = LazyOrder::new(items, |&item| item, true).collect();
            assert_eq!(lazy, descending, "{n} descending");
        }
    }

    #[test]
    fn taking_a_few_yields_the_first_few() {
        let items = shuffled(10_000);
        let mut descending = items.clone();
        descending.sort_by(|a, b| b.cmp(a));
        let first: Vec<_> = LazyOrder::new(items, |&(time, _)| time, true)
            .take(300)
            .collect();
        assert_eq!(first, descending[..300]);
    }
}
