//! The series table: one shared [`MetricSeries`] per series seen lately, so a point carries
//! only its series' `Arc`, its time and its value.
//!
//! Ingest looks every incoming point's series up here, one of two ways:
//! - by content ([`SeriesSession::series`]): a known series is found by a fast,
//!   per-process-seeded hash of its content and compared in full (no two different series
//!   ever share an entry), and only a new series is built and gets its stable id hashed;
//! - by encoding ([`SeriesSession::series_by_encoding`]): a point whose attributes came in
//!   with exactly the bytes of a point seen lately (clients encode a series the same way
//!   every time) finds its series by those bytes, without decoding them; only an encoding
//!   not seen lately is decoded and then looked up by content, so every encoding of a series
//!   shares the one entry.
//!
//! Flushes then sort and group by the id the series already holds, and dropping a flushed
//! point frees no attribute strings.
//!
//! Memory stays bounded: series live in two generations. A lookup that finds a series in the
//! previous generation moves it to the current one; when the current generation is full or old,
//! it becomes the previous one and what the old previous generation still held (series no
//! export sent during a whole generation) is dropped from the table. Buffered points keep their
//! own `Arc`s, so dropping an entry never loses data; a series sent again later is built anew.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::series_content::{
    HashedResource, HashedScope, hash_attributes, hash_descriptor, same_attributes,
    same_descriptor, same_resource, same_scope,
};
use crate::model::{Attribute, InstrumentationScope, MetricDescriptor, MetricSeries, Resource};

/// Series per generation by default: two generations hold at most twice this many.
pub const DEFAULT_GENERATION_CAPACITY: usize = 1 << 17;
/// Memory budget bytes per series a generation may hold ([`SeriesTable::for_budget`]): a
/// series with a few attributes takes ~400 bytes (and ~150 more for each encoding of its
/// attributes the table keeps), so both generations together stay under a fifth of the
/// budget even when no buffered point shares their series.
const BUDGET_BYTES_PER_SERIES: usize = 4096;
/// How long a generation lasts by default: a series unseen for two of these leaves the table.
pub const DEFAULT_GENERATION_AGE: Duration = Duration::from_secs(10 * 60);
/// Bytes of attribute encodings a generation remembers, by default and per byte of memory
/// budget ([`SeriesTable::for_budget`]): past it, points of encodings not yet remembered are
/// looked up by content until the next generation.
const DEFAULT_ENCODED_BYTES_PER_GENERATION: usize = 32 << 20;
const BUDGET_BYTES_PER_ENCODED_BYTE: usize = 16;

/// The series seen lately (see the module docs). Shared by every ingest path of a server.
pub struct SeriesTable {
    generations: Mutex<Generations>,
    hasher: foldhash::fast::RandomState,
    generation_capacity: usize,
    generation_age: Duration,
    max_encoded_bytes: usize,
}

struct Generations {
    current: Generation,
    previous: Generation,
    started: Instant,
}

/// The series one generation holds, by content, and the attribute encodings it saw them in.
#[derive(Default)]
struct Generation {
    by_content: HashTable<Entry>,
    by_encoding: HashTable<EncodedEntry>,
    /// Bytes of the keys of `by_encoding`.
    encoded_bytes: usize,
}

impl Generation {
    /// Whether this generation holds as much as one may.
    fn is_full(&self, capacity: usize) -> bool {
        self.by_content.len() >= capacity || self.by_encoding.len() >= capacity
    }
}

struct Entry {
    hash: u64,
    series: Arc<MetricSeries>,
}

/// A series found by the encoding of its attributes.
struct EncodedEntry {
    /// The hash of the group and the encoding.
    hash: u64,
    /// The hash of the series' content (its [`Entry`]'s).
    content_hash: u64,
    /// The encoding's pieces, each after its length (see [`encoding_key`]).
    key: Box<[u8]>,
    series: Arc<MetricSeries>,
}

impl std::fmt::Debug for SeriesTable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SeriesTable")
            .field("series", &self.len())
            .finish()
    }
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self::new(DEFAULT_GENERATION_CAPACITY, DEFAULT_GENERATION_AGE)
    }
}

impl SeriesTable {
    /// A table whose generations hold up to `generation_capacity` series and last at most
    /// `generation_age`.
    pub fn new(generation_capacity: usize, generation_age: Duration) -> Self {
        Self {
            generations: Mutex::new(Generations {
                current: Generation::default(),
                previous: Generation::default(),
                started: Instant::now(),
            }),
            hasher: foldhash::fast::RandomState::default(),
            generation_capacity: generation_capacity.max(1),
            generation_age,
            max_encoded_bytes: DEFAULT_ENCODED_BYTES_PER_GENERATION,
        }
    }

    /// A table sized for a server whose memory budget is `budget_bytes` (the series it holds
    /// beyond what buffered points share are not charged to the budget, so they are kept to
    /// a fraction of it): 131,072 series per generation for the default 512 MiB.
    pub fn for_budget(budget_bytes: usize) -> Self {
        Self {
            max_encoded_bytes: budget_bytes / BUDGET_BYTES_PER_ENCODED_BYTE,
            ..Self::new(
                budget_bytes / BUDGET_BYTES_PER_SERIES,
                DEFAULT_GENERATION_AGE,
            )
        }
    }

    /// A lookup session for one export: it hashes each export group's shared parts once.
    pub fn session(&self) -> SeriesSession<'_> {
        SeriesSession {
            table: self,
            groups: HashMap::default(),
            parts: SharedParts::default(),
        }
    }

    /// Series the table holds (both generations).
    pub fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.by_content.len() + generations.previous.by_content.len()
    }

    /// Whether the table holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The table holds no invariant a panicking holder could break halfway.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The table locked, with a new generation started if the current one is full or old:
    /// the generation that leaves is returned, to be dropped after the lock is released.
    fn lock_for_insert(&self) -> (std::sync::MutexGuard<'_, Generations>, Option<Generation>) {
        let now = Instant::now();
        let mut generations = self.lock();
        let mut leaving = None;
        if generations.current.is_full(self.generation_capacity)
            || now.duration_since(generations.started) >= self.generation_age
        {
            let current = std::mem::take(&mut generations.current);
            leaving = Some(std::mem::replace(&mut generations.previous, current));
            generations.started = now;
        }
        (generations, leaving)
    }

    /// The table's series equal to `(group, attributes)`, and whether it was there already
    /// (else it is new, and the table now holds it).
    fn find_or_insert(
        &self,
        hash: u64,
        group: &Group,
        attributes: Vec<Attribute>,
    ) -> (Arc<MetricSeries>, bool) {
        let (mut generations, leaving) = self.lock_for_insert();
        let matches = |entry: &Entry| {
            entry.hash == hash
                && group.same_parts(&entry.series)
                && same_attributes(&entry.series.attributes, &attributes)
        };
        if let Some(entry) = generations.current.by_content.find(hash, matches) {
            let series = Arc::clone(&entry.series);
            drop(generations);
            drop(leaving);
            return (series, true);
        }
        let (series, found) = match generations.previous.by_content.find_entry(hash, matches) {
            Ok(found) => (found.remove().0.series, true),
            Err(_) => {
                let series = MetricSeries::new(
                    Arc::clone(&group.resource),
                    Arc::clone(&group.scope),
                    Arc::clone(&group.metric),
                    attributes,
                );
                (Arc::new(series), false)
            }
        };
        generations.current.by_content.insert_unique(
            hash,
            Entry {
                hash,
                series: Arc::clone(&series),
            },
            |entry| entry.hash,
        );
        drop(generations);
        drop(leaving);
        (series, found)
    }

    /// The series of `group` whose attributes were last seen encoded as `pieces` (hashed
    /// with the group as `hash`), if the table still knows that encoding. Found in the
    /// previous generation, the series and its encoding move to the current one.
    fn find_encoded<P: AsRef<[u8]>>(
        &self,
        hash: u64,
        group: &Group,
        pieces: &[P],
    ) -> Option<Arc<MetricSeries>> {
        let matches = |entry: &EncodedEntry| {
            entry.hash == hash
                && encoding_matches(&entry.key, pieces)
                && group.same_parts(&entry.series)
        };
        let mut generations = self.lock();
        if let Some(entry) = generations.current.by_encoding.find(hash, matches) {
            return Some(Arc::clone(&entry.series));
        }
        let entry = generations
            .previous
            .by_encoding
            .find_entry(hash, matches)
            .ok()?
            .remove()
            .0;
        let series = Arc::clone(&entry.series);
        generations.previous.encoded_bytes -= entry.key.len();
        generations.current.encoded_bytes += entry.key.len();
        move_content_entry(&mut generations, entry.content_hash, &series);
        generations
            .current
            .by_encoding
            .insert_unique(hash, entry, |entry| entry.hash);
        Some(series)
    }

    /// Remembers that `series` (of content hash `content_hash`) came with its attributes
    /// encoded as `pieces` (hashed with its group as `hash`).
    fn insert_encoded<P: AsRef<[u8]>>(
        &self,
        hash: u64,
        content_hash: u64,
        pieces: &[P],
        series: &Arc<MetricSeries>,
    ) {
        let (mut generations, leaving) = self.lock_for_insert();
        // A new generation may have started since the series was found: its content entry
        // comes along, so it never ages out while its encoding is still found.
        move_content_entry(&mut generations, content_hash, series);
        let known = generations
            .current
            .by_encoding
            .find(hash, |entry| {
                entry.hash == hash
                    && Arc::ptr_eq(&entry.series, series)
                    && encoding_matches(&entry.key, pieces)
            })
            .is_some();
        let key_bytes: usize = pieces.iter().map(|piece| 4 + piece.as_ref().len()).sum();
        if !known && generations.current.encoded_bytes + key_bytes <= self.max_encoded_bytes {
            generations.current.encoded_bytes += key_bytes;
            generations.current.by_encoding.insert_unique(
                hash,
                EncodedEntry {
                    hash,
                    content_hash,
                    key: encoding_key(pieces),
                    series: Arc::clone(series),
                },
                |entry| entry.hash,
            );
        }
        drop(generations);
        drop(leaving);
    }
}

/// Moves the content entry of `series` (of hash `content_hash`) from the previous generation
/// to the current one, if it is there.
fn move_content_entry(
    generations: &mut Generations,
    content_hash: u64,
    series: &Arc<MetricSeries>,
) {
    if let Ok(found) = generations
        .previous
        .by_content
        .find_entry(content_hash, |other| Arc::ptr_eq(&other.series, series))
    {
        let moved = found.remove().0;
        generations
            .current
            .by_content
            .insert_unique(content_hash, moved, |entry| entry.hash);
    }
}

/// An encoding's pieces in one buffer, each after its length (4 bytes, little-endian), so
/// that no two different piece lists make the same key.
fn encoding_key<P: AsRef<[u8]>>(pieces: &[P]) -> Box<[u8]> {
    let total: usize = pieces.iter().map(|piece| 4 + piece.as_ref().len()).sum();
    let mut key = Vec::with_capacity(total);
    for piece in pieces {
        let piece = piece.as_ref();
        key.extend_from_slice(&piece_length(piece).to_le_bytes());
        key.extend_from_slice(piece);
    }
    key.into_boxed_slice()
}

/// A piece's length as the key writes it (saturated: no piece of an export comes near 4 GiB,
/// and a match compares the whole piece anyway).
fn piece_length(piece: &[u8]) -> u32 {
    u32::try_from(piece.len()).unwrap_or(u32::MAX)
}

/// Whether `key` was made by [`encoding_key`] from these pieces.
fn encoding_matches<P: AsRef<[u8]>>(key: &[u8], pieces: &[P]) -> bool {
    let mut rest = key;
    for piece in pieces {
        let piece = piece.as_ref();
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        if u32::from_le_bytes(*length) != piece_length(piece) {
            return false;
        }
        let Some((stored, tail)) = tail.split_at_checked(piece.len()) else {
            return false;
        };
        if stored != piece {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

/// Looks up the series of one export's points (see [`SeriesTable::session`]).
pub struct SeriesSession<'a> {
    table: &'a SeriesTable,
    groups: HashMap<GroupKey, Group, AddressHasher>,
    parts: SharedParts,
}

/// The export's resources and scopes by address: their hash, and the table's equal copy once
/// a series showed it.
#[derive(Default)]
struct SharedParts {
    resources: HashMap<usize, SharedPart<Resource>, AddressHasher>,
    scopes: HashMap<usize, SharedPart<InstrumentationScope>, AddressHasher>,
}

/// Hashes the session's keys, addresses of the export's own values (nothing a client picks).
type AddressHasher = foldhash::fast::RandomState;

/// A resource or scope of an export.
struct SharedPart<T> {
    /// The export's own `Arc`, held so its address (the key) is not reused while the
    /// session lasts.
    _sent: Arc<T>,
    canonical: Arc<T>,
    hash: u64,
}

/// The addresses of an export group's shared parts (resource, scope, descriptor).
type GroupKey = (usize, usize, usize);

/// An export group's shared parts, as the table holds them once one of its series is found,
/// and the lookup hash of them.
struct Group {
    /// The export's own descriptor, held so its address (part of the key) is not reused
    /// while the session lasts (the resource and scope are held by their `SharedPart`).
    _sent_metric: Arc<MetricDescriptor>,
    resource: Arc<Resource>,
    scope: Arc<InstrumentationScope>,
    metric: Arc<MetricDescriptor>,
    hash: u64,
    adopted: bool,
}

impl Group {
    fn same_parts(&self, series: &MetricSeries) -> bool {
        same_descriptor(&self.metric, &series.metric)
            && same_scope(&self.scope, &series.scope)
            && same_resource(&self.resource, &series.resource)
    }

    /// Takes the table's copies of the shared parts (equal to this group's), so later
    /// comparisons are pointer comparisons and new series share them.
    fn adopt_parts(&mut self, series: &MetricSeries) {
        self.resource = Arc::clone(&series.resource);
        self.scope = Arc::clone(&series.scope);
        self.metric = Arc::clone(&series.metric);
        self.adopted = true;
    }
}

impl SeriesSession<'_> {
    /// The shared series of a point of this export group with these attributes.
    pub fn series(
        &mut self,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        metric: &Arc<MetricDescriptor>,
        attributes: Vec<Attribute>,
    ) -> Arc<MetricSeries> {
        let table = self.table;
        let (key, group) = self
            .parts
            .group(table, &mut self.groups, resource, scope, metric);
        series_of_group(table, &mut self.parts, key, group, attributes).0
    }

    /// The shared series of a point of this export group whose attributes came encoded as
    /// `encoded` (opaque to the table: the same bytes must always decode to the same
    /// attributes, as a protobuf encoding does). When the table saw this encoding lately,
    /// the series is found by it and `decode` is not called; else `decode` gives the
    /// attributes (or the error returned), they are looked up by content, and the table
    /// remembers the encoding.
    pub fn series_by_encoding<P: AsRef<[u8]>, E>(
        &mut self,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        metric: &Arc<MetricDescriptor>,
        encoded: &[P],
        decode: impl FnOnce() -> Result<Vec<Attribute>, E>,
    ) -> Result<Arc<MetricSeries>, E> {
        let table = self.table;
        let (key, group) = self
            .parts
            .group(table, &mut self.groups, resource, scope, metric);
        let mut state = table.hasher.build_hasher();
        state.write_u64(group.hash);
        state.write_usize(encoded.len());
        for piece in encoded {
            let piece = piece.as_ref();
            state.write_usize(piece.len());
            state.write(piece);
        }
        let encoding_hash = state.finish();
        if let Some(series) = table.find_encoded(encoding_hash, group, encoded) {
            self.parts.adopt(key, group, &series);
            return Ok(series);
        }
        let (series, content_hash) = series_of_group(table, &mut self.parts, key, group, decode()?);
        table.insert_encoded(encoding_hash, content_hash, encoded, &series);
        Ok(series)
    }
}

/// The shared series of `group` (at `key`) with these attributes, and its content hash.
fn series_of_group(
    table: &SeriesTable,
    parts: &mut SharedParts,
    key: GroupKey,
    group: &mut Group,
    attributes: Vec<Attribute>,
) -> (Arc<MetricSeries>, u64) {
    let mut state = table.hasher.build_hasher();
    state.write_u64(group.hash);
    hash_attributes(&mut state, &attributes);
    let content_hash = state.finish();
    let (series, found) = table.find_or_insert(content_hash, group, attributes);
    if found {
        parts.adopt(key, group, &series);
    }
    (series, content_hash)
}

impl SharedParts {
    /// The export group of these parts (made on first sight) and its key.
    fn group<'g>(
        &mut self,
        table: &SeriesTable,
        groups: &'g mut HashMap<GroupKey, Group, AddressHasher>,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        metric: &Arc<MetricDescriptor>,
    ) -> (GroupKey, &'g mut Group) {
        let key = (
            Arc::as_ptr(resource) as usize,
            Arc::as_ptr(scope) as usize,
            Arc::as_ptr(metric) as usize,
        );
        let hasher = &table.hasher;
        let group = match groups.entry(key) {
            MapEntry::Occupied(group) => group.into_mut(),
            MapEntry::Vacant(slot) => {
                let resource = self.resources.entry(key.0).or_insert_with(|| SharedPart {
                    _sent: Arc::clone(resource),
                    hash: hasher.hash_one(HashedResource(resource)),
                    canonical: Arc::clone(resource),
                });
                let scope = self.scopes.entry(key.1).or_insert_with(|| SharedPart {
                    _sent: Arc::clone(scope),
                    hash: hasher.hash_one(HashedScope(scope)),
                    canonical: Arc::clone(scope),
                });
                let mut state = hasher.build_hasher();
                state.write_u64(resource.hash);
                state.write_u64(scope.hash);
                hash_descriptor(&mut state, metric);
                slot.insert(Group {
                    _sent_metric: Arc::clone(metric),
                    resource: Arc::clone(&resource.canonical),
                    scope: Arc::clone(&scope.canonical),
                    metric: Arc::clone(metric),
                    hash: state.finish(),
                    adopted: false,
                })
            }
        };
        (key, group)
    }

    /// Once a series of `group` (at `key`) was found in the table, the group, and later
    /// groups of its resource and scope, use the table's copies of the shared parts.
    fn adopt(&mut self, key: GroupKey, group: &mut Group, series: &MetricSeries) {
        if group.adopted {
            return;
        }
        group.adopt_parts(series);
        if let Some(part) = self.resources.get_mut(&key.0) {
            part.canonical = Arc::clone(&series.resource);
        }
        if let Some(part) = self.scopes.get_mut(&key.1) {
            part.canonical = Arc::clone(&series.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeValue;
    use crate::model::{MetricKind, Temporality};

    fn parts(
        service: &str,
        name: &str,
    ) -> (
        Arc<Resource>,
        Arc<InstrumentationScope>,
        Arc<MetricDescriptor>,
    ) {
        (
            Arc::new(Resource {
                attributes: vec![Attribute::string("service.name", service)],
                ..Resource::default()
            }),
            Arc::new(InstrumentationScope::default()),
            Arc::new(MetricDescriptor {
                name: name.into(),
                description: String::new(),
                unit: "1".into(),
                kind: MetricKind::Sum,
                temporality: Temporality::Cumulative,
                is_monotonic: true,
            }),
        )
    }

    fn route(route: &str) -> Vec<Attribute> {
        vec![Attribute::string("http.route", route)]
    }

    #[test]
    fn equal_series_from_separate_exports_share_one_entry() {
        let table = SeriesTable::default();
        let (resource, scope, metric) = parts("cart", "requests");
        let first = table
            .session()
            .series(&resource, &scope, &metric, route("/a"));
        // A later export: equal content in new allocations.
        let (resource, scope, metric) = parts("cart", "requests");
        let mut session = table.session();
        let again = session.series(&resource, &scope, &metric, route("/a"));
        assert!(Arc::ptr_eq(&first, &again));
        // A new series of the same group shares the parts the table already holds.
        let other = session.series(&resource, &scope, &metric, route("/b"));
        assert!(Arc::ptr_eq(&other.resource, &first.resource));
        assert_ne!(other.id(), first.id());
        assert_eq!(table.len(), 2);
        assert_eq!(
            first.id(),
            MetricSeries::new(resource, scope, metric, route("/a")).id()
        );
    }

    #[test]
    fn series_differing_anywhere_stay_apart() {
        let table = SeriesTable::default();
        let mut session = table.session();
        let (resource, scope, metric) = parts("cart", "requests");
        let base = session.series(&resource, &scope, &metric, route("/a"));
        let (other_service, _, _) = parts("shop", "requests");
        let (_, _, other_name) = parts("cart", "errors");
        let described = Arc::new(MetricDescriptor {
            description: "Requests served".into(),
            ..(*metric).clone()
        });
        let typed = vec![Attribute {
            key: "http.route".into(),
            value: AttributeValue::Bytes(b"/a".to_vec()),
        }];
        let others = [
            session.series(&other_service, &scope, &metric, route("/a")),
            session.series(&resource, &scope, &other_name, route("/a")),
            // Same id (descriptions are not identity) but kept apart: the table keeps what
            // was sent.
            session.series(&resource, &scope, &described, route("/a")),
            session.series(&resource, &scope, &metric, typed),
        ];
        for other in &others {
            assert!(!Arc::ptr_eq(other, &base));
        }
        assert_eq!(others[2].id(), base.id());
        assert_eq!(others[2].metric.description, "Requests served");
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn series_unseen_for_two_generations_leave_the_table() {
        let table = SeriesTable::new(2, Duration::from_secs(3600));
        let (resource, scope, metric) = parts("cart", "requests");
        let mut session = table.session();
        let kept = session.series(&resource, &scope, &metric, route("/kept"));
        let _dropped = session.series(&resource, &scope, &metric, route("/dropped"));
        // The current generation is full: the next new series starts a new one.
        session.series(&resource, &scope, &metric, route("/c"));
        // Found in the previous generation: moved to the current one.
        let again = session.series(&resource, &scope, &metric, route("/kept"));
        assert!(Arc::ptr_eq(&kept, &again));
        // Full again: "/dropped", in the previous generation, is dropped.
        session.series(&resource, &scope, &metric, route("/e"));
        assert_eq!(table.len(), 3);
        let rebuilt = session.series(&resource, &scope, &metric, route("/dropped"));
        assert_eq!(rebuilt.attributes, route("/dropped"));
        assert_eq!(table.len(), 4);
    }

    /// Looks `encoded` up, counting decodes; the attributes are the route the pieces spell.
    fn by_encoding(
        session: &mut SeriesSession<'_>,
        (resource, scope, metric): &(
            Arc<Resource>,
            Arc<InstrumentationScope>,
            Arc<MetricDescriptor>,
        ),
        encoded: &[&str],
        decodes: &mut usize,
    ) -> Arc<MetricSeries> {
        session
            .series_by_encoding(resource, scope, metric, encoded, || {
                *decodes += 1;
                Ok::<_, ()>(route(&encoded.concat()))
            })
            .unwrap()
    }

    #[test]
    fn an_encoding_seen_before_finds_its_series_without_decoding() {
        let table = SeriesTable::default();
        let mut decodes = 0;
        let first = by_encoding(
            &mut table.session(),
            &parts("cart", "requests"),
            &["/a", "b"],
            &mut decodes,
        );
        // A later export, in new allocations: found by its bytes.
        let again = by_encoding(
            &mut table.session(),
            &parts("cart", "requests"),
            &["/a", "b"],
            &mut decodes,
        );
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(decodes, 1);
        // Another encoding of the same attributes is decoded, and finds the same series.
        let mut session = table.session();
        let group = parts("cart", "requests");
        let split_elsewhere = by_encoding(&mut session, &group, &["/", "ab"], &mut decodes);
        assert!(Arc::ptr_eq(&first, &split_elsewhere));
        assert_eq!(decodes, 2);
        // The same bytes in another group are another series.
        let other_group = by_encoding(
            &mut session,
            &parts("shop", "requests"),
            &["/a", "b"],
            &mut decodes,
        );
        assert!(!Arc::ptr_eq(&first, &other_group));
        assert_eq!(other_group.resource.service_name(), "shop");
        assert_eq!(table.len(), 2);
        // Both encodings are known now, and content lookups still find the series.
        by_encoding(&mut session, &group, &["/", "ab"], &mut decodes);
        assert_eq!(decodes, 3);
        let (resource, scope, metric) = &group;
        let by_content = session.series(resource, scope, metric, route("/ab"));
        assert!(Arc::ptr_eq(&first, &by_content));
    }

    #[test]
    fn a_failed_decode_is_returned_and_remembers_nothing() {
        let table = SeriesTable::default();
        let (resource, scope, metric) = parts("cart", "requests");
        let mut session = table.session();
        let failed =
            session.series_by_encoding(&resource, &scope, &metric, &[b"\xff"], || Err("bad"));
        assert_eq!(failed.err(), Some("bad"));
        assert!(table.is_empty());
        let retried = session.series_by_encoding(&resource, &scope, &metric, &[b"\xff"], || {
            Ok::<_, ()>(route("/a"))
        });
        assert_eq!(retried.unwrap().attributes, route("/a"));
    }

    #[test]
    fn encodings_age_with_their_series() {
        let table = SeriesTable::new(2, Duration::from_secs(3600));
        let group = parts("cart", "requests");
        let mut session = table.session();
        let mut decodes = 0;
        let kept = by_encoding(&mut session, &group, &["/kept"], &mut decodes);
        // The content table is full: remembering this encoding starts a new generation,
        // into which the series' content entry comes along.
        let dropped = by_encoding(&mut session, &group, &["/dropped"], &mut decodes);
        // Found by its encoding in the previous generation: both its entries move.
        let again = by_encoding(&mut session, &group, &["/kept"], &mut decodes);
        assert!(Arc::ptr_eq(&kept, &again));
        assert_eq!(decodes, 2);
        by_encoding(&mut session, &group, &["/c"], &mut decodes);
        let again = by_encoding(&mut session, &group, &["/kept"], &mut decodes);
        assert!(Arc::ptr_eq(&kept, &again));
        assert_eq!(decodes, 3);
        // Another generation: "/dropped", unseen for two, leaves by encoding and content.
        by_encoding(&mut session, &group, &["/e"], &mut decodes);
        assert_eq!(table.len(), 3);
        let (resource, scope, metric) = &group;
        let by_content = session.series(resource, scope, metric, route("/kept"));
        assert!(Arc::ptr_eq(&kept, &by_content));
        let rebuilt = by_encoding(&mut session, &group, &["/dropped"], &mut decodes);
        assert!(!Arc::ptr_eq(&dropped, &rebuilt));
        assert_eq!(decodes, 5);
    }

    #[test]
    fn encodings_past_the_byte_cap_are_looked_up_by_content() {
        let table = SeriesTable {
            max_encoded_bytes: 16,
            ..SeriesTable::default()
        };
        let group = parts("cart", "requests");
        let mut session = table.session();
        let mut decodes = 0;
        // 4 + 8 bytes: remembered.
        let short = by_encoding(&mut session, &group, &["/shorter"], &mut decodes);
        assert!(Arc::ptr_eq(
            &short,
            &by_encoding(&mut session, &group, &["/shorter"], &mut decodes)
        ));
        assert_eq!(decodes, 1);
        // Past the cap: decoded every time, and still one series.
        let long = by_encoding(&mut session, &group, &["/longer"], &mut decodes);
        let again = by_encoding(&mut session, &group, &["/longer"], &mut decodes);
        assert!(Arc::ptr_eq(&long, &again));
        assert_eq!(decodes, 3);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn encoding_keys_keep_piece_boundaries() {
        let key = encoding_key(&["ab", "c"]);
        assert!(encoding_matches(&key, &["ab", "c"]));
        assert!(!encoding_matches(&key, &["a", "bc"]));
        assert!(!encoding_matches(&key, &["abc"]));
        assert!(!encoding_matches(&key, &["ab"]));
        assert!(!encoding_matches(&key, &["ab", "c", ""]));
        assert!(encoding_matches(&encoding_key::<&str>(&[]), &[] as &[&str]));
    }

    #[test]
    fn a_table_for_a_budget_keeps_a_fraction_of_it() {
        let (resource, scope, metric) = parts("cart", "requests");
        // 8 KiB of budget: two series per generation, at most four in the table.
        let table = SeriesTable::for_budget(8 << 10);
        for path in ["/a", "/b", "/c", "/d", "/e"] {
            table
                .session()
                .series(&resource, &scope, &metric, route(path));
        }
        assert_eq!(table.len(), 3);
        assert_eq!(
            SeriesTable::for_budget(512 << 20).generation_capacity,
            DEFAULT_GENERATION_CAPACITY
        );
    }

    #[test]
    fn old_generations_expire_by_age() {
        let table = SeriesTable::new(1 << 10, Duration::ZERO);
        let (resource, scope, metric) = parts("cart", "requests");
        for path in ["/a", "/b", "/c"] {
            table
                .session()
                .series(&resource, &scope, &metric, route(path));
        }
        // Every lookup starts a new generation: only the last two series remain.
        assert_eq!(table.len(), 2);
    }
}
