//! Typed JSON columns: resources and scopes as dictionary-encoded JSON text, written once per
//! distinct value and parsed once per distinct value on decode, with every row sharing its `Arc`.
//!
//! Also writes the JSON of nested (Array / Map) attribute values. JSON cannot hold NaN or
//! infinities, so doubles that are not finite are written as the strings `"NaN"`, `"inf"` and
//! `"-inf"` inside JSON (lossy, but the file stays readable); top-level attribute doubles use a
//! typed column and keep them exactly. This module knows no span or metric schema.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CodecError;
use super::columns::downcast;
use crate::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

/// A model value written as JSON text, with a way to make it JSON-safe first.
pub(crate) trait JsonValue: Serialize + Clone {
    /// Whether some double inside is NaN or infinite (JSON has no spelling for those).
    fn has_non_finite(&self) -> bool;
    /// Replaces non-finite doubles inside by their text.
    fn make_finite(&mut self);
}

impl JsonValue for AttributeValue {
    fn has_non_finite(&self) -> bool {
        match self {
            Self::Double(value) => !value.is_finite(),
            Self::Array(values) => values.iter().any(Self::has_non_finite),
            Self::Map(entries) => attributes_have_non_finite(entries),
            _ => false,
        }
    }

    fn make_finite(&mut self) {
        match self {
            Self::Double(value) if !value.is_finite() => {
                let text = if value.is_nan() {
                    "NaN"
                } else if value.is_sign_positive() {
                    "inf"
                } else {
                    "-inf"
                };
                *self = Self::String(text.to_owned());
            }
            Self::Array(values) => values.iter_mut().for_each(Self::make_finite),
            Self::Map(entries) => make_attributes_finite(entries),
            _ => {}
        }
    }
}

impl JsonValue for Resource {
    fn has_non_finite(&self) -> bool {
        attributes_have_non_finite(&self.attributes)
    }

    fn make_finite(&mut self) {
        make_attributes_finite(&mut self.attributes);
    }
}

impl JsonValue for InstrumentationScope {
    fn has_non_finite(&self) -> bool {
        attributes_have_non_finite(&self.attributes)
    }

    fn make_finite(&mut self) {
        make_attributes_finite(&mut self.attributes);
    }
}

fn attributes_have_non_finite(attributes: &[Attribute]) -> bool {
    attributes.iter().any(|a| a.value.has_non_finite())
}

fn make_attributes_finite(attributes: &mut [Attribute]) {
    attributes.iter_mut().for_each(|a| a.value.make_finite());
}

/// Appends the JSON of `value` to `out`; `column` names the column in errors.
pub(crate) fn write_json<T: JsonValue>(
    value: &T,
    out: &mut Vec<u8>,
    column: &str,
) -> Result<(), CodecError> {
    let result = if value.has_non_finite() {
        let mut finite = value.clone();
        finite.make_finite();
        serde_json::to_writer(&mut *out, &finite)
    } else {
        serde_json::to_writer(&mut *out, value)
    };
    result.map_err(|source| CodecError::Json {
        column: column.to_owned(),
        source,
    })
}

/// Parses the JSON text of one value; `column` names the column in errors.
pub(crate) fn read_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T, CodecError> {
    serde_json::from_str(text).map_err(|source| CodecError::Json {
        column: column.to_owned(),
        source,
    })
}

/// The Arrow type of a shared JSON column: `Dictionary(Int32, Utf8)`.
pub(crate) fn shared_json_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Builds a shared JSON column, serializing each distinct `Arc` (and each distinct text) once.
pub(crate) struct SharedJsonBuilder<'a, T> {
    column: &'static str,
    by_pointer: HashMap<*const T, i32>,
    by_text: HashMap<String, i32>,
    values: StringBuilder,
    keys: Vec<i32>,
    buffer: Vec<u8>,
    borrows: PhantomData<&'a T>,
}

impl<'a, T: JsonValue> SharedJsonBuilder<'a, T> {
    /// Room for `num_rows` rows of column `column`.
    pub(crate) fn with_capacity(column: &'static str, num_rows: usize) -> Self {
        Self {
            column,
            by_pointer: HashMap::new(),
            by_text: HashMap::new(),
            values: StringBuilder::new(),
            keys: Vec::with_capacity(num_rows),
            buffer: Vec::new(),
            borrows: PhantomData,
        }
    }

    /// Appends one row. Borrowing the `Arc` for `'a` keeps its address a stable identity.
    pub(crate) fn append(&mut self, value: &'a Arc<T>) -> Result<(), CodecError> {
        let pointer = Arc::as_ptr(value);
        let key = match self.by_pointer.get(&pointer) {
            Some(&key) => key,
            None => {
                let key = self.intern(value)?;
                self.by_pointer.insert(pointer, key);
                key
            }
        };
        self.keys.push(key);
        Ok(())
    }

    fn intern(&mut self, value: &T) -> Result<i32, CodecError> {
        self.buffer.clear();
        write_json(value, &mut self.buffer, self.column)?;
        let text = std::str::from_utf8(&self.buffer).map_err(|err| CodecError::InvalidValue {
            column: self.column.to_owned(),
            row: 0,
            reason: format!("JSON that is not UTF-8: {err}"),
        })?;
        if let Some(&key) = self.by_text.get(text) {
            return Ok(key);
        }
        let key = i32::try_from(self.by_text.len()).map_err(|_| CodecError::TooLarge {
            column: self.column,
        })?;
        self.values.append_value(text);
        self.by_text.insert(text.to_owned(), key);
        Ok(key)
    }

    /// The finished dictionary array.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let keys = Int32Array::from(self.keys);
        let values: ArrayRef = Arc::new(self.values.finish());
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            keys, values,
        )?))
    }
}

/// Where a shared JSON column's text lives in a batch read back.
enum JsonSource<'a> {
    /// Plain `Utf8`, one text per row.
    Plain(&'a StringArray),
    /// `Dictionary(Int32, Utf8)`, as written.
    Dictionary {
        keys: &'a Int32Array,
        values: &'a StringArray,
    },
}

/// Reads a shared JSON column, parsing each distinct text once and sharing one `Arc` per text.
pub(crate) struct SharedJsonReader<'a, T> {
    column: &'static str,
    source: JsonSource<'a>,
    by_value_index: Vec<Option<Arc<T>>>,
    by_text: HashMap<&'a str, Arc<T>>,
    default: Option<Arc<T>>,
}

impl<'a, T: DeserializeOwned + Default> SharedJsonReader<'a, T> {
    /// A reader over column `column` of `batch`, plain or dictionary-encoded `Utf8`.
    pub(crate) fn new(batch: &'a RecordBatch, column: &'static str) -> Result<Self, CodecError> {
        let array = batch
            .column_by_name(column)
            .ok_or_else(|| CodecError::MissingColumn {
                column: column.to_owned(),
            })?;
        let source = match array.data_type() {
            DataType::Dictionary(_, _) => {
                let dictionary = downcast::<DictionaryArray<Int32Type>>(array, column)?;
                JsonSource::Dictionary {
                    keys: dictionary.keys(),
                    values: downcast::<StringArray>(dictionary.values(), column)?,
                }
            }
            _ => JsonSource::Plain(downcast::<StringArray>(array, column)?),
        };
        let num_values = match source {
            JsonSource::Plain(_) => 0,
            JsonSource::Dictionary { values, .. } => values.len(),
        };
        Ok(Self {
            column,
            source,
            by_value_index: vec![None; num_values],
            by_text: HashMap::new(),
            default: None,
        })
    }

    /// The value of row `row`; a null row reads as the type's default.
    pub(crate) fn get(&mut self, row: usize) -> Result<Arc<T>, CodecError> {
        match self.source {
            JsonSource::Plain(values) => {
                if values.is_null(row) {
                    return Ok(self.default());
                }
                self.intern(values.value(row))
            }
            JsonSource::Dictionary { keys, values } => {
                if keys.is_null(row) {
                    return Ok(self.default());
                }
                let index = usize::try_from(keys.value(row))
                    .ok()
                    .filter(|&index| index < values.len())
                    .ok_or_else(|| CodecError::InvalidValue {
                        column: self.column.to_owned(),
                        row,
                        reason: "dictionary key out of range".to_owned(),
                    })?;
                if let Some(Some(value)) = self.by_value_index.get(index) {
                    return Ok(Arc::clone(value));
                }
                let value = if values.is_null(index) {
                    self.default()
                } else {
                    self.intern(values.value(index))?
                };
                self.by_value_index[index] = Some(Arc::clone(&value));
                Ok(value)
            }
        }
    }

    fn intern(&mut self, text: &'a str) -> Result<Arc<T>, CodecError> {
        if let Some(value) = self.by_text.get(text) {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(read_json::<T>(text, self.column)?);
        self.by_text.insert(text, Arc::clone(&value));
        Ok(value)
    }

    fn default(&mut self) -> Arc<T> {
        Arc::clone(self.default.get_or_insert_with(|| Arc::new(T::default())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, Schema};

    fn resource(name: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![Attribute::string("service.name", name)],
            ..Resource::default()
        })
    }

    fn batch_of(array: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(
            "resource",
            array.data_type().clone(),
            true,
        )]);
        RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap()
    }

    #[test]
    fn equal_values_are_written_once_and_shared_on_read() {
        let a = resource("a");
        let a_copy = resource("a");
        let b = resource("b");
        let rows = [&a, &b, &a_copy, &a, &b];
        let mut builder = SharedJsonBuilder::with_capacity("resource", rows.len());
        for value in rows {
            builder.append(value).unwrap();
        }
        let array = builder.finish().unwrap();
        let dictionary = array
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .unwrap();
        assert_eq!(dictionary.values().len(), 2);

        let batch = batch_of(array);
        let mut reader = SharedJsonReader::<Resource>::new(&batch, "resource").unwrap();
        let read: Vec<Arc<Resource>> = (0..5).map(|row| reader.get(row).unwrap()).collect();
        assert_eq!(*read[0], *a);
        assert_eq!(*read[1], *b);
        assert!(Arc::ptr_eq(&read[0], &read[2]) && Arc::ptr_eq(&read[0], &read[3]));
        assert!(Arc::ptr_eq(&read[1], &read[4]));
    }

    #[test]
    fn plain_text_columns_are_shared_too() {
        let text = serde_json::to_string(&*resource("a")).unwrap();
        let array: ArrayRef = Arc::new(StringArray::from(vec![
            Some(text.as_str()),
            None,
            Some(&text),
        ]));
        let batch = batch_of(array);
        let mut reader = SharedJsonReader::<Resource>::new(&batch, "resource").unwrap();
        let first = reader.get(0).unwrap();
        assert_eq!(*reader.get(1).unwrap(), Resource::default());
        assert!(Arc::ptr_eq(&first, &reader.get(2).unwrap()));
    }

    #[test]
    fn non_finite_doubles_become_text_and_stay_readable() {
        let value = AttributeValue::Array(vec![
            AttributeValue::Double(f64::NAN),
            AttributeValue::Double(f64::NEG_INFINITY),
            AttributeValue::Double(0.1),
        ]);
        let mut out = Vec::new();
        write_json(&value, &mut out, "x").unwrap();
        let back: AttributeValue = read_json(std::str::from_utf8(&out).unwrap(), "x").unwrap();
        assert_eq!(
            back,
            AttributeValue::Array(vec![
                AttributeValue::String("NaN".into()),
                AttributeValue::String("-inf".into()),
                AttributeValue::Double(0.1),
            ])
        );
    }

    #[test]
    fn bad_json_names_the_column() {
        let array: ArrayRef = Arc::new(StringArray::from(vec!["{not json"]));
        let batch = batch_of(array);
        let mut reader = SharedJsonReader::<Resource>::new(&batch, "resource").unwrap();
        assert!(
            matches!(reader.get(0), Err(CodecError::Json { column, .. }) if column == "resource")
        );
    }
}
