//! The value columns of a metric row: one set of columns covering all four [`PointValue`]
//! shapes (number, histogram, exponential histogram, summary), with a `value_type` tag and
//! nulls or empty lists where a shape has no such field.
//!
//! Int and double numbers go to separate columns, so the sender's type survives. This module
//! knows the value shapes only, not the rest of the metric schema.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Float64Builder, Int32Builder, Int64Builder, UInt64Builder,
};
use arrow_array::types::{Float64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, Float64Array, Int32Array, Int64Array, ListArray,
    PrimitiveArray, RecordBatch, StructArray, UInt8Array, UInt64Array,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Fields};

use super::CodecError;
use super::columns::{
    ListOffsets, child, column, list_array, list_range, list_type, list_values, missing_value,
};
use crate::model::{ExponentialBuckets, NumberValue, PointValue, Quantile};

const VALUE_TYPE: &str = "value_type";
/// The double value of a number point; written with `BYTE_STREAM_SPLIT`.
pub(crate) const VALUE_DOUBLE: &str = "value_double";
/// The int value of a number point; delta-encoded (cumulative counters climb slowly).
pub(crate) const VALUE_INT: &str = "value_int";
/// Histogram and summary counts; delta-encoded.
pub(crate) const COUNT: &str = "count";
/// Histogram and summary sums; written with `BYTE_STREAM_SPLIT`.
pub(crate) const SUM: &str = "sum";
/// Histogram minimums; written with `BYTE_STREAM_SPLIT`.
pub(crate) const MIN: &str = "min";
/// Histogram maximums; written with `BYTE_STREAM_SPLIT`.
pub(crate) const MAX: &str = "max";
const EXPLICIT_BOUNDS: &str = "explicit_bounds";
const BUCKET_COUNTS: &str = "bucket_counts";
const SCALE: &str = "scale";
const ZERO_COUNT: &str = "zero_count";
const ZERO_THRESHOLD: &str = "zero_threshold";
const POSITIVE_OFFSET: &str = "positive_offset";
const POSITIVE_BUCKET_COUNTS: &str = "positive_bucket_counts";
const NEGATIVE_OFFSET: &str = "negative_offset";
const NEGATIVE_BUCKET_COUNTS: &str = "negative_bucket_counts";
/// The list columns of bucket counts.
pub(crate) const COUNT_LISTS: [&str; 3] = [
    BUCKET_COUNTS,
    POSITIVE_BUCKET_COUNTS,
    NEGATIVE_BUCKET_COUNTS,
];
const QUANTILES: &str = "quantiles";
const QUANTILE: &str = "quantile";
const QUANTILE_VALUE: &str = "value";

/// Value columns that stay small whatever the points (a type tag, histogram scalars that are
/// null on other kinds): stored uncompressed.
pub(crate) const SMALL_COLUMNS: [&str; 6] = [
    VALUE_TYPE,
    SCALE,
    ZERO_COUNT,
    ZERO_THRESHOLD,
    POSITIVE_OFFSET,
    NEGATIVE_OFFSET,
];

const TYPE_NUMBER: u8 = 0;
const TYPE_HISTOGRAM: u8 = 1;
const TYPE_EXPONENTIAL_HISTOGRAM: u8 = 2;
const TYPE_SUMMARY: u8 = 3;

fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new(QUANTILE, DataType::Float64, false),
        Field::new(QUANTILE_VALUE, DataType::Float64, false),
    ])
}

/// The value columns' fields, in the order [`PointValuesBuilder::finish`] returns arrays.
pub(crate) fn value_fields() -> Vec<Field> {
    vec![
        Field::new(VALUE_TYPE, DataType::UInt8, false),
        Field::new(VALUE_DOUBLE, DataType::Float64, true),
        Field::new(VALUE_INT, DataType::Int64, true),
        Field::new(COUNT, DataType::UInt64, true),
        Field::new(SUM, DataType::Float64, true),
        Field::new(MIN, DataType::Float64, true),
        Field::new(MAX, DataType::Float64, true),
        Field::new(EXPLICIT_BOUNDS, list_type(DataType::Float64), false),
        Field::new(BUCKET_COUNTS, list_type(DataType::UInt64), false),
        Field::new(SCALE, DataType::Int32, true),
        Field::new(ZERO_COUNT, DataType::UInt64, true),
        Field::new(ZERO_THRESHOLD, DataType::Float64, true),
        Field::new(POSITIVE_OFFSET, DataType::Int32, true),
        Field::new(POSITIVE_BUCKET_COUNTS, list_type(DataType::UInt64), false),
        Field::new(NEGATIVE_OFFSET, DataType::Int32, true),
        Field::new(NEGATIVE_BUCKET_COUNTS, list_type(DataType::UInt64), false),
        Field::new(
            QUANTILES,
            list_type(DataType::Struct(quantile_fields())),
            false,
        ),
    ]
}

/// A list-of-primitives column under construction.
struct PrimitiveLists<T: ArrowPrimitiveType> {
    offsets: ListOffsets,
    values: Vec<T::Native>,
    num_rows: usize,
}

impl<T: ArrowPrimitiveType> PrimitiveLists<T> {
    fn with_capacity(column: &'static str, num_rows: usize) -> Self {
        Self {
            offsets: ListOffsets::with_capacity(column, num_rows),
            values: Vec::new(),
            num_rows: 0,
        }
    }

    fn append(&mut self, values: &[T::Native]) -> Result<(), CodecError> {
        self.values.extend_from_slice(values);
        self.num_rows += 1;
        self.offsets.push_len(values.len())
    }

    fn finish(self) -> Result<ArrayRef, CodecError> {
        let values = PrimitiveArray::<T>::new(ScalarBuffer::from(self.values), None);
        list_array(T::DATA_TYPE, self.offsets, Arc::new(values))
    }
}

/// Builds the value columns, one [`PointValue`] per row.
pub(crate) struct PointValuesBuilder {
    num_rows: usize,
    types: Vec<u8>,
    doubles: Float64Builder,
    ints: Int64Builder,
    counts: UInt64Builder,
    sums: Float64Builder,
    mins: Float64Builder,
    maxes: Float64Builder,
    explicit_bounds: PrimitiveLists<Float64Type>,
    bucket_counts: PrimitiveLists<UInt64Type>,
    scales: Int32Builder,
    zero_counts: UInt64Builder,
    zero_thresholds: Float64Builder,
    positive_offsets: Int32Builder,
    positive_counts: PrimitiveLists<UInt64Type>,
    negative_offsets: Int32Builder,
    negative_counts: PrimitiveLists<UInt64Type>,
    quantile_offsets: ListOffsets,
    quantiles: Vec<f64>,
    quantile_values: Vec<f64>,
}

impl PointValuesBuilder {
    /// Room for `num_rows` points.
    pub(crate) fn with_capacity(num_rows: usize) -> Self {
        Self {
            num_rows: 0,
            types: Vec::with_capacity(num_rows),
            doubles: Float64Builder::with_capacity(num_rows),
            ints: Int64Builder::with_capacity(num_rows),
            counts: UInt64Builder::with_capacity(num_rows),
            sums: Float64Builder::with_capacity(num_rows),
            mins: Float64Builder::with_capacity(num_rows),
            maxes: Float64Builder::with_capacity(num_rows),
            explicit_bounds: PrimitiveLists::with_capacity(EXPLICIT_BOUNDS, num_rows),
            bucket_counts: PrimitiveLists::with_capacity(BUCKET_COUNTS, num_rows),
            scales: Int32Builder::with_capacity(num_rows),
            zero_counts: UInt64Builder::with_capacity(num_rows),
            zero_thresholds: Float64Builder::with_capacity(num_rows),
            positive_offsets: Int32Builder::with_capacity(num_rows),
            positive_counts: PrimitiveLists::with_capacity(POSITIVE_BUCKET_COUNTS, num_rows),
            negative_offsets: Int32Builder::with_capacity(num_rows),
            negative_counts: PrimitiveLists::with_capacity(NEGATIVE_BUCKET_COUNTS, num_rows),
            quantile_offsets: ListOffsets::with_capacity(QUANTILES, num_rows),
            quantiles: Vec::new(),
            quantile_values: Vec::new(),
        }
    }

    /// Appends one point's value.
    pub(crate) fn append(&mut self, value: &PointValue) -> Result<(), CodecError> {
        let mut num_quantiles = 0;
        let tag = match value {
            PointValue::Number {
                value: NumberValue::Double(number),
            } => {
                self.doubles.append_value(*number);
                TYPE_NUMBER
            }
            PointValue::Number {
                value: NumberValue::Int(number),
            } => {
                self.ints.append_value(*number);
                TYPE_NUMBER
            }
            PointValue::Histogram {
                count,
                sum,
                min,
                max,
                explicit_bounds,
                bucket_counts,
            } => {
                self.counts.append_value(*count);
                self.sums.append_option(*sum);
                self.mins.append_option(*min);
                self.maxes.append_option(*max);
                self.explicit_bounds.append(explicit_bounds)?;
                self.bucket_counts.append(bucket_counts)?;
                TYPE_HISTOGRAM
            }
            PointValue::ExponentialHistogram {
                count,
                sum,
                min,
                max,
                scale,
                zero_count,
                zero_threshold,
                positive,
                negative,
            } => {
                self.counts.append_value(*count);
                self.sums.append_option(*sum);
                self.mins.append_option(*min);
                self.maxes.append_option(*max);
                self.scales.append_value(*scale);
                self.zero_counts.append_value(*zero_count);
                self.zero_thresholds.append_value(*zero_threshold);
                self.positive_offsets.append_value(positive.offset);
                self.positive_counts.append(&positive.bucket_counts)?;
                self.negative_offsets.append_value(negative.offset);
                self.negative_counts.append(&negative.bucket_counts)?;
                TYPE_EXPONENTIAL_HISTOGRAM
            }
            PointValue::Summary {
                count,
                sum,
                quantiles,
            } => {
                self.counts.append_value(*count);
                self.sums.append_value(*sum);
                for quantile in quantiles {
                    self.quantiles.push(quantile.quantile);
                    self.quantile_values.push(quantile.value);
                }
                num_quantiles = quantiles.len();
                TYPE_SUMMARY
            }
        };
        self.types.push(tag);
        self.quantile_offsets.push_len(num_quantiles)?;
        self.num_rows += 1;
        self.pad_to_row_count()
    }

    /// Gives every column the current shape did not set a null (or an empty list).
    fn pad_to_row_count(&mut self) -> Result<(), CodecError> {
        let rows = self.num_rows;
        for builder in [
            &mut self.doubles,
            &mut self.sums,
            &mut self.mins,
            &mut self.maxes,
            &mut self.zero_thresholds,
        ] {
            if builder.len() < rows {
                builder.append_null();
            }
        }
        for builder in [&mut self.counts, &mut self.zero_counts] {
            if builder.len() < rows {
                builder.append_null();
            }
        }
        for builder in [
            &mut self.scales,
            &mut self.positive_offsets,
            &mut self.negative_offsets,
        ] {
            if builder.len() < rows {
                builder.append_null();
            }
        }
        if self.ints.len() < rows {
            self.ints.append_null();
        }
        if self.explicit_bounds.num_rows < rows {
            self.explicit_bounds.append(&[])?;
        }
        for lists in [
            &mut self.bucket_counts,
            &mut self.positive_counts,
            &mut self.negative_counts,
        ] {
            if lists.num_rows < rows {
                lists.append(&[])?;
            }
        }
        Ok(())
    }

    /// The finished arrays, in [`value_fields`] order.
    pub(crate) fn finish(mut self) -> Result<Vec<ArrayRef>, CodecError> {
        let quantile_items = StructArray::try_new(
            quantile_fields(),
            vec![
                Arc::new(Float64Array::from(self.quantiles)),
                Arc::new(Float64Array::from(self.quantile_values)),
            ],
            None,
        )?;
        Ok(vec![
            Arc::new(UInt8Array::from(self.types)),
            Arc::new(self.doubles.finish()),
            Arc::new(self.ints.finish()),
            Arc::new(self.counts.finish()),
            Arc::new(self.sums.finish()),
            Arc::new(self.mins.finish()),
            Arc::new(self.maxes.finish()),
            self.explicit_bounds.finish()?,
            self.bucket_counts.finish()?,
            Arc::new(self.scales.finish()),
            Arc::new(self.zero_counts.finish()),
            Arc::new(self.zero_thresholds.finish()),
            Arc::new(self.positive_offsets.finish()),
            self.positive_counts.finish()?,
            Arc::new(self.negative_offsets.finish()),
            self.negative_counts.finish()?,
            list_array(
                DataType::Struct(quantile_fields()),
                self.quantile_offsets,
                Arc::new(quantile_items),
            )?,
        ])
    }
}

/// A nullable primitive column's value at `row`, or `None`.
fn optional<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>, row: usize) -> Option<T::Native> {
    array.is_valid(row).then(|| array.value(row))
}

/// A nullable primitive column's value at `row`, which this value shape requires.
fn required<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    row: usize,
    path: &str,
) -> Result<T::Native, CodecError> {
    optional(array, row).ok_or_else(|| missing_value(path, row))
}

/// Reads a list-of-primitives column back.
struct PrimitiveListReader<'a, T: ArrowPrimitiveType> {
    list: &'a ListArray,
    values: &'a PrimitiveArray<T>,
}

impl<'a, T: ArrowPrimitiveType> PrimitiveListReader<'a, T> {
    fn new(batch: &'a RecordBatch, name: &str) -> Result<Self, CodecError> {
        let list = column::<ListArray>(batch, name)?;
        Ok(Self {
            list,
            values: list_values(list, name)?,
        })
    }

    fn read(&self, row: usize) -> Vec<T::Native> {
        self.values.values()[list_range(self.list, row)].to_vec()
    }
}

/// The value columns numbers (gauges and sums) need: reading only those reads fewer column
/// chunks.
pub(crate) const NUMBER_COLUMNS: [&str; 3] = [VALUE_TYPE, VALUE_DOUBLE, VALUE_INT];

/// The value of a number point at `row`.
fn number_value(
    ints: &Int64Array,
    doubles: &Float64Array,
    row: usize,
) -> Result<PointValue, CodecError> {
    Ok(PointValue::Number {
        value: if ints.is_valid(row) {
            NumberValue::Int(ints.value(row))
        } else {
            NumberValue::Double(required(doubles, row, VALUE_DOUBLE)?)
        },
    })
}

/// Reads number values back from [`NUMBER_COLUMNS`] alone.
pub(crate) struct NumberValuesReader<'a> {
    types: &'a UInt8Array,
    doubles: &'a Float64Array,
    ints: &'a Int64Array,
}

impl<'a> NumberValuesReader<'a> {
    /// A reader over the number columns of `batch`.
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Self, CodecError> {
        Ok(Self {
            types: column(batch, VALUE_TYPE)?,
            doubles: column(batch, VALUE_DOUBLE)?,
            ints: column(batch, VALUE_INT)?,
        })
    }

    /// The value of row `row`; an error when it is not a number.
    pub(crate) fn read(&self, row: usize) -> Result<PointValue, CodecError> {
        match self.types.value(row) {
            TYPE_NUMBER => number_value(self.ints, self.doubles, row),
            other => Err(CodecError::InvalidValue {
                column: VALUE_TYPE.to_owned(),
                row,
                reason: format!("value type {other} read as a number"),
            }),
        }
    }
}

/// Reads the value columns back.
pub(crate) struct PointValuesReader<'a> {
    types: &'a UInt8Array,
    doubles: &'a Float64Array,
    ints: &'a Int64Array,
    counts: &'a UInt64Array,
    sums: &'a Float64Array,
    mins: &'a Float64Array,
    maxes: &'a Float64Array,
    explicit_bounds: PrimitiveListReader<'a, Float64Type>,
    bucket_counts: PrimitiveListReader<'a, UInt64Type>,
    scales: &'a Int32Array,
    zero_counts: &'a UInt64Array,
    zero_thresholds: &'a Float64Array,
    positive_offsets: &'a Int32Array,
    positive_counts: PrimitiveListReader<'a, UInt64Type>,
    negative_offsets: &'a Int32Array,
    negative_counts: PrimitiveListReader<'a, UInt64Type>,
    quantile_lists: &'a ListArray,
    quantiles: &'a Float64Array,
    quantile_values: &'a Float64Array,
}

impl<'a> PointValuesReader<'a> {
    /// A reader over the value columns of `batch`.
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Self, CodecError> {
        let quantile_lists = column::<ListArray>(batch, QUANTILES)?;
        let quantile_items = list_values::<StructArray>(quantile_lists, QUANTILES)?;
        Ok(Self {
            types: column(batch, VALUE_TYPE)?,
            doubles: column(batch, VALUE_DOUBLE)?,
            ints: column(batch, VALUE_INT)?,
            counts: column(batch, COUNT)?,
            sums: column(batch, SUM)?,
            mins: column(batch, MIN)?,
            maxes: column(batch, MAX)?,
            explicit_bounds: PrimitiveListReader::new(batch, EXPLICIT_BOUNDS)?,
            bucket_counts: PrimitiveListReader::new(batch, BUCKET_COUNTS)?,
            scales: column(batch, SCALE)?,
            zero_counts: column(batch, ZERO_COUNT)?,
            zero_thresholds: column(batch, ZERO_THRESHOLD)?,
            positive_offsets: column(batch, POSITIVE_OFFSET)?,
            positive_counts: PrimitiveListReader::new(batch, POSITIVE_BUCKET_COUNTS)?,
            negative_offsets: column(batch, NEGATIVE_OFFSET)?,
            negative_counts: PrimitiveListReader::new(batch, NEGATIVE_BUCKET_COUNTS)?,
            quantile_lists,
            quantiles: child(quantile_items, QUANTILE, "quantiles.quantile")?,
            quantile_values: child(quantile_items, QUANTILE_VALUE, "quantiles.value")?,
        })
    }

    /// The value of row `row`.
    pub(crate) fn read(&self, row: usize) -> Result<PointValue, CodecError> {
        Ok(match self.types.value(row) {
            TYPE_NUMBER => number_value(self.ints, self.doubles, row)?,
            TYPE_HISTOGRAM => PointValue::Histogram {
                count: required(self.counts, row, COUNT)?,
                sum: optional(self.sums, row),
                min: optional(self.mins, row),
                max: optional(self.maxes, row),
                explicit_bounds: self.explicit_bounds.read(row),
                bucket_counts: self.bucket_counts.read(row),
            },
            TYPE_EXPONENTIAL_HISTOGRAM => PointValue::ExponentialHistogram {
                count: required(self.counts, row, COUNT)?,
                sum: optional(self.sums, row),
                min: optional(self.mins, row),
                max: optional(self.maxes, row),
                scale: required(self.scales, row, SCALE)?,
                zero_count: required(self.zero_counts, row, ZERO_COUNT)?,
                zero_threshold: required(self.zero_thresholds, row, ZERO_THRESHOLD)?,
                positive: ExponentialBuckets {
                    offset: required(self.positive_offsets, row, POSITIVE_OFFSET)?,
                    bucket_counts: self.positive_counts.read(row),
                },
                negative: ExponentialBuckets {
                    offset: required(self.negative_offsets, row, NEGATIVE_OFFSET)?,
                    bucket_counts: self.negative_counts.read(row),
                },
            },
            TYPE_SUMMARY => PointValue::Summary {
                count: required(self.counts, row, COUNT)?,
                sum: required(self.sums, row, SUM)?,
                quantiles: list_range(self.quantile_lists, row)
                    .map(|item| Quantile {
                        quantile: self.quantiles.value(item),
                        value: self.quantile_values.value(item),
                    })
                    .collect(),
            },
            unknown => {
                return Err(CodecError::InvalidValue {
                    column: VALUE_TYPE.to_owned(),
                    row,
                    reason: format!("unknown value type {unknown}"),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_codec::test_fixtures::points_of_every_kind;
    use arrow_schema::Schema;

    #[test]
    fn every_value_shape_round_trips_in_memory() {
        let values: Vec<PointValue> = points_of_every_kind()
            .into_iter()
            .map(|p| p.value)
            .collect();
        let mut builder = PointValuesBuilder::with_capacity(values.len());
        for value in &values {
            builder.append(value).unwrap();
        }
        let schema = Arc::new(Schema::new(value_fields()));
        let batch = RecordBatch::try_new(schema, builder.finish().unwrap()).unwrap();
        let reader = PointValuesReader::new(&batch).unwrap();
        for (row, value) in values.iter().enumerate() {
            assert_eq!(&reader.read(row).unwrap(), value);
        }
    }
}
