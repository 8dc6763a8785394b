//! OTLP common types (AnyValue, KeyValue, Resource, InstrumentationScope) to the model.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope as OtlpScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use skewer_storage::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

/// Nesting deeper than this is cut (a hostile request must not blow the stack).
const MAX_VALUE_DEPTH: usize = 32;

/// Converts an `AnyValue`, moving its strings instead of copying them.
pub fn convert_value(value: Option<AnyValue>) -> AttributeValue {
    convert_value_at(value, 0)
}

fn convert_value_at(value: Option<AnyValue>, depth: usize) -> AttributeValue {
    let Some(inner) = value.and_then(|v| v.value) else {
        return AttributeValue::Empty;
    };
    if depth >= MAX_VALUE_DEPTH {
        return AttributeValue::Empty;
    }
    match inner {
        any_value::Value::StringValue(text) => AttributeValue::String(text),
        any_value::Value::BoolValue(value) => AttributeValue::Bool(value),
        any_value::Value::IntValue(value) => AttributeValue::Int(value),
        any_value::Value::DoubleValue(value) => AttributeValue::Double(value),
        any_value::Value::BytesValue(bytes) => AttributeValue::Bytes(bytes),
        any_value::Value::ArrayValue(array) => AttributeValue::Array(
            array
                .values
                .into_iter()
                .map(|v| convert_value_at(Some(v), depth + 1))
                .collect(),
        ),
        any_value::Value::KvlistValue(list) => {
            AttributeValue::Map(convert_attributes_at(list.values, depth + 1))
        }
        // An index into a profiles dictionary: meaningless outside profiles.
        any_value::Value::StringValueStrindex(_) => AttributeValue::Empty,
    }
}

/// Converts key-value pairs, keeping their order.
pub fn convert_attributes(attributes: Vec<KeyValue>) -> Vec<Attribute> {
    convert_attributes_at(attributes, 0)
}

fn convert_attributes_at(attributes: Vec<KeyValue>, depth: usize) -> Vec<Attribute> {
    attributes
        .into_iter()
        .map(|kv| Attribute {
            key: kv.key,
            value: convert_value_at(kv.value, depth),
        })
        .collect()
}

/// Converts a resource with its group's schema URL; shared by every record of the group.
pub fn convert_resource(resource: Option<OtlpResource>, schema_url: String) -> Arc<Resource> {
    let resource = resource.unwrap_or_default();
    Arc::new(Resource {
        attributes: convert_attributes(resource.attributes),
        dropped_attributes_count: resource.dropped_attributes_count,
        schema_url,
    })
}

/// Converts an instrumentation scope with its group's schema URL.
pub fn convert_scope(scope: Option<OtlpScope>, schema_url: String) -> Arc<InstrumentationScope> {
    let scope = scope.unwrap_or_default();
    Arc::new(InstrumentationScope {
        name: scope.name,
        version: scope.version,
        attributes: convert_attributes(scope.attributes),
        dropped_attributes_count: scope.dropped_attributes_count,
        schema_url,
    })
}

/// Counts rejected records and keeps the first reason, for OTLP's `partial_success`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    /// Records refused.
    pub count: u64,
    /// The first reason, shown to the sender.
    pub first_message: Option<String>,
}

impl Rejections {
    /// Records one refused record.
    pub fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.reject_many(1, reason);
    }

    /// Records `count` records refused for one reason (nothing when `count` is 0).
    pub fn reject_many(&mut self, count: u64, reason: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        self.count += count;
        if self.first_message.is_none() {
            self.first_message = Some(reason());
        }
    }
}

/// A converted export: the records kept and what was refused.
#[derive(Debug)]
pub struct Converted<T> {
    /// Valid records.
    pub records: Vec<T>,
    /// Refused records.
    pub rejections: Rejections,
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(value: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    #[test]
    fn every_value_kind_converts_with_its_type() {
        let nested = any(any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "inner".into(),
                value: any(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::IntValue(3)),
                    }],
                })),
                ..KeyValue::default()
            }],
        }));
        assert_eq!(
            convert_value(nested),
            AttributeValue::Map(vec![Attribute {
                key: "inner".into(),
                value: AttributeValue::Array(vec![AttributeValue::Int(3)]),
            }])
        );
        assert_eq!(convert_value(None), AttributeValue::Empty);
        assert_eq!(
            convert_value(any(any_value::Value::BytesValue(vec![1, 2]))),
            AttributeValue::Bytes(vec![1, 2])
        );
    }

    #[test]
    fn deep_nesting_is_cut_not_overflowed() {
        let mut value = any(any_value::Value::IntValue(1));
        for _ in 0..200 {
            value = any(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value.unwrap_or_default()],
            }));
        }
        // Must return without overflowing the stack.
        let converted = convert_value(value);
        assert!(matches!(converted, AttributeValue::Array(_)));
        // The drop of the deep prost value itself is the caller's concern (prost limits
        // decode recursion to 100 levels, so such a value cannot come off the wire).
    }
}
