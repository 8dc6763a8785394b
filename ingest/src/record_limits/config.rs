//! The `[record_limits]` section: what one record may carry, with SDK-like defaults.

use serde::Deserialize;

/// What one span, log record, data point, resource or scope may carry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordLimits {
    /// Attributes kept per span, event, link, log record, data point, exemplar, resource and
    /// scope (the OpenTelemetry SDK default, 128); the rest are dropped and counted.
    pub max_attributes: usize,
    /// Events kept per span (SDK default 128).
    pub max_events_per_span: usize,
    /// Links kept per span (SDK default 128).
    pub max_links_per_span: usize,
    /// Bytes of a string or bytes attribute value (and of each string in an array value);
    /// longer values are cut at a character boundary. Log bodies are not cut.
    pub max_attribute_value_bytes: usize,
    /// Nesting of array and key-value list values (in attributes and log bodies): containers
    /// deeper than this are emptied.
    pub max_value_depth: usize,
    /// Elements of one array or key-value list value; the rest are dropped.
    pub max_value_elements: usize,
}

impl RecordLimits {
    /// Whether an export of this shape may hold something these limits cut (when not, the
    /// limits need not walk it).
    pub fn may_cut(&self, shape: &crate::decoded_size::ValueShape) -> bool {
        let shortest_list_limit = self
            .max_attributes
            .min(self.max_events_per_span)
            .min(self.max_links_per_span)
            .min(self.max_value_elements);
        shape.longest_list > shortest_list_limit
            || shape.longest_value_bytes > self.max_attribute_value_bytes
            || shape.deepest_value >= self.max_value_depth
    }
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_attributes: 128,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_attribute_value_bytes: 64 * 1024,
            max_value_depth: 8,
            max_value_elements: 1024,
        }
    }
}
