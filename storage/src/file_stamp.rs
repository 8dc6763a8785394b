//! Whether a file changed since it was last read, without reading it: its modification time,
//! length and inode (a rewrite that renames a new file into place changes the inode even
//! within one mtime tick). Used to reload the key file and TLS certificates when they change.

use std::path::Path;
use std::time::SystemTime;

/// Identity of one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` now; `None` when it cannot be looked at (absent, unreadable).
    pub fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&metadata),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_a_new_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(FileStamp::of(&path), None);
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path);
        assert!(first.is_some());
        assert_eq!(FileStamp::of(&path), first);
        let next = dir.path().join("f.new");
        std::fs::write(&next, b"two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_ne!(FileStamp::of(&path), first);
    }
}
