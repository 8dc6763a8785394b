//! The stored form of a log record: the bytes kept in the document store, and back.
//!
//! Records are written as one format byte followed by the [postcard] encoding of a
//! [`StoredRecord`] (varint integers, length-prefixed strings, ids and bytes values as raw
//! bytes): about half the bytes of the JSON form, several times cheaper to write, and exact for
//! every double (NaN and infinities included). Format 2 keeps the record's fields in
//! [`LogRecord`]'s order but for two, which it keeps smaller:
//! - the observed time as its distance from the event time (a few bytes, not nine);
//! - the correlation id as the position of the attribute it was read from, when one holds it
//!   (the id is then not stored twice).
//!
//! Format 1 is the postcard encoding of the [`LogRecord`] itself; indexes written before it
//! hold JSON records, which start with `{`. Both still read.
//!
//! postcard is not self-describing: the field order of [`StoredRecord`] (and of [`LogRecord`]
//! for format 1) and the types they hold *are* the format. Changing them needs a new format
//! byte and a decoder kept for the old one; the test `the_encoding_is_pinned` fails when the
//! encoding changes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::LogIndexError;
use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

/// The format byte of postcard-encoded [`LogRecord`]s.
const POSTCARD_V1: u8 = 1;
/// The format byte of postcard-encoded [`StoredRecord`]s.
const POSTCARD_V2: u8 = 2;
/// The first byte of a JSON record (the format of the first indexes).
const JSON_OBJECT_START: u8 = b'{';

/// A record as format 2 stores it: [`LogRecord`]'s fields in its order, the observed time
/// and the correlation id kept smaller. The type parameters are the resource, scope, text,
/// body and attribute list, borrowed to encode and owned to decode (serde writes both alike).
#[derive(Serialize, Deserialize)]
struct StoredRecord<R, S, T, B, A> {
    resource: R,
    scope: S,
    time_unix_nano: u64,
    /// `observed_time_unix_nano - time_unix_nano`, wrapping: a varint of a few bytes where
    /// the two are close (the observed time itself where the event time is 0).
    observed_offset: i64,
    severity_number: i32,
    severity_text: T,
    body: B,
    attributes: A,
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    event_name: T,
    correlation: StoredCorrelation<T>,
}

/// A stored record as read back.
type OwnedStoredRecord =
    StoredRecord<Resource, InstrumentationScope, String, AttributeValue, Vec<Attribute>>;

/// Where a stored record's correlation id is.
#[derive(Serialize, Deserialize)]
pub(super) enum StoredCorrelation<T> {
    /// The record has none.
    None,
    /// The value of the string attribute at this position (the first that equals it).
    Attribute(u32),
    /// Held here: no attribute holds it.
    Own(T),
}

impl<'a> StoredCorrelation<&'a str> {
    /// Where `record`'s correlation id is to be kept.
    pub(super) fn of(record: &'a LogRecord) -> Self {
        match record.correlation_id.as_deref() {
            None => Self::None,
            Some(id) => match correlation_source(&record.attributes, id)
                .and_then(|position| u32::try_from(position).ok())
            {
                Some(position) => Self::Attribute(position),
                None => Self::Own(id),
            },
        }
    }
}

impl StoredCorrelation<String> {
    /// The correlation id this place names among `attributes`.
    pub(super) fn resolve(self, attributes: &[Attribute]) -> Result<Option<String>, LogIndexError> {
        match self {
            Self::None => Ok(None),
            Self::Own(id) => Ok(Some(id)),
            Self::Attribute(position) => {
                let attribute = usize::try_from(position)
                    .ok()
                    .and_then(|position| attributes.get(position));
                match attribute.map(|attribute| &attribute.value) {
                    Some(AttributeValue::String(id)) => Ok(Some(id.clone())),
                    _ => Err(LogIndexError::corrupt(format!(
                        "no string attribute at {position} holds the correlation id"
                    ))),
                }
            }
        }
    }
}

/// Appends the stored form of `record` to `out`, in format 1 (the [`LogRecord`] itself) for
/// indexes older than format 5, so a partition is wholly readable by the binaries that wrote
/// its format.
pub(crate) fn encode_format_1(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), LogIndexError> {
    out.push(POSTCARD_V1);
    postcard::to_io(record, &mut *out)
        .map(|_| ())
        .map_err(|error| LogIndexError::EncodeRecord(error.to_string()))
}

/// Appends the stored form of `record` to `out`, in format 2 (for indexes of format 5 on).
pub(crate) fn encode(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), LogIndexError> {
    out.push(POSTCARD_V2);
    let correlation = StoredCorrelation::of(record);
    let stored = StoredRecord {
        resource: &*record.resource,
        scope: &*record.scope,
        time_unix_nano: record.time_unix_nano,
        observed_offset: record
            .observed_time_unix_nano
            .wrapping_sub(record.time_unix_nano) as i64,
        severity_number: record.severity_number,
        severity_text: record.severity_text.as_str(),
        body: &record.body,
        attributes: &record.attributes[..],
        dropped_attributes_count: record.dropped_attributes_count,
        flags: record.flags,
        trace_id: record.trace_id,
        span_id: record.span_id,
        event_name: record.event_name.as_str(),
        correlation,
    };
    postcard::to_io(&stored, &mut *out)
        .map(|_| ())
        .map_err(|error| LogIndexError::EncodeRecord(error.to_string()))
}

/// The position of the attribute a correlation id was read from: the first string attribute
/// with its value (which one it was does not change what the record reads as).
pub(crate) fn correlation_source(attributes: &[Attribute], correlation_id: &str) -> Option<usize> {
    attributes.iter().position(|attribute| {
        matches!(&attribute.value, AttributeValue::String(text) if text == correlation_id)
    })
}

/// The record a format 2 stored record holds.
fn from_stored(stored: OwnedStoredRecord) -> Result<LogRecord, LogIndexError> {
    let correlation_id = stored.correlation.resolve(&stored.attributes)?;
    Ok(LogRecord {
        resource: Arc::new(stored.resource),
        scope: Arc::new(stored.scope),
        time_unix_nano: stored.time_unix_nano,
        observed_time_unix_nano: stored
            .time_unix_nano
            .wrapping_add(stored.observed_offset as u64),
        severity_number: stored.severity_number,
        severity_text: stored.severity_text,
        body: stored.body,
        attributes: stored.attributes,
        dropped_attributes_count: stored.dropped_attributes_count,
        flags: stored.flags,
        trace_id: stored.trace_id,
        span_id: stored.span_id,
        event_name: stored.event_name,
        correlation_id,
    })
}

/// A `T` that fills `bytes` exactly.
pub(super) fn take_all<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, LogIndexError> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|error| LogIndexError::corrupt(error.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(LogIndexError::corrupt(format!(
            "{} bytes after the record",
            rest.len()
        )))
    }
}

/// Reads a record stored by [`encode`], or by the formats of earlier indexes.
pub(crate) fn decode(bytes: &[u8]) -> Result<LogRecord, LogIndexError> {
    match bytes.first() {
        Some(&POSTCARD_V2) => {
            let stored: OwnedStoredRecord = take_all(&bytes[1..])?;
            from_stored(stored)
        }
        Some(&POSTCARD_V1) => take_all(&bytes[1..]),
        Some(&JSON_OBJECT_START) => {
            serde_json::from_slice(bytes).map_err(|error| LogIndexError::corrupt(error.to_string()))
        }
        Some(other) => Err(LogIndexError::corrupt(format!(
            "unknown format byte {other:#04x}"
        ))),
        None => Err(LogIndexError::corrupt("no bytes".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::logs::test_records::{fixture, fixture_with_request_ids, record};
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
            assert_eq!(bytes[0], POSTCARD_V2);
            let back = decode(&bytes).unwrap();
            assert!(same(&back, original), "{back:?}\n{original:?}");
        }
    }

    #[test]
    fn correlation_ids_read_back_from_their_attribute_or_their_own_place() {
        // From the attribute they were read from (`x-request-id` after another attribute for
        // record 7), held apart when no attribute has them, absent when there is none.
        let mut records = fixture_with_request_ids();
        records.push(fixture()[0].clone());
        let mut without = fixture()[1].clone();
        without.correlation_id = None;
        records.push(without);
        // Wrapping distances: an observed time before the event, and at the extremes.
        let mut extremes = fixture()[2].clone();
        (extremes.time_unix_nano, extremes.observed_time_unix_nano) = (u64::MAX, 0);
        records.push(extremes);
        let mut early = fixture()[3].clone();
        early.observed_time_unix_nano = early.time_unix_nano - 7;
        records.push(early);
        for original in &records {
            assert_eq!(&decode(&encoded(original)).unwrap(), original);
        }
        // The id read from an attribute is not stored twice.
        let with_attribute = &fixture_with_request_ids()[2];
        let mut format_1 = Vec::new();
        encode_format_1(with_attribute, &mut format_1).unwrap();
        let saved = format_1.len() - encoded(with_attribute).len();
        assert!(saved >= "req-3".len(), "saved {saved} bytes");
    }

    #[test]
    fn format_1_records_still_read_and_are_still_written_as_before() {
        let bytes = hex::decode(PINNED_FORMAT_1_FIXTURE_0).unwrap();
        assert_eq!(decode(&bytes).unwrap(), fixture()[0]);
        let mut written = Vec::new();
        encode_format_1(&fixture()[0], &mut written).unwrap();
        assert_eq!(written, bytes);
        for original in fixture_with_request_ids() {
            written.clear();
            encode_format_1(&original, &mut written).unwrap();
            assert_eq!(decode(&written).unwrap(), original);
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
            // Format 2 naming attribute 9 as the correlation id's place: there is none.
            &with_correlation_at(9)[..],
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
        // The correlation id read from its attribute: the record ends with the variant (1)
        // and the attribute's position (2), and reads back from the pinned bytes.
        let with_attribute = &fixture_with_request_ids()[0];
        let bytes = encoded(with_attribute);
        assert_eq!(hex::encode(&bytes), PINNED_FIXTURE_0_WITH_REQUEST_ID);
        let pinned = hex::decode(PINNED_FIXTURE_0_WITH_REQUEST_ID).unwrap();
        assert_eq!(&decode(&pinned).unwrap(), with_attribute);
    }

    /// Record 1 of the fixture with its correlation place rewritten to `position`.
    fn with_correlation_at(position: u8) -> Vec<u8> {
        let record = &fixture_with_request_ids()[0];
        let mut bytes = encoded(record);
        // The record ends with the variant (1: attribute) and the position, one byte each.
        let last = bytes.len() - 1;
        assert_eq!(bytes[last - 1..], [1, 2]);
        bytes[last] = position;
        bytes
    }

    const PINNED_FIXTURE_0: &str = concat!(
        "02020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
        "000b736b657765722e7465737403312e300000008094ffe7f38284d3170a1204494e464f011e7573657220",
        "6c6f67696e2073756363656564656420666f7220616c696365020b687474702e6d6574686f640103474554",
        "10687474702e7374617475735f636f646503900300010110a5a5a5a5a5a5a5a50000000000000001010880",
        "000000000000010002057265712d31",
    );

    const PINNED_FIXTURE_0_WITH_REQUEST_ID: &str = concat!(
        "02020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
        "000b736b657765722e7465737403312e300000008094ffe7f38284d3170a1204494e464f011e7573657220",
        "6c6f67696e2073756363656564656420666f7220616c696365030b687474702e6d6574686f640103474554",
        "10687474702e7374617475735f636f64650390030a726571756573742e696401057265712d3100010110a5",
        "a5a5a5a5a5a5a5000000000000000101088000000000000001000102",
    );

    /// Record 1 of the fixture as format 1 stored it.
    const PINNED_FORMAT_1_FIXTURE_0: &str = concat!(
        "01020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
        "000b736b657765722e7465737403312e300000008094ffe7f38284d3178594ffe7f38284d3171204494e46",
        "4f011e75736572206c6f67696e2073756363656564656420666f7220616c696365020b687474702e6d6574",
        "686f64010347455410687474702e7374617475735f636f646503900300010110a5a5a5a5a5a5a5a5000000",
        "0000000001010880000000000000010001057265712d31",
    );
}
