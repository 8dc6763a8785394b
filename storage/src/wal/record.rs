//! WAL record framing: encode one entry into bytes and decode it back, detecting torn or corrupt data.
//!
//! Pure functions, no I/O. Format (little endian), see `docs/adr/001-wal-format.md`:
//!
//! ```text
//! u32 payload_len | u32 crc32(lsn ‖ kind ‖ payload) | u64 lsn | u8 kind | payload
//! payload of kind 1 (export): u8 signal | u8 payload_format | u8 tenant_len | tenant | body
//! ```

use bytes::Bytes;

use crate::model::{Signal, TenantId};

/// Log sequence number: position of a record in the log, starting at 1.
pub type Lsn = u64;

/// Bytes before the payload: length, CRC, LSN, kind.
pub const RECORD_HEADER_LEN: usize = 4 + 4 + 8 + 1;

/// The largest payload accepted; longer lengths in a header mean corruption.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024 * 1024;

const KIND_EXPORT: u8 = 1;

/// One accepted export as the WAL keeps it: its signal, tenant and the request body as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Which signal the body carries.
    pub signal: Signal,
    /// How the body is encoded; meaningful only to the decoder the caller supplies.
    pub payload_format: u8,
    /// The tenant the export belongs to.
    pub tenant: TenantId,
    /// The export body.
    pub body: Bytes,
}

impl WalEntry {
    /// Bytes this entry takes on disk.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + 3 + self.tenant.as_str().len() + self.body.len()
    }
}

/// Appends the framed record for `entry` at `lsn` to `out`.
pub fn encode_record(lsn: Lsn, entry: &WalEntry, out: &mut Vec<u8>) {
    let tenant = entry.tenant.as_str().as_bytes();
    let payload_len = 3 + tenant.len() + entry.body.len();
    out.reserve(RECORD_HEADER_LEN + payload_len);
    let start = out.len();
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(KIND_EXPORT);
    out.push(entry.signal as u8);
    out.push(entry.payload_format);
    // Tenant ids are at most 64 bytes (validated by TenantId).
    out.push(tenant.len() as u8);
    out.extend_from_slice(tenant);
    out.extend_from_slice(&entry.body);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What decoding found at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record and its total length in bytes.
    Record {
        /// Its sequence number.
        lsn: Lsn,
        /// The entry.
        entry: WalEntry,
        /// Header plus payload.
        len: usize,
    },
    /// Not enough bytes for a whole record: a torn write at the end of the log.
    Incomplete,
    /// Bytes that are not a valid record (bad CRC, impossible length, unknown kind).
    Corrupt(String),
}

/// Decodes the record at the start of `data` (a slice of the segment, `shared` its owner for zero-copy bodies).
pub fn decode_record(shared: &Bytes, offset: usize) -> Decoded {
    let data = &shared[offset..];
    if data.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete;
    }
    let payload_len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if !(3..=MAX_PAYLOAD_BYTES).contains(&payload_len) {
        return Decoded::Corrupt(format!("impossible payload length {payload_len}"));
    }
    let len = RECORD_HEADER_LEN + payload_len;
    if data.len() < len {
        return Decoded::Incomplete;
    }
    let stored_crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if crc32fast::hash(&data[8..len]) != stored_crc {
        return Decoded::Corrupt("checksum mismatch".to_owned());
    }
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&data[8..16]);
    let lsn = u64::from_le_bytes(lsn_bytes);
    if data[16] != KIND_EXPORT {
        return Decoded::Corrupt(format!("unknown record kind {}", data[16]));
    }
    let payload = &data[RECORD_HEADER_LEN..len];
    let Some(signal) = Signal::from_number(payload[0]) else {
        return Decoded::Corrupt(format!("unknown signal {}", payload[0]));
    };
    let payload_format = payload[1];
    let tenant_len = payload[2] as usize;
    if 3 + tenant_len > payload.len() {
        return Decoded::Corrupt("tenant longer than payload".to_owned());
    }
    let tenant = match std::str::from_utf8(&payload[3..3 + tenant_len])
        .ok()
        .and_then(|text| text.parse::<TenantId>().ok())
    {
        Some(tenant) => tenant,
        None => return Decoded::Corrupt("invalid tenant".to_owned()),
    };
    let body_start = offset + RECORD_HEADER_LEN + 3 + tenant_len;
    let body = shared.slice(body_start..offset + len);
    Decoded::Record {
        lsn,
        entry: WalEntry {
            signal,
            payload_format,
            tenant,
            body,
        },
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(body: Vec<u8>, tenant: &str, signal: Signal) -> WalEntry {
        WalEntry {
            signal,
            payload_format: 2,
            tenant: tenant.parse().unwrap(),
            body: Bytes::from(body),
        }
    }

    proptest! {
        #[test]
        fn records_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            first_lsn in 1u64..u64::MAX / 2,
        ) {
            let mut buf = Vec::new();
            let entries: Vec<WalEntry> = bodies
                .into_iter()
                .map(|body| entry(body, "tenant-1", Signal::Logs))
                .collect();
            for (i, e) in entries.iter().enumerate() {
                encode_record(first_lsn + i as u64, e, &mut buf);
            }
            let shared = Bytes::from(buf);
            let mut offset = 0;
            for (i, expected) in entries.iter().enumerate() {
                match decode_record(&shared, offset) {
                    Decoded::Record { lsn, entry, len } => {
                        prop_assert_eq!(lsn, first_lsn + i as u64);
                        prop_assert_eq!(&entry, expected);
                        prop_assert_eq!(len, expected.encoded_len());
                        offset += len;
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(offset, shared.len());
        }

        #[test]
        fn every_truncation_is_incomplete_never_a_wrong_record(cut in 0usize..100) {
            let mut buf = Vec::new();
            encode_record(9, &entry(vec![7; 80], "default", Signal::Traces), &mut buf);
            let cut = cut.min(buf.len() - 1);
            let shared = Bytes::from(buf[..cut].to_vec());
            prop_assert_eq!(decode_record(&shared, 0), Decoded::Incomplete);
        }

        #[test]
        fn any_flipped_byte_is_detected(position in 0usize..100, flip in 1u8..=255) {
            let mut buf = Vec::new();
            encode_record(9, &entry(vec![7; 80], "default", Signal::Traces), &mut buf);
            let position = position.min(buf.len() - 1);
            buf[position] ^= flip;
            let shared = Bytes::from(buf);
            let is_record = matches!(decode_record(&shared, 0), Decoded::Record { .. });
            prop_assert!(!is_record);
        }
    }
}
