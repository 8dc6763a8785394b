//! A least-recently-used cache of things read from files, keyed by the data file's object
//! path and bounded by the bytes its values hold: parsed footers and trace-id filters are kept
//! this way, so memory stays flat however much data accumulates.

use std::sync::Mutex;

use lru::LruCache;
use object_store::path::Path as ObjectPath;

/// Values of recently read files, at most `limit_bytes` of them (and at least the last one).
pub struct ByteLru<V> {
    entries: Mutex<Entries<V>>,
    limit_bytes: usize,
    /// The bytes a value holds.
    weigh: fn(&V) -> usize,
}

struct Entries<V> {
    lru: LruCache<ObjectPath, V>,
    bytes: usize,
}

impl<V: Clone> ByteLru<V> {
    /// An empty cache of at most `limit_bytes`, each value weighed by `weigh`.
    pub fn new(limit_bytes: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            limit_bytes,
            weigh,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value of `path`, marked recently used.
    pub fn get(&self, path: &ObjectPath) -> Option<V> {
        self.entries().lru.get(path).cloned()
    }

    /// Keeps `value` for `path`, evicting the least recently used past the limit.
    pub fn insert(&self, path: ObjectPath, value: V) {
        let weight = (self.weigh)(&value);
        let mut entries = self.entries();
        if let Some(previous) = entries.lru.put(path, value) {
            entries.bytes -= (self.weigh)(&previous);
        }
        entries.bytes += weight;
        while entries.bytes > self.limit_bytes && entries.lru.len() > 1 {
            match entries.lru.pop_lru() {
                Some((_, evicted)) => entries.bytes -= (self.weigh)(&evicted),
                None => break,
            }
        }
    }

    /// Keeps `value` for `path` only if it fits beside what is held, evicting nothing:
    /// for values read whole that could also be read in part, so that once more of them
    /// are in use than fit, the rest are read in part instead of evicting each other on
    /// every pass. True when kept.
    pub fn insert_if_room(&self, path: ObjectPath, value: V) -> bool {
        let weight = (self.weigh)(&value);
        let mut entries = self.entries();
        if entries.bytes + weight > self.limit_bytes || entries.lru.contains(&path) {
            return false;
        }
        entries.bytes += weight;
        entries.lru.put(path, value);
        true
    }

    /// Whether `weight` more bytes fit beside what is held.
    pub fn has_room(&self, weight: usize) -> bool {
        self.entries().bytes + weight <= self.limit_bytes
    }

    /// Forgets a deleted file's value.
    pub fn forget(&self, path: &ObjectPath) {
        let mut entries = self.entries();
        if let Some(value) = entries.lru.pop(path) {
            entries.bytes -= (self.weigh)(&value);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.entries().bytes
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.entries().lru.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_past_the_limit_and_keeps_the_last() {
        let cache: ByteLru<Vec<u8>> = ByteLru::new(10, Vec::len);
        cache.insert(ObjectPath::from("a"), vec![0; 4]);
        cache.insert(ObjectPath::from("b"), vec![0; 4]);
        assert!(cache.get(&ObjectPath::from("a")).is_some()); // a is now newer than b
        cache.insert(ObjectPath::from("c"), vec![0; 4]);
        assert!(cache.get(&ObjectPath::from("b")).is_none());
        assert_eq!((cache.len(), cache.bytes()), (2, 8));
        cache.insert(ObjectPath::from("big"), vec![0; 50]);
        assert_eq!((cache.len(), cache.bytes()), (1, 50));
        cache.forget(&ObjectPath::from("big"));
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn insertion_if_room_evicts_nothing() {
        let cache: ByteLru<Vec<u8>> = ByteLru::new(10, Vec::len);
        assert!(cache.insert_if_room(ObjectPath::from("a"), vec![0; 6]));
        assert!(cache.has_room(4) && !cache.has_room(5));
        assert!(!cache.insert_if_room(ObjectPath::from("b"), vec![0; 6]));
        assert!(cache.get(&ObjectPath::from("a")).is_some());
        assert!(
            !cache.insert_if_room(ObjectPath::from("a"), vec![0; 1]),
            "held already"
        );
        assert_eq!((cache.len(), cache.bytes()), (1, 6));
    }
}
