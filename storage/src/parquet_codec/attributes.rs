//! The attribute column every record, event, link and exemplar uses: a
//! `List<Struct<key, type, str, int, double, bool, bytes>>` where `type` tags which value child
//! is set, so an `int` reads back as an `int`.
//!
//! Scalars go to their typed child (queryable, exact, NaN kept); Array and Map values go as
//! typed JSON of the whole [`AttributeValue`] in `str`. This module knows no record type.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    StructArray, UInt8Array,
};
use arrow_schema::{DataType, Field, Fields};

use super::CodecError;
use super::columns::{ListOffsets, child, list_array, list_range, list_values, missing_value};
use super::json::{read_json, write_json};
use crate::model::{Attribute, AttributeValue};

const TYPE_EMPTY: u8 = 0;
const TYPE_STRING: u8 = 1;
const TYPE_BOOL: u8 = 2;
const TYPE_INT: u8 = 3;
const TYPE_DOUBLE: u8 = 4;
const TYPE_BYTES: u8 = 5;
const TYPE_ARRAY: u8 = 6;
const TYPE_MAP: u8 = 7;

const KEY: &str = "key";
const TYPE: &str = "type";
const STR: &str = "str";
const INT: &str = "int";
const DOUBLE: &str = "double";
const BOOL: &str = "bool";
const BYTES: &str = "bytes";

fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new(KEY, DataType::Utf8, false),
        Field::new(TYPE, DataType::UInt8, false),
        Field::new(STR, DataType::Utf8, true),
        Field::new(INT, DataType::Int64, true),
        Field::new(DOUBLE, DataType::Float64, true),
        Field::new(BOOL, DataType::Boolean, true),
        Field::new(BYTES, DataType::Binary, true),
    ])
}

fn item_type() -> DataType {
    DataType::Struct(item_fields())
}

/// The Arrow type of an attribute column.
pub(crate) fn attributes_type() -> DataType {
    super::columns::list_type(item_type())
}

/// Builds one attribute column, one list of attributes per row.
pub(crate) struct AttributesBuilder {
    column: &'static str,
    offsets: ListOffsets,
    keys: StringBuilder,
    types: Vec<u8>,
    strings: StringBuilder,
    ints: Int64Builder,
    doubles: Float64Builder,
    bools: BooleanBuilder,
    bytes: BinaryBuilder,
    json: Vec<u8>,
}

impl AttributesBuilder {
    /// Room for `num_rows` lists holding `num_attributes` attributes in all.
    pub(crate) fn with_capacity(
        column: &'static str,
        num_rows: usize,
        num_attributes: usize,
    ) -> Self {
        Self {
            column,
            offsets: ListOffsets::with_capacity(column, num_rows),
            keys: StringBuilder::with_capacity(num_attributes, num_attributes * 16),
            types: Vec::with_capacity(num_attributes),
            strings: StringBuilder::with_capacity(num_attributes, num_attributes * 16),
            ints: Int64Builder::with_capacity(num_attributes),
            doubles: Float64Builder::with_capacity(num_attributes),
            bools: BooleanBuilder::with_capacity(num_attributes),
            bytes: BinaryBuilder::with_capacity(num_attributes, 0),
            json: Vec::new(),
        }
    }

    /// Appends one row's attributes.
    pub(crate) fn append(&mut self, attributes: &[Attribute]) -> Result<(), CodecError> {
        for attribute in attributes {
            self.keys.append_value(&attribute.key);
            self.append_value(&attribute.value)?;
        }
        self.offsets.push_len(attributes.len())
    }

    fn append_value(&mut self, value: &AttributeValue) -> Result<(), CodecError> {
        let tag = match value {
            AttributeValue::Empty => TYPE_EMPTY,
            AttributeValue::String(text) => {
                self.strings.append_value(text);
                TYPE_STRING
            }
            AttributeValue::Bool(flag) => {
                self.bools.append_value(*flag);
                TYPE_BOOL
            }
            AttributeValue::Int(number) => {
                self.ints.append_value(*number);
                TYPE_INT
            }
            AttributeValue::Double(number) => {
                self.doubles.append_value(*number);
                TYPE_DOUBLE
            }
            AttributeValue::Bytes(bytes) => {
                self.bytes.append_value(bytes);
                TYPE_BYTES
            }
            AttributeValue::Array(_) | AttributeValue::Map(_) => {
                self.json.clear();
                write_json(value, &mut self.json, self.column)?;
                let text =
                    std::str::from_utf8(&self.json).map_err(|err| CodecError::InvalidValue {
                        column: self.column.to_owned(),
                        row: 0,
                        reason: format!("JSON that is not UTF-8: {err}"),
                    })?;
                self.strings.append_value(text);
                if matches!(value, AttributeValue::Array(_)) {
                    TYPE_ARRAY
                } else {
                    TYPE_MAP
                }
            }
        };
        self.types.push(tag);
        // Every value child not set above gets a null, keeping all children aligned.
        let len = self.types.len();
        if self.strings.len() < len {
            self.strings.append_null();
        }
        if self.ints.len() < len {
            self.ints.append_null();
        }
        if self.doubles.len() < len {
            self.doubles.append_null();
        }
        if self.bools.len() < len {
            self.bools.append_null();
        }
        if self.bytes.len() < len {
            self.bytes.append_null();
        }
        Ok(())
    }

    /// The finished list column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.keys.finish()),
            Arc::new(UInt8Array::from(self.types)),
            Arc::new(self.strings.finish()),
            Arc::new(self.ints.finish()),
            Arc::new(self.doubles.finish()),
            Arc::new(self.bools.finish()),
            Arc::new(self.bytes.finish()),
        ];
        let items = StructArray::try_new(item_fields(), children, None)?;
        list_array(item_type(), self.offsets, Arc::new(items))
    }
}

/// Reads an attribute column back, row by row.
pub(crate) struct AttributesReader<'a> {
    path: &'a str,
    list: &'a ListArray,
    keys: &'a StringArray,
    types: &'a UInt8Array,
    strings: &'a StringArray,
    ints: &'a Int64Array,
    doubles: &'a Float64Array,
    bools: &'a BooleanArray,
    bytes: &'a BinaryArray,
}

impl<'a> AttributesReader<'a> {
    /// A reader over `list`, the column at dotted path `path` (named in errors).
    pub(crate) fn new(list: &'a ListArray, path: &'a str) -> Result<Self, CodecError> {
        let items = list_values::<StructArray>(list, path)?;
        Ok(Self {
            path,
            list,
            keys: child(items, KEY, path)?,
            types: child(items, TYPE, path)?,
            strings: child(items, STR, path)?,
            ints: child(items, INT, path)?,
            doubles: child(items, DOUBLE, path)?,
            bools: child(items, BOOL, path)?,
            bytes: child(items, BYTES, path)?,
        })
    }

    /// The attributes of row `row`.
    pub(crate) fn read(&self, row: usize) -> Result<Vec<Attribute>, CodecError> {
        list_range(self.list, row)
            .map(|item| {
                Ok(Attribute {
                    key: self.keys.value(item).to_owned(),
                    value: self.value(item)?,
                })
            })
            .collect()
    }

    /// Calls `visit` with the key of every attribute of row `row`.
    pub(crate) fn visit_keys(&self, row: usize, visit: &mut impl FnMut(&str)) {
        for item in list_range(self.list, row) {
            visit(self.keys.value(item));
        }
    }

    /// Whether row `row` holds attribute `key` (with `value` as text, when given).
    pub(crate) fn has(
        &self,
        row: usize,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, CodecError> {
        for item in list_range(self.list, row) {
            if self.keys.value(item) != key {
                continue;
            }
            let Some(value) = value else {
                return Ok(true);
            };
            let matched = match self.types.value(item) {
                TYPE_STRING if !self.strings.is_null(item) => self.strings.value(item) == value,
                _ => self.value(item)?.to_text() == value,
            };
            if matched {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The text value of the first of `keys` (in their order) that row `row` holds as a
    /// string attribute.
    pub(crate) fn find_string(&self, row: usize, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|key| {
            list_range(self.list, row).find_map(|item| {
                let is_text = self.types.value(item) == TYPE_STRING && !self.strings.is_null(item);
                (is_text && self.keys.value(item) == *key).then(|| self.strings.value(item))
            })
        })
    }

    fn value(&self, item: usize) -> Result<AttributeValue, CodecError> {
        let absent = |array: &dyn Array| array.is_null(item);
        let missing = || missing_value(self.path, item);
        Ok(match self.types.value(item) {
            TYPE_EMPTY => AttributeValue::Empty,
            TYPE_STRING if !absent(self.strings) => {
                AttributeValue::String(self.strings.value(item).to_owned())
            }
            TYPE_BOOL if !absent(self.bools) => AttributeValue::Bool(self.bools.value(item)),
            TYPE_INT if !absent(self.ints) => AttributeValue::Int(self.ints.value(item)),
            TYPE_DOUBLE if !absent(self.doubles) => {
                AttributeValue::Double(self.doubles.value(item))
            }
            TYPE_BYTES if !absent(self.bytes) => {
                AttributeValue::Bytes(self.bytes.value(item).to_vec())
            }
            TYPE_ARRAY | TYPE_MAP if !absent(self.strings) => {
                read_json(self.strings.value(item), self.path)?
            }
            TYPE_STRING | TYPE_BOOL | TYPE_INT | TYPE_DOUBLE | TYPE_BYTES | TYPE_ARRAY
            | TYPE_MAP => return Err(missing()),
            unknown => {
                return Err(CodecError::InvalidValue {
                    column: self.path.to_owned(),
                    row: item,
                    reason: format!("unknown attribute type {unknown}"),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_codec::columns::downcast;
    use crate::parquet_codec::test_fixtures::{any_attributes, every_attribute_kind};
    use proptest::prelude::*;

    fn round_trip(rows: &[Vec<Attribute>]) -> Vec<Vec<Attribute>> {
        let total = rows.iter().map(Vec::len).sum();
        let mut builder = AttributesBuilder::with_capacity("attributes", rows.len(), total);
        for row in rows {
            builder.append(row).unwrap();
        }
        let array = builder.finish().unwrap();
        assert_eq!(array.data_type(), &attributes_type());
        let list = downcast::<ListArray>(&array, "attributes").unwrap();
        let reader = AttributesReader::new(list, "attributes").unwrap();
        (0..rows.len())
            .map(|row| reader.read(row).unwrap())
            .collect()
    }

    #[test]
    fn every_kind_round_trips_in_memory() {
        let rows = vec![
            every_attribute_kind(),
            vec![],
            vec![Attribute::string("k", "")],
        ];
        assert_eq!(round_trip(&rows), rows);
    }

    #[test]
    fn top_level_nan_keeps_its_type() {
        let rows = vec![vec![Attribute {
            key: "nan".into(),
            value: AttributeValue::Double(f64::NAN),
        }]];
        let back = round_trip(&rows);
        assert!(matches!(back[0][0].value, AttributeValue::Double(v) if v.is_nan()));
    }

    #[test]
    fn unknown_type_tags_are_errors() {
        let items = StructArray::try_new(
            item_fields(),
            vec![
                Arc::new(StringArray::from(vec!["k"])),
                Arc::new(UInt8Array::from(vec![99])),
                Arc::new(StringArray::from(vec![None::<&str>])),
                Arc::new(Int64Array::from(vec![None])),
                Arc::new(Float64Array::from(vec![None])),
                Arc::new(BooleanArray::from(vec![None])),
                Arc::new(BinaryArray::from(vec![None::<&[u8]>])),
            ],
            None,
        )
        .unwrap();
        let bad = ListArray::try_new(
            super::super::columns::list_item(item_type()),
            arrow_buffer::OffsetBuffer::from_lengths([1]),
            Arc::new(items),
            None,
        )
        .unwrap();
        let reader = AttributesReader::new(&bad, "attributes").unwrap();
        assert!(matches!(
            reader.read(0),
            Err(CodecError::InvalidValue { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_attributes_round_trip_in_memory(
            rows in proptest::collection::vec(any_attributes(), 0..6),
        ) {
            prop_assert_eq!(round_trip(&rows), rows);
        }
    }
}
