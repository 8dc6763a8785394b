//! Small column helpers both formats share: list offsets and fixed-size id columns on the way
//! in; typed column lookup, list ranges and id reads on the way out.
//!
//! Nothing here knows a schema; callers name their columns.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, GenericListArray, RecordBatch, StructArray,
};
use arrow_buffer::{ArrowNativeType, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef};

use super::CodecError;

/// Offsets of a list column under construction, checked against 32-bit overflow.
pub(crate) struct ListOffsets {
    column: &'static str,
    offsets: Vec<i32>,
    total: i32,
}

impl ListOffsets {
    /// Offsets for `num_rows` lists of column `column` (named in overflow errors).
    pub(crate) fn with_capacity(column: &'static str, num_rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(num_rows + 1);
        offsets.push(0);
        Self {
            column,
            offsets,
            total: 0,
        }
    }

    /// Ends the next list after `len` more items.
    pub(crate) fn push_len(&mut self, len: usize) -> Result<(), CodecError> {
        self.total = i32::try_from(len)
            .ok()
            .and_then(|len| self.total.checked_add(len))
            .ok_or(CodecError::TooLarge {
                column: self.column,
            })?;
        self.offsets.push(self.total);
        Ok(())
    }

    /// The finished offsets.
    pub(crate) fn finish(self) -> OffsetBuffer<i32> {
        // Starts at 0 and only grows by non-negative lengths: valid offsets by construction.
        OffsetBuffer::new(ScalarBuffer::from(self.offsets))
    }
}

/// The item field of a list column: named `item`, non-nullable.
pub(crate) fn list_item(data_type: DataType) -> FieldRef {
    Arc::new(Field::new("item", data_type, false))
}

/// A non-nullable list column's type, with non-nullable items of `item_type`.
pub(crate) fn list_type(item_type: DataType) -> DataType {
    DataType::List(list_item(item_type))
}

/// Builds a list array over `values` with items of `item_type`.
pub(crate) fn list_array(
    item_type: DataType,
    offsets: ListOffsets,
    values: ArrayRef,
) -> Result<ArrayRef, CodecError> {
    let list =
        GenericListArray::<i32>::try_new(list_item(item_type), offsets.finish(), values, None)?;
    Ok(Arc::new(list))
}

/// A `FixedSizeBinary(N)` column under construction (trace and span ids), optionally nullable.
pub(crate) struct IdColumnBuilder<const N: usize> {
    bytes: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl<const N: usize> IdColumnBuilder<N> {
    /// Room for `num_rows` ids.
    pub(crate) fn with_capacity(num_rows: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(num_rows * N),
            nulls: NullBufferBuilder::new(num_rows),
        }
    }

    /// Appends an id, or a null for `None`.
    pub(crate) fn append(&mut self, id: Option<&[u8; N]>) {
        match id {
            Some(id) => {
                self.bytes.extend_from_slice(id);
                self.nulls.append_non_null();
            }
            None => {
                self.bytes.extend_from_slice(&[0; N]);
                self.nulls.append_null();
            }
        }
    }

    /// The Arrow type of this column.
    pub(crate) fn data_type() -> DataType {
        DataType::FixedSizeBinary(Self::width())
    }

    fn width() -> i32 {
        // Ids are 8 or 16 bytes.
        N as i32
    }

    /// The finished array.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, CodecError> {
        let array = FixedSizeBinaryArray::try_new(
            Self::width(),
            Buffer::from_vec(self.bytes),
            self.nulls.finish(),
        )?;
        Ok(Arc::new(array))
    }
}

/// A top-level column of `batch`, downcast to the array type the format writes.
pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a T, CodecError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| CodecError::MissingColumn {
            column: name.to_owned(),
        })?;
    downcast(array, name)
}

/// A child of a struct column, downcast; `path` is the child's dotted path, for errors.
pub(crate) fn child<'a, T: Array + 'static>(
    parent: &'a StructArray,
    name: &str,
    path: &str,
) -> Result<&'a T, CodecError> {
    let array = parent
        .column_by_name(name)
        .ok_or_else(|| CodecError::MissingColumn {
            column: path.to_owned(),
        })?;
    downcast(array, path)
}

/// `array` as `T`, or an error naming the column and the type found.
pub(crate) fn downcast<'a, T: Array + 'static>(
    array: &'a ArrayRef,
    path: &str,
) -> Result<&'a T, CodecError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| CodecError::ColumnType {
            column: path.to_owned(),
            expected: std::any::type_name::<T>(),
            actual: array.data_type().to_string(),
        })
}

/// The values of a list column, downcast; `path` names the list column, for errors.
pub(crate) fn list_values<'a, T: Array + 'static>(
    list: &'a GenericListArray<i32>,
    path: &str,
) -> Result<&'a T, CodecError> {
    downcast(list.values(), path)
}

/// Where row `row`'s items sit in the list's values array.
pub(crate) fn list_range(list: &GenericListArray<i32>, row: usize) -> Range<usize> {
    let offsets = list.value_offsets();
    offsets[row].as_usize()..offsets[row + 1].as_usize()
}

/// The id at `row` of a fixed-size binary column, or `None` where it is null.
pub(crate) fn optional_id<const N: usize>(
    array: &FixedSizeBinaryArray,
    row: usize,
    path: &str,
) -> Result<Option<[u8; N]>, CodecError> {
    if array.is_null(row) {
        return Ok(None);
    }
    array
        .value(row)
        .try_into()
        .map(Some)
        .map_err(|_| CodecError::InvalidValue {
            column: path.to_owned(),
            row,
            reason: format!("expected {N} bytes, got {}", array.value_length()),
        })
}

/// The id at `row` of a non-nullable fixed-size binary column.
pub(crate) fn required_id<const N: usize>(
    array: &FixedSizeBinaryArray,
    row: usize,
    path: &str,
) -> Result<[u8; N], CodecError> {
    optional_id(array, row, path)?.ok_or_else(|| missing_value(path, row))
}

/// The error for a null in a column the format never leaves null.
pub(crate) fn missing_value(path: &str, row: usize) -> CodecError {
    CodecError::InvalidValue {
        column: path.to_owned(),
        row,
        reason: "unexpected null".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_offsets_reject_overflow() {
        let mut offsets = ListOffsets::with_capacity("test", 2);
        offsets.push_len(3).unwrap();
        assert!(matches!(
            offsets.push_len(usize::MAX),
            Err(CodecError::TooLarge { column: "test" })
        ));
    }

    #[test]
    fn id_columns_keep_nulls_and_bytes() {
        let mut builder = IdColumnBuilder::<8>::with_capacity(2);
        builder.append(Some(&[1, 2, 3, 4, 5, 6, 7, 8]));
        builder.append(None);
        let array = builder.finish().unwrap();
        let ids = downcast::<FixedSizeBinaryArray>(&array, "ids").unwrap();
        assert_eq!(
            required_id::<8>(ids, 0, "ids").unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(optional_id::<8>(ids, 1, "ids").unwrap(), None);
        assert!(required_id::<8>(ids, 1, "ids").is_err());
        assert!(optional_id::<16>(ids, 0, "ids").is_err());
    }

    #[test]
    fn lookups_name_the_column() {
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::new(vec![Field::new(
            "a",
            DataType::UInt8,
            false,
        )])));
        let missing = column::<arrow_array::UInt8Array>(&batch, "b").unwrap_err();
        assert!(missing.to_string().contains('b'));
        let wrong = column::<arrow_array::UInt64Array>(&batch, "a").unwrap_err();
        assert!(matches!(wrong, CodecError::ColumnType { column, .. } if column == "a"));
    }
}
