//! Walking OTLP exports: every attribute list (resource, scope, span, event, link, log record,
//! data point, exemplar, metric metadata) and every log body goes through the [`Redactor`].

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, Metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::config::RedactionAction;
use super::redactor::{MASK, Redactor};

impl Redactor {
    /// Redacts a trace export in place; true when anything changed.
    pub fn traces(&self, request: &mut ExportTraceServiceRequest) -> bool {
        let mut changed = false;
        for resource_spans in &mut request.resource_spans {
            changed |= self.resource(resource_spans.resource.as_mut());
            for scope_spans in &mut resource_spans.scope_spans {
                changed |= self.scope(scope_spans.scope.as_mut());
                for span in &mut scope_spans.spans {
                    // Names and messages carry URLs and errors: patterns apply to them too.
                    changed |= self.redact_in_place(&mut span.name);
                    if let Some(status) = span.status.as_mut() {
                        changed |= self.redact_in_place(&mut status.message);
                    }
                    changed |= self.attributes(&mut span.attributes);
                    for event in &mut span.events {
                        changed |= self.redact_in_place(&mut event.name);
                        changed |= self.attributes(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        changed |= self.attributes(&mut link.attributes);
                    }
                }
            }
        }
        changed
    }

    /// Redacts a logs export in place (bodies too); true when anything changed.
    pub fn logs(&self, request: &mut ExportLogsServiceRequest) -> bool {
        let mut changed = false;
        for resource_logs in &mut request.resource_logs {
            changed |= self.resource(resource_logs.resource.as_mut());
            for scope_logs in &mut resource_logs.scope_logs {
                changed |= self.scope(scope_logs.scope.as_mut());
                for record in &mut scope_logs.log_records {
                    changed |= self.redact_in_place(&mut record.event_name);
                    changed |= self.attributes(&mut record.attributes);
                    if let Some(body) = record.body.as_mut() {
                        changed |= self.value(body);
                    }
                }
            }
        }
        changed
    }

    /// Redacts a metrics export in place; true when anything changed.
    pub fn metrics(&self, request: &mut ExportMetricsServiceRequest) -> bool {
        let mut changed = false;
        for resource_metrics in &mut request.resource_metrics {
            changed |= self.resource(resource_metrics.resource.as_mut());
            for scope_metrics in &mut resource_metrics.scope_metrics {
                changed |= self.scope(scope_metrics.scope.as_mut());
                for metric in &mut scope_metrics.metrics {
                    changed |= self.metric(metric);
                }
            }
        }
        changed
    }

    fn metric(&self, metric: &mut Metric) -> bool {
        let mut changed = self.attributes(&mut metric.metadata);
        let exemplars = |exemplars: &mut Vec<Exemplar>| {
            exemplars.iter_mut().fold(false, |changed, exemplar| {
                self.attributes(&mut exemplar.filtered_attributes) | changed
            })
        };
        // Every point kind but summaries has attributes and exemplars.
        macro_rules! points_with_exemplars {
            ($points:expr) => {
                for point in $points {
                    changed |=
                        self.attributes(&mut point.attributes) | exemplars(&mut point.exemplars);
                }
            };
        }
        match metric.data.as_mut() {
            Some(Data::Gauge(gauge)) => points_with_exemplars!(&mut gauge.data_points),
            Some(Data::Sum(sum)) => points_with_exemplars!(&mut sum.data_points),
            Some(Data::Histogram(histogram)) => points_with_exemplars!(&mut histogram.data_points),
            Some(Data::ExponentialHistogram(histogram)) => {
                points_with_exemplars!(&mut histogram.data_points)
            }
            Some(Data::Summary(summary)) => {
                for point in &mut summary.data_points {
                    changed |= self.attributes(&mut point.attributes);
                }
            }
            None => {}
        }
        changed
    }

    fn resource(&self, resource: Option<&mut Resource>) -> bool {
        resource.is_some_and(|resource| self.attributes(&mut resource.attributes))
    }

    fn scope(&self, scope: Option<&mut InstrumentationScope>) -> bool {
        scope.is_some_and(|scope| self.attributes(&mut scope.attributes))
    }

    /// Applies key rules (drop, mask, hash the whole value), then patterns inside the values
    /// no key rule took.
    fn attributes(&self, attributes: &mut Vec<KeyValue>) -> bool {
        let before = attributes.len();
        attributes.retain(|attribute| {
            self.attribute_action(&attribute.key) != Some(RedactionAction::Drop)
        });
        let mut changed = attributes.len() != before;
        for attribute in attributes.iter_mut() {
            match self.attribute_action(&attribute.key) {
                Some(RedactionAction::Mask) => {
                    attribute.value = Some(string_value(MASK.to_owned()));
                    changed = true;
                }
                Some(RedactionAction::Hash) => {
                    let hashed = match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(text)) => self.hash(text.as_bytes()),
                        Some(other) => self.hash(
                            &AnyValue {
                                value: Some(other.clone()),
                            }
                            .encode_to_vec(),
                        ),
                        None => self.hash(b""),
                    };
                    attribute.value = Some(string_value(hashed));
                    changed = true;
                }
                Some(RedactionAction::Drop) | None => {
                    if let Some(value) = attribute.value.as_mut() {
                        changed |= self.value(value);
                    }
                }
            }
        }
        changed
    }

    /// Patterns inside a value: strings, array items and (with key rules) nested key-value lists.
    fn value(&self, value: &mut AnyValue) -> bool {
        match value.value.as_mut() {
            Some(Value::StringValue(text)) => self.redact_in_place(text),
            Some(Value::ArrayValue(array)) => array
                .values
                .iter_mut()
                .fold(false, |changed, item| self.value(item) | changed),
            Some(Value::KvlistValue(list)) => self.attributes(&mut list.values),
            _ => false,
        }
    }
}

fn string_value(text: String) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{RedactionConfig, RedactionRule};
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(string_value(value.to_owned())),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_logs_export_is_redacted_everywhere() {
        let config = RedactionConfig {
            rules: vec![
                RedactionRule {
                    attributes: vec!["*.password".into()],
                    pattern: None,
                    action: RedactionAction::Drop,
                },
                RedactionRule {
                    attributes: vec!["user.email".into()],
                    pattern: None,
                    action: RedactionAction::Hash,
                },
                RedactionRule {
                    attributes: vec![],
                    pattern: Some(r"\d{16}".into()),
                    action: RedactionAction::Mask,
                },
            ],
            hash_key_file: None,
        };
        let redactor = Redactor::new(&config, Some(vec![1; 32])).unwrap().unwrap();
        let nested = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("db.password", "hunter2"), kv("card", "4111111111111111")],
            })),
        };
        let mut request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("user.email", "ann@example.com")],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(string_value("card 4111111111111111 declined".into())),
                        attributes: vec![
                            kv("db.password", "hunter2"),
                            kv("user.email", "ann@example.com"),
                            KeyValue {
                                key: "payload".into(),
                                value: Some(nested),
                                ..KeyValue::default()
                            },
                            kv("order", "42"),
                        ],
                        ..LogRecord::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        assert!(redactor.logs(&mut request));
        let encoded = request.encode_to_vec();
        for secret in ["hunter2", "4111111111111111", "ann@example.com"] {
            assert!(
                !encoded
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "{secret} survived"
            );
        }
        let resource_logs = &request.resource_logs[0];
        let record = &resource_logs.scope_logs[0].log_records[0];
        let keys: Vec<&str> = record.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["user.email", "payload", "order"]);
        assert_eq!(
            record.attributes[0].value,
            resource_logs.resource.as_ref().unwrap().attributes[0].value,
            "equal values hash alike"
        );
        assert_eq!(
            record.body,
            Some(string_value("card [REDACTED] declined".into()))
        );
    }
}
