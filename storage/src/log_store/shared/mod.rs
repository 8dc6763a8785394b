//! Log partitions shared through the bucket, so every node of a deployment answers for the
//! logs any ingest node took.
//!
//! Each ingest node keeps writing its own tantivy index per tenant and day on local disk (the
//! WAL and the commit interval work as on one node). What one node holds of a partition is a
//! *replica*: the files its last commit needs, uploaded under
//! `tenants/{tenant}/logs/{day}/{node}/`, and a manifest at
//! `log-replicas/{tenant}/{day}/{node}.json` that names them, written after them, so a reader
//! that finds a manifest finds its files. tantivy never changes a segment file once written
//! (merges write new segments), so only the manifest is replaced; files a newer manifest no
//! longer names are deleted after a grace ([`upload`]). Other nodes list the manifests, and
//! download the replicas a read needs into a bounded local cache ([`cache`]).

pub mod cache;
#[cfg(test)]
mod tests;
pub mod upload;

use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::layout;
use crate::model::TenantId;

/// One node's copy of one tenant's logs of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaKey {
    /// Whose logs.
    pub tenant: TenantId,
    /// The UTC day, counted from the Unix epoch.
    pub day: u64,
    /// The node that wrote them.
    pub node: String,
}

/// What a replica's manifest holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaManifest {
    /// The layout of this manifest.
    pub format: u32,
    /// The index's `meta.json` of the commit uploaded (its segments, schema and settings).
    pub meta: String,
    /// The partition's stream catalog (`streams.json`), when it has one.
    pub streams: Option<String>,
    /// The segment files the commit needs, with their sizes.
    pub files: Vec<ReplicaFile>,
}

/// One uploaded segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFile {
    /// Its name in the index directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// The manifest layout written today.
pub const MANIFEST_FORMAT: u32 = 1;

impl ReplicaManifest {
    /// Bytes of the files it names.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|file| file.bytes).sum()
    }
}

/// Prefix of every replica manifest.
pub fn manifests_prefix() -> ObjectPath {
    ObjectPath::from("log-replicas")
}

/// Where the manifest of `key` lives.
pub fn manifest_path(key: &ReplicaKey) -> ObjectPath {
    ObjectPath::from(format!(
        "{}/{}/{}/{}.json",
        manifests_prefix(),
        key.tenant.as_str(),
        layout::day_name(key.day),
        key.node
    ))
}

/// The replica a manifest path names, if it follows the layout.
pub fn parse_manifest_path(path: &ObjectPath) -> Option<ReplicaKey> {
    let parts: Vec<_> = path.parts().collect();
    let [root, tenant, day, file] = parts.as_slice() else {
        return None;
    };
    if root.as_ref() != manifests_prefix().as_ref() {
        return None;
    }
    Some(ReplicaKey {
        tenant: tenant.as_ref().parse().ok()?,
        day: layout::parse_day_name(day.as_ref())?,
        node: file.as_ref().strip_suffix(".json")?.to_owned(),
    })
}

/// Prefix of the files of `key`.
pub fn files_prefix(key: &ReplicaKey) -> ObjectPath {
    ObjectPath::from(format!(
        "{}/{}/{}",
        layout::signal_prefix(&key.tenant, crate::model::Signal::Logs),
        layout::day_name(key.day),
        key.node
    ))
}

/// Where one file of `key` lives.
pub fn file_path(key: &ReplicaKey, name: &str) -> ObjectPath {
    ObjectPath::from(format!("{}/{name}", files_prefix(key)))
}

/// Writes a replica of `tenant` on day 20,000 by node `node-a` holding one 7-byte segment
/// file `seg.idx`, manifest last, as an uploader would; the replica and the file's path.
#[cfg(test)]
pub(crate) async fn put_test_replica(
    objects: &crate::objects::Objects,
    tenant: &str,
) -> (ReplicaKey, ObjectPath) {
    let replica = ReplicaKey {
        tenant: tenant.parse().unwrap(),
        day: 20_000,
        node: "node-a".to_owned(),
    };
    let segment = file_path(&replica, "seg.idx");
    objects
        .put(&segment, bytes::Bytes::from_static(b"segment"))
        .await
        .unwrap();
    let manifest = ReplicaManifest {
        format: MANIFEST_FORMAT,
        meta: "{}".to_owned(),
        streams: None,
        files: vec![ReplicaFile {
            name: "seg.idx".to_owned(),
            bytes: 7,
        }],
    };
    objects
        .put(
            &manifest_path(&replica),
            serde_json::to_vec(&manifest).unwrap().into(),
        )
        .await
        .unwrap();
    (replica, segment)
}
