//! The nested columns of a span row: `events` and `links`, each a `List<Struct>` whose
//! attributes use the shared attribute column shape.
//!
//! Nested rather than JSON so a future search can read event names (e.g. `exception`) without
//! parsing. This module knows the event and link shapes only, not the span schema.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, ListArray, StringArray, StructArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Fields};

use super::CodecError;
use super::attributes::{AttributesBuilder, AttributesReader, attributes_type};
use super::columns::{
    IdColumnBuilder, ListOffsets, child, list_array, list_range, list_type, list_values,
    required_id,
};
use crate::model::{SpanEvent, SpanId, SpanLink, TraceId};

const TIME: &str = "time_unix_nano";
const NAME: &str = "name";
const ATTRIBUTES: &str = "attributes";
const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";
const TRACE_STATE: &str = "trace_state";
const FLAGS: &str = "flags";

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new(TIME, DataType::UInt64, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(ATTRIBUTES, attributes_type(), false),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new(TRACE_ID, IdColumnBuilder::<16>::data_type(), false),
        Field::new(SPAN_ID, IdColumnBuilder::<8>::data_type(), false),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(ATTRIBUTES, attributes_type(), false),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(FLAGS, DataType::UInt32, false),
    ])
}

/// The Arrow type of the `events` column.
pub(crate) fn events_type() -> DataType {
    list_type(DataType::Struct(event_fields()))
}

/// The Arrow type of the `links` column.
pub(crate) fn links_type() -> DataType {
    list_type(DataType::Struct(link_fields()))
}

/// Builds the `events` column, one list of events per span.
pub(crate) struct EventsBuilder {
    offsets: ListOffsets,
    times: Vec<u64>,
    names: StringBuilder,
    attributes: AttributesBuilder,
    dropped_attributes: Vec<u32>,
}

impl EventsBuilder {
    /// Room for `num_spans` spans holding `num_events` events in all.
    pub(crate) fn with_capacity(num_spans: usize, num_events: usize) -> Self {
        Self {
            offsets: ListOffsets::with_capacity("events", num_spans),
            times: Vec::with_capacity(num_events),
            names: StringBuilder::with_capacity(num_events, num_events * 16),
            attributes: AttributesBuilder::with_capacity(
                "events.attributes",
                num_events,
                num_events * 2,
            ),
            dropped_attributes: Vec::with_capacity(num_events),
        }
    }

    /// Appends one span's events.
    pub(crate) fn append(&mut self, events: &[SpanEvent]) -> Result<(), CodecError> {
        for event in events {
            self.times.push(event.time_unix_nano);
            self.names.append_value(&event.name);
            self.attributes.append(&event.attributes)?;
            self.dropped_attributes.push(event.dropped_attributes_count);
        }
        self.offsets.push_len(events.len())
    }

    /// The finished column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(self.times)),
            Arc::new(self.names.finish()),
            self.attributes.finish()?,
            Arc::new(UInt32Array::from(self.dropped_attributes)),
        ];
        let items = StructArray::try_new(event_fields(), children, None)?;
        list_array(
            DataType::Struct(event_fields()),
            self.offsets,
            Arc::new(items),
        )
    }
}

/// Reads the `events` column back.
pub(crate) struct EventsReader<'a> {
    list: &'a ListArray,
    times: &'a UInt64Array,
    names: &'a StringArray,
    attributes: AttributesReader<'a>,
    dropped_attributes: &'a UInt32Array,
}

impl<'a> EventsReader<'a> {
    /// A reader over the `events` list column.
    pub(crate) fn new(list: &'a ListArray) -> Result<Self, CodecError> {
        let path = "events";
        let items = list_values::<StructArray>(list, path)?;
        Ok(Self {
            list,
            times: child(items, TIME, "events.time_unix_nano")?,
            names: child(items, NAME, "events.name")?,
            attributes: AttributesReader::new(
                child(items, ATTRIBUTES, "events.attributes")?,
                "events.attributes",
            )?,
            dropped_attributes: child(
                items,
                DROPPED_ATTRIBUTES,
                "events.dropped_attributes_count",
            )?,
        })
    }

    /// Whether an event of span row `row` holds attribute `key` (with `value` as text, when
    /// given).
    pub(crate) fn any_attribute(
        &self,
        row: usize,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, CodecError> {
        for item in list_range(self.list, row) {
            if self.attributes.has(item, key, value)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Calls `visit` with the attribute keys of the events of span row `row`.
    pub(crate) fn visit_attribute_keys(&self, row: usize, mut visit: impl FnMut(&str)) {
        for item in list_range(self.list, row) {
            self.attributes.visit_keys(item, &mut visit);
        }
    }

    /// The events of span row `row`.
    pub(crate) fn read(&self, row: usize) -> Result<Vec<SpanEvent>, CodecError> {
        list_range(self.list, row)
            .map(|item| {
                Ok(SpanEvent {
                    time_unix_nano: self.times.value(item),
                    name: self.names.value(item).to_owned(),
                    attributes: self.attributes.read(item)?,
                    dropped_attributes_count: self.dropped_attributes.value(item),
                })
            })
            .collect()
    }
}

/// Builds the `links` column, one list of links per span.
pub(crate) struct LinksBuilder {
    offsets: ListOffsets,
    trace_ids: IdColumnBuilder<16>,
    span_ids: IdColumnBuilder<8>,
    trace_states: StringBuilder,
    attributes: AttributesBuilder,
    dropped_attributes: Vec<u32>,
    flags: Vec<u32>,
}

impl LinksBuilder {
    /// Room for `num_spans` spans holding `num_links` links in all.
    pub(crate) fn with_capacity(num_spans: usize, num_links: usize) -> Self {
        Self {
            offsets: ListOffsets::with_capacity("links", num_spans),
            trace_ids: IdColumnBuilder::with_capacity(num_links),
            span_ids: IdColumnBuilder::with_capacity(num_links),
            trace_states: StringBuilder::with_capacity(num_links, 0),
            attributes: AttributesBuilder::with_capacity("links.attributes", num_links, num_links),
            dropped_attributes: Vec::with_capacity(num_links),
            flags: Vec::with_capacity(num_links),
        }
    }

    /// Appends one span's links.
    pub(crate) fn append(&mut self, links: &[SpanLink]) -> Result<(), CodecError> {
        for link in links {
            self.trace_ids.append(Some(link.trace_id.as_bytes()));
            self.span_ids.append(Some(link.span_id.as_bytes()));
            self.trace_states.append_value(&link.trace_state);
            self.attributes.append(&link.attributes)?;
            self.dropped_attributes.push(link.dropped_attributes_count);
            self.flags.push(link.flags);
        }
        self.offsets.push_len(links.len())
    }

    /// The finished column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let children: Vec<ArrayRef> = vec![
            self.trace_ids.finish()?,
            self.span_ids.finish()?,
            Arc::new(self.trace_states.finish()),
            self.attributes.finish()?,
            Arc::new(UInt32Array::from(self.dropped_attributes)),
            Arc::new(UInt32Array::from(self.flags)),
        ];
        let items = StructArray::try_new(link_fields(), children, None)?;
        list_array(
            DataType::Struct(link_fields()),
            self.offsets,
            Arc::new(items),
        )
    }
}

/// Reads the `links` column back.
pub(crate) struct LinksReader<'a> {
    list: &'a ListArray,
    trace_ids: &'a FixedSizeBinaryArray,
    span_ids: &'a FixedSizeBinaryArray,
    trace_states: &'a StringArray,
    attributes: AttributesReader<'a>,
    dropped_attributes: &'a UInt32Array,
    flags: &'a UInt32Array,
}

impl<'a> LinksReader<'a> {
    /// A reader over the `links` list column.
    pub(crate) fn new(list: &'a ListArray) -> Result<Self, CodecError> {
        let items = list_values::<StructArray>(list, "links")?;
        Ok(Self {
            list,
            trace_ids: child(items, TRACE_ID, "links.trace_id")?,
            span_ids: child(items, SPAN_ID, "links.span_id")?,
            trace_states: child(items, TRACE_STATE, "links.trace_state")?,
            attributes: AttributesReader::new(
                child(items, ATTRIBUTES, "links.attributes")?,
                "links.attributes",
            )?,
            dropped_attributes: child(items, DROPPED_ATTRIBUTES, "links.dropped_attributes_count")?,
            flags: child(items, FLAGS, "links.flags")?,
        })
    }

    /// Hands the trace id of each link of span row `row` to `visit`.
    pub(crate) fn visit_trace_ids(
        &self,
        row: usize,
        mut visit: impl FnMut(TraceId),
    ) -> Result<(), CodecError> {
        for item in list_range(self.list, row) {
            visit(TraceId(required_id(
                self.trace_ids,
                item,
                "links.trace_id",
            )?));
        }
        Ok(())
    }

    /// The links of span row `row`.
    pub(crate) fn read(&self, row: usize) -> Result<Vec<SpanLink>, CodecError> {
        list_range(self.list, row)
            .map(|item| {
                Ok(SpanLink {
                    trace_id: TraceId(required_id(self.trace_ids, item, "links.trace_id")?),
                    span_id: SpanId(required_id(self.span_ids, item, "links.span_id")?),
                    trace_state: self.trace_states.value(item).to_owned(),
                    attributes: self.attributes.read(item)?,
                    dropped_attributes_count: self.dropped_attributes.value(item),
                    flags: self.flags.value(item),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_codec::columns::downcast;
    use crate::parquet_codec::test_fixtures::every_attribute_kind;

    #[test]
    fn events_and_links_round_trip_in_memory() {
        let events = [
            vec![],
            vec![
                SpanEvent {
                    time_unix_nano: 5,
                    name: "exception".into(),
                    attributes: every_attribute_kind(),
                    dropped_attributes_count: 2,
                },
                SpanEvent::default(),
            ],
        ];
        let links = [
            vec![SpanLink {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([4; 8]),
                trace_state: "a=b".into(),
                attributes: every_attribute_kind(),
                dropped_attributes_count: 1,
                flags: 257,
            }],
            vec![],
        ];
        let mut event_builder = EventsBuilder::with_capacity(2, 2);
        let mut link_builder = LinksBuilder::with_capacity(2, 1);
        for (span_events, span_links) in events.iter().zip(&links) {
            event_builder.append(span_events).unwrap();
            link_builder.append(span_links).unwrap();
        }
        let event_array = event_builder.finish().unwrap();
        let link_array = link_builder.finish().unwrap();
        assert_eq!(event_array.data_type(), &events_type());
        assert_eq!(link_array.data_type(), &links_type());
        let event_reader = EventsReader::new(downcast(&event_array, "events").unwrap()).unwrap();
        let link_reader = LinksReader::new(downcast(&link_array, "links").unwrap()).unwrap();
        for row in 0..2 {
            assert_eq!(event_reader.read(row).unwrap(), events[row]);
            assert_eq!(link_reader.read(row).unwrap(), links[row]);
        }
    }
}
