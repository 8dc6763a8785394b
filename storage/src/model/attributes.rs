//! Typed attribute values, resources and instrumentation scopes: the parts every signal shares.
//!
//! The value types mirror OpenTelemetry's `AnyValue` without depending on any wire protocol.

use serde::{Deserialize, Serialize};

/// One attribute value with its type kept, so a stored `int` reads back as an `int`.
///
/// Serialized as `{"type": "int", "value": 3}` in human-readable formats (JSON) and as a
/// compact tagged value in binary ones (see `value_serde`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AttributeValue {
    /// No value (OTLP allows an empty `AnyValue`).
    #[default]
    Empty,
    /// UTF-8 text.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values.
    Array(Vec<AttributeValue>),
    /// A nested map of key-value pairs, order kept.
    Map(Vec<Attribute>),
}

impl AttributeValue {
    /// The value as display text: strings as they are, everything else in a compact form.
    pub fn to_text(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::String(text) => text.clone(),
            Self::Bool(value) => value.to_string(),
            Self::Int(value) => value.to_string(),
            Self::Double(value) => value.to_string(),
            Self::Bytes(bytes) => hex::encode(bytes),
            Self::Array(_) | Self::Map(_) => self.to_plain_json().to_string(),
        }
    }

    /// The value as untyped JSON (arrays as arrays, maps as objects, bytes as hex), the way
    /// tools that know no OpenTelemetry types display nested values.
    pub fn to_plain_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Empty => Value::Null,
            Self::String(text) => Value::String(text.clone()),
            Self::Bool(value) => Value::Bool(*value),
            Self::Int(value) => Value::from(*value),
            Self::Double(value) => Value::from(*value),
            Self::Bytes(bytes) => Value::String(hex::encode(bytes)),
            Self::Array(values) => Value::Array(values.iter().map(Self::to_plain_json).collect()),
            Self::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|a| (a.key.clone(), a.value.to_plain_json()))
                    .collect(),
            ),
        }
    }

    /// A short name of the type, as used in stored columns and API output.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::String(_) => "string",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Double(_) => "double",
            Self::Bytes(_) => "bytes",
            Self::Array(_) => "array",
            Self::Map(_) => "map",
        }
    }

    /// Rough heap size, used for memory budgets.
    /// Heap bytes only: the value itself sits inline in its parent.
    pub fn estimated_bytes(&self) -> usize {
        match self {
            Self::String(text) => heap_bytes(text.len()),
            Self::Bytes(bytes) => heap_bytes(bytes.len()),
            Self::Array(values) => {
                heap_bytes(values.len() * size_of::<AttributeValue>())
                    + values
                        .iter()
                        .map(AttributeValue::estimated_bytes)
                        .sum::<usize>()
            }
            Self::Map(entries) => attributes_bytes(entries),
            _ => 0,
        }
    }
}

/// A key with its typed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The attribute key, e.g. `http.request.method`.
    pub key: String,
    /// The typed value.
    pub value: AttributeValue,
}

impl Attribute {
    /// Builds a string attribute; handy in tests and generators.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: AttributeValue::String(value.into()),
        }
    }

    /// Rough heap size, used for memory budgets.
    /// Counts the attribute inline (as an element of its list) plus its heap.
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Self>() + heap_bytes(self.key.len()) + self.value.estimated_bytes()
    }
}

/// Finds the first attribute with `key`.
pub fn find_attribute<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a AttributeValue> {
    attributes.iter().find(|a| a.key == key).map(|a| &a.value)
}

/// What an allocation of `len` bytes costs: allocators hand out size classes, so small
/// strings cost more than their length (memory budgets are only as good as this estimate).
pub fn heap_bytes(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.next_multiple_of(16)
    }
}

/// Rough heap size of an attribute list.
pub fn attributes_bytes(attributes: &[Attribute]) -> usize {
    attributes.iter().map(Attribute::estimated_bytes).sum()
}

/// The entity that produced telemetry (a service instance), shared by all records of one export group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resource {
    /// Resource attributes such as `service.name` and `host.name`.
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    #[serde(default)]
    pub dropped_attributes_count: u32,
    /// The schema URL of the resource group.
    #[serde(default)]
    pub schema_url: String,
}

impl Resource {
    /// The attribute key that names a service.
    pub const SERVICE_NAME: &'static str = "service.name";

    /// The host whose clock stamps this resource's telemetry: `host.id`, else `host.ip` (its
    /// first address), `host.name`, `service.instance.id`, `service.name`.
    pub fn clock_host(&self) -> &str {
        const KEYS: [&str; 4] = ["host.id", "host.ip", "host.name", "service.instance.id"];
        KEYS.iter()
            .find_map(|key| match find_attribute(&self.attributes, key) {
                Some(AttributeValue::String(value)) if !value.is_empty() => Some(value.as_str()),
                Some(AttributeValue::Array(values)) => values.iter().find_map(|v| match v {
                    AttributeValue::String(value) if !value.is_empty() => Some(value.as_str()),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap_or_else(|| self.service_name())
    }

    /// `service.name`, or `unknown_service` as the OpenTelemetry spec prescribes.
    pub fn service_name(&self) -> &str {
        match find_attribute(&self.attributes, Self::SERVICE_NAME) {
            Some(AttributeValue::String(name)) if !name.is_empty() => name,
            _ => "unknown_service",
        }
    }
}

/// The instrumentation library that produced records.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstrumentationScope {
    /// Library name.
    pub name: String,
    /// Library version.
    #[serde(default)]
    pub version: String,
    /// Scope attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Attributes the sender dropped.
    #[serde(default)]
    pub dropped_attributes_count: u32,
    /// The schema URL of the scope group.
    #[serde(default)]
    pub schema_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_json_round_trips_every_kind() {
        let value = AttributeValue::Map(vec![
            Attribute::string("s", "text"),
            Attribute {
                key: "i".into(),
                value: AttributeValue::Int(-7),
            },
            Attribute {
                key: "d".into(),
                value: AttributeValue::Double(1.5),
            },
            Attribute {
                key: "b".into(),
                value: AttributeValue::Bool(true),
            },
            Attribute {
                key: "x".into(),
                value: AttributeValue::Bytes(vec![0, 255]),
            },
            Attribute {
                key: "a".into(),
                value: AttributeValue::Array(vec![AttributeValue::Int(1), AttributeValue::Empty]),
            },
        ]);
        let text = serde_json::to_string(&value).unwrap();
        let back: AttributeValue = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn nested_values_render_as_plain_json() {
        let value = AttributeValue::Array(vec![
            AttributeValue::String("a".into()),
            AttributeValue::Int(2),
            AttributeValue::Map(vec![Attribute::string("k", "v")]),
        ]);
        assert_eq!(value.to_text(), r#"["a",2,{"k":"v"}]"#);
    }

    #[test]
    fn service_name_falls_back_to_unknown_service() {
        assert_eq!(Resource::default().service_name(), "unknown_service");
        let resource = Resource {
            attributes: vec![Attribute::string("service.name", "checkout")],
            ..Resource::default()
        };
        assert_eq!(resource.service_name(), "checkout");
    }
}
