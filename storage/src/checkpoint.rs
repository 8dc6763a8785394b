//! The WAL checkpoint: per signal, the last LSN whose data is safely in files.
//!
//! Replay skips records at or below a signal's checkpoint; segments wholly below the smallest
//! checkpoint can be deleted. Written atomically (temp file, fsync, rename, fsync directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::model::Signal;
use crate::wal::Lsn;

/// Last flushed LSN per signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Spans up to this LSN are in Parquet.
    pub traces: Lsn,
    /// Logs up to this LSN are committed to the index.
    pub logs: Lsn,
    /// Metric points up to this LSN are in Parquet.
    pub metrics: Lsn,
}

impl Checkpoint {
    const FILE_NAME: &'static str = "checkpoint.json";

    /// The checkpoint of one signal.
    pub fn get(&self, signal: Signal) -> Lsn {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
    }

    /// Raises one signal's checkpoint (never lowers it).
    pub fn advance(&mut self, signal: Signal, lsn: Lsn) {
        let slot = match signal {
            Signal::Traces => &mut self.traces,
            Signal::Logs => &mut self.logs,
            Signal::Metrics => &mut self.metrics,
        };
        *slot = (*slot).max(lsn);
    }

    /// Everything at or below this LSN is flushed for every signal.
    pub fn min(&self) -> Lsn {
        self.traces.min(self.logs).min(self.metrics)
    }

    fn path(wal_dir: &Path) -> PathBuf {
        wal_dir.join(Self::FILE_NAME)
    }

    /// Reads the checkpoint; a missing file means nothing was flushed yet.
    pub fn load(wal_dir: &Path) -> Result<Self, StorageError> {
        let path = Self::path(wal_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                StorageError::io(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, err),
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(StorageError::io(path, err)),
        }
    }

    /// Writes the checkpoint atomically and durably.
    pub fn store(&self, wal_dir: &Path) -> Result<(), StorageError> {
        let path = Self::path(wal_dir);
        let temp = wal_dir.join("checkpoint.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|err| {
            StorageError::io(
                &temp,
                std::io::Error::new(std::io::ErrorKind::InvalidData, err),
            )
        })?;
        std::fs::write(&temp, bytes).map_err(|err| StorageError::io(&temp, err))?;
        sync_file(&temp)?;
        std::fs::rename(&temp, &path).map_err(|err| StorageError::io(&path, err))?;
        sync_file(wal_dir)
    }
}

/// fsyncs a file or directory by path.
pub fn sync_file(path: &Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|err| StorageError::io(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_only_advances() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Checkpoint::default());
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance(Signal::Traces, 10);
        checkpoint.advance(Signal::Traces, 5);
        checkpoint.advance(Signal::Logs, 7);
        checkpoint.store(dir.path()).unwrap();
        let loaded = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(loaded.get(Signal::Traces), 10);
        assert_eq!(loaded.min(), 0);
    }
}
