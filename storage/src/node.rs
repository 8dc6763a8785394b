//! Whose WAL a manifest's flushed position belongs to.
//!
//! A manifest records how far the WAL is flushed into its files, so a replay skips what the
//! files already hold. On a local data directory one node writes a table and the position is
//! the manifest's `flushed_lsn`. When tables live in a bucket or a shared catalog, several
//! nodes may commit to the same manifest, each with its own WAL and its own LSNs: each
//! position is then kept under the node's id (`node_flushed_lsns`), and a node only ever reads
//! and moves its own. The id is made once and kept in the data directory, beside the WAL it
//! names: a node whose data directory is lost has lost its WAL too, and rightly starts afresh.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::catalog::{FlushedPosition, Manifest};
use crate::wal::Lsn;

/// The file in the data directory that keeps the node's identity.
const NODE_FILE: &str = "node.json";

/// The WAL whose positions this node reads and moves in manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOwner {
    /// The node id; `None` for the data directory's single writer (the embedded default).
    node: Option<String>,
    /// Whether the node also owns the unnamed position: its data directory was written before
    /// it had an id (an upgraded single writer), so `flushed_lsn` is its own.
    owns_unnamed_position: bool,
}

#[derive(Serialize, Deserialize)]
struct NodeFile {
    id: String,
    #[serde(default)]
    owns_unnamed_position: bool,
}

impl WalOwner {
    /// The single writer of a local data directory: positions in `flushed_lsn`.
    pub fn data_dir() -> Self {
        Self {
            node: None,
            owns_unnamed_position: true,
        }
    }

    /// A named node (tests, and [`Self::load_or_create`]).
    pub fn node(id: impl Into<String>, owns_unnamed_position: bool) -> Self {
        Self {
            node: Some(id.into()),
            owns_unnamed_position,
        }
    }

    /// This node's identity from `data_dir`, made and kept there on its first start. A data
    /// directory that already holds a WAL was a single writer's before: that node keeps the
    /// unnamed position as well.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, StorageError> {
        let path = data_dir.join(NODE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: NodeFile = serde_json::from_slice(&bytes).map_err(|err| {
                    StorageError::io(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, err),
                    )
                })?;
                Ok(Self::node(file.id, file.owns_unnamed_position))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let file = NodeFile {
                    id: new_node_id(&path)?,
                    owns_unnamed_position: holds_wal(&crate::layout::wal_dir(data_dir)),
                };
                write_durably(data_dir, &path, &file)?;
                Ok(Self::node(file.id, file.owns_unnamed_position))
            }
            Err(err) => Err(StorageError::io(&path, err)),
        }
    }

    /// The node id, when the node has one.
    pub fn node_id(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// How far this node's WAL is flushed into the files of `manifest`.
    pub fn flushed_lsn(&self, manifest: &Manifest) -> Lsn {
        let unnamed = || {
            if self.owns_unnamed_position {
                manifest.flushed_lsn
            } else {
                0
            }
        };
        match &self.node {
            None => manifest.flushed_lsn,
            Some(id) => manifest
                .node_flushed_lsns
                .get(id)
                .copied()
                .unwrap_or_else(unnamed),
        }
    }

    /// The position a flush of this node up to `lsn` commits.
    pub fn position(&self, lsn: Lsn) -> FlushedPosition {
        FlushedPosition {
            node: self.node.clone(),
            lsn,
        }
    }
}

/// `node-` and 16 random hex digits.
fn new_node_id(path: &Path) -> Result<String, StorageError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|err| StorageError::io(path, std::io::Error::other(err.to_string())))?;
    Ok(format!("node-{}", hex::encode(bytes)))
}

fn holds_wal(wal_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir).is_ok_and(|mut entries| entries.next().is_some())
}

fn write_durably(dir: &Path, path: &Path, file: &NodeFile) -> Result<(), StorageError> {
    std::fs::create_dir_all(dir).map_err(|err| StorageError::io(dir, err))?;
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(file).map_err(|err| StorageError::io(path, err.into()))?;
    std::fs::write(&temp, bytes).map_err(|err| StorageError::io(&temp, err))?;
    crate::objects::sync_path(&temp)?;
    std::fs::rename(&temp, path).map_err(|err| StorageError::io(path, err))?;
    crate::objects::sync_path(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ManifestChange, TableKey};
    use crate::model::Signal;

    fn manifest() -> Manifest {
        Manifest::empty(&TableKey {
            tenant: "acme".parse().unwrap(),
            signal: Signal::Traces,
        })
    }

    fn flushed(manifest: &Manifest, owner: &WalOwner, lsn: Lsn) -> Manifest {
        manifest
            .apply(&ManifestChange {
                flushed: Some(owner.position(lsn)),
                ..ManifestChange::default()
            })
            .unwrap()
    }

    #[test]
    fn each_node_reads_and_moves_only_its_own_position() {
        let (a, b) = (WalOwner::node("a", false), WalOwner::node("b", false));
        let manifest = flushed(&flushed(&manifest(), &a, 900), &b, 40);
        assert_eq!(a.flushed_lsn(&manifest), 900);
        assert_eq!(b.flushed_lsn(&manifest), 40);
        assert_eq!(WalOwner::node("c", false).flushed_lsn(&manifest), 0);
        assert_eq!(manifest.flushed_lsn, 0, "no node moved the unnamed one");
        let lowered = flushed(&manifest, &a, 10);
        assert_eq!(a.flushed_lsn(&lowered), 900, "a position never goes back");
    }

    #[test]
    fn an_upgraded_single_writer_keeps_its_unnamed_position() {
        let before = flushed(&manifest(), &WalOwner::data_dir(), 500);
        assert_eq!(WalOwner::node("old", true).flushed_lsn(&before), 500);
        assert_eq!(WalOwner::node("new", false).flushed_lsn(&before), 0);
        let after = flushed(&before, &WalOwner::node("old", true), 700);
        assert_eq!(WalOwner::node("old", true).flushed_lsn(&after), 700);
    }

    #[test]
    fn the_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = WalOwner::load_or_create(dir.path()).unwrap();
        let id = first.node_id().unwrap().to_owned();
        assert!(id.starts_with("node-") && id.len() == 21, "{id}");
        assert!(!first.owns_unnamed_position, "a fresh directory has no WAL");
        assert_eq!(WalOwner::load_or_create(dir.path()).unwrap(), first);

        let upgraded = tempfile::tempdir().unwrap();
        let wal = crate::layout::wal_dir(upgraded.path());
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(wal.join("00000000000000000001.wal"), b"x").unwrap();
        let owner = WalOwner::load_or_create(upgraded.path()).unwrap();
        assert!(owner.owns_unnamed_position);
        assert_ne!(owner.node_id(), Some(id.as_str()));
    }
}
