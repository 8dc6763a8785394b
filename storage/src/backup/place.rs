//! Where a deployment backup lives: a local directory, or a bucket (`s3://bucket/prefix`,
//! reached with the deployment's own endpoint, region and credentials). Either way the
//! backup's objects sit at the place's root under the keys they have in the deployment, beside
//! two documents: the catalog database's content and, written last, the marker.

use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BackupError, ensure_empty};
use crate::StorageError;
use crate::objects::{Objects, sync_path};
use crate::remote::S3Config;

/// A backup's place.
#[derive(Clone)]
pub enum BackupPlace {
    /// A local directory.
    Directory(PathBuf),
    /// A bucket and prefix.
    Bucket(S3Config),
}

impl BackupPlace {
    /// `text` as given on the command line: `s3://…` is a bucket reached like `deployment`'s
    /// (its endpoint, region, path style and credentials; AWS's defaults without one),
    /// anything else a directory.
    pub fn parse(text: &str, deployment: Option<&S3Config>) -> Self {
        if text.starts_with("s3://") {
            let like = deployment.cloned().unwrap_or_else(|| S3Config::new(text));
            Self::Bucket(S3Config {
                url: text.to_owned(),
                ..like
            })
        } else {
            Self::Directory(PathBuf::from(text))
        }
    }

    /// The place as an operator names it.
    pub fn describe(&self) -> String {
        match self {
            Self::Directory(dir) => dir.display().to_string(),
            Self::Bucket(bucket) => bucket.url.clone(),
        }
    }

    /// Its objects; a directory is created when missing, a bucket probed.
    pub async fn open(&self) -> Result<Objects, StorageError> {
        match self {
            Self::Directory(dir) => Objects::local(dir),
            Self::Bucket(bucket) => {
                let objects = bucket.objects()?;
                crate::remote::probe(bucket, &objects).await?;
                Ok(objects)
            }
        }
    }

    /// Refuses a place that holds anything (a backup goes to a new one).
    pub async fn ensure_empty(&self, objects: &Objects) -> Result<(), BackupError> {
        match self {
            Self::Directory(dir) => ensure_empty(dir),
            Self::Bucket(bucket) => {
                if objects.list(&ObjectPath::from("")).await?.is_empty() {
                    Ok(())
                } else {
                    Err(BackupError::TargetNotEmpty(PathBuf::from(&bucket.url)))
                }
            }
        }
    }

    /// Writes `value` as the JSON document `name`, durably; in a directory readable by its
    /// owner only from the start when `owner_only` (key hashes).
    pub async fn put_document(
        &self,
        objects: &Objects,
        name: &str,
        value: &impl Serialize,
        owner_only: bool,
    ) -> Result<(), StorageError> {
        let path = ObjectPath::from(name);
        let text = serde_json::to_vec_pretty(value)
            .map_err(|err| StorageError::io(name, std::io::Error::other(err)))?;
        match self {
            Self::Directory(dir) => write_file(&dir.join(name), &text, owner_only),
            Self::Bucket(_) => objects.put(&path, text.into()).await,
        }
    }

    /// The JSON document `name`, `None` when the place has none.
    pub async fn get_document<T: DeserializeOwned>(
        &self,
        objects: &Objects,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        let path = ObjectPath::from(name);
        let body = match objects.get(&path).await {
            Ok(body) => body,
            Err(StorageError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(None),
            Err(err) => return Err(err),
        };
        serde_json::from_slice(&body).map(Some).map_err(|err| {
            StorageError::io(
                name,
                std::io::Error::new(std::io::ErrorKind::InvalidData, err),
            )
        })
    }
}

/// Writes `bytes` at `path` and syncs it (and its directory); mode 0600 from creation when
/// `owner_only`.
fn write_file(path: &Path, bytes: &[u8], owner_only: bool) -> Result<(), StorageError> {
    use std::io::Write;
    let io = |err| StorageError::io(path, err);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if owner_only {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    sync_path(path)
}
