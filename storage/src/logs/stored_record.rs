//! The stored form of a log record: the bytes kept in the document store, and back.
//!
//! Records are written as one format byte followed by the [postcard] encoding of the
//! [`LogRecord`] (varint integers, length-prefixed strings, ids and bytes values as raw bytes):
//! about half the bytes of the JSON form, several times cheaper to write, and exact for every
//! double (NaN and infinities included). Indexes written before it hold JSON records, which
//! start with `{`; they still read.
//!
//! postcard is not self-describing: the field order of [`LogRecord`] and the types it holds
//! *are* the format. Changing them needs a new format byte and a decoder kept for the old one;
//! the test `the_encoding_is_pinned` fails when the encoding changes.

use super::LogIndexError;
use crate::model::LogRecord;

/// The format byte of postcard-encoded records.
const POSTCARD_V1: u8 = 1;
/// The first byte of a JSON record (the format of the first indexes).
const JSON_OBJECT_START: u8 = b'{';

/// Appends the stored form of `record` to `out`.
pub(crate) fn encode(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), LogIndexError> {
    out.push(POSTCARD_V1);
    postcard::to_io(record, &mut *out)
        .map(|_| ())
        .map_err(|error| LogIndexError::EncodeRecord(error.to_string()))
}

/// Reads a record stored by [`encode`], or by the JSON format of earlier indexes.
pub(crate) fn decode(bytes: &[u8]) -> Result<LogRecord, LogIndexError> {
    let corrupt = |reason: String| LogIndexError::CorruptRecord { reason };
    match bytes.first() {
        Some(&POSTCARD_V1) => {
            let (record, rest) = postcard::take_from_bytes(&bytes[1..])
                .map_err(|error| corrupt(error.to_string()))?;
            if rest.is_empty() {
                Ok(record)
            } else {
                Err(corrupt(format!("{} bytes after the record", rest.len())))
            }
        }
        Some(&JSON_OBJECT_START) => {
            serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))
        }
        Some(other) => Err(corrupt(format!("unknown format byte {other:#04x}"))),
        None => Err(corrupt("no bytes".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::logs::test_records::{fixture, record};
    use crate::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

    fn encoded(record: &LogRecord) -> Vec<u8> {
        let mut out = Vec::new();
        encode(record, &mut out).unwrap();
        out
    }

    /// Every kind of value, nested, with the doubles JSON cannot hold.
    fn every_value() -> LogRecord {
        let mut record = record(7, "all kinds");
        record.body = AttributeValue::Map(vec![
            Attribute::string("s", "text"),
            Attribute {
                key: "list".into(),
                value: AttributeValue::Array(vec![
                    AttributeValue::Bool(true),
                    AttributeValue::Int(-3),
                    AttributeValue::Double(f64::NAN),
                    AttributeValue::Double(f64::NEG_INFINITY),
                    AttributeValue::Empty,
                    AttributeValue::Bytes(vec![0, 0xff]),
                ]),
            },
        ]);
        record.attributes.push(Attribute {
            key: "ratio".into(),
            value: AttributeValue::Double(0.1),
        });
        record.resource = Arc::new(Resource {
            attributes: vec![Attribute::string("service.name", "checkout")],
            dropped_attributes_count: 2,
            schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
        });
        record.scope = Arc::new(InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            attributes: vec![Attribute::string("k", "v")],
            dropped_attributes_count: 1,
            schema_url: "https://example.com/scope".into(),
        });
        record.event_name = "order.placed".into();
        record.dropped_attributes_count = 4;
        record
    }

    /// Equality that treats NaN as equal to NaN, through the debug form.
    fn same(a: &LogRecord, b: &LogRecord) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn records_read_back_exactly_nan_and_infinity_included() {
        let mut records = fixture();
        records.push(every_value());
        for original in &records {
            let bytes = encoded(original);
            assert_eq!(bytes[0], POSTCARD_V1);
            let back = decode(&bytes).unwrap();
            assert!(same(&back, original), "{back:?}\n{original:?}");
        }
    }

    #[test]
    fn json_records_of_earlier_indexes_still_read() {
        for original in fixture() {
            let json = serde_json::to_vec(&original).unwrap();
            assert_eq!(decode(&json).unwrap(), original);
        }
    }

    #[test]
    fn the_binary_form_is_much_smaller_than_json() {
        let record = &fixture()[2];
        let binary = encoded(record).len();
        let json = serde_json::to_vec(record).unwrap().len();
        assert!(binary * 2 < json, "binary {binary} B, JSON {json} B");
    }

    #[test]
    fn damaged_bytes_are_reported_not_misread() {
        let bytes = encoded(&fixture()[0]);
        for damaged in [
            &bytes[..bytes.len() - 1],
            &bytes[..1],
            &[][..],
            &[9, 1, 2][..],
            b"{not json",
        ] {
            let error = decode(damaged).unwrap_err();
            assert!(
                matches!(error, LogIndexError::CorruptRecord { .. }),
                "{error}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }

    #[test]
    fn the_encoding_is_pinned() {
        // If this fails, the stored format changed: records already on disk would no longer
        // read. Add a new format byte and keep decoding the old one instead.
        let bytes = encoded(&fixture()[0]);
        assert_eq!(hex::encode(&bytes), PINNED_FIXTURE_0);
    }

    const PINNED_FIXTURE_0: &str = concat!(
        "01020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
        "000b736b657765722e7465737403312e300000008094ffe7f38284d3178594ffe7f38284d3171204494e46",
        "4f011e75736572206c6f67696e2073756363656564656420666f7220616c696365020b687474702e6d6574",
        "686f64010347455410687474702e7374617475735f636f646503900300010110a5a5a5a5a5a5a5a5000000",
        "0000000001010880000000000000010001057265712d31",
    );
}
