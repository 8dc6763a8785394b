//! A log record as LogQL sees it: its line, its stream labels, its structured metadata, and
//! the labels a parser extracted.
//!
//! The mapping follows Loki's for OpenTelemetry logs, so queries written for Loki read the
//! same here: the resource attributes Loki indexes by default (`service.name`,
//! `service.namespace`, `deployment.environment`, `k8s.*`…) are stream labels with dots turned
//! into underscores (`service_name` is always present, `unknown_service` when unset); trace
//! and span ids, severity, `detected_level`, scope name and version, the record's attributes
//! and the other resource attributes are structured metadata. The line is the body: a string
//! as it is, anything else as JSON.

use skewer_storage::logs::streams::{
    LEVEL_LABEL, STREAM_LABEL_ATTRIBUTES, StreamLabels, detected_level, label_value, line_of,
    sanitize_label_name, stream_labels,
};
use skewer_storage::model::{LogRecord, Resource};

/// The label a pipeline error is reported in.
pub const ERROR_LABEL: &str = "__error__";
/// The label with the error's details.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Labels sorted by name, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Labels from pairs in any order; a repeated name keeps its last value.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut labels = Self::default();
        for (name, value) in pairs {
            labels.insert(name, value);
        }
        labels
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets `name` to `value`.
    pub fn insert(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// Keeps only the labels `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(name, _)| keep(name));
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Labels already sorted by name with unique names (a stream's).
    pub fn from_sorted(pairs: StreamLabels) -> Self {
        Self(pairs)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels and `other`'s (other's win on a clash).
    pub fn merged(&self, other: &Labels) -> Labels {
        let mut merged = self.clone();
        for (name, value) in other.iter() {
            merged.insert(name.to_owned(), value.to_owned());
        }
        merged
    }

    /// `{a="b", c="d"}`, as Loki prints a label set.
    pub fn to_selector(&self) -> String {
        let pairs: Vec<String> = self
            .iter()
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    }
}

/// One log line on its way through a pipeline.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Effective time, Unix ns.
    pub time_unix_nano: u64,
    /// The line.
    pub line: String,
    /// Stream labels.
    pub stream: Labels,
    /// Structured metadata.
    pub metadata: Labels,
    /// Labels extracted by parsers.
    pub parsed: Labels,
}

impl Entry {
    /// The entry of a stored record.
    pub fn from_record(record: &LogRecord) -> Self {
        let (stream, mut metadata) = resource_labels(&record.resource);
        for attribute in &record.attributes {
            if let Some(value) = label_value(&attribute.value) {
                metadata.insert(sanitize_label_name(&attribute.key), value);
            }
        }
        if !record.scope.name.is_empty() {
            metadata.insert("scope_name".to_owned(), record.scope.name.clone());
        }
        if !record.scope.version.is_empty() {
            metadata.insert("scope_version".to_owned(), record.scope.version.clone());
        }
        if let Some(trace_id) = record.trace_id {
            metadata.insert("trace_id".to_owned(), trace_id.to_string());
        }
        if let Some(span_id) = record.span_id {
            metadata.insert("span_id".to_owned(), span_id.to_string());
        }
        if !record.severity_text.is_empty() {
            metadata.insert("severity_text".to_owned(), record.severity_text.clone());
        }
        if record.severity_number != 0 {
            metadata.insert(
                "severity_number".to_owned(),
                record.severity_number.to_string(),
            );
        }
        metadata.insert(
            LEVEL_LABEL.to_owned(),
            detected_level(record.severity_number, &record.severity_text).to_owned(),
        );
        Self {
            time_unix_nano: record.effective_time_unix_nano(),
            line: line_of(&record.body),
            stream,
            metadata,
            parsed: Labels::default(),
        }
    }

    /// The value of a label: stream, then structured metadata, then parsed.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.stream
            .get(name)
            .or_else(|| self.metadata.get(name))
            .or_else(|| self.parsed.get(name))
    }

    /// Whether any category holds `name`.
    pub fn has_label(&self, name: &str) -> bool {
        self.label(name).is_some()
    }

    /// Every label in one set (what Loki returns as the stream of an uncategorised answer).
    pub fn all_labels(&self) -> Labels {
        self.stream.merged(&self.metadata).merged(&self.parsed)
    }

    /// Removes `name` from every category.
    pub fn remove_label(&mut self, name: &str) {
        self.stream.remove(name);
        self.metadata.remove(name);
        self.parsed.remove(name);
    }

    /// Keeps only the labels `keep` accepts, in every category.
    pub fn retain_labels(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.stream.retain(&mut keep);
        self.metadata.retain(&mut keep);
        self.parsed.retain(&mut keep);
    }
}

/// The stream labels and the structured metadata a resource gives its records.
pub fn resource_labels(resource: &Resource) -> (Labels, Labels) {
    let stream = Labels::from_sorted(stream_labels(resource));
    let metadata = Labels::from_pairs(
        resource
            .attributes
            .iter()
            .filter(|attribute| !STREAM_LABEL_ATTRIBUTES.contains(&attribute.key.as_str()))
            .filter_map(|attribute| {
                label_value(&attribute.value)
                    .map(|value| (sanitize_label_name(&attribute.key), value))
            }),
    );
    (stream, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_sorted_and_unique() {
        let mut labels = Labels::from_pairs([
            ("b".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
            ("b".to_owned(), "3".to_owned()),
        ]);
        assert_eq!(labels.to_selector(), r#"{a="2", b="3"}"#);
        labels.remove("a");
        assert_eq!(labels.get("b"), Some("3"));
        assert!(!labels.contains("a"));
    }
}
