//! Dedicated tag columns of span files (`spans-v3`): the span attributes users filter
//! traces by most, each also kept as a text column of its own, so a search on one reads a
//! small dictionary-encoded column instead of decoding every span's attribute list.
//!
//! The value is the attribute's text as [`crate::model::AttributeValue::to_text`] writes it
//! (what a tag filter compares), null when the span lacks it. The attribute stays in the
//! list too, so spans decode exactly as before. Keys are unique per span in OTLP; the column
//! holds the first. Files written before these columns existed (`spans-v2`) are read as they
//! are: a tag search decodes their attribute lists.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::StringBuilder;
use arrow_schema::{DataType, Field};

use crate::model::{Attribute, AttributeValue};

/// Attribute key → its column. HTTP status, method and route in the current and the older
/// semantic conventions, the RPC method, and the keys Jaeger also derives from a span's
/// status and kind (`error=true` is the search Jaeger users run most: it checks the status
/// column and this one, never the attribute lists; OpenTracing bridges set it as an
/// attribute, so it must be checked too).
pub const DEDICATED_TAGS: [(&str, &str); 9] = [
    ("http.response.status_code", "tag_http_response_status_code"),
    ("http.request.method", "tag_http_request_method"),
    ("http.route", "tag_http_route"),
    ("http.status_code", "tag_http_status_code"),
    ("http.method", "tag_http_method"),
    ("rpc.method", "tag_rpc_method"),
    ("error", "tag_error"),
    ("span.kind", "tag_span_kind"),
    ("otel.status_code", "tag_otel_status_code"),
];

/// The column holding span attribute `key`, if it has one.
pub fn dedicated_column(key: &str) -> Option<&'static str> {
    DEDICATED_TAGS
        .iter()
        .find(|(dedicated, _)| *dedicated == key)
        .map(|(_, column)| *column)
}

/// The fields of the dedicated columns, in schema order.
pub(crate) fn dedicated_fields() -> impl Iterator<Item = Field> {
    DEDICATED_TAGS
        .iter()
        .map(|(_, column)| Field::new(*column, DataType::Utf8, true))
}

/// Builds the dedicated columns of a batch, one span at a time.
pub(crate) struct DedicatedTagsBuilder {
    columns: Vec<StringBuilder>,
}

impl DedicatedTagsBuilder {
    /// Room for `num_spans` spans.
    pub(crate) fn with_capacity(num_spans: usize) -> Self {
        Self {
            columns: DEDICATED_TAGS
                .iter()
                .map(|_| StringBuilder::with_capacity(num_spans, num_spans * 4))
                .collect(),
        }
    }

    /// Adds one span's attributes.
    pub(crate) fn append(&mut self, attributes: &[Attribute]) {
        for ((key, _), column) in DEDICATED_TAGS.iter().zip(&mut self.columns) {
            match attributes.iter().find(|attribute| attribute.key == *key) {
                Some(Attribute {
                    value: AttributeValue::String(text),
                    ..
                }) => column.append_value(text),
                Some(attribute) => column.append_value(attribute.value.to_text()),
                None => column.append_null(),
            }
        }
    }

    /// The columns, in schema order.
    pub(crate) fn finish(self) -> Vec<ArrayRef> {
        self.columns
            .into_iter()
            .map(|mut column| Arc::new(column.finish()) as ArrayRef)
            .collect()
    }
}
