//! Uploading this node's log partitions: after each commit, the segment files of each day
//! partition the bucket does not have yet, then its manifest. A partition whose files changed
//! under the upload (a merge finished and removed segments) is uploaded again next round.
//! Files a new manifest no longer names are deleted after a grace, so a node still
//! downloading the previous manifest finds them; a partition this node no longer holds
//! (retention dropped it) has its replica removed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tokio::io::AsyncReadExt;
use tracing::{debug, info};

use super::{MANIFEST_FORMAT, ReplicaFile, ReplicaKey, ReplicaManifest};
use super::{file_path, files_prefix, manifest_path};
use crate::StorageError;
use crate::log_store::LogStore;
use crate::log_store::partitions::{Partition, PartitionId, PartitionKey};
use crate::logs::streams::CATALOG_FILE;
use crate::object_copy::{PART_BYTES, write_in_parts};
use crate::objects::{Objects, object_error};

/// What one upload round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadRound {
    /// Manifests written.
    pub replicas: usize,
    /// Files uploaded.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Uploads this node's log partitions to the bucket.
pub struct LogUploader {
    objects: Objects,
    node: String,
    grace: Duration,
    /// What is in the bucket of each partition uploaded since start. One round at a time.
    uploaded: tokio::sync::Mutex<HashMap<PartitionKey, Uploaded>>,
}

#[derive(Default)]
struct Uploaded {
    /// The manifest in the bucket.
    manifest: Option<ReplicaManifest>,
    /// Files in the bucket that the manifest does not name: size, and since when.
    retired: HashMap<String, (u64, Instant)>,
}

/// A partition's last commit on local disk.
struct LocalCommit {
    manifest: ReplicaManifest,
    dir: PathBuf,
}

impl LogUploader {
    /// An uploader writing as `node`; files leave the bucket `grace` after their last
    /// manifest stopped naming them.
    pub fn new(objects: Objects, node: impl Into<String>, grace: Duration) -> Self {
        Self {
            objects,
            node: node.into(),
            grace,
            uploaded: tokio::sync::Mutex::default(),
        }
    }

    fn replica_key(&self, key: &PartitionKey) -> Option<ReplicaKey> {
        match key.1 {
            PartitionId::Day(day) => Some(ReplicaKey {
                tenant: key.0.clone(),
                day,
                node: self.node.clone(),
            }),
            PartitionId::Legacy => None,
        }
    }

    /// Uploads what changed in `store`'s partitions since the last round, removes the
    /// replicas of partitions it no longer holds and deletes retired files past the grace.
    pub async fn upload(&self, store: &LogStore) -> Result<UploadRound, StorageError> {
        let partitions = store.local_partitions();
        let mut uploaded = self.uploaded.lock().await;
        let held: HashSet<&PartitionKey> = partitions.iter().map(|p| &p.key).collect();
        let gone: Vec<PartitionKey> = uploaded
            .keys()
            .filter(|key| !held.contains(key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(replica) = self.replica_key(&key) {
                remove_replica(&self.objects, &replica).await?;
                info!(tenant = %key.0, day = %key.1.dir_name(), "removed the bucket's copy of a dropped log partition");
            }
            uploaded.remove(&key);
        }
        let mut round = UploadRound::default();
        for partition in partitions {
            let Some(replica) = self.replica_key(&partition.key) else {
                continue;
            };
            let state = uploaded.entry(partition.key.clone()).or_default();
            if state.manifest.is_none() {
                self.adopt_bucket_state(&replica, state).await?;
            }
            let reading = Arc::clone(&partition);
            let commit = tokio::task::spawn_blocking(move || read_local_commit(&reading)).await??;
            // An index created but not yet committed to holds nothing to read: a partition's
            // writer is fed before its first commit.
            if commit.manifest.files.is_empty() {
                continue;
            }
            if state
                .manifest
                .as_ref()
                .is_some_and(|manifest| same_commit(manifest, &commit.manifest))
            {
                continue;
            }
            match self.upload_commit(&replica, state, &commit).await? {
                Some((files, bytes)) => {
                    round.replicas += 1;
                    round.files += files;
                    round.bytes += bytes;
                }
                None => {
                    debug!(tenant = %replica.tenant, day = replica.day, "log partition changed during its upload; next round")
                }
            }
        }
        self.delete_retired(&mut uploaded).await?;
        Ok(round)
    }

    /// After a start: the manifest an earlier run left, and the files it does not name (an
    /// upload cut short) as retired.
    async fn adopt_bucket_state(
        &self,
        replica: &ReplicaKey,
        state: &mut Uploaded,
    ) -> Result<(), StorageError> {
        let manifest = read_manifest(&self.objects, replica).await?;
        let named: HashSet<&str> = manifest
            .iter()
            .flat_map(|manifest| manifest.files.iter().map(|file| file.name.as_str()))
            .collect();
        for object in self.objects.list(&files_prefix(replica)).await? {
            if let Some(name) = object.location.filename()
                && !named.contains(name)
            {
                state
                    .retired
                    .insert(name.to_owned(), (object.size, Instant::now()));
            }
        }
        state.manifest = Some(manifest.unwrap_or_else(|| ReplicaManifest {
            format: MANIFEST_FORMAT,
            meta: String::new(),
            streams: None,
            files: Vec::new(),
        }));
        Ok(())
    }

    /// Uploads the files of `commit` the bucket lacks, then its manifest; (files, bytes)
    /// uploaded, or `None` when a file vanished (the index moved on: retried next round).
    async fn upload_commit(
        &self,
        replica: &ReplicaKey,
        state: &mut Uploaded,
        commit: &LocalCommit,
    ) -> Result<Option<(usize, u64)>, StorageError> {
        let mut present: HashMap<&str, u64> = state
            .manifest
            .iter()
            .flat_map(|manifest| manifest.files.iter())
            .map(|file| (file.name.as_str(), file.bytes))
            .collect();
        let mut uploaded = (0, 0);
        for file in &commit.manifest.files {
            if present.get(file.name.as_str()) == Some(&file.bytes) {
                continue;
            }
            if state.retired.get(&file.name).map(|(bytes, _)| *bytes) == Some(file.bytes) {
                state.retired.remove(&file.name);
                present.insert(&file.name, file.bytes);
                continue;
            }
            let local = commit.dir.join(&file.name);
            let path = file_path(replica, &file.name);
            if !upload_file(&self.objects, &path, &local).await? {
                return Ok(None);
            }
            uploaded.0 += 1;
            uploaded.1 += file.bytes;
        }
        let body = serde_json::to_vec(&commit.manifest)
            .map_err(|err| StorageError::io(&commit.dir, err.into()))?;
        self.objects
            .put(&manifest_path(replica), Bytes::from(body))
            .await?;
        let kept: HashSet<&str> = commit
            .manifest
            .files
            .iter()
            .map(|file| file.name.as_str())
            .collect();
        if let Some(previous) = &state.manifest {
            for file in &previous.files {
                if !kept.contains(file.name.as_str()) {
                    state
                        .retired
                        .insert(file.name.clone(), (file.bytes, Instant::now()));
                }
            }
        }
        state.manifest = Some(commit.manifest.clone());
        Ok(Some(uploaded))
    }

    async fn delete_retired(
        &self,
        uploaded: &mut HashMap<PartitionKey, Uploaded>,
    ) -> Result<(), StorageError> {
        for (key, state) in uploaded.iter_mut() {
            let Some(replica) = self.replica_key(key) else {
                continue;
            };
            let due: Vec<String> = state
                .retired
                .iter()
                .filter(|(_, (_, since))| since.elapsed() >= self.grace)
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                self.objects.delete(&file_path(&replica, &name)).await?;
                state.retired.remove(&name);
            }
        }
        Ok(())
    }
}

/// Whether two manifests are of the same commit and stream catalog.
fn same_commit(a: &ReplicaManifest, b: &ReplicaManifest) -> bool {
    a.meta == b.meta && a.streams == b.streams && a.files == b.files
}

/// The manifest of `replica` in the bucket, if any.
pub(super) async fn read_manifest(
    objects: &Objects,
    replica: &ReplicaKey,
) -> Result<Option<ReplicaManifest>, StorageError> {
    let path = manifest_path(replica);
    match objects.store().get(&path).await {
        Ok(result) => {
            let body = result
                .bytes()
                .await
                .map_err(|source| object_error(&path, source))?;
            parse_manifest(&path, &body).map(Some)
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(object_error(&path, source)),
    }
}

/// A manifest's body, or an error naming it.
pub(crate) fn parse_manifest(
    path: &ObjectPath,
    body: &[u8],
) -> Result<ReplicaManifest, StorageError> {
    let manifest: ReplicaManifest = serde_json::from_slice(body).map_err(|err| {
        StorageError::io(
            path.as_ref(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, err),
        )
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(StorageError::io(
            path.as_ref(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "log replica manifest format {} (this binary reads {MANIFEST_FORMAT})",
                    manifest.format
                ),
            ),
        ));
    }
    Ok(manifest)
}

/// Deletes a replica: its manifest first (no reader finds it after), then its files.
pub(super) async fn remove_replica(
    objects: &Objects,
    replica: &ReplicaKey,
) -> Result<(), StorageError> {
    objects.delete(&manifest_path(replica)).await?;
    for object in objects.list(&files_prefix(replica)).await? {
        objects.delete(&object.location).await?;
    }
    Ok(())
}

/// The partition's last commit: its files as they are on disk (components a segment lacks
/// left out) and its stream catalog. Blocking.
fn read_local_commit(partition: &Partition) -> Result<LocalCommit, StorageError> {
    let (meta, names) = partition
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .committed_files()?;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = partition.dir.join(&name);
        match std::fs::metadata(&path) {
            Ok(metadata) => files.push(ReplicaFile {
                name,
                bytes: metadata.len(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(StorageError::io(&path, err)),
        }
    }
    let streams_path = partition.dir.join(CATALOG_FILE);
    let streams = match std::fs::read_to_string(&streams_path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(StorageError::io(&streams_path, err)),
    };
    Ok(LocalCommit {
        manifest: ReplicaManifest {
            format: MANIFEST_FORMAT,
            meta,
            streams,
            files,
        },
        dir: partition.dir.clone(),
    })
}

/// Uploads one local file; `false` when it no longer exists.
async fn upload_file(
    objects: &Objects,
    path: &ObjectPath,
    local: &Path,
) -> Result<bool, StorageError> {
    let mut file = match tokio::fs::File::open(local).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(StorageError::io(local, err)),
    };
    let size = file
        .metadata()
        .await
        .map_err(|err| StorageError::io(local, err))?
        .len();
    if size <= PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)
            .await
            .map_err(|err| StorageError::io(local, err))?;
        objects.put(path, Bytes::from(bytes)).await?;
        return Ok(true);
    }
    // Larger files stream in parts, read as they go.
    let chunks = futures::stream::try_unfold(file, move |mut file| async move {
        let mut chunk = vec![0u8; PART_BYTES];
        let read = file
            .read(&mut chunk)
            .await
            .map_err(|err| StorageError::io(local, err))?;
        chunk.truncate(read);
        Ok((read > 0).then(|| (Bytes::from(chunk), file)))
    });
    write_in_parts(objects, path, chunks).await?;
    Ok(true)
}
