//! The span file format (`spans-v2`): one row per span with every model field, sorted by
//! `(time slice, trace_id, start_time_unix_nano)` ([`super::SPAN_SLICE_NANOS`]), with a bloom
//! filter on `trace_id` per row group.
//!
//! Builds Arrow batches from spans and spans from Arrow batches; the writer settings for span
//! files live here too. No I/O.

use std::borrow::Borrow;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, ListArray, RecordBatch, StringArray, UInt8Array, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::basic::Encoding;
use parquet::file::properties::{BloomFilterPosition, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::attributes::{AttributesBuilder, AttributesReader, attributes_type};
use super::columns::{IdColumnBuilder, column, optional_id, required_id};
use super::json::{SharedJsonBuilder, SharedJsonReader, shared_json_type};
use super::span_dedicated::{DedicatedTagsBuilder, dedicated_fields};
use super::span_nested::{
    EventsBuilder, EventsReader, LinksBuilder, LinksReader, events_type, links_type,
};
use super::{
    CodecError, EncodedFile, SPANS_FORMAT, START_TIME_COLUMN, TRACE_ID_COLUMN, base_properties,
    write_file,
};
use crate::model::{InstrumentationScope, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};

const SPAN_ID: &str = "span_id";
const PARENT_SPAN_ID: &str = "parent_span_id";
pub(super) const END_TIME: &str = super::END_TIME_COLUMN;
const SERVICE_NAME: &str = super::SERVICE_NAME_COLUMN;
const NAME: &str = super::SPAN_NAME_COLUMN;
const KIND: &str = super::SPAN_KIND_COLUMN;
const STATUS_CODE: &str = super::STATUS_CODE_COLUMN;
const STATUS_MESSAGE: &str = "status_message";
const TRACE_STATE: &str = "trace_state";
const FLAGS: &str = "flags";
const ATTRIBUTES: &str = "attributes";
const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
const EVENTS: &str = "events";
const DROPPED_EVENTS: &str = "dropped_events_count";
const LINKS: &str = "links";
const DROPPED_LINKS: &str = "dropped_links_count";
const RESOURCE: &str = "resource";
const SCOPE: &str = "scope";

/// ZSTD level for span files. On the realistic fixture (20 000 spans) level 1 gave 37.8 bytes a
/// span and level 3 gave 37.6, so the cheaper level wins: spans are the highest-volume flush.
const SPAN_ZSTD_LEVEL: i32 = 1;
/// Target false-positive rate of the `trace_id` bloom filter.
const TRACE_ID_BLOOM_FPP: f64 = 0.01;

static SPAN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(TRACE_ID_COLUMN, IdColumnBuilder::<16>::data_type(), false),
        Field::new(SPAN_ID, IdColumnBuilder::<8>::data_type(), false),
        Field::new(PARENT_SPAN_ID, IdColumnBuilder::<8>::data_type(), true),
        Field::new(START_TIME_COLUMN, DataType::UInt64, false),
        Field::new(END_TIME, DataType::UInt64, false),
        Field::new(SERVICE_NAME, DataType::Utf8, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(KIND, DataType::UInt8, false),
        Field::new(STATUS_CODE, DataType::UInt8, false),
        Field::new(STATUS_MESSAGE, DataType::Utf8, false),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(ATTRIBUTES, attributes_type(), false),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(EVENTS, events_type(), false),
        Field::new(DROPPED_EVENTS, DataType::UInt32, false),
        Field::new(LINKS, links_type(), false),
        Field::new(DROPPED_LINKS, DataType::UInt32, false),
        Field::new(RESOURCE, shared_json_type(), false),
        Field::new(SCOPE, shared_json_type(), false),
    ];
    fields.extend(dedicated_fields());
    Arc::new(Schema::new(fields))
});

/// Sorts by (time slice, trace_id, start time) and encodes. Empty input -> Ok(None).
///
/// Takes spans or references to them, so a flush can encode a buffer it keeps readable
/// without copying it.
pub fn encode_spans<S: Borrow<Span>>(spans: &mut [S]) -> Result<Option<EncodedFile>, CodecError> {
    if spans.is_empty() {
        return Ok(None);
    }
    spans.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        span_sort_key(a).cmp(&span_sort_key(b))
    });
    let (min_time_unix_nano, max_time_unix_nano) =
        spans
            .iter()
            .map(Borrow::borrow)
            .fold((u64::MAX, 0), |(min, max), span: &Span| {
                let end = span.end_time_unix_nano.max(span.start_time_unix_nano);
                (min.min(span.start_time_unix_nano), max.max(end))
            });
    let properties = span_properties(spans.len(), Some((min_time_unix_nano, max_time_unix_nano)))?;
    let bytes = write_file(
        Arc::clone(&SPAN_SCHEMA),
        properties,
        spans,
        |span: &S| span.borrow().estimated_bytes(),
        |chunk| spans_batch(chunk),
    )?;
    Ok(Some(EncodedFile {
        bytes,
        format: SPANS_FORMAT,
        num_rows: spans.len(),
        min_time_unix_nano,
        max_time_unix_nano,
    }))
}

/// The key span files are sorted by.
fn span_sort_key(span: &Span) -> (u64, TraceId, u64) {
    let start = span.start_time_unix_nano;
    (super::span_slice(start), span.trace_id, start)
}

/// Rows per data page. A trace's spans are contiguous in a slice (sorted by trace id), so a
/// lookup decodes one or two pages of each column, not the whole row group: small pages make a
/// lookup cheap and cost a little compression. Measured on 1.4M spans (flush files): 8192
/// rows gave 30.8 bytes a span and 90 ms for 20 traces by id in one request, 2048 rows 32.4
/// bytes and 60 ms, 1024 rows 33.9 bytes and 60 ms.
const SPAN_PAGE_ROWS: usize = 2048;

/// Writer settings of a span file of about `num_spans` rows whose time range is not known yet
/// (compaction appends it with [`super::time_range_metadata`] when the file is finished).
pub fn span_writer_properties(num_spans: usize) -> Result<WriterProperties, CodecError> {
    span_properties(num_spans, None)
}

/// Rows per row group of a span file: the unit a newest-first search reads and stops after,
/// so smaller than other signals' (a tag search over 10M spans took 372 ms with 131,072
/// rows, as several files' newest row groups overlap in time).
const SPAN_ROW_GROUP_ROWS: usize = 32_768;

/// The Parquet leaf of span attributes' text values (the bloom-filtered one).
pub const ATTRIBUTE_TEXT_LEAF: &str = "attributes.list.item.str";

fn attribute_text_path() -> ColumnPath {
    ColumnPath::new(ATTRIBUTE_TEXT_LEAF.split('.').map(str::to_owned).collect())
}

fn span_properties(
    num_spans: usize,
    time_range: Option<(u64, u64)>,
) -> Result<WriterProperties, CodecError> {
    let trace_id = ColumnPath::from(TRACE_ID_COLUMN);
    // At most one trace per span; the writer folds the filter down to what it holds.
    let expected_trace_ids = num_spans.clamp(1, SPAN_ROW_GROUP_ROWS) as u64;
    let mut builder = base_properties(
        SPANS_FORMAT,
        time_range,
        SPAN_ZSTD_LEVEL,
        // The slice is no column, so Parquet's sorting columns cannot say the order.
        &[],
        &[TRACE_ID_COLUMN, START_TIME_COLUMN],
    )?
    .set_column_bloom_filter_enabled(trace_id.clone(), true)
    .set_column_bloom_filter_fpp(trace_id.clone(), TRACE_ID_BLOOM_FPP)
    .set_column_bloom_filter_ndv(trace_id, expected_trace_ids)
    // Text attribute values: a search for an id (`user.id=…`) skips row groups without it.
    // Sized for two distinct values a span; the writer folds it to what it holds.
    .set_column_bloom_filter_enabled(attribute_text_path(), true)
    .set_column_bloom_filter_fpp(attribute_text_path(), TRACE_ID_BLOOM_FPP)
    .set_column_bloom_filter_ndv(attribute_text_path(), 2 * expected_trace_ids)
    .set_bloom_filter_position(BloomFilterPosition::End)
    .set_max_row_group_row_count(Some(SPAN_ROW_GROUP_ROWS))
    .set_data_page_row_count_limit(SPAN_PAGE_ROWS);
    // Timestamps within a trace are close: delta encoding saved ~8% of the file on the fixture.
    for name in [START_TIME_COLUMN, END_TIME] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(builder.build())
}

/// One Arrow batch of the span file schema holding `spans`, in the given order.
pub fn spans_batch<S: Borrow<Span>>(spans: &[S]) -> Result<RecordBatch, CodecError> {
    let num_spans = spans.len();
    let spans = || spans.iter().map(Borrow::borrow);
    let num_attributes = spans().map(|s: &Span| s.attributes.len()).sum();
    let num_events = spans().map(|s: &Span| s.events.len()).sum();
    let num_links = spans().map(|s: &Span| s.links.len()).sum();
    let mut trace_ids = IdColumnBuilder::<16>::with_capacity(num_spans);
    let mut span_ids = IdColumnBuilder::<8>::with_capacity(num_spans);
    let mut parent_span_ids = IdColumnBuilder::<8>::with_capacity(num_spans);
    let mut start_times = Vec::with_capacity(num_spans);
    let mut end_times = Vec::with_capacity(num_spans);
    let mut service_names = StringBuilder::with_capacity(num_spans, num_spans * 12);
    let mut names = StringBuilder::with_capacity(num_spans, num_spans * 24);
    let mut kinds = Vec::with_capacity(num_spans);
    let mut status_codes = Vec::with_capacity(num_spans);
    let mut status_messages = StringBuilder::with_capacity(num_spans, 0);
    let mut trace_states = StringBuilder::with_capacity(num_spans, 0);
    let mut flags = Vec::with_capacity(num_spans);
    let mut attributes = AttributesBuilder::with_capacity(ATTRIBUTES, num_spans, num_attributes);
    let mut dropped_attributes = Vec::with_capacity(num_spans);
    let mut events = EventsBuilder::with_capacity(num_spans, num_events);
    let mut dropped_events = Vec::with_capacity(num_spans);
    let mut links = LinksBuilder::with_capacity(num_spans, num_links);
    let mut dropped_links = Vec::with_capacity(num_spans);
    let mut resources = SharedJsonBuilder::<Resource>::with_capacity(RESOURCE, num_spans);
    let mut scopes = SharedJsonBuilder::<InstrumentationScope>::with_capacity(SCOPE, num_spans);
    let mut dedicated = DedicatedTagsBuilder::with_capacity(num_spans);
    for span in spans() {
        trace_ids.append(Some(span.trace_id.as_bytes()));
        span_ids.append(Some(span.span_id.as_bytes()));
        parent_span_ids.append(span.parent_span_id.as_ref().map(SpanId::as_bytes));
        start_times.push(span.start_time_unix_nano);
        end_times.push(span.end_time_unix_nano);
        service_names.append_value(span.resource.service_name());
        names.append_value(&span.name);
        kinds.push(span.kind as u8);
        status_codes.push(span.status_code as u8);
        status_messages.append_value(&span.status_message);
        trace_states.append_value(&span.trace_state);
        flags.push(span.flags);
        attributes.append(&span.attributes)?;
        dropped_attributes.push(span.dropped_attributes_count);
        events.append(&span.events)?;
        dropped_events.push(span.dropped_events_count);
        links.append(&span.links)?;
        dropped_links.push(span.dropped_links_count);
        resources.append(&span.resource)?;
        scopes.append(&span.scope)?;
        dedicated.append(&span.attributes);
    }
    let mut columns: Vec<ArrayRef> = vec![
        trace_ids.finish()?,
        span_ids.finish()?,
        parent_span_ids.finish()?,
        Arc::new(UInt64Array::from(start_times)),
        Arc::new(UInt64Array::from(end_times)),
        Arc::new(service_names.finish()),
        Arc::new(names.finish()),
        Arc::new(UInt8Array::from(kinds)),
        Arc::new(UInt8Array::from(status_codes)),
        Arc::new(status_messages.finish()),
        Arc::new(trace_states.finish()),
        Arc::new(UInt32Array::from(flags)),
        attributes.finish()?,
        Arc::new(UInt32Array::from(dropped_attributes)),
        events.finish()?,
        Arc::new(UInt32Array::from(dropped_events)),
        links.finish()?,
        Arc::new(UInt32Array::from(dropped_links)),
        resources.finish()?,
        scopes.finish()?,
    ];
    columns.extend(dedicated.finish());
    Ok(RecordBatch::try_new(Arc::clone(&SPAN_SCHEMA), columns)?)
}

/// Decodes every row of a batch read from a span file (any projection-free batch of the span schema).
pub fn decode_spans(batch: &RecordBatch) -> Result<Vec<Span>, CodecError> {
    let trace_ids = column::<FixedSizeBinaryArray>(batch, TRACE_ID_COLUMN)?;
    let span_ids = column::<FixedSizeBinaryArray>(batch, SPAN_ID)?;
    let parent_span_ids = column::<FixedSizeBinaryArray>(batch, PARENT_SPAN_ID)?;
    let start_times = column::<UInt64Array>(batch, START_TIME_COLUMN)?;
    let end_times = column::<UInt64Array>(batch, END_TIME)?;
    let names = column::<StringArray>(batch, NAME)?;
    let kinds = column::<UInt8Array>(batch, KIND)?;
    let status_codes = column::<UInt8Array>(batch, STATUS_CODE)?;
    let status_messages = column::<StringArray>(batch, STATUS_MESSAGE)?;
    let trace_states = column::<StringArray>(batch, TRACE_STATE)?;
    let flags = column::<UInt32Array>(batch, FLAGS)?;
    let attributes = AttributesReader::new(column::<ListArray>(batch, ATTRIBUTES)?, ATTRIBUTES)?;
    let dropped_attributes = column::<UInt32Array>(batch, DROPPED_ATTRIBUTES)?;
    let events = EventsReader::new(column::<ListArray>(batch, EVENTS)?)?;
    let dropped_events = column::<UInt32Array>(batch, DROPPED_EVENTS)?;
    let links = LinksReader::new(column::<ListArray>(batch, LINKS)?)?;
    let dropped_links = column::<UInt32Array>(batch, DROPPED_LINKS)?;
    let mut resources = SharedJsonReader::<Resource>::new(batch, RESOURCE)?;
    let mut scopes = SharedJsonReader::<InstrumentationScope>::new(batch, SCOPE)?;
    (0..batch.num_rows())
        .map(|row| {
            Ok(Span {
                resource: resources.get(row)?,
                scope: scopes.get(row)?,
                trace_id: TraceId(required_id(trace_ids, row, TRACE_ID_COLUMN)?),
                span_id: SpanId(required_id(span_ids, row, SPAN_ID)?),
                parent_span_id: optional_id(parent_span_ids, row, PARENT_SPAN_ID)?.map(SpanId),
                trace_state: trace_states.value(row).to_owned(),
                flags: flags.value(row),
                name: names.value(row).to_owned(),
                kind: SpanKind::from_number(i32::from(kinds.value(row))),
                start_time_unix_nano: start_times.value(row),
                end_time_unix_nano: end_times.value(row),
                attributes: attributes.read(row)?,
                dropped_attributes_count: dropped_attributes.value(row),
                events: events.read(row)?,
                dropped_events_count: dropped_events.value(row),
                links: links.read(row)?,
                dropped_links_count: dropped_links.value(row),
                status_code: StatusCode::from_number(i32::from(status_codes.value(row))),
                status_message: status_messages.value(row).to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, SpanEvent, SpanLink};
    use crate::parquet_codec::test_fixtures::{
        any_span, every_attribute_kind, read_batches, realistic_spans, resource, scope,
    };
    use crate::parquet_codec::{FORMAT_METADATA_KEY, MAX_TIME_METADATA_KEY, MIN_TIME_METADATA_KEY};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    fn decode_all(file: &EncodedFile) -> Vec<Span> {
        read_batches(&file.bytes)
            .iter()
            .flat_map(|batch| decode_spans(batch).unwrap())
            .collect()
    }

    fn full_span() -> Span {
        Span {
            resource: resource("checkout"),
            scope: scope("tracer"),
            trace_id: TraceId([9; 16]),
            span_id: SpanId([1; 8]),
            parent_span_id: Some(SpanId([2; 8])),
            trace_state: "congo=t61rcWkgMzE".into(),
            flags: 0x301,
            name: "charge card".into(),
            kind: SpanKind::Producer,
            start_time_unix_nano: 100,
            end_time_unix_nano: 250,
            attributes: every_attribute_kind(),
            dropped_attributes_count: 3,
            events: vec![
                SpanEvent {
                    time_unix_nano: 120,
                    name: "exception".into(),
                    attributes: every_attribute_kind(),
                    dropped_attributes_count: 1,
                },
                SpanEvent {
                    time_unix_nano: 130,
                    name: "retry".into(),
                    ..SpanEvent::default()
                },
            ],
            dropped_events_count: 4,
            links: vec![SpanLink {
                trace_id: TraceId([5; 16]),
                span_id: SpanId([6; 8]),
                trace_state: "k=v".into(),
                attributes: vec![Attribute::string("link", "yes")],
                dropped_attributes_count: 2,
                flags: 1,
            }],
            dropped_links_count: 5,
            status_code: StatusCode::Error,
            status_message: "card declined".into(),
        }
    }

    #[test]
    fn empty_input_encodes_to_nothing() {
        assert!(encode_spans::<Span>(&mut []).unwrap().is_none());
    }

    #[test]
    fn every_field_round_trips_sorted() {
        let root = Span {
            resource: resource("frontend"),
            trace_id: TraceId([9; 16]),
            span_id: SpanId([3; 8]),
            parent_span_id: None,
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 50,
            end_time_unix_nano: 400,
            attributes: vec![],
            events: vec![],
            links: vec![],
            status_code: StatusCode::Ok,
            status_message: String::new(),
            ..full_span()
        };
        let other_trace = Span {
            trace_id: TraceId([1; 16]),
            start_time_unix_nano: 900,
            end_time_unix_nano: 901,
            ..full_span()
        };
        let mut spans = vec![full_span(), other_trace.clone(), root.clone()];
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let expected = vec![other_trace, root, full_span()];
        assert_eq!(spans, expected, "input sorted in place");
        assert_eq!(file.num_rows, 3);
        assert_eq!(
            (file.min_time_unix_nano, file.max_time_unix_nano),
            (50, 901)
        );
        let decoded = decode_all(&file);
        assert_eq!(decoded.len(), expected.len());
        for (got, want) in decoded.iter().zip(&expected) {
            assert_eq!(got.trace_id, want.trace_id);
            assert_eq!(got.parent_span_id, want.parent_span_id);
            assert_eq!(got.attributes, want.attributes);
            assert_eq!(got.events, want.events);
            assert_eq!(got.links, want.links);
            assert_eq!(got.resource, want.resource);
            assert_eq!(got.scope, want.scope);
            assert_eq!(got, want);
        }
        assert!(Arc::ptr_eq(&decoded[0].resource, &decoded[2].resource));
        assert!(Arc::ptr_eq(&decoded[0].scope, &decoded[1].scope));
    }

    #[test]
    fn file_metadata_names_format_times_and_sort_order() {
        let mut spans = realistic_spans(300, 7);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.bytes.clone()).unwrap();
        let metadata = builder.metadata().file_metadata();
        let value = |key: &str| {
            let kv = metadata
                .key_value_metadata()
                .unwrap()
                .iter()
                .find(|kv| kv.key == key);
            kv.and_then(|kv| kv.value.clone()).unwrap()
        };
        assert_eq!(value(FORMAT_METADATA_KEY), SPANS_FORMAT);
        assert_eq!(
            value(MIN_TIME_METADATA_KEY),
            file.min_time_unix_nano.to_string()
        );
        assert_eq!(
            value(MAX_TIME_METADATA_KEY),
            file.max_time_unix_nano.to_string()
        );
        let decoded = decode_all(&file);
        assert!(decoded.is_sorted_by_key(span_sort_key));
        assert_eq!(decoded, spans);
    }

    #[test]
    fn rows_are_sorted_by_slice_then_trace() {
        let mut spans = realistic_spans(4, 3);
        let slice = crate::parquet_codec::SPAN_SLICE_NANOS;
        // The trace with the higher id starts a slice earlier: it comes first.
        spans[0].trace_id = TraceId([9; 16]);
        spans[0].start_time_unix_nano = slice + 5;
        spans[1].trace_id = TraceId([1; 16]);
        spans[1].start_time_unix_nano = 2 * slice + 5;
        for span in &mut spans[..2] {
            span.end_time_unix_nano = span.start_time_unix_nano + 10;
        }
        let mut two = spans[..2].to_vec();
        let file = encode_spans(&mut two).unwrap().unwrap();
        let ids: Vec<TraceId> = decode_all(&file).iter().map(|s| s.trace_id).collect();
        assert_eq!(ids, [TraceId([9; 16]), TraceId([1; 16])]);
    }

    #[test]
    fn attribute_text_values_have_a_bloom_filter() {
        let mut spans = realistic_spans(500, 12);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.bytes.clone()).unwrap();
        let leaf = builder
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == ATTRIBUTE_TEXT_LEAF)
            .expect("the leaf is named as the scan looks for it");
        let reader = parquet::file::serialized_reader::SerializedFileReader::new_with_options(
            file.bytes.clone(),
            parquet::file::serialized_reader::ReadOptionsBuilder::new()
                .with_reader_properties(
                    parquet::file::properties::ReaderProperties::builder()
                        .set_read_bloom_filter(true)
                        .build(),
                )
                .build(),
        )
        .unwrap();
        use parquet::file::reader::FileReader;
        let row_group = reader.get_row_group(0).unwrap();
        let bloom = row_group.get_column_bloom_filter(leaf).unwrap();
        for span in &spans {
            for attribute in &span.attributes {
                if let crate::model::AttributeValue::String(text) = &attribute.value {
                    assert!(bloom.check(text.as_str()));
                }
            }
        }
        let misses = (0..1000).filter(|i| bloom.check(format!("absent-{i}").as_str()));
        assert!(misses.count() < 50, "false positives near the target rate");
    }

    #[test]
    fn trace_id_bloom_filter_is_written() {
        let mut spans = realistic_spans(2000, 11);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.bytes.clone()).unwrap();
        let column = builder
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == TRACE_ID_COLUMN)
            .unwrap();
        let bloom = builder
            .get_row_group_column_bloom_filter(0, column)
            .unwrap()
            .unwrap();
        assert!(
            spans
                .iter()
                .all(|span| bloom.check(&span.trace_id.as_bytes()[..]))
        );
        let absent = (0..1000u32)
            .filter(|i| {
                let mut id = [0xAB; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                bloom.check(&id[..])
            })
            .count();
        assert!(absent < 50, "{absent} false positives out of 1000");
    }

    #[test]
    fn many_batches_and_row_groups_round_trip() {
        let mut spans = realistic_spans(20_000, 3);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        assert_eq!(decode_all(&file), spans);
    }

    #[test]
    fn sliced_batches_decode_their_own_rows() {
        let mut spans = realistic_spans(500, 9);
        spans[10].events = full_span().events;
        spans[11].links = full_span().links;
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let batches = read_batches(&file.bytes);
        assert!(matches!(
            batches[0].column_by_name(RESOURCE).unwrap().data_type(),
            DataType::Dictionary(..)
        ));
        let slice = batches[0].slice(9, 5);
        assert_eq!(decode_spans(&slice).unwrap(), spans[9..14]);
    }

    #[test]
    fn bytes_per_span() {
        let mut spans = realistic_spans(1000, 42);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let per_span = file.bytes.len() as f64 / spans.len() as f64;
        println!(
            "spans: {} bytes for {} spans = {per_span:.1} bytes/span",
            file.bytes.len(),
            spans.len()
        );
        assert!(per_span < 1000.0);
    }

    #[test]
    fn a_trace_lookup_can_read_single_pages() {
        let mut spans = realistic_spans(3 * SPAN_PAGE_ROWS, 7);
        let file = encode_spans(&mut spans).unwrap().unwrap();
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_offset_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new_with_options(file.bytes.clone(), options)
                .unwrap();
        let offsets = builder
            .metadata()
            .offset_index()
            .expect("offset index written");
        // Every column of the one row group is cut into pages of about SPAN_PAGE_ROWS rows (the
        // writer cuts between its mini-batches of levels, so a nested column's page may run a
        // few rows over).
        for column in &offsets[0] {
            let pages = column.page_locations();
            assert!(pages.len() >= 3, "{} pages", pages.len());
            let sizes: Vec<i64> = pages
                .windows(2)
                .map(|w| w[1].first_row_index - w[0].first_row_index)
                .collect();
            // The writer's default mini-batch is 1,024 levels.
            let most = (SPAN_PAGE_ROWS + 1024) as i64;
            assert!(sizes.iter().all(|&rows| rows <= most), "{sizes:?}");
        }
    }

    #[test]
    fn wrong_schema_names_the_column() {
        let batch = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
            TRACE_ID_COLUMN,
            DataType::Utf8,
            false,
        )])));
        let error = decode_spans(&batch).unwrap_err();
        assert!(
            matches!(error, CodecError::ColumnType { ref column, .. } if column == TRACE_ID_COLUMN),
            "{error}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_spans_round_trip_through_parquet(
            mut spans in proptest::collection::vec(any_span(), 1..12),
        ) {
            let file = encode_spans(&mut spans).unwrap().unwrap();
            prop_assert_eq!(decode_all(&file), spans);
        }
    }
}
