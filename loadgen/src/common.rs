//! Small OTLP builders shared by the generators.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};

/// A string attribute.
pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// An integer attribute.
pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// A string `AnyValue`.
pub fn text(value: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(value)),
    })
}

/// The instrumentation scope of generated data.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "skewer-loadgen".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
    }
}
