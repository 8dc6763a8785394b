//! The `exemplars` column of a metric row: a `List<Struct<time, value_double?, value_int?,
//! filtered_attributes, trace_id?, span_id?>>`, so an exemplar's trace link stays a typed id.
//!
//! This module knows the exemplar shape only, not the metric schema.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Float64Array, Int64Array, ListArray, StructArray,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Fields};

use super::CodecError;
use super::attributes::{AttributesBuilder, AttributesReader, attributes_type};
use super::columns::{
    IdColumnBuilder, ListOffsets, child, list_array, list_range, list_type, list_values,
    missing_value, optional_id,
};
use crate::model::{Exemplar, NumberValue, SpanId, TraceId};

const TIME: &str = "time_unix_nano";
const VALUE_DOUBLE: &str = "value_double";
const VALUE_INT: &str = "value_int";
const FILTERED_ATTRIBUTES: &str = "filtered_attributes";
const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";

fn exemplar_fields() -> Fields {
    Fields::from(vec![
        Field::new(TIME, DataType::UInt64, false),
        Field::new(VALUE_DOUBLE, DataType::Float64, true),
        Field::new(VALUE_INT, DataType::Int64, true),
        Field::new(FILTERED_ATTRIBUTES, attributes_type(), false),
        Field::new(TRACE_ID, IdColumnBuilder::<16>::data_type(), true),
        Field::new(SPAN_ID, IdColumnBuilder::<8>::data_type(), true),
    ])
}

/// The Arrow type of the `exemplars` column.
pub(crate) fn exemplars_type() -> DataType {
    list_type(DataType::Struct(exemplar_fields()))
}

/// Builds the `exemplars` column, one list per point.
pub(crate) struct ExemplarsBuilder {
    offsets: ListOffsets,
    times: Vec<u64>,
    doubles: Float64Builder,
    ints: Int64Builder,
    attributes: AttributesBuilder,
    trace_ids: IdColumnBuilder<16>,
    span_ids: IdColumnBuilder<8>,
}

impl ExemplarsBuilder {
    /// Room for `num_points` points holding `num_exemplars` exemplars in all.
    pub(crate) fn with_capacity(num_points: usize, num_exemplars: usize) -> Self {
        Self {
            offsets: ListOffsets::with_capacity("exemplars", num_points),
            times: Vec::with_capacity(num_exemplars),
            doubles: Float64Builder::with_capacity(num_exemplars),
            ints: Int64Builder::with_capacity(num_exemplars),
            attributes: AttributesBuilder::with_capacity(
                "exemplars.filtered_attributes",
                num_exemplars,
                num_exemplars,
            ),
            trace_ids: IdColumnBuilder::with_capacity(num_exemplars),
            span_ids: IdColumnBuilder::with_capacity(num_exemplars),
        }
    }

    /// Appends one point's exemplars.
    pub(crate) fn append(&mut self, exemplars: &[Exemplar]) -> Result<(), CodecError> {
        for exemplar in exemplars {
            self.times.push(exemplar.time_unix_nano);
            match exemplar.value {
                NumberValue::Double(value) => {
                    self.doubles.append_value(value);
                    self.ints.append_null();
                }
                NumberValue::Int(value) => {
                    self.doubles.append_null();
                    self.ints.append_value(value);
                }
            }
            self.attributes.append(&exemplar.filtered_attributes)?;
            self.trace_ids
                .append(exemplar.trace_id.as_ref().map(TraceId::as_bytes));
            self.span_ids
                .append(exemplar.span_id.as_ref().map(SpanId::as_bytes));
        }
        self.offsets.push_len(exemplars.len())
    }

    /// The finished column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(self.times)),
            Arc::new(self.doubles.finish()),
            Arc::new(self.ints.finish()),
            self.attributes.finish()?,
            self.trace_ids.finish()?,
            self.span_ids.finish()?,
        ];
        let items = StructArray::try_new(exemplar_fields(), children, None)?;
        list_array(
            DataType::Struct(exemplar_fields()),
            self.offsets,
            Arc::new(items),
        )
    }
}

/// Reads the `exemplars` column back.
pub(crate) struct ExemplarsReader<'a> {
    list: &'a ListArray,
    times: &'a UInt64Array,
    doubles: &'a Float64Array,
    ints: &'a Int64Array,
    attributes: AttributesReader<'a>,
    trace_ids: &'a FixedSizeBinaryArray,
    span_ids: &'a FixedSizeBinaryArray,
}

impl<'a> ExemplarsReader<'a> {
    /// A reader over the `exemplars` list column.
    pub(crate) fn new(list: &'a ListArray) -> Result<Self, CodecError> {
        let items = list_values::<StructArray>(list, "exemplars")?;
        Ok(Self {
            list,
            times: child(items, TIME, "exemplars.time_unix_nano")?,
            doubles: child(items, VALUE_DOUBLE, "exemplars.value_double")?,
            ints: child(items, VALUE_INT, "exemplars.value_int")?,
            attributes: AttributesReader::new(
                child(items, FILTERED_ATTRIBUTES, "exemplars.filtered_attributes")?,
                "exemplars.filtered_attributes",
            )?,
            trace_ids: child(items, TRACE_ID, "exemplars.trace_id")?,
            span_ids: child(items, SPAN_ID, "exemplars.span_id")?,
        })
    }

    /// The exemplars of point row `row`.
    pub(crate) fn read(&self, row: usize) -> Result<Vec<Exemplar>, CodecError> {
        list_range(self.list, row)
            .map(|item| {
                let value = if self.ints.is_valid(item) {
                    NumberValue::Int(self.ints.value(item))
                } else if self.doubles.is_valid(item) {
                    NumberValue::Double(self.doubles.value(item))
                } else {
                    return Err(missing_value("exemplars.value_double", item));
                };
                Ok(Exemplar {
                    time_unix_nano: self.times.value(item),
                    value,
                    filtered_attributes: self.attributes.read(item)?,
                    trace_id: optional_id(self.trace_ids, item, "exemplars.trace_id")?.map(TraceId),
                    span_id: optional_id(self.span_ids, item, "exemplars.span_id")?.map(SpanId),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;
    use crate::parquet_codec::columns::downcast;

    #[test]
    fn exemplars_round_trip_in_memory() {
        let rows = vec![
            vec![],
            vec![
                Exemplar {
                    time_unix_nano: 1,
                    value: NumberValue::Double(0.5),
                    filtered_attributes: vec![Attribute::string("user", "ana")],
                    trace_id: Some(TraceId([1; 16])),
                    span_id: Some(SpanId([2; 8])),
                },
                Exemplar {
                    time_unix_nano: 2,
                    value: NumberValue::Int(-9),
                    filtered_attributes: vec![],
                    trace_id: None,
                    span_id: None,
                },
            ],
        ];
        let mut builder = ExemplarsBuilder::with_capacity(2, 2);
        for row in &rows {
            builder.append(row).unwrap();
        }
        let array = builder.finish().unwrap();
        assert_eq!(array.data_type(), &exemplars_type());
        let reader = ExemplarsReader::new(downcast(&array, "exemplars").unwrap()).unwrap();
        for (row, expected) in rows.iter().enumerate() {
            assert_eq!(&reader.read(row).unwrap(), expected);
        }
    }
}
