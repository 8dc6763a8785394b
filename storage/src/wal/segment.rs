//! WAL segment files: naming, listing, creating and reading one segment back with torn-tail repair.
//!
//! A segment is `{first_lsn:020}.wal`: an 8-byte magic followed by framed records.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::warn;

use super::WalError;
use super::record::{Decoded, Lsn, WalEntry, decode_record};

/// First bytes of every segment; the last digit is the format version.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SKEWAL01";

/// Path of the segment whose first record is `first_lsn`.
pub fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// The segments in `dir` as (first LSN, path), oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, WalError> {
    let entries = std::fs::read_dir(dir).map_err(|err| WalError::io(dir, err))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| WalError::io(dir, err))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(first_lsn) = stem.parse::<Lsn>() {
            segments.push((first_lsn, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(lsn, _)| *lsn);
    Ok(segments)
}

/// Creates a new, empty segment durably (file and directory entry synced).
pub fn create_segment(dir: &Path, first_lsn: Lsn) -> Result<File, WalError> {
    let path = segment_path(dir, first_lsn);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|err| WalError::io(&path, err))?;
    let finished = file
        .write_all(SEGMENT_MAGIC)
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()));
    if let Err(err) = finished {
        // A half-made segment named for LSNs it will never hold would mislead deletion.
        let _ = std::fs::remove_file(&path);
        return Err(WalError::io(&path, err));
    }
    Ok(file)
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct SegmentScan {
    /// Valid records in order.
    pub records: Vec<(Lsn, WalEntry)>,
    /// True when invalid bytes were found and cut off.
    pub truncated: bool,
}

/// Reads every valid record of a segment. A torn or corrupt tail is cut off the file (with a
/// warning) so the next start sees a clean log; nothing after the first bad byte is trusted.
pub fn read_segment(path: &Path) -> Result<SegmentScan, WalError> {
    let data = Bytes::from(std::fs::read(path).map_err(|err| WalError::io(path, err))?);
    let mut scan = SegmentScan::default();
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        warn!(path = %path.display(), bytes = data.len(), "WAL segment without a valid header, ignoring it");
        truncate(path, 0)?;
        scan.truncated = true;
        return Ok(scan);
    }
    let mut offset = SEGMENT_MAGIC.len();
    while offset < data.len() {
        match decode_record(&data, offset) {
            Decoded::Record { lsn, entry, len } => {
                scan.records.push((lsn, entry));
                offset += len;
            }
            Decoded::Incomplete => {
                warn!(path = %path.display(), offset, "torn record at the end of the WAL, truncating");
                truncate(path, offset as u64)?;
                scan.truncated = true;
                break;
            }
            Decoded::Corrupt(reason) => {
                warn!(path = %path.display(), offset, %reason, "corrupt WAL record, truncating the segment here");
                truncate(path, offset as u64)?;
                scan.truncated = true;
                break;
            }
        }
    }
    Ok(scan)
}

/// What a read-only look at a segment found (for `skewer check`, which changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Valid records.
    pub num_records: u64,
    /// The first and last LSN of the valid records.
    pub lsn_range: Option<(Lsn, Lsn)>,
    /// Bytes up to the end of the last valid record.
    pub valid_bytes: u64,
    /// Bytes in the file.
    pub total_bytes: u64,
    /// What is wrong past the valid bytes (a torn tail is normal after a crash; the next
    /// start cuts it).
    pub problem: Option<String>,
}

/// Reads a segment without repairing it.
pub fn inspect_segment(path: &Path) -> Result<SegmentReport, WalError> {
    let data = Bytes::from(std::fs::read(path).map_err(|err| WalError::io(path, err))?);
    let mut report = SegmentReport {
        num_records: 0,
        lsn_range: None,
        valid_bytes: 0,
        total_bytes: data.len() as u64,
        problem: None,
    };
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        report.problem = Some("no valid segment header".to_owned());
        return Ok(report);
    }
    let mut offset = SEGMENT_MAGIC.len();
    while offset < data.len() {
        match decode_record(&data, offset) {
            Decoded::Record { lsn, len, .. } => {
                report.num_records += 1;
                report.lsn_range = Some(
                    report
                        .lsn_range
                        .map_or((lsn, lsn), |(first, _)| (first, lsn)),
                );
                offset += len;
            }
            Decoded::Incomplete => {
                report.problem = Some(format!("torn record at byte {offset}"));
                break;
            }
            Decoded::Corrupt(reason) => {
                report.problem = Some(format!("corrupt record at byte {offset}: {reason}"));
                break;
            }
        }
    }
    report.valid_bytes = offset.min(data.len()) as u64;
    Ok(report)
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(len).and_then(|()| file.sync_all()))
        .map_err(|err| WalError::io(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signal;
    use crate::wal::record::encode_record;

    fn entry(body: &[u8]) -> WalEntry {
        WalEntry {
            signal: Signal::Metrics,
            payload_format: 1,
            tenant: "default".parse().unwrap(),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn torn_tail_is_cut_and_valid_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = create_segment(dir.path(), 1).unwrap();
        let mut buf = Vec::new();
        encode_record(1, &entry(b"one"), &mut buf);
        encode_record(2, &entry(b"two"), &mut buf);
        let whole = buf.len();
        encode_record(3, &entry(b"three"), &mut buf);
        file.write_all(&buf[..whole + 10]).unwrap();
        drop(file);

        let path = segment_path(dir.path(), 1);
        let scan = read_segment(&path).unwrap();
        assert!(scan.truncated);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.records[1].1.body.as_ref(), b"two");
        // The file was repaired: a second read is clean.
        let again = read_segment(&path).unwrap();
        assert!(!again.truncated);
        assert_eq!(again.records.len(), 2);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![(1, path)]);
    }

    #[test]
    fn garbage_in_the_middle_stops_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = create_segment(dir.path(), 5).unwrap();
        let mut buf = Vec::new();
        encode_record(5, &entry(b"good"), &mut buf);
        buf.extend_from_slice(&[0xAB; 40]);
        file.write_all(&buf).unwrap();
        let path = segment_path(dir.path(), 5);
        let report = inspect_segment(&path).unwrap();
        assert_eq!(report.num_records, 1);
        assert_eq!(report.lsn_range, Some((5, 5)));
        assert!(report.problem.is_some());
        assert_eq!(
            report.total_bytes,
            std::fs::metadata(&path).unwrap().len(),
            "inspecting changes nothing"
        );
        let scan = read_segment(&path).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(scan.truncated);
    }
}
