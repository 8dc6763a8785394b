//! Whether span rows carry a tag: some attribute of the span, of its resource or of one of its
//! events with a key and (as text, the way [`crate::model::AttributeValue::to_text`] writes
//! it) a value. Evaluated on Arrow batches, without decoding spans, so a scan can drop the
//! rows that cannot match before it decodes the rest of their columns.

use std::sync::Arc;

use arrow_array::{ListArray, RecordBatch};
use arrow_buffer::BooleanBuffer;

use super::CodecError;
use super::attributes::AttributesReader;
use super::columns::column;
use super::json::SharedJsonReader;
use super::span_nested::EventsReader;
use crate::model::Resource;

/// The span columns a tag is looked for in.
pub const TAG_COLUMNS: [&str; 3] = ["attributes", "resource", "events"];

/// Which rows of a span batch carry `key` (with `value` as text, when given); in span
/// attributes alone when `span_attributes_only` (then only that column is read).
pub(crate) fn tag_mask(
    batch: &RecordBatch,
    key: &str,
    value: Option<&str>,
    span_attributes_only: bool,
) -> Result<BooleanBuffer, CodecError> {
    let attributes =
        AttributesReader::new(column::<ListArray>(batch, "attributes")?, "attributes")?;
    if span_attributes_only {
        let mask: Result<Vec<bool>, CodecError> = (0..batch.num_rows())
            .map(|row| attributes.has(row, key, value))
            .collect();
        return Ok(BooleanBuffer::from(mask?));
    }
    let events = EventsReader::new(column::<ListArray>(batch, "events")?)?;
    let mut resources = SharedJsonReader::<Resource>::new(batch, "resource")?;
    // Resources repeat: each distinct one is checked once.
    let mut last_resource: Option<(Arc<Resource>, bool)> = None;
    let mut mask = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut found =
            attributes.has(row, key, value)? || events.any_attribute(row, key, value)?;
        if !found {
            let resource = resources.get(row)?;
            found = match &last_resource {
                Some((last, matched)) if Arc::ptr_eq(last, &resource) => *matched,
                _ => {
                    let matched = resource.attributes.iter().any(|attribute| {
                        attribute.key == key
                            && value.is_none_or(|value| attribute.value.to_text() == value)
                    });
                    last_resource = Some((resource, matched));
                    matched
                }
            };
        }
        mask.push(found);
    }
    Ok(BooleanBuffer::from(mask))
}
