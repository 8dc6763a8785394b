//! Other nodes' log partitions, read through a bounded local cache.
//!
//! The replica manifests are listed every catalog refresh. A read names its tenant and time
//! range: each listed replica of that tenant whose day overlaps it is downloaded into
//! `{data_dir}/log-cache/{tenant}/{day}/{node}/` (only the files the cache lacks: segment
//! files never change) and opened read-only; the read holds the partitions it was given, so
//! they stay while it runs. Past the cache's size the least recently read replicas nobody
//! holds are evicted. A manifest replaced while its files were downloading (a merge
//! removed some) is read again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use super::upload::parse_manifest;
use super::{ReplicaKey, ReplicaManifest, file_path, manifest_path, manifests_prefix};
use crate::StorageError;
use crate::layout::DAY_NANOS;
use crate::log_store::partitions::{Partition, PartitionId};
use crate::logs::LogIndexConfig;
use crate::logs::streams::CATALOG_FILE;
use crate::model::TenantId;
use crate::objects::{Objects, object_error};

/// tantivy's file naming the index's segments.
const META_FILE: &str = "meta.json";
/// Times a replica is read again when its manifest changed during the download.
const SYNC_ATTEMPTS: usize = 3;

/// Counters of the cache, for self-metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Files downloaded since start.
    pub downloaded_files: AtomicU64,
    /// Their bytes.
    pub downloaded_bytes: AtomicU64,
    /// Replicas evicted since start.
    pub evictions: AtomicU64,
}

/// Other nodes' replicas: what the bucket lists and what is cached.
pub struct ReplicaCache {
    objects: Objects,
    own_node: Option<String>,
    dir: PathBuf,
    capacity_bytes: u64,
    index_config: LogIndexConfig,
    /// The replicas of the last listing, with their manifests' versions.
    listed: Mutex<BTreeMap<ReplicaKey, String>>,
    cached: Mutex<HashMap<ReplicaKey, Cached>>,
    /// Held while a replica's directory is written or evicted.
    syncing: Mutex<HashMap<ReplicaKey, Arc<tokio::sync::Mutex<()>>>>,
    stats: CacheStats,
}

struct Cached {
    version: String,
    partition: Arc<Partition>,
    bytes: u64,
    last_read: Instant,
}

impl ReplicaCache {
    /// A cache of at most `capacity_bytes` (a replica bigger than that is still read, alone)
    /// in `dir`, emptied now; replicas of `own_node` are left out (this node reads its own
    /// partitions).
    pub fn new(
        objects: Objects,
        own_node: Option<String>,
        dir: PathBuf,
        capacity_bytes: u64,
        index_config: LogIndexConfig,
    ) -> Result<Self, StorageError> {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(StorageError::io(&dir, err)),
        }
        std::fs::create_dir_all(&dir).map_err(|err| StorageError::io(&dir, err))?;
        Ok(Self {
            objects,
            own_node,
            dir,
            capacity_bytes,
            index_config,
            listed: Mutex::default(),
            cached: Mutex::default(),
            syncing: Mutex::default(),
            stats: CacheStats::default(),
        })
    }

    fn listed(&self) -> MutexGuard<'_, BTreeMap<ReplicaKey, String>> {
        self.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self) -> MutexGuard<'_, HashMap<ReplicaKey, Cached>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sync_lock(&self, key: &ReplicaKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut syncing = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(syncing.entry(key.clone()).or_default())
    }

    /// Counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Bytes of the cached replicas.
    pub fn cached_bytes(&self) -> u64 {
        self.cached().values().map(|cached| cached.bytes).sum()
    }

    /// Lists the replicas in the bucket; cached ones that left it are dropped once no read
    /// holds them. Returns how many are listed.
    pub async fn refresh(&self) -> Result<usize, StorageError> {
        let listing = self.objects.list(&manifests_prefix()).await?;
        let listed: BTreeMap<ReplicaKey, String> = listing
            .into_iter()
            .filter_map(|object| {
                let key = super::parse_manifest_path(&object.location)?;
                let version = object.e_tag.clone().unwrap_or_else(|| {
                    let at = object.last_modified.timestamp_nanos_opt().unwrap_or(0);
                    format!("{at}-{}", object.size)
                });
                Some((key, version))
            })
            .filter(|(key, _)| Some(&key.node) != self.own_node.as_ref())
            .collect();
        let count = listed.len();
        let gone: Vec<ReplicaKey> = self
            .cached()
            .keys()
            .filter(|key| !listed.contains_key(key))
            .cloned()
            .collect();
        *self.listed() = listed;
        for key in gone {
            self.evict_one(&key);
        }
        Ok(count)
    }

    /// The tenants of the listed replicas (other nodes' logs), sorted.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> =
            self.listed().keys().map(|key| key.tenant.clone()).collect();
        tenants.dedup();
        tenants
    }

    /// Removes from the bucket the listed replicas (other nodes') whose day has expired under
    /// `policy`; returns how many. A node removes its own with its partitions.
    pub async fn remove_expired(
        &self,
        policy: &crate::retention::RetentionPolicy,
        now_unix_nano: u64,
    ) -> Result<usize, StorageError> {
        let expired: Vec<ReplicaKey> = self
            .listed()
            .keys()
            .filter(|key| {
                policy
                    .cutoff_unix_nano(&key.tenant, crate::model::Signal::Logs, now_unix_nano)
                    .is_some_and(|cutoff| {
                        crate::retention::partition_expired(
                            (key.day + 1).saturating_mul(DAY_NANOS),
                            cutoff,
                        )
                    })
            })
            .cloned()
            .collect();
        for key in &expired {
            super::upload::remove_replica(&self.objects, key).await?;
            self.listed().remove(key);
            self.evict_one(key);
            info!(tenant = %key.tenant, day = %crate::layout::day_name(key.day), node = %key.node, "retention removed a log replica from the bucket");
        }
        Ok(expired.len())
    }

    /// The cached partitions of `tenant` (a read made ready by [`Self::prepare`] finds its
    /// own among them).
    pub fn opened(&self, tenant: &TenantId) -> Vec<Arc<Partition>> {
        self.cached()
            .iter()
            .filter(|(key, _)| &key.tenant == tenant)
            .map(|(_, cached)| Arc::clone(&cached.partition))
            .collect()
    }

    /// Makes every listed replica of `tenant` that may hold records in `[start, end)` ready
    /// to read, downloading what the cache lacks; the caller holds the partitions returned
    /// for as long as it reads (they are not evicted meanwhile).
    pub async fn prepare(
        &self,
        tenant: &TenantId,
        (start, end): (u64, u64),
    ) -> Result<Vec<Arc<Partition>>, StorageError> {
        let wanted: Vec<(ReplicaKey, String)> = self
            .listed()
            .iter()
            .filter(|(key, _)| &key.tenant == tenant)
            .filter(|(key, _)| {
                key.day.saturating_mul(DAY_NANOS) < end
                    && (key.day + 1).saturating_mul(DAY_NANOS) > start
            })
            .map(|(key, version)| (key.clone(), version.clone()))
            .collect();
        let mut held = Vec::with_capacity(wanted.len());
        for (key, version) in wanted {
            if let Some(partition) = self.cached_version(&key, &version) {
                held.push(partition);
                continue;
            }
            let lock = self.sync_lock(&key);
            let _syncing = lock.lock().await;
            if let Some(partition) = self.cached_version(&key, &version) {
                held.push(partition);
                continue;
            }
            if let Some(partition) = self.sync(&key).await? {
                held.push(partition);
            }
        }
        self.evict_over_capacity();
        Ok(held)
    }

    /// The cached partition of `key` if it is of `version` (marked as read now).
    fn cached_version(&self, key: &ReplicaKey, version: &str) -> Option<Arc<Partition>> {
        let mut cached = self.cached();
        let entry = cached
            .get_mut(key)
            .filter(|entry| entry.version == version)?;
        entry.last_read = Instant::now();
        Some(Arc::clone(&entry.partition))
    }

    /// Downloads `key`'s current manifest and the files the cache lacks, and opens it; `None`
    /// when the replica is gone. The caller holds the key's sync lock.
    async fn sync(&self, key: &ReplicaKey) -> Result<Option<Arc<Partition>>, StorageError> {
        let dir = self.replica_dir(key);
        for attempt in 1..=SYNC_ATTEMPTS {
            let path = manifest_path(key);
            let result = match self.objects.store().get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(source) => return Err(object_error(&path, source)),
            };
            let version = result.meta.e_tag.clone().unwrap_or_else(|| {
                let at = result.meta.last_modified.timestamp_nanos_opt().unwrap_or(0);
                format!("{at}-{}", result.meta.size)
            });
            let body = result
                .bytes()
                .await
                .map_err(|source| object_error(&path, source))?;
            let manifest = parse_manifest(&path, &body)?;
            if !self.download_missing(key, &dir, &manifest).await? {
                debug!(tenant = %key.tenant, node = %key.node, attempt, "log replica changed during its download; reading its manifest again");
                continue;
            }
            let opened = {
                let dir = dir.clone();
                let manifest = manifest.clone();
                let partition_key = (key.tenant.clone(), PartitionId::Day(key.day));
                let config = self.index_config;
                tokio::task::spawn_blocking(move || {
                    write_index_files(&dir, &manifest)?;
                    Partition::open(partition_key, dir, &config)
                })
                .await??
            };
            let partition = Arc::new(opened);
            self.cached().insert(
                key.clone(),
                Cached {
                    version,
                    partition: Arc::clone(&partition),
                    bytes: manifest.bytes(),
                    last_read: Instant::now(),
                },
            );
            return Ok(Some(partition));
        }
        Err(StorageError::io(
            &dir,
            std::io::Error::other(format!(
                "the log replica of {} for day {} by {} changed {SYNC_ATTEMPTS} times during its download",
                key.tenant, key.day, key.node
            )),
        ))
    }

    /// Downloads the files of `manifest` the directory lacks; `false` when one is gone from
    /// the bucket (a newer manifest replaced this one).
    async fn download_missing(
        &self,
        key: &ReplicaKey,
        dir: &Path,
        manifest: &ReplicaManifest,
    ) -> Result<bool, StorageError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|err| StorageError::io(dir, err))?;
        for file in &manifest.files {
            let local = dir.join(&file.name);
            let have = tokio::fs::metadata(&local)
                .await
                .is_ok_and(|metadata| metadata.len() == file.bytes);
            if have {
                continue;
            }
            let path = file_path(key, &file.name);
            let result = match self.objects.store().get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(source) => return Err(object_error(&path, source)),
            };
            let temp = dir.join(format!("{}{}", file.name, crate::objects::TEMP_SUFFIX));
            let mut out = tokio::fs::File::create(&temp)
                .await
                .map_err(|err| StorageError::io(&temp, err))?;
            let mut stream = result.into_stream();
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|source| object_error(&path, source))?
            {
                out.write_all(&chunk)
                    .await
                    .map_err(|err| StorageError::io(&temp, err))?;
            }
            out.flush()
                .await
                .map_err(|err| StorageError::io(&temp, err))?;
            tokio::fs::rename(&temp, &local)
                .await
                .map_err(|err| StorageError::io(&local, err))?;
            self.stats.downloaded_files.fetch_add(1, Ordering::Relaxed);
            self.stats
                .downloaded_bytes
                .fetch_add(file.bytes, Ordering::Relaxed);
        }
        Ok(true)
    }

    fn replica_dir(&self, key: &ReplicaKey) -> PathBuf {
        self.dir
            .join(key.tenant.as_str())
            .join(crate::layout::day_name(key.day))
            .join(&key.node)
    }

    /// Evicts the least recently read replicas no read holds until the cache fits.
    fn evict_over_capacity(&self) {
        loop {
            let victim = {
                let cached = self.cached();
                let total: u64 = cached.values().map(|entry| entry.bytes).sum();
                if total <= self.capacity_bytes {
                    return;
                }
                cached
                    .iter()
                    .filter(|(_, entry)| Arc::strong_count(&entry.partition) == 1)
                    .min_by_key(|(_, entry)| entry.last_read)
                    .map(|(key, _)| key.clone())
            };
            let Some(key) = victim else {
                return;
            };
            if !self.evict_one(&key) {
                return;
            }
        }
    }

    /// Drops a cached replica and its files unless a read holds it or it is being written;
    /// whether it went.
    fn evict_one(&self, key: &ReplicaKey) -> bool {
        let lock = self.sync_lock(key);
        let Ok(_syncing) = lock.try_lock() else {
            return false;
        };
        let removed = {
            let mut cached = self.cached();
            match cached.get(key) {
                Some(entry) if Arc::strong_count(&entry.partition) == 1 => cached.remove(key),
                _ => None,
            }
        };
        let Some(entry) = removed else {
            return false;
        };
        let dir = self.replica_dir(key);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %err, "removing an evicted log replica failed");
        }
        self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        info!(tenant = %key.tenant, node = %key.node, bytes = entry.bytes, "evicted a log replica from the cache");
        true
    }
}

/// Writes the replica's `meta.json` and stream catalog, and removes files of earlier
/// versions it no longer names (a read still holding them keeps its open files).
fn write_index_files(dir: &Path, manifest: &ReplicaManifest) -> Result<(), StorageError> {
    let write = |name: &str, text: &str| {
        let temp = dir.join(format!("{name}{}", crate::objects::TEMP_SUFFIX));
        let path = dir.join(name);
        std::fs::write(&temp, text).map_err(|err| StorageError::io(&temp, err))?;
        std::fs::rename(&temp, &path).map_err(|err| StorageError::io(&path, err))
    };
    write(META_FILE, &manifest.meta)?;
    match &manifest.streams {
        Some(streams) => write(CATALOG_FILE, streams)?,
        None => match std::fs::remove_file(dir.join(CATALOG_FILE)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(StorageError::io(dir.join(CATALOG_FILE), err)),
        },
    }
    let named: HashSet<&str> = manifest
        .files
        .iter()
        .map(|file| file.name.as_str())
        .chain([META_FILE, CATALOG_FILE])
        .collect();
    for entry in std::fs::read_dir(dir).map_err(|err| StorageError::io(dir, err))? {
        let entry = entry.map_err(|err| StorageError::io(dir, err))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(|name| named.contains(name)) {
            let path = entry.path();
            if let Err(err) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), error = %err, "removing a stale log replica file failed");
            }
        }
    }
    Ok(())
}
