//! Redaction of Prometheus remote write requests. A series' labels become the attributes of
//! its points, so the key rules match label names and the patterns are searched in label
//! values (and in metadata help texts); `__name__`, the metric itself, is never redacted.

use super::{MASK, RedactionAction, Redactor};
use crate::remote_write::proto::WriteRequest;

/// The label naming a series' metric.
const METRIC_NAME_LABEL: &str = "__name__";

impl Redactor {
    /// Redacts a write request in place; true when anything changed.
    pub fn remote_write(&self, request: &mut WriteRequest) -> bool {
        let mut changed = false;
        for series in &mut request.timeseries {
            let before = series.labels.len();
            series.labels.retain(|label| {
                label.name == METRIC_NAME_LABEL
                    || self.attribute_action(&label.name) != Some(RedactionAction::Drop)
            });
            changed |= series.labels.len() != before;
            for label in &mut series.labels {
                if label.name == METRIC_NAME_LABEL {
                    continue;
                }
                match self.attribute_action(&label.name) {
                    Some(RedactionAction::Mask) => {
                        label.value = MASK.to_owned();
                        changed = true;
                    }
                    // As a string attribute is hashed: equal values correlate across signals.
                    Some(RedactionAction::Hash) => {
                        label.value = self.hash(label.value.as_bytes());
                        changed = true;
                    }
                    Some(RedactionAction::Drop) | None => {
                        changed |= self.redact_in_place(&mut label.value);
                    }
                }
            }
        }
        for metadata in &mut request.metadata {
            changed |= self.redact_in_place(&mut metadata.help);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{RedactionConfig, RedactionRule};
    use crate::remote_write::proto::{Label, TimeSeries};

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn labels_are_redacted_by_name_and_by_pattern_and_the_metric_name_never() {
        let rule = |attributes: &[&str], pattern: Option<&str>, action| RedactionRule {
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
            pattern: pattern.map(str::to_owned),
            action,
        };
        let config = RedactionConfig {
            rules: vec![
                rule(&["*_password", "__name__"], None, RedactionAction::Drop),
                rule(&["user"], None, RedactionAction::Hash),
                rule(&[], Some(r"\d{4}-\d{4}"), RedactionAction::Mask),
            ],
            hash_key_file: None,
        };
        let redactor = Redactor::new(&config, Some(vec![7; 32])).unwrap().unwrap();
        let mut request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    label("__name__", "logins_total"),
                    label("db_password", "hunter2"),
                    label("note", "card 1234-5678 used"),
                    label("user", "ann"),
                    label("zone", "eu"),
                ],
                ..TimeSeries::default()
            }],
            ..WriteRequest::default()
        };
        assert!(redactor.remote_write(&mut request));
        let labels = &request.timeseries[0].labels;
        assert_eq!(
            labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .filter(|(name, _)| *name != "user")
                .collect::<Vec<_>>(),
            [
                ("__name__", "logins_total"),
                ("note", "card [REDACTED] used"),
                ("zone", "eu")
            ]
        );
        let user = &labels.iter().find(|l| l.name == "user").unwrap().value;
        assert_eq!(*user, redactor.hash(b"ann"));
    }
}
