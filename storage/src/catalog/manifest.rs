//! The manifest of one table (a tenant's files of one signal): the live data files with the
//! facts queries prune on, the version, and the WAL position the table is flushed to.
//!
//! Pure: applying a change gives the next version or says why it cannot apply. Stored as JSON
//! (readable by operators, and by `skewer check`); fields added later default when absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Signal, TenantId};
use crate::wal::Lsn;

/// Value of [`Manifest::format`] written by this version.
pub const MANIFEST_FORMAT: &str = "skewer-manifest-v1";

/// A table: one tenant's data of one signal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The signal (traces or metrics; logs live in time-partitioned indexes).
    pub signal: Signal,
}

impl std::fmt::Display for TableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.signal.name())
    }
}

/// The live files of one table at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The tenant, as text.
    pub tenant: String,
    /// The signal.
    pub signal: Signal,
    /// Starts at 1 and grows by one with every change.
    pub version: u64,
    /// Every WAL record of this table at or below this LSN is in the files: replay skips them.
    /// The position of the data directory's single writer (see [`crate::node::WalOwner`]).
    pub flushed_lsn: Lsn,
    /// The same, per node, when several nodes with their own WALs commit to the table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_flushed_lsns: BTreeMap<String, Lsn>,
    /// The live files, oldest first.
    pub files: Vec<DataFileMeta>,
}

/// One immutable data file and what queries prune on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFileMeta {
    /// Object path, relative to the store root (never a local path).
    pub path: String,
    /// File format (`spans-v1`, `metrics-v1`).
    pub format: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows (records).
    pub num_rows: u64,
    /// Earliest record time (span start, point time), Unix ns.
    pub min_time_unix_nano: u64,
    /// Latest record time (span end, point time), Unix ns.
    pub max_time_unix_nano: u64,
    /// The hour window the file belongs to (its records' partition time / 1 h).
    pub partition_hour: u64,
    /// 0 for a flushed file, one more than its inputs' highest for a compacted one.
    pub level: u32,
    /// When the file was written, Unix ms.
    pub created_unix_ms: u64,
    /// The trace-id filter sidecar of a span file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id_filter: Option<IdFilterMeta>,
    /// Object path of the file's [`super::FileSummary`] sidecar (services and operations of a
    /// span file); absent for files written before summaries existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_path: Option<String>,
    /// Object path of the file's index sidecar: a metric file's series index (its distinct
    /// series, no point), a span file's trace summaries (one per trace, sorted by trace id);
    /// absent for files written before either, or too big to summarise.
    #[serde(
        default,
        alias = "series_index_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub index_path: Option<String>,
}

impl DataFileMeta {
    /// The objects kept beside the data file (its filter and summary), which live and die
    /// with it.
    pub fn sidecar_paths(&self) -> impl Iterator<Item = &str> {
        self.trace_id_filter
            .iter()
            .map(|filter| filter.path.as_str())
            .chain(self.summary_path.as_deref())
            .chain(self.index_path.as_deref())
    }

    /// The data file and its sidecars.
    pub fn object_paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.sidecar_paths())
    }
}

/// Where a file's trace-id filter is and how to read one block of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdFilterMeta {
    /// Object path of the filter.
    pub path: String,
    /// Its number of 32-byte blocks.
    pub num_blocks: u32,
    /// Distinct ids inserted (sizes the filter of a compacted file).
    #[serde(default)]
    pub num_ids: u64,
}

/// One atomic change of a table: files added, files removed, and the flushed LSN moved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestChange {
    /// Files that become live.
    pub add: Vec<DataFileMeta>,
    /// Paths of files that stop being live.
    pub remove: Vec<String>,
    /// The new flushed position of a WAL (a flush); never lowers it.
    pub flushed: Option<FlushedPosition>,
}

/// How far one WAL is flushed into the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushedPosition {
    /// The node whose WAL it is; `None` for the data directory's single writer.
    pub node: Option<String>,
    /// Every record of the table at or below it is in the files.
    pub lsn: Lsn,
}

/// Why a change does not apply to a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestConflict {
    /// A file to remove is not live (another change removed it).
    #[error("file {0} is not in the manifest")]
    MissingFile(String),
    /// A file to add is already live.
    #[error("file {0} is already in the manifest")]
    DuplicateFile(String),
}

impl Manifest {
    /// Whether this is a manifest this version reads, of `table`; why not otherwise.
    pub fn check_holds(&self, table: &TableKey) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!("unknown format {:?}", self.format));
        }
        if self.tenant != table.tenant.as_str() || self.signal != table.signal {
            return Err(format!(
                "holds {}/{}, not {table}",
                self.tenant,
                self.signal.name()
            ));
        }
        Ok(())
    }

    /// The manifest before the first change of a table.
    pub fn empty(table: &TableKey) -> Self {
        Self {
            format: MANIFEST_FORMAT.to_owned(),
            tenant: table.tenant.as_str().to_owned(),
            signal: table.signal,
            version: 0,
            flushed_lsn: 0,
            node_flushed_lsns: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// The next version with `change` applied.
    pub fn apply(&self, change: &ManifestChange) -> Result<Self, ManifestConflict> {
        let mut files = self.files.clone();
        for path in &change.remove {
            let position = files
                .iter()
                .position(|file| &file.path == path)
                .ok_or_else(|| ManifestConflict::MissingFile(path.clone()))?;
            files.remove(position);
        }
        for file in &change.add {
            if files.iter().any(|live| live.path == file.path) {
                return Err(ManifestConflict::DuplicateFile(file.path.clone()));
            }
            files.push(file.clone());
        }
        let mut flushed_lsn = self.flushed_lsn;
        let mut node_flushed_lsns = self.node_flushed_lsns.clone();
        match &change.flushed {
            None => {}
            Some(FlushedPosition { node: None, lsn }) => flushed_lsn = flushed_lsn.max(*lsn),
            Some(FlushedPosition {
                node: Some(node),
                lsn,
            }) => {
                let position = node_flushed_lsns.entry(node.clone()).or_default();
                *position = (*position).max(*lsn);
            }
        }
        Ok(Self {
            format: self.format.clone(),
            tenant: self.tenant.clone(),
            signal: self.signal,
            version: self.version + 1,
            flushed_lsn,
            node_flushed_lsns,
            files,
        })
    }

    /// Total bytes of the live files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size_bytes).sum()
    }
}

/// A manifest entry for tests: a 100-byte span file of 10 rows at times 1..2.
#[cfg(test)]
pub(crate) fn test_file(path: &str) -> DataFileMeta {
    DataFileMeta {
        path: path.to_owned(),
        format: "spans-v1".to_owned(),
        size_bytes: 100,
        num_rows: 10,
        min_time_unix_nano: 1,
        max_time_unix_nano: 2,
        partition_hour: 0,
        level: 0,
        created_unix_ms: 0,
        trace_id_filter: None,
        summary_path: None,
        index_path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> DataFileMeta {
        test_file(path)
    }

    fn table() -> TableKey {
        TableKey {
            tenant: "acme".parse().unwrap(),
            signal: Signal::Traces,
        }
    }

    #[test]
    fn changes_apply_in_order_and_versions_grow() {
        let empty = Manifest::empty(&table());
        let one = empty
            .apply(&ManifestChange {
                add: vec![file("a"), file("b")],
                flushed: Some(FlushedPosition { node: None, lsn: 7 }),
                ..ManifestChange::default()
            })
            .unwrap();
        assert_eq!(one.version, 1);
        assert_eq!(one.flushed_lsn, 7);
        let two = one
            .apply(&ManifestChange {
                add: vec![file("c")],
                remove: vec!["a".into(), "b".into()],
                flushed: Some(FlushedPosition { node: None, lsn: 3 }),
            })
            .unwrap();
        assert_eq!(two.version, 2);
        assert_eq!(two.flushed_lsn, 7, "the flushed LSN never goes back");
        assert_eq!(two.files, [file("c")]);
        assert_eq!(two.total_bytes(), 100);
    }

    #[test]
    fn conflicting_changes_are_refused() {
        let one = Manifest::empty(&table())
            .apply(&ManifestChange {
                add: vec![file("a")],
                ..ManifestChange::default()
            })
            .unwrap();
        let remove_missing = ManifestChange {
            remove: vec!["zz".into()],
            ..ManifestChange::default()
        };
        assert_eq!(
            one.apply(&remove_missing),
            Err(ManifestConflict::MissingFile("zz".into()))
        );
        let add_twice = ManifestChange {
            add: vec![file("a")],
            ..ManifestChange::default()
        };
        assert_eq!(
            one.apply(&add_twice),
            Err(ManifestConflict::DuplicateFile("a".into()))
        );
    }

    #[test]
    fn the_stored_form_is_stable_and_tolerates_absent_new_fields() {
        let manifest = Manifest::empty(&table())
            .apply(&ManifestChange {
                add: vec![DataFileMeta {
                    trace_id_filter: Some(IdFilterMeta {
                        path: "a.traceids".into(),
                        num_blocks: 3,
                        num_ids: 40,
                    }),
                    ..file("a")
                }],
                flushed: Some(FlushedPosition { node: None, lsn: 5 }),
                ..ManifestChange::default()
            })
            .unwrap();
        let text = serde_json::to_string(&manifest).unwrap();
        assert_eq!(
            text,
            r#"{"format":"skewer-manifest-v1","tenant":"acme","signal":"traces","version":1,"flushed_lsn":5,"files":[{"path":"a","format":"spans-v1","size_bytes":100,"num_rows":10,"min_time_unix_nano":1,"max_time_unix_nano":2,"partition_hour":0,"level":0,"created_unix_ms":0,"trace_id_filter":{"path":"a.traceids","num_blocks":3,"num_ids":40}}]}"#
        );
        let without_filter = text.replace(
            r#","trace_id_filter":{"path":"a.traceids","num_blocks":3,"num_ids":40}"#,
            "",
        );
        let parsed: Manifest = serde_json::from_str(&without_filter).unwrap();
        assert_eq!(parsed.files[0].trace_id_filter, None);
    }
}
