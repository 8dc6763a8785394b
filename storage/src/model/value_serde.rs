//! The two serialized forms of [`AttributeValue`].
//!
//! Human-readable formats (the JSON of the API and of old stored records) get the tagged form
//! `{"type": "bytes", "value": "ab01"}`. Binary formats (postcard, for stored log records) get
//! serde's externally tagged enum (a variant index, then the value), which they support and
//! the tagged form's deserializer (it needs `deserialize_any`) is not.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::attributes::{Attribute, AttributeValue};

/// The JSON form. `remote` makes serde generate (de)serializers for [`AttributeValue`] from
/// this mirror of its variants; they must stay in step with it.
#[derive(Serialize, Deserialize)]
#[serde(
    remote = "AttributeValue",
    tag = "type",
    content = "value",
    rename_all = "snake_case"
)]
enum TaggedValue {
    Empty,
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(#[serde(with = "hex_text")] Vec<u8>),
    Array(Vec<AttributeValue>),
    Map(Vec<Attribute>),
}

/// The binary form: serde's externally tagged enum. Variant order is the format: append, never
/// reorder.
#[derive(Serialize, Deserialize)]
#[serde(remote = "AttributeValue")]
enum BinaryValue {
    Empty,
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttributeValue>),
    Map(Vec<Attribute>),
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            TaggedValue::serialize(self, s)
        } else {
            BinaryValue::serialize(self, s)
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            TaggedValue::deserialize(d)
        } else {
            BinaryValue::deserialize(d)
        }
    }
}

/// Bytes as lowercase hex text.
mod hex_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_ref()).map_err(serde::de::Error::custom)
    }
}
