//! LEB128 varints: seven bits a byte, low bits first, the high bit set on every byte but the
//! last (the encoding postcard and protobuf use for unsigned integers). postcard keeps its
//! own varint functions private, and a column of them is read one at a time, in place.

/// Appends `value` to `out`.
pub(crate) fn write(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one varint from the front of `input` and advances past it; `None` when `input` ends
/// inside it or it is longer than a u64 (over ten bytes, or bits past the 64th).
pub(crate) fn read(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (index, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if index == 9 && bits > 1 {
            return None;
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            *input = &input[index + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_and_damaged_input_is_refused() {
        for value in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut bytes = Vec::new();
            write(&mut bytes, value);
            bytes.push(0x55);
            let mut input = &bytes[..];
            assert_eq!(read(&mut input), Some(value));
            assert_eq!(input, [0x55]);
            // Cut inside: refused, not misread.
            let mut cut = &bytes[..bytes.len() - 2];
            if !cut.is_empty() {
                assert_eq!(read(&mut cut), None);
            }
        }
        assert_eq!(read(&mut &[][..]), None);
        // Past 64 bits: refused.
        let mut too_long = vec![0xff; 9];
        too_long.push(0x02);
        assert_eq!(read(&mut &too_long[..]), None);
        assert_eq!(read(&mut &[0x80; 11][..]), None);
    }
}
