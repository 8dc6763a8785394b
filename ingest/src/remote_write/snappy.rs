//! Snappy block format, the compression remote write uses (not the framed "stream" format):
//! the length a body declares is checked against the body cap before anything is allocated,
//! then the body is decompressed into exactly that much. No I/O, no protobuf.

use crate::IngestError;

/// The length `compressed` declares it decompresses to, refused past `max_bytes` (a small
/// hostile body must not make us allocate gigabytes) or when the header is not snappy.
pub fn decompressed_len(compressed: &[u8], max_bytes: usize) -> Result<usize, IngestError> {
    let len = match snap::raw::decompress_len(compressed) {
        Ok(len) => len,
        // A length past snappy's own 4 GiB limit is past any cap too.
        Err(snap::Error::TooBig { .. }) => return Err(IngestError::TooLarge { max_bytes }),
        Err(err) => return Err(malformed(err)),
    };
    if len > max_bytes {
        return Err(IngestError::TooLarge { max_bytes });
    }
    Ok(len)
}

/// Decompresses a snappy block of at most `max_bytes` decompressed.
pub fn decompress(compressed: &[u8], max_bytes: usize) -> Result<Vec<u8>, IngestError> {
    let len = decompressed_len(compressed, max_bytes)?;
    let mut output = vec![0; len];
    let written = snap::raw::Decoder::new()
        .decompress(compressed, &mut output)
        .map_err(malformed)?;
    output.truncate(written);
    Ok(output)
}

fn malformed(err: snap::Error) -> IngestError {
    IngestError::Malformed {
        format: "snappy",
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    #[test]
    fn a_block_round_trips_within_the_cap() {
        let data = b"remote write remote write remote write".repeat(10);
        let compressed = compress(&data);
        assert!(compressed.len() < data.len());
        assert_eq!(decompress(&compressed, data.len()).unwrap(), data);
    }

    #[test]
    fn a_declared_length_past_the_cap_is_refused_before_decompressing() {
        let data = vec![0u8; 1 << 20];
        let compressed = compress(&data);
        assert!(compressed.len() < 64 * 1024);
        assert!(matches!(
            decompress(&compressed, (1 << 20) - 1),
            Err(IngestError::TooLarge { max_bytes }) if max_bytes == (1 << 20) - 1
        ));
        // A header alone claiming 4 GiB - 1, or 4 GiB (past snappy's own limit): refused
        // from the header, with nothing allocated.
        for header_only in [
            [0xff, 0xff, 0xff, 0xff, 0x0f],
            [0x80, 0x80, 0x80, 0x80, 0x10],
        ] {
            assert!(matches!(
                decompress(&header_only, 16 << 20),
                Err(IngestError::TooLarge { max_bytes }) if max_bytes == 16 << 20
            ));
        }
    }

    #[test]
    fn garbage_and_the_framed_format_are_malformed() {
        let refused = |body: &[u8]| match decompress(body, 1 << 20) {
            Err(IngestError::Malformed { format, .. }) => format == "snappy",
            _ => false,
        };
        assert!(refused(b""));
        assert!(refused(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"));
        // A length header promising more than the body holds.
        let mut truncated = compress(&b"abcdefgh".repeat(100));
        truncated.truncate(truncated.len() / 2);
        assert!(refused(&truncated));
        // The framed (stream) format is another thing: its stream identifier chunk does not
        // decode as a block.
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, b"hello").unwrap();
        assert!(refused(&framed.into_inner().unwrap()));
    }
}
