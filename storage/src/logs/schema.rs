//! The tantivy schema of the log index and the mapping of one [`LogRecord`] to one document.
//!
//! This file decides what is indexed, how, and what is stored; it runs no query and touches
//! no directory. Field names are constants here so the in-memory matcher
//! ([`super::text_match`]) resolves `field:value` clauses exactly as tantivy's query parser does.

use std::borrow::Cow;

use tantivy::schema::{
    BytesOptions, Field, FieldType, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{TantivyDocument, Term};

use super::LogIndexError;
use super::record_batch::BatchVersion;
use super::stored_record::{self, correlation_source};
use super::streams::{level_code, line_bytes};
use crate::model::{Attribute, AttributeValue, LogRecord};

/// Effective time (`time_unix_nano`, else observed), u64 Unix nanoseconds; fast only.
pub(crate) const TIMESTAMP: &str = "timestamp";
/// OTLP severity number, i64; indexed and fast.
pub(crate) const SEVERITY_NUMBER: &str = "severity_number";
/// Severity text as sent, exact.
pub(crate) const SEVERITY_TEXT: &str = "severity_text";
/// `service.name` of the resource (or `unknown_service`), exact.
pub(crate) const SERVICE_NAME: &str = "service_name";
/// Trace id: its [`IdDigest`] as one binary term (format 5); its 16 bytes (formats 3 and 4);
/// lowercase hex text before.
pub(crate) const TRACE_ID: &str = "trace_id";
/// Span id: its [`IdDigest`] (format 5); its 8 bytes (formats 3 and 4); hex text before.
pub(crate) const SPAN_ID: &str = "span_id";
/// Request correlation id: its [`IdDigest`] as one binary term (format 5); exact text
/// before.
pub(crate) const CORRELATION_ID: &str = "correlation_id";
/// The key of the attribute the correlation id was read from, exact (format 3): that
/// attribute is left out of [`ATTRIBUTES`], so its value is indexed once, and a query on it
/// is answered through this field and [`CORRELATION_ID`] (see `query_rewrite`).
pub(crate) const CORRELATION_KEY: &str = "correlation_key";
/// Body text, tokenized by tantivy's `default` tokenizer, with positions.
pub(crate) const BODY: &str = "body";
/// Record attributes as a JSON object with raw (exact) string values.
pub(crate) const ATTRIBUTES: &str = "attributes";
/// The whole record in its stored form ([`super::stored_record`]): the only stored field of
/// formats 1 to 5.
pub(crate) const RECORD: &str = "record";
/// A batch of records ([`super::record_batch`], version 1), on a batch document: the only
/// stored field of format 6. A batch document precedes its records in its segment (see
/// [`LogFields::batch_document`]).
pub(crate) const RECORD_BATCH: &str = "record_batch";
/// A batch of records in version 2 (columns compressed apart, text bodies as token columns):
/// the only stored field of format 7, as [`RECORD_BATCH`] is of format 6.
pub(crate) const RECORD_BATCH_V2: &str = "record_batch_v2";
/// A batch of records in version 3 (version 2 without event times: a record's time is its
/// document's `timestamp`): the only stored field of format 8.
pub(crate) const RECORD_BATCH_V3: &str = "record_batch_v3";
/// [`BATCH_MARKER_VALUE`] on batch documents, u64; indexed only (format 6 and later): every query
/// excludes its documents, which are not records, and its postings are where each
/// segment's batches are (a record's batch is the last one before it).
pub(crate) const BATCH_MARKER: &str = "batch_marker";
/// The value of [`BATCH_MARKER`].
const BATCH_MARKER_VALUE: u64 = 1;
/// The record's stream id in its partition's stream catalog, u64; fast only (format 2): an
/// inverted index of it cost ingest time and no query needs it (selectors on stream labels
/// resolve to ids through the catalog).
pub(crate) const STREAM_ID: &str = "stream_id";
/// The length of the record's line (its body as LogQL reads it), u64; fast (format 2).
pub(crate) const LINE_BYTES: &str = "line_bytes";
/// The record's level code (`streams::LEVELS`), u64; fast (format 2).
pub(crate) const LEVEL: &str = "level";

/// The raw tokenizer tantivy registers by default: the whole value is one token.
const RAW_TOKENIZER: &str = "raw";
/// The tokenizer tantivy registers by default: split on non-alphanumerics, drop tokens of 40
/// bytes or more, lowercase.
pub(crate) const DEFAULT_TOKENIZER: &str = "default";

/// Bytes a document takes beside its stored record and body: ids, names, numbers and
/// attributes, with tantivy's per-value headers.
const DOCUMENT_SPARE_BYTES: usize = 256;

/// The format new indexes are written in. 1: the first; 2: stream ids, line lengths and
/// levels as fast fields; 3: trace and span ids as binary terms and the correlation attribute
/// indexed once; 4: the body's doc ids only, without freqs and positions; 5: trace, span and
/// correlation ids as their [`IdDigest`]; 6: records stored by the batch
/// ([`super::record_batch`]) instead of one per document; 7: batches of version 2 (each
/// column compressed apart, text bodies as token columns); 8: ids as 3-byte digests, batches
/// of version 3 (event times read from the `timestamp` column, not kept twice). Every format
/// stays readable (and keeps taking records in its own format).
pub(crate) const CURRENT_FORMAT: u32 = 8;

/// The most bytes an [`IdDigest`] has (formats 5 to 7; format 8 keeps 3).
const MAX_ID_DIGEST_BYTES: usize = 4;

/// The term an index of format 5 or later keeps for an id (trace, span or correlation): the
/// first bytes of a hash of its bytes, 4 in formats 5 to 7, 3 from format 8. An id's own bytes
/// are random and unique per request, so as terms they were most of the term dictionary
/// (16 + 8 + ~20 bytes a record, ~54 bytes with the dictionary's overhead); 4 bytes keep ~10
/// bytes an id, 3 bytes ~8 (measured on 800,000 random ids in one segment: term dictionary
/// 7.2 bytes an id with 4, 5.2 with 3, postings 3.0 either way: the dictionary's last level
/// goes). Distinct ids may share a digest (in a day of 10M records, a lookup meets another
/// id's record about once in 400 with 4 bytes, 0.6 times with 3), so the index answers an id
/// with a superset and every record found is checked against the exact id (`query_rewrite`).
///
/// FNV-1a over the bytes, then splitmix64's finalizer (ids are not always random: 64-bit
/// Jaeger trace ids are zero-padded), big-endian top bytes. Part of the format: the test
/// `id_digests_are_pinned` fails when it changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdDigest {
    bytes: [u8; MAX_ID_DIGEST_BYTES],
    len: usize,
}

impl IdDigest {
    /// The digest of `id` in `len` bytes (at most 4).
    pub(crate) fn of(id: &[u8], len: usize) -> Self {
        debug_assert!(len <= MAX_ID_DIGEST_BYTES, "a digest of {len} bytes");
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in id {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let top = crate::id_hash::mix(hash).to_be_bytes();
        Self {
            bytes: [top[0], top[1], top[2], top[3]],
            len: len.min(MAX_ID_DIGEST_BYTES),
        }
    }
}

impl AsRef<[u8]> for IdDigest {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Handles to every field of the log schema, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct LogFields {
    pub(crate) schema: Schema,
    /// The index format these fields describe ([`CURRENT_FORMAT`] or older).
    pub(crate) format: u32,
    pub(crate) timestamp: Field,
    pub(crate) severity_number: Field,
    pub(crate) severity_text: Field,
    pub(crate) service_name: Field,
    pub(crate) trace_id: Field,
    pub(crate) span_id: Field,
    pub(crate) correlation_id: Field,
    pub(crate) body: Field,
    pub(crate) attributes: Field,
    /// Formats 1 to 5: each document stores its record.
    pub(crate) record: Option<Field>,
    /// Format 6 and later: records are stored by the batch.
    pub(crate) batches: Option<BatchFields>,
    /// Format 2 and later: indexes of format 1 have no stream ids.
    pub(crate) stream_id: Option<Field>,
    /// Format 2 and later.
    pub(crate) line_bytes: Option<Field>,
    /// Format 2 and later.
    pub(crate) level: Option<Field>,
    /// Format 3 and later.
    pub(crate) correlation_key: Option<Field>,
}

/// The fields of a format 6 or later index that store records by the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchFields {
    /// [`RECORD_BATCH`] (format 6), [`RECORD_BATCH_V2`] (format 7) or [`RECORD_BATCH_V3`] (format 8).
    pub(crate) records: Field,
    /// How the batches in `records` are written.
    pub(crate) version: BatchVersion,
    /// [`BATCH_MARKER`].
    pub(crate) marker: Field,
}

impl BatchFields {
    /// The term every batch document has and no record document has.
    pub(crate) fn marker_term(&self) -> Term {
        Term::from_field_u64(self.marker, BATCH_MARKER_VALUE)
    }
}

impl LogFields {
    /// Builds the schema. Changing any option here changes the on-disk format: an existing
    /// index with a different schema refuses to open.
    pub(crate) fn new() -> Self {
        let mut builder = Schema::builder();
        // Exact fields: one raw token, doc ids only (no freqs, positions or norms).
        let exact_indexing = TextFieldIndexing::default()
            .set_tokenizer(RAW_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false);
        let exact = TextOptions::default().set_indexing_options(exact_indexing.clone());
        // Ids: one binary term each (their digest), doc ids only (bytes fields have no norms
        // by default).
        let binary_id = BytesOptions::default().set_indexed();
        // Body: doc ids only (format 4). Results are ordered by time, never by score, so
        // freqs and norms serve nothing; phrases are answered by their terms and checked on
        // the record (`query_rewrite::for_body_without_positions`), so positions, the costliest
        // part of indexing, merging and storing the body, are not kept.
        let body = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(DEFAULT_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let attributes = JsonObjectOptions::default()
            .set_indexing_options(exact_indexing)
            .set_expand_dots_enabled();

        // The timestamp is fast only: tantivy 0.27 runs a RangeQuery on a fast numeric field
        // through the column, so inverted-index terms (one per distinct nanosecond) would be
        // dead weight.
        let timestamp = builder.add_u64_field(TIMESTAMP, NumericOptions::default().set_fast());
        let severity_number = builder.add_i64_field(
            SEVERITY_NUMBER,
            NumericOptions::default().set_indexed().set_fast(),
        );
        let severity_text = builder.add_text_field(SEVERITY_TEXT, exact.clone());
        let service_name = builder.add_text_field(SERVICE_NAME, exact.clone());
        let trace_id = builder.add_bytes_field(TRACE_ID, binary_id.clone());
        let span_id = builder.add_bytes_field(SPAN_ID, binary_id.clone());
        let correlation_id = builder.add_bytes_field(CORRELATION_ID, binary_id);
        let correlation_key = builder.add_text_field(CORRELATION_KEY, exact);
        let body = builder.add_text_field(BODY, body);
        let attributes = builder.add_json_field(ATTRIBUTES, attributes);
        let batches = BatchFields {
            records: builder.add_bytes_field(RECORD_BATCH_V3, STORED),
            version: BatchVersion::V3,
            marker: builder.add_u64_field(BATCH_MARKER, NumericOptions::default().set_indexed()),
        };
        let stream_id = builder.add_u64_field(STREAM_ID, NumericOptions::default().set_fast());
        let line_bytes = builder.add_u64_field(LINE_BYTES, NumericOptions::default().set_fast());
        let level = builder.add_u64_field(LEVEL, NumericOptions::default().set_fast());
        Self {
            schema: builder.build(),
            format: CURRENT_FORMAT,
            timestamp,
            severity_number,
            severity_text,
            service_name,
            trace_id,
            span_id,
            correlation_id,
            body,
            attributes,
            record: None,
            batches: Some(batches),
            stream_id: Some(stream_id),
            line_bytes: Some(line_bytes),
            level: Some(level),
            correlation_key: Some(correlation_key),
        }
    }

    /// The fields of an existing index's schema, of any format: 8 with version 3 record batches, 7
    /// with version 2, 6 with version 1, 5 with
    /// a binary correlation id (its digest), 4 with a body of doc ids only, 3 with binary ids, 2 with stream ids,
    /// else 1.
    pub(crate) fn from_schema(schema: Schema) -> Result<Self, LogIndexError> {
        let field = |name: &str| schema.get_field(name).map_err(LogIndexError::from);
        let is_bytes = |name: &str| {
            field(name).map(|field| {
                matches!(
                    schema.get_field_entry(field).field_type(),
                    FieldType::Bytes(_)
                )
            })
        };
        let binary_ids = is_bytes(TRACE_ID)?;
        let id_digests = is_bytes(CORRELATION_ID)?;
        let body_positions = match schema.get_field_entry(field(BODY)?).field_type() {
            FieldType::Str(options) => options
                .get_indexing_options()
                .is_some_and(|indexing| indexing.index_option().has_positions()),
            _ => false,
        };
        let stream_id = schema.get_field(STREAM_ID).ok();
        let correlation_key = schema.get_field(CORRELATION_KEY).ok();
        let record = schema.get_field(RECORD).ok();
        let batch_fields: Vec<(Field, BatchVersion)> = [
            (RECORD_BATCH, BatchVersion::V1),
            (RECORD_BATCH_V2, BatchVersion::V2),
            (RECORD_BATCH_V3, BatchVersion::V3),
        ]
        .into_iter()
        .filter_map(|(name, version)| Some((schema.get_field(name).ok()?, version)))
        .collect();
        let batch_field = match batch_fields[..] {
            [only] => Some(only),
            _ => None,
        };
        let batches = match (batch_field, schema.get_field(BATCH_MARKER)) {
            (Some((records, version)), Ok(marker)) => Some(BatchFields {
                records,
                version,
                marker,
            }),
            _ => None,
        };
        let format = match (
            batches.is_some() && record.is_none(),
            batches.is_none() && record.is_some(),
            id_digests,
            binary_ids,
            correlation_key,
            stream_id,
            body_positions,
        ) {
            (true, false, true, true, Some(_), Some(_), false) => {
                match batches.map(|b| b.version) {
                    Some(BatchVersion::V3) => 8,
                    Some(BatchVersion::V2) => 7,
                    _ => 6,
                }
            }
            (false, true, true, true, Some(_), Some(_), false) => 5,
            (false, true, false, true, Some(_), Some(_), false) => 4,
            (false, true, false, true, Some(_), Some(_), true) => 3,
            (false, true, false, false, None, Some(_), true) => 2,
            (false, true, false, false, None, None, true) => 1,
            _ => {
                return Err(tantivy::TantivyError::SchemaError(
                    "the log index's schema is of no known format".to_string(),
                )
                .into());
            }
        };
        Ok(Self {
            format,
            timestamp: field(TIMESTAMP)?,
            severity_number: field(SEVERITY_NUMBER)?,
            severity_text: field(SEVERITY_TEXT)?,
            service_name: field(SERVICE_NAME)?,
            trace_id: field(TRACE_ID)?,
            span_id: field(SPAN_ID)?,
            correlation_id: field(CORRELATION_ID)?,
            body: field(BODY)?,
            attributes: field(ATTRIBUTES)?,
            record,
            batches,
            stream_id,
            line_bytes: schema.get_field(LINE_BYTES).ok(),
            level: schema.get_field(LEVEL).ok(),
            correlation_key,
            schema,
        })
    }

    /// Whether trace and span ids are binary terms (format 3 and later), not hex text.
    pub(crate) fn binary_ids(&self) -> bool {
        self.format >= 3
    }

    /// Whether ids are indexed as their [`IdDigest`] (format 5 and later), so the index
    /// finds a superset of an id's records, each to be checked.
    pub(crate) fn id_digests(&self) -> bool {
        self.format >= 5
    }

    /// The bytes of this format's [`IdDigest`]s: 4 in formats 5 to 7, 3 from format 8.
    pub(crate) fn id_digest_bytes(&self) -> usize {
        if self.format >= 8 { 3 } else { 4 }
    }

    /// `id`'s digest as this format keeps it.
    pub(crate) fn id_digest(&self, id: &[u8]) -> IdDigest {
        IdDigest::of(id, self.id_digest_bytes())
    }

    /// Whether the body keeps token positions, so the index answers phrases itself (formats
    /// 1 to 3); format 4 answers them by their terms, checked on each record.
    pub(crate) fn body_positions(&self) -> bool {
        self.format < 4
    }

    /// Turns one record into one document: the indexed projections plus, up to format 5, the
    /// stored record (its format 2 in format 5, format 1 before; formats 6 and later store records
    /// by the batch, see [`Self::batch_document`]). `scratch` is reused between calls for the
    /// stored form.
    pub(crate) fn to_document(
        &self,
        record: &LogRecord,
        stream_id: u32,
        scratch: &mut Vec<u8>,
    ) -> Result<TantivyDocument, LogIndexError> {
        scratch.clear();
        if self.record.is_some() {
            if self.id_digests() {
                stored_record::encode(record, scratch)?;
            } else {
                stored_record::encode_format_1(record, scratch)?;
            }
        }
        let body = body_text(&record.body);
        // Sized for what the document copies in, so it is not grown (and moved) field by field.
        let mut document =
            TantivyDocument::with_capacity(scratch.len() + body.len() + DOCUMENT_SPARE_BYTES);
        self.add_numbers(&mut document, record, stream_id);
        if !record.severity_text.is_empty() {
            document.add_text(self.severity_text, &record.severity_text);
        }
        document.add_text(self.service_name, record.resource.service_name());
        if let Some(trace_id) = record.trace_id {
            self.add_binary_id(&mut document, self.trace_id, &trace_id.0);
        }
        if let Some(span_id) = record.span_id {
            self.add_binary_id(&mut document, self.span_id, &span_id.0);
        }
        // Format 3 indexes the correlation attribute once, as the correlation id.
        let mut correlation_attribute = None;
        if let Some(correlation_id) = &record.correlation_id {
            if self.id_digests() {
                let digest = self.id_digest(correlation_id.as_bytes());
                document.add_bytes(self.correlation_id, digest.as_ref());
            } else {
                document.add_text(self.correlation_id, correlation_id);
            }
            if let Some(key_field) = self.correlation_key {
                correlation_attribute = correlation_source(&record.attributes, correlation_id);
                if let Some(index) = correlation_attribute {
                    document.add_text(key_field, &record.attributes[index].key);
                }
            }
        }
        if !body.is_empty() {
            document.add_text(self.body, &body);
        }
        if record.attributes.len() > usize::from(correlation_attribute.is_some()) {
            let object = attributes_object(&record.attributes, correlation_attribute);
            document.add_field_value(self.attributes, &object);
        }
        if let Some(record_field) = self.record {
            document.add_bytes(record_field, scratch);
        }
        Ok(document)
    }

    /// The document that stores `batch` (the bytes of [`super::record_batch::encode`]), for
    /// an index of format 6 or later: it goes right before the batch's records, in the same group of
    /// operations, so it lands in their segment right before them (tantivy keeps a group in
    /// one segment and merges keep each segment's documents in order): a record's position
    /// in its batch is its distance from the batch document, less one.
    ///
    /// It also holds the numbers of its first record, `first` (with its stream id), in
    /// every fast field, so that no column needs an index of which documents have values
    /// (measured: half a byte a record for each column), and no column's range (what its
    /// values are packed against) or time bounds grow. Queries never find it (see
    /// [`BATCH_MARKER`]).
    pub(crate) fn batch_document(
        &self,
        batches: BatchFields,
        batch: &[u8],
        (first, stream_id): (&LogRecord, u32),
    ) -> TantivyDocument {
        let mut document = TantivyDocument::with_capacity(batch.len() + DOCUMENT_SPARE_BYTES);
        document.add_u64(batches.marker, BATCH_MARKER_VALUE);
        document.add_bytes(batches.records, batch);
        self.add_numbers(&mut document, first, stream_id);
        document
    }

    /// The record's values of the numeric fields: time, severity, and from format 2 its
    /// stream, line length and level.
    fn add_numbers(&self, document: &mut TantivyDocument, record: &LogRecord, stream_id: u32) {
        if let (Some(stream_field), Some(bytes_field), Some(level_field)) =
            (self.stream_id, self.line_bytes, self.level)
        {
            document.add_u64(stream_field, u64::from(stream_id));
            document.add_u64(bytes_field, line_bytes(&record.body));
            let level = level_code(record.severity_number, &record.severity_text);
            document.add_u64(level_field, u64::from(level));
        }
        document.add_u64(self.timestamp, record.effective_time_unix_nano());
        document.add_i64(self.severity_number, i64::from(record.severity_number));
    }

    /// A trace or span id as the format keeps it: its digest, its bytes, or hex text.
    fn add_binary_id(&self, document: &mut TantivyDocument, field: Field, id: &[u8]) {
        if self.id_digests() {
            document.add_bytes(field, self.id_digest(id).as_ref());
        } else if self.binary_ids() {
            document.add_bytes(field, id);
        } else {
            document.add_text(field, hex::encode(id));
        }
    }

    /// The term that finds the records of a trace or span id (a superset with digests, see
    /// [`IdDigest`]).
    pub(crate) fn id_term(&self, field: Field, id: &[u8]) -> Term {
        if self.id_digests() {
            Term::from_field_bytes(field, self.id_digest(id).as_ref())
        } else if self.binary_ids() {
            Term::from_field_bytes(field, id)
        } else {
            Term::from_field_text(field, &hex::encode(id))
        }
    }

    /// The term that finds the records of a correlation id (a superset with digests).
    pub(crate) fn correlation_term(&self, correlation_id: &str) -> Term {
        if self.id_digests() {
            let digest = self.id_digest(correlation_id.as_bytes());
            Term::from_field_bytes(self.correlation_id, digest.as_ref())
        } else {
            Term::from_field_text(self.correlation_id, correlation_id)
        }
    }
}

/// The text of a body as indexed for full-text search: strings as they are, scalars in their
/// text form, maps as `key value` pairs and arrays as their elements, space separated (so a
/// structured body is searchable by its words, not by JSON punctuation).
pub(crate) fn body_text(body: &AttributeValue) -> Cow<'_, str> {
    if let AttributeValue::String(text) = body {
        return Cow::Borrowed(text);
    }
    let mut text = String::new();
    append_body_text(body, &mut text);
    Cow::Owned(text)
}

fn append_body_text(value: &AttributeValue, text: &mut String) {
    match value {
        AttributeValue::Array(values) => {
            for value in values {
                append_body_text(value, text);
            }
        }
        AttributeValue::Map(entries) => {
            for entry in entries {
                push_word(text, &entry.key);
                append_body_text(&entry.value, text);
            }
        }
        scalar => push_word(text, &scalar.to_text()),
    }
}

fn push_word(text: &mut String, word: &str) {
    if !word.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
}

/// Record attributes as one JSON object, but for the one at `skip`. Empty values are left
/// out; bytes become hex text.
fn attributes_object(attributes: &[Attribute], skip: Option<usize>) -> OwnedValue {
    OwnedValue::Object(
        attributes
            .iter()
            .enumerate()
            .filter(|(index, _)| Some(*index) != skip)
            .filter_map(|(_, attribute)| {
                json_value(&attribute.value).map(|value| (attribute.key.clone(), value))
            })
            .collect(),
    )
}

fn json_value(value: &AttributeValue) -> Option<OwnedValue> {
    Some(match value {
        AttributeValue::Empty => return None,
        AttributeValue::String(text) => OwnedValue::Str(text.clone()),
        AttributeValue::Bool(flag) => OwnedValue::Bool(*flag),
        AttributeValue::Int(number) => OwnedValue::I64(*number),
        AttributeValue::Double(number) => OwnedValue::F64(*number),
        AttributeValue::Bytes(bytes) => OwnedValue::Str(hex::encode(bytes)),
        AttributeValue::Array(values) => {
            OwnedValue::Array(values.iter().filter_map(json_value).collect())
        }
        AttributeValue::Map(entries) => OwnedValue::Object(
            entries
                .iter()
                .filter_map(|entry| {
                    json_value(&entry.value).map(|value| (entry.key.clone(), value))
                })
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_record_batches_are_stored_and_only_numbers_are_fast() {
        let fields = LogFields::new();
        for (_, entry) in fields.schema.fields() {
            let name = entry.name();
            assert_eq!(entry.is_stored(), name == RECORD_BATCH_V3, "{name}");
            assert_eq!(
                entry.is_fast(),
                [TIMESTAMP, SEVERITY_NUMBER, STREAM_ID, LINE_BYTES, LEVEL].contains(&name),
                "{name}"
            );
        }
        let back = LogFields::from_schema(fields.schema.clone()).unwrap();
        assert_eq!(back.format, CURRENT_FORMAT);
        assert!(back.record.is_none() && back.batches.is_some());
    }

    #[test]
    fn id_digests_are_pinned() {
        // If this fails, the digest changed: indexes on disk would no longer find their ids.
        // Keep the old digest for them and give the new one a new format.
        let digest = |id: &[u8], len| hex::encode(IdDigest::of(id, len));
        assert_eq!(digest(b"req-1", 4), "0a2881c3");
        assert_eq!(digest(&[0; 16], 4), "68752350");
        assert_eq!(digest(&[0xA5; 8], 4), "55077c88");
        // Format 8: the first three of the same bytes.
        assert_eq!(digest(b"req-1", 3), "0a2881");
        assert_eq!(digest(&[0; 16], 3), "687523");
        let format_8 = LogFields::new();
        assert_eq!(format_8.format, 8);
        assert_eq!(hex::encode(format_8.id_digest(&[0xA5; 8])), "55077c");
    }

    #[test]
    fn structured_bodies_become_words() {
        let body = AttributeValue::Map(vec![
            Attribute::string("user", "alice"),
            Attribute {
                key: "tries".into(),
                value: AttributeValue::Array(vec![AttributeValue::Int(3), AttributeValue::Empty]),
            },
        ]);
        assert_eq!(body_text(&body), "user alice tries 3");
        assert_eq!(body_text(&AttributeValue::String("plain".into())), "plain");
        assert_eq!(body_text(&AttributeValue::Empty), "");
    }

    #[test]
    fn empty_attribute_values_are_left_out() {
        let object = attributes_object(
            &[
                Attribute::string("a", "x"),
                Attribute {
                    key: "e".into(),
                    value: AttributeValue::Empty,
                },
                Attribute {
                    key: "b".into(),
                    value: AttributeValue::Bytes(vec![0xab]),
                },
                Attribute::string("request.id", "r-1"),
            ],
            Some(3),
        );
        assert_eq!(
            object,
            OwnedValue::Object(vec![
                ("a".into(), OwnedValue::Str("x".into())),
                ("b".into(), OwnedValue::Str("ab".into())),
            ])
        );
    }
}
