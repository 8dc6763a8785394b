//! Durable object access: the `object_store` that holds data files and manifests, plus what a
//! local directory needs for a write to survive a power loss (fsync of the file and of every
//! directory up to the root), which `object_store`'s local backend does not do.
//!
//! Every write of skewer's immutable objects goes through here, so "written" always means
//! "durable". Remote stores (S3 and compatible) are durable once `put` returns.
//! This module knows paths and bytes only, never what a file holds.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::StorageError;

/// The object store of one data directory (or bucket), with durable writes.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The directory behind the store when it is a local file system.
    local_root: Option<PathBuf>,
}

/// Temporary files of durable local writes end with this; listings ignore them and a start
/// removes leftovers of a crash.
pub const TEMP_SUFFIX: &str = ".tmp";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Objects {
    /// A store rooted at a local directory (created if missing).
    pub fn local(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|err| StorageError::io(root, err))?;
        let store =
            LocalFileSystem::new_with_prefix(root).map_err(|source| StorageError::ObjectStore {
                path: root.display().to_string(),
                source,
            })?;
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(root.to_path_buf()),
        })
    }

    /// A remote store, durable once `put` returns.
    pub fn remote(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            local_root: None,
        }
    }

    /// The underlying store, for readers (Parquet) that take one.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The local file behind `path`, when the store is a local directory.
    pub fn local_path(&self, path: &ObjectPath) -> Option<PathBuf> {
        self.local_root
            .as_ref()
            .map(|root| root.join(path.as_ref()))
    }

    /// The local root directory, if any.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Writes `bytes` at `path` durably, replacing what was there.
    pub async fn put(&self, path: &ObjectPath, bytes: Bytes) -> Result<(), StorageError> {
        self.write(path, bytes, false).await.map(|_| ())
    }

    /// Writes `bytes` at `path` durably only if nothing is there yet; `Ok(false)` when the
    /// path exists (another writer got there first).
    pub async fn put_if_absent(
        &self,
        path: &ObjectPath,
        bytes: Bytes,
    ) -> Result<bool, StorageError> {
        self.write(path, bytes, true).await
    }

    async fn write(
        &self,
        path: &ObjectPath,
        bytes: Bytes,
        create_only: bool,
    ) -> Result<bool, StorageError> {
        let Some(root) = self.local_root.clone() else {
            let mode = if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            return match self
                .store
                .put_opts(path, PutPayload::from_bytes(bytes), options)
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(source) => Err(object_error(path, source)),
            };
        };
        let target = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || write_local(&root, &target, &bytes, create_only))
            .await?
    }

    /// Makes a file written by another writer (a streaming Parquet upload) durable.
    pub async fn sync(&self, path: &ObjectPath) -> Result<(), StorageError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || sync_up_to_root(&root, &file)).await?
    }

    /// The whole object.
    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes, StorageError> {
        let result = self
            .store
            .get(path)
            .await
            .map_err(|source| object_error(path, source))?;
        result
            .bytes()
            .await
            .map_err(|source| object_error(path, source))
    }

    /// A byte range of an object.
    pub async fn get_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|source| object_error(path, source))
    }

    /// The last `len` bytes of an object (all of it when shorter), and whether that is all
    /// of it.
    pub async fn get_suffix(
        &self,
        path: &ObjectPath,
        len: u64,
    ) -> Result<(Bytes, bool), StorageError> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Suffix(len)),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(path, options)
            .await
            .map_err(|source| object_error(path, source))?;
        let whole = result.range.start == 0;
        let bytes = result
            .bytes()
            .await
            .map_err(|source| object_error(path, source))?;
        Ok((bytes, whole))
    }

    /// Several byte ranges of one object, in the order asked (one open of a local file).
    pub async fn get_ranges(
        &self,
        path: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, StorageError> {
        self.store
            .get_ranges(path, ranges)
            .await
            .map_err(|source| object_error(path, source))
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, path: &ObjectPath) -> Result<(), StorageError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(object_error(path, source)),
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectMeta>, StorageError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|source| object_error(prefix, source))
    }

    /// The tenants that have objects (`tenants/{tenant}/...`), in no particular order.
    pub async fn tenants(&self) -> Result<Vec<crate::model::TenantId>, StorageError> {
        Ok(self
            .list_children(&crate::layout::tenants_prefix())
            .await?
            .iter()
            .filter_map(|prefix| prefix.filename()?.parse().ok())
            .collect())
    }

    /// The immediate child "directories" of `prefix`.
    pub async fn list_children(
        &self,
        prefix: &ObjectPath,
    ) -> Result<Vec<ObjectPath>, StorageError> {
        match self.store.list_with_delimiter(Some(prefix)).await {
            Ok(listing) => Ok(listing.common_prefixes),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(source) => Err(object_error(prefix, source)),
        }
    }
}

/// Wraps an object store error with its path.
pub fn object_error(path: &ObjectPath, source: object_store::Error) -> StorageError {
    StorageError::ObjectStore {
        path: path.to_string(),
        source,
    }
}

/// Temp file, fsync, then rename (or hard link for create-only), then fsync the directories.
fn write_local(
    root: &Path,
    target: &Path,
    bytes: &[u8],
    create_only: bool,
) -> Result<bool, StorageError> {
    let dir = target.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(|err| StorageError::io(dir, err))?;
    let file_name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let temp = dir.join(format!(
        ".{file_name}.{}-{}{TEMP_SUFFIX}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::File::create(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(StorageError::io(&temp, err));
    }
    let placed = if create_only {
        let linked = std::fs::hard_link(&temp, target);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(err) => Err(err),
        }
    } else {
        std::fs::rename(&temp, target).map(|()| true)
    };
    let created = placed.map_err(|err| {
        let _ = std::fs::remove_file(&temp);
        StorageError::io(target, err)
    })?;
    sync_up_to_root(root, target)?;
    Ok(created)
}

/// fsyncs `file` and every directory from its parent up to `root`, so the file and its
/// directory entries survive a power loss.
pub fn sync_up_to_root(root: &Path, file: &Path) -> Result<(), StorageError> {
    sync_path(file)?;
    let mut dir = file.parent();
    while let Some(current) = dir {
        sync_path(current)?;
        if current == root || !current.starts_with(root) {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

/// fsyncs a file or directory by path.
pub fn sync_path(path: &Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|err| StorageError::io(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_writes_are_atomic_and_create_only_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path()).unwrap();
        let path = ObjectPath::from("a/b/c.json");
        assert!(
            objects
                .put_if_absent(&path, Bytes::from_static(b"one"))
                .await
                .unwrap()
        );
        assert!(
            !objects
                .put_if_absent(&path, Bytes::from_static(b"two"))
                .await
                .unwrap()
        );
        assert_eq!(
            objects.get(&path).await.unwrap(),
            Bytes::from_static(b"one")
        );
        objects
            .put(&path, Bytes::from_static(b"three"))
            .await
            .unwrap();
        assert_eq!(
            objects.get_range(&path, 1..3).await.unwrap(),
            Bytes::from_static(b"hr")
        );
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["c.json"], "no temp file left behind");
        assert_eq!(
            objects.list_children(&ObjectPath::from("a")).await.unwrap(),
            [ObjectPath::from("a/b")]
        );
        objects.delete(&path).await.unwrap();
        objects.delete(&path).await.unwrap();
        assert!(
            objects
                .list(&ObjectPath::from("a"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
