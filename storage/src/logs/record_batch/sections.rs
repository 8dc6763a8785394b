//! The sections of a version 2 batch: each its length, whether zstd compressed it (and then
//! its length before), and its bytes. Each kind of column is compressed apart, so zstd's
//! tables fit it; sections of random bytes (ids) are stored as they are. A compressed
//! section's frame carries zstd's checksum, so damage to it is found; a stored section has
//! none (as the document store keeps a version 1 batch), and damage to its bytes reads back
//! as other ids.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::logs::{LogIndexError, varint};

/// zstd level of compressed sections: what the document store used for whole batches.
const ZSTD_LEVEL: i32 = 3;
/// Sections shorter than this are stored as they are (zstd's frame would outweigh a gain).
const MIN_COMPRESSED_BYTES: usize = 64;
/// A section is stored as it is.
const STORED: u8 = 0;
/// A section is one zstd frame.
const ZSTD: u8 = 1;
/// The most bytes a section may hold once decompressed: a batch holds at most a request's
/// records, and requests are at most 256 MiB, so more is damage, not an allocation to attempt.
pub(super) const MAX_SECTION_BYTES: usize = 1 << 30;

type Compressor = zstd::bulk::Compressor<'static>;
type Decompressor = zstd::bulk::Decompressor<'static>;

thread_local! {
    /// Compression contexts, kept per thread so a batch does not allocate one per section.
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

fn corrupt(what: impl std::fmt::Display) -> LogIndexError {
    LogIndexError::corrupt(format!("batch section: {what}"))
}

/// How a section is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    /// zstd, when that makes it smaller.
    Compressed,
    /// As it is: random bytes.
    Stored,
}

/// Appends `section` to `out`.
pub(super) fn write(
    out: &mut Vec<u8>,
    section: &[u8],
    packing: Packing,
) -> Result<(), LogIndexError> {
    if packing == Packing::Compressed && section.len() >= MIN_COMPRESSED_BYTES {
        let compressed = COMPRESSOR.with(|cell| -> std::io::Result<Vec<u8>> {
            let mut cell = cell.borrow_mut();
            let compressor = match cell.as_mut() {
                Some(compressor) => compressor,
                None => {
                    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
                    compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                    cell.insert(compressor)
                }
            };
            compressor.compress(section)
        });
        let compressed =
            compressed.map_err(|error| LogIndexError::EncodeRecord(error.to_string()))?;
        if compressed.len() < section.len() {
            varint::write(out, compressed.len() as u64);
            out.push(ZSTD);
            varint::write(out, section.len() as u64);
            out.extend_from_slice(&compressed);
            return Ok(());
        }
    }
    varint::write(out, section.len() as u64);
    out.push(STORED);
    out.extend_from_slice(section);
    Ok(())
}

/// Reads the section at the front of `input` and advances past it.
pub(super) fn read<'a>(input: &mut &'a [u8]) -> Result<Cow<'a, [u8]>, LogIndexError> {
    let length = varint::read(input).ok_or_else(|| corrupt("length cut"))?;
    let (&packing, rest) = input.split_first().ok_or_else(|| corrupt("packing cut"))?;
    *input = rest;
    let plain_length = match packing {
        STORED => None,
        ZSTD => Some(varint::read(input).ok_or_else(|| corrupt("plain length cut"))?),
        other => return Err(corrupt(format_args!("unknown packing {other}"))),
    };
    let bytes = usize::try_from(length)
        .ok()
        .and_then(|length| input.get(..length))
        .ok_or_else(|| corrupt("bytes cut"))?;
    *input = &input[bytes.len()..];
    let Some(plain_length) = plain_length else {
        return Ok(Cow::Borrowed(bytes));
    };
    // The frame names its own size: a length that disagrees is damage, not an allocation.
    let framed = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten();
    if framed != Some(plain_length) {
        return Err(corrupt("lengths disagree"));
    }
    let plain_length = usize::try_from(plain_length)
        .ok()
        .filter(|&length| length <= MAX_SECTION_BYTES)
        .ok_or_else(|| corrupt("longer than a batch holds"))?;
    let plain = DECOMPRESSOR.with(|cell| -> std::io::Result<Vec<u8>> {
        let mut cell = cell.borrow_mut();
        let decompressor = match cell.as_mut() {
            Some(decompressor) => decompressor,
            None => cell.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(bytes, plain_length)
    });
    let plain = plain.map_err(corrupt)?;
    if plain.len() != plain_length {
        return Err(corrupt("shorter than its length"));
    }
    Ok(Cow::Owned(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_read_back_compressed_or_not() {
        let text = b"request handled payment declined ".repeat(20);
        let random: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut out = Vec::new();
        write(&mut out, &text, Packing::Compressed).unwrap();
        let after_text = out.len();
        write(&mut out, &random, Packing::Stored).unwrap();
        write(&mut out, b"short", Packing::Compressed).unwrap();
        write(&mut out, b"", Packing::Compressed).unwrap();
        assert!(after_text < text.len() / 4, "text compressed");
        let mut input = &out[..];
        assert_eq!(&*read(&mut input).unwrap(), &text[..]);
        assert!(matches!(read(&mut input).unwrap(), Cow::Borrowed(bytes) if bytes == &random[..]));
        assert_eq!(&*read(&mut input).unwrap(), b"short");
        assert_eq!(&*read(&mut input).unwrap(), b"");
        assert!(input.is_empty());
    }

    #[test]
    fn damaged_sections_are_reported() {
        let text = b"request handled payment declined ".repeat(20);
        let mut good = Vec::new();
        write(&mut good, &text, Packing::Compressed).unwrap();
        let mut wrong_plain_length = good.clone();
        // [length varint (1 byte)][packing][plain length varint (2 bytes)]...
        wrong_plain_length[2] ^= 1;
        let mut unknown_packing = good.clone();
        unknown_packing[1] = 9;
        let mut damaged_frame = good.clone();
        let last = damaged_frame.len() - 3;
        damaged_frame[last] ^= 0xff;
        for damaged in [
            good[..good.len() - 1].to_vec(),
            good[..2].to_vec(),
            Vec::new(),
            wrong_plain_length,
            unknown_packing,
            damaged_frame,
        ] {
            let error = read(&mut &damaged[..]).unwrap_err();
            assert!(
                matches!(error, LogIndexError::CorruptRecord { .. }),
                "{error}"
            );
        }
    }
}
