//! One process owns a data directory at a time: `serve`, and repairs or restores into it,
//! take an exclusive lock on `{data_dir}/.lock` (released when the process ends, even by
//! kill -9). Backups and read-only checks run beside a server and take no lock.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::StorageError;

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `data_dir` (created if missing), or says which directory is in use.
    pub fn acquire(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|err| StorageError::io(data_dir, err))?;
        let path = data_dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| StorageError::io(&path, err))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(TryLockError::WouldBlock) => {
                Err(StorageError::DataDirInUse(data_dir.to_path_buf()))
            }
            Err(TryLockError::Error(err)) => Err(StorageError::io(&path, err)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_locked_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(second.to_string().contains("in use"), "{second}");
        drop(held);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
