//! A batch's text bodies as four columns that compress well apart: a dictionary of tokens,
//! each text as the ids of its tokens, the numbers and the hex ids taken out of them.
//!
//! zstd finds a log line's repeated words, but pays an LZ match for each (two to three bytes:
//! offset, lengths), and compresses the ids and numbers mixed into the text as characters. Here
//! a word of the text (a run of ASCII letters and digits) that is a lowercase hex id (an even
//! number of 8 to 510 characters, letters and digits both) is moved as its raw bytes to the hex
//! column, and every other run of decimal digits (no leading zero, up to 19 digits) as a varint
//! to the numbers column, a placeholder byte left where each went. What is left is cut into
//! tokens (a run of letters and digits, then the run of other bytes and placeholders after
//! it: `took=87ms ` is `took=<number>` and `ms `), each looked up in the batch's dictionary,
//! and the text holds their ids. Measured on 300,000 records of the benchmark's LogQL hour (bodies of
//! ~208 bytes, compressed with zstd level 3 per batch): 40 bytes a body against 64 for the
//! bodies themselves.
//!
//! A text is written only if it holds none of the three reserved bytes (`\0`, `\x01`,
//! `\x02`); the caller stores others as they are. Reading is exact: the bytes come back as
//! they were, and anything that does not add up is reported as corrupt, never a panic.

use std::collections::HashMap;
use std::io::Write;

use super::{LogIndexError, varint};

/// Ends a text: the last byte of its last token.
const TERMINATOR: u8 = 0x00;
/// Stands for a hex id; the next byte is its length in bytes.
const HEX: u8 = 0x01;
/// Stands for a number, the next varint of the numbers column.
const NUMBER: u8 = 0x02;
/// Hex ids shorter than this many characters stay text.
const MIN_HEX_CHARS: usize = 8;
/// Hex ids longer than this stay text (their length must fit one byte).
const MAX_HEX_CHARS: usize = 2 * u8::MAX as usize;
/// Lowercase hex digits by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
/// Digit runs longer than this stay text (19 digits always fit a u64).
const MAX_NUMBER_DIGITS: usize = 19;
/// The most digits a number placeholder reads back as (`u64::MAX` has 20).
const MAX_NUMBER_TEXT: usize = 20;
/// The most bytes a batch's texts may read back as: more is damage (a batch holds at most a
/// request's records, and requests are at most 256 MiB), not an allocation to attempt.
const MAX_TEXT_BYTES: usize = 1 << 30;

/// The four columns of a batch's texts, as written and as read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TextColumnBytes {
    /// Each token once, in order of first use: its length (varint), then its bytes.
    pub(crate) dictionary: Vec<u8>,
    /// Each text's token ids (varints), text after text.
    pub(crate) tokens: Vec<u8>,
    /// The numbers (varints), in the order the texts use them.
    pub(crate) numbers: Vec<u8>,
    /// The hex ids' bytes, in the order the texts use them.
    pub(crate) hex: Vec<u8>,
}

/// Writes texts into [`TextColumnBytes`], one batch at a time.
#[derive(Default)]
pub(crate) struct TextColumnsWriter {
    columns: TextColumnBytes,
    ids: HashMap<Box<[u8]>, u64, foldhash::fast::RandomState>,
    /// The text being written, its ids and numbers replaced by placeholders.
    template: Vec<u8>,
}

impl TextColumnsWriter {
    /// Appends `text`; false (nothing written) if it holds a reserved byte.
    pub(crate) fn push(&mut self, text: &str) -> bool {
        let bytes = text.as_bytes();
        if bytes.iter().any(|&byte| byte <= NUMBER) {
            return false;
        }
        // The text with its ids and numbers moved out, then cut into tokens.
        self.template.clear();
        let mut at = 0;
        while at < bytes.len() {
            let word_end = at + run_length(&bytes[at..], true);
            self.push_word(&bytes[at..word_end]);
            at = word_end + run_length(&bytes[word_end..], false);
            self.template.extend_from_slice(&bytes[word_end..at]);
        }
        self.template.push(TERMINATOR);
        let template = std::mem::take(&mut self.template);
        let mut rest = &template[..];
        while !rest.is_empty() {
            let length = token_length(rest);
            self.push_token(&rest[..length]);
            rest = &rest[length..];
        }
        self.template = template;
        true
    }

    /// The columns of every text pushed.
    pub(crate) fn finish(self) -> TextColumnBytes {
        self.columns
    }

    /// Adds a run of letters and digits to the token: a hex id or its digit runs moved out.
    fn push_word(&mut self, word: &[u8]) {
        if is_hex_id(word) {
            self.template.push(HEX);
            self.template.push((word.len() / 2) as u8);
            self.columns.hex.extend(
                word.chunks_exact(2)
                    .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1])),
            );
            return;
        }
        let mut at = 0;
        while at < word.len() {
            let digits = run_of_digits(&word[at..]);
            if !digits.is_empty() {
                match number_value(digits) {
                    Some(value) => {
                        self.template.push(NUMBER);
                        varint::write(&mut self.columns.numbers, value);
                    }
                    None => self.template.extend_from_slice(digits),
                }
                at += digits.len();
            }
            let letters = word[at..]
                .iter()
                .take_while(|b| !b.is_ascii_digit())
                .count();
            self.template.extend_from_slice(&word[at..at + letters]);
            at += letters;
        }
    }

    /// Writes `token`'s id, adding it to the dictionary if new.
    fn push_token(&mut self, token: &[u8]) {
        let id = match self.ids.get(token) {
            Some(&id) => id,
            None => {
                let id = self.ids.len() as u64;
                let dictionary = &mut self.columns.dictionary;
                varint::write(dictionary, token.len() as u64);
                dictionary.extend_from_slice(token);
                self.ids.insert(token.into(), id);
                id
            }
        };
        varint::write(&mut self.columns.tokens, id);
    }
}

/// The length of the template's first token: a run of ASCII letters and digits, then a run
/// of other bytes (placeholders with their length byte among them).
fn token_length(template: &[u8]) -> usize {
    let mut at = run_length(template, true);
    while let Some(&byte) = template.get(at) {
        match byte {
            HEX => at += 2,
            _ if byte.is_ascii_alphanumeric() => break,
            _ => at += 1,
        }
    }
    at.min(template.len())
}

/// Bytes at the front of `bytes` that are ASCII letters or digits (`alphanumeric`) or not.
fn run_length(bytes: &[u8], alphanumeric: bool) -> usize {
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() == alphanumeric)
        .count()
}

fn run_of_digits(bytes: &[u8]) -> &[u8] {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    &bytes[..digits]
}

/// A lowercase hex id: an even number of characters, at least [`MIN_HEX_CHARS`], letters
/// and digits both (all digits is a number; all letters is likely a word).
fn is_hex_id(word: &[u8]) -> bool {
    (MIN_HEX_CHARS..=MAX_HEX_CHARS).contains(&word.len())
        && word.len().is_multiple_of(2)
        && word.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && word.iter().any(u8::is_ascii_digit)
        && word.iter().any(u8::is_ascii_lowercase)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

/// The value of a run of digits that reads back as the same digits: no leading zero (but
/// `0` itself), at most [`MAX_NUMBER_DIGITS`].
fn number_value(digits: &[u8]) -> Option<u64> {
    if digits.len() > MAX_NUMBER_DIGITS || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0')),
    )
}

/// Where a text starts in each column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextPlace {
    token: u32,
    number: u32,
    hex: u32,
}

/// What a dictionary token takes of the other columns, and the most it reads back as.
#[derive(Debug, Clone)]
struct Entry {
    bytes: std::ops::Range<usize>,
    numbers: usize,
    hex_bytes: usize,
    text_bound: usize,
    ends_text: bool,
}

/// A batch's text columns, read.
#[derive(Debug)]
pub(crate) struct TextColumns {
    columns: TextColumnBytes,
    entries: Vec<Entry>,
}

fn corrupt(what: &str) -> LogIndexError {
    LogIndexError::corrupt(format!("batch text columns: {what}"))
}

impl TextColumns {
    /// Parses the dictionary of `columns`.
    pub(crate) fn parse(columns: TextColumnBytes) -> Result<Self, LogIndexError> {
        let mut entries = Vec::new();
        let dictionary = &columns.dictionary[..];
        let mut rest = dictionary;
        while !rest.is_empty() {
            let length = varint::read(&mut rest).ok_or_else(|| corrupt("dictionary length"))?;
            let length = usize::try_from(length)
                .ok()
                .filter(|&length| length <= rest.len())
                .ok_or_else(|| corrupt("dictionary entry past its end"))?;
            let start = dictionary.len() - rest.len();
            entries.push(entry(&rest[..length], start)?);
            rest = &rest[length..];
        }
        Ok(Self { columns, entries })
    }

    /// Where each of the batch's `count` texts starts, in order. Columns that hold more or
    /// less than `count` texts, or texts that would read back as more than
    /// [`MAX_TEXT_BYTES`] together, are reported as damage.
    pub(crate) fn places(&self, count: usize) -> Result<Vec<TextPlace>, LogIndexError> {
        let TextColumnBytes {
            tokens,
            numbers,
            hex,
            ..
        } = &self.columns;
        let mut places = Vec::with_capacity(count);
        let (mut token_rest, mut number_rest) = (&tokens[..], &numbers[..]);
        let (mut hex_at, mut text_bytes) = (0usize, 0usize);
        while places.len() < count {
            places.push(TextPlace {
                token: offset(tokens, token_rest)?,
                number: offset(numbers, number_rest)?,
                hex: u32::try_from(hex_at).map_err(|_| corrupt("hex column too long"))?,
            });
            loop {
                let entry = self.next_entry(&mut token_rest)?;
                for _ in 0..entry.numbers {
                    varint::read(&mut number_rest).ok_or_else(|| corrupt("numbers cut"))?;
                }
                hex_at += entry.hex_bytes;
                text_bytes += entry.text_bound;
                if hex_at > hex.len() {
                    return Err(corrupt("hex ids cut"));
                }
                if text_bytes > MAX_TEXT_BYTES {
                    return Err(corrupt("texts longer than a batch holds"));
                }
                if entry.ends_text {
                    break;
                }
            }
        }
        if !token_rest.is_empty() || !number_rest.is_empty() || hex_at != hex.len() {
            return Err(corrupt("columns hold more than the batch's texts"));
        }
        Ok(places)
    }

    /// The text at `place` (one of [`Self::places`]).
    pub(crate) fn text(&self, place: TextPlace) -> Result<String, LogIndexError> {
        let TextColumnBytes {
            dictionary,
            tokens,
            numbers,
            hex,
        } = &self.columns;
        let (mut token_rest, mut number_rest, mut hex_rest) = (
            tokens.get(place.token as usize..).unwrap_or_default(),
            numbers.get(place.number as usize..).unwrap_or_default(),
            hex.get(place.hex as usize..).unwrap_or_default(),
        );
        let mut text = Vec::new();
        loop {
            let entry = self.next_entry(&mut token_rest)?;
            let mut bytes = dictionary[entry.bytes.clone()].iter();
            while let Some(&byte) = bytes.next() {
                match byte {
                    TERMINATOR => {
                        return String::from_utf8(text).map_err(|_| corrupt("not UTF-8"));
                    }
                    HEX => {
                        let length = bytes.next().map_or(0, |&length| usize::from(length));
                        let id = hex_rest
                            .get(..length)
                            .ok_or_else(|| corrupt("hex ids cut"))?;
                        for byte in id {
                            text.extend([
                                HEX_DIGITS[usize::from(byte >> 4)],
                                HEX_DIGITS[usize::from(byte & 15)],
                            ]);
                        }
                        hex_rest = &hex_rest[length..];
                    }
                    NUMBER => {
                        let value =
                            varint::read(&mut number_rest).ok_or_else(|| corrupt("numbers cut"))?;
                        // Writing into a Vec cannot fail.
                        let _ = write!(text, "{value}");
                    }
                    _ => text.push(byte),
                }
            }
        }
    }

    fn next_entry(&self, tokens: &mut &[u8]) -> Result<&Entry, LogIndexError> {
        let id = varint::read(tokens).ok_or_else(|| corrupt("tokens cut"))?;
        usize::try_from(id)
            .ok()
            .and_then(|id| self.entries.get(id))
            .ok_or_else(|| corrupt("token id past the dictionary"))
    }
}

/// `rest`'s offset in `column`, of which it is the tail.
fn offset(column: &[u8], rest: &[u8]) -> Result<u32, LogIndexError> {
    u32::try_from(column.len() - rest.len()).map_err(|_| corrupt("column too long"))
}

/// Reads what a dictionary token at `start` takes of the other columns.
fn entry(bytes: &[u8], start: usize) -> Result<Entry, LogIndexError> {
    let mut entry = Entry {
        bytes: start..start + bytes.len(),
        numbers: 0,
        hex_bytes: 0,
        text_bound: 0,
        ends_text: false,
    };
    let mut iter = bytes.iter();
    while let Some(&byte) = iter.next() {
        if entry.ends_text {
            return Err(corrupt("token goes on past a text's end"));
        }
        match byte {
            TERMINATOR => entry.ends_text = true,
            HEX => {
                let length = usize::from(*iter.next().ok_or_else(|| corrupt("hex length cut"))?);
                entry.hex_bytes += length;
                entry.text_bound += 2 * length;
            }
            NUMBER => {
                entry.numbers += 1;
                entry.text_bound += MAX_NUMBER_TEXT;
            }
            _ => entry.text_bound += 1,
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(texts: &[&str]) -> TextColumnBytes {
        let mut writer = TextColumnsWriter::default();
        for text in texts {
            assert!(writer.push(text), "{text:?}");
        }
        let bytes = writer.finish();
        let columns = TextColumns::parse(bytes.clone()).unwrap();
        let places = columns.places(texts.len()).unwrap();
        let read: Vec<String> = places.iter().map(|&p| columns.text(p).unwrap()).collect();
        assert_eq!(read, texts);
        bytes
    }

    #[test]
    fn texts_read_back_exactly() {
        round_trip(&[
            "",
            " ",
            "payment declined order=3fa2b1c4 user=u12345 took=87ms",
            "order=3fa2b1c4",
            "0 00 007 10 9999999999999999999 99999999999999999999 18446744073709551616",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7 DEADBEEF deadbeef",
            "abc123def 3fa2b1c 3fa2b1c4d a1b2c3d4e5f60718 v1.2.3 1e9",
            "ünïcödé tëxt — 中文日志 42 ✓",
            "\tindented\nand multi-line\r\n",
            "trailing digits 123",
            "123",
            "-=+",
        ]);
    }

    #[test]
    fn ids_and_numbers_leave_the_text_and_words_are_kept_once() {
        let texts: Vec<String> = (0..100u64)
            .map(|i| {
                format!(
                    "request handled order={:08x} took={i}ms",
                    0xa000_0000 + i * 7919
                )
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let bytes = round_trip(&refs);
        // Each order id as its four bytes; each duration as a one-byte varint.
        assert_eq!(bytes.hex.len(), 400);
        assert_eq!(bytes.numbers.len(), 100);
        // Five tokens a text, the same five every time.
        assert_eq!(bytes.tokens.len(), 500);
        assert_eq!(
            TextColumns::parse(bytes).unwrap().entries.len(),
            5,
            "`request `, `handled `, `order=<hex> `, `took=<number>`, `ms<end>`"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_texts_read_back_or_are_refused(
            texts in proptest::collection::vec(
                "\\PC{0,40}|[0-9a-fA-F =.-]{0,60}|[a-z0-9_=:/ ]{0,80}|[\\x00-\\x7f]{0,20}",
                0..24,
            )
        ) {
            let mut writer = TextColumnsWriter::default();
            let written: Vec<&String> = texts.iter().filter(|text| writer.push(text)).collect();
            for text in &texts {
                let reserved = text.bytes().any(|byte| byte <= NUMBER);
                proptest::prop_assert_eq!(written.contains(&text), !reserved);
            }
            let columns = TextColumns::parse(writer.finish()).unwrap();
            let places = columns.places(written.len()).unwrap();
            for (place, text) in places.iter().zip(&written) {
                proptest::prop_assert_eq!(&columns.text(*place).unwrap(), *text);
            }
        }
    }

    #[test]
    fn columns_that_would_read_back_as_too_much_are_refused() {
        // One long token used over and over: a few bytes stored, over a GiB to read back.
        let mut dictionary = Vec::new();
        varint::write(&mut dictionary, 1 << 20);
        dictionary.extend(std::iter::repeat_n(b'a', 1 << 20));
        dictionary.extend([1, TERMINATOR]);
        let columns = TextColumnBytes {
            dictionary,
            tokens: [vec![0; 1100], vec![1]].concat(),
            ..TextColumnBytes::default()
        };
        let columns = TextColumns::parse(columns).unwrap();
        let error = columns.places(1).unwrap_err();
        assert!(
            matches!(error, LogIndexError::CorruptRecord { .. }),
            "{error}"
        );
    }

    #[test]
    fn texts_holding_reserved_bytes_are_refused() {
        let mut writer = TextColumnsWriter::default();
        for text in ["nul\0", "\x01", "a\x02b"] {
            assert!(!writer.push(text));
        }
        assert_eq!(writer.finish(), TextColumnBytes::default());
    }

    #[test]
    fn damaged_columns_are_reported_not_misread() {
        let good = round_trip(&["order=3fa2b1c4 took=87ms", "plain words"]);
        let mut damaged = Vec::new();
        let mut cut_hex = good.clone();
        cut_hex.hex.pop();
        damaged.push(cut_hex);
        let mut cut_numbers = good.clone();
        cut_numbers.numbers.clear();
        damaged.push(cut_numbers);
        let mut cut_tokens = good.clone();
        cut_tokens.tokens.pop();
        damaged.push(cut_tokens);
        for column in 0..3 {
            let mut extra = good.clone();
            [&mut extra.tokens, &mut extra.numbers, &mut extra.hex][column].push(0);
            damaged.push(extra);
        }
        let mut unknown_token = good.clone();
        unknown_token.tokens[0] = 0x7f;
        damaged.push(unknown_token);
        for columns in damaged {
            let error = TextColumns::parse(columns)
                .and_then(|columns| {
                    let places = columns.places(2)?;
                    places.iter().try_for_each(|&p| columns.text(p).map(drop))
                })
                .unwrap_err();
            assert!(
                matches!(error, LogIndexError::CorruptRecord { .. }),
                "{error}"
            );
        }
        let mut cut_dictionary = good.clone();
        cut_dictionary.dictionary.pop();
        assert!(TextColumns::parse(cut_dictionary).is_err());
        let not_utf8 = TextColumnBytes {
            dictionary: vec![2, 0xff, TERMINATOR],
            tokens: vec![0],
            ..TextColumnBytes::default()
        };
        let columns = TextColumns::parse(not_utf8).unwrap();
        let place = columns.places(1).unwrap()[0];
        assert!(columns.text(place).is_err());
    }
}
