//! Reads rows out of one catalogued Parquet file, only the row groups asked for and only the
//! rows a predicate on one column keeps.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::catalog::FileEntry;
use crate::StorageError;

/// A row predicate over one column: returns which rows to keep.
pub type ColumnPredicate = Box<dyn FnMut(&ArrayRef) -> BooleanArray + Send>;

/// Reads the rows of `row_groups` (all when `None`) that `predicate` keeps.
pub async fn read_rows(
    store: &Arc<dyn ObjectStore>,
    file: &FileEntry,
    row_groups: Option<Vec<usize>>,
    predicate: Option<(&str, ColumnPredicate)>,
) -> Result<Vec<RecordBatch>, StorageError> {
    let codec = |source: parquet::errors::ParquetError| StorageError::Codec(source.into());
    let reader = ParquetObjectReader::new(Arc::clone(store), file.path.clone())
        .with_file_size(file.size_bytes);
    let mut builder =
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, file.metadata.clone())
            .with_batch_size(8192);
    if let Some(row_groups) = row_groups {
        builder = builder.with_row_groups(row_groups);
    }
    if let Some((column_name, mut keep)) = predicate {
        let schema = file.metadata.parquet_schema();
        let Some(column_index) = schema
            .columns()
            .iter()
            .position(|column| column.path().string() == column_name)
        else {
            return Err(StorageError::InvalidQuery(format!(
                "{} has no column {column_name}",
                file.path
            )));
        };
        let projection = ProjectionMask::leaves(schema, [column_index]);
        let filter = ArrowPredicateFn::new(projection, move |batch: RecordBatch| {
            Ok(keep(batch.column(0)))
        });
        builder = builder.with_row_filter(RowFilter::new(vec![Box::new(filter)]));
    }
    let stream = builder.build().map_err(codec)?;
    stream.try_collect().await.map_err(codec)
}

/// Keeps rows whose fixed-size binary value equals `id` (trace ids).
pub fn fixed_binary_equals(id: Vec<u8>) -> ColumnPredicate {
    Box::new(move |column: &ArrayRef| {
        match column
            .as_any()
            .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
        {
            Some(values) => (0..values.len())
                .map(|row| Some(values.is_valid(row) && values.value(row) == id.as_slice()))
                .collect(),
            None => BooleanArray::from(vec![false; column.len()]),
        }
    })
}

/// Keeps rows whose text value (plain, large, view or dictionary-encoded) equals `text`.
pub fn text_equals(text: String) -> ColumnPredicate {
    Box::new(move |column: &ArrayRef| string_values_equal(column, &text))
}

fn string_values_equal(column: &ArrayRef, text: &str) -> BooleanArray {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_schema::DataType;
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|value| Some(value == Some(text)))
            .collect(),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .map(|value| Some(value == Some(text)))
            .collect(),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .map(|value| Some(value == Some(text)))
            .collect(),
        DataType::Dictionary(key, _) if key.as_ref() == &DataType::Int32 => {
            let dictionary = column.as_dictionary::<Int32Type>();
            let matches_value = string_values_equal(dictionary.values(), text);
            dictionary
                .keys()
                .iter()
                .map(|key| {
                    Some(
                        key.is_some_and(|k| {
                            usize::try_from(k).is_ok_and(|k| matches_value.value(k))
                        }),
                    )
                })
                .collect()
        }
        _ => BooleanArray::from(vec![false; column.len()]),
    }
}
