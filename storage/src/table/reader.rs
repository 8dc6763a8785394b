//! Reads rows out of one live Parquet file: only the row groups and pages whose statistics may
//! hold the value asked for, and only the rows a predicate on one column keeps.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use futures::TryStreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, RowFilter, RowSelection,
};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use super::LiveFile;
use crate::StorageError;
use crate::objects::Objects;

/// A row predicate over one column: returns which rows to keep.
pub type ColumnPredicate = Box<dyn FnMut(&ArrayRef) -> BooleanArray + Send>;

/// Where a top-level column is among the file's leaf columns.
fn leaf_index(metadata: &ParquetMetaData, column_name: &str) -> Option<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|column| column.path().string() == column_name)
}

/// Row groups whose min/max statistics of `column_name` (a binary or text column) may hold
/// `value`; every row group when the column has no statistics.
pub fn row_groups_holding(
    footer: &ArrowReaderMetadata,
    column_name: &str,
    value: &[u8],
) -> Vec<usize> {
    let metadata = footer.metadata();
    let column = leaf_index(metadata, column_name);
    (0..metadata.num_row_groups())
        .filter(|&row_group| {
            let statistics =
                column.and_then(|c| metadata.row_group(row_group).column(c).statistics());
            let bounds = match statistics {
                Some(Statistics::FixedLenByteArray(stats)) => {
                    stats.min_bytes_opt().zip(stats.max_bytes_opt())
                }
                Some(Statistics::ByteArray(stats)) => {
                    stats.min_bytes_opt().zip(stats.max_bytes_opt())
                }
                _ => None,
            };
            bounds.is_none_or(|(min, max)| min <= value && value <= max)
        })
        .collect()
}

/// The rows of `row_groups` (in order, numbered as the reader sees them) on pages whose
/// column-index min/max of `column_name` may hold `value`; `None` when the file has no column
/// index for it (then every row is read).
fn pages_holding(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    column_name: &str,
    value: &[u8],
) -> Option<RowSelection> {
    let metadata = footer.metadata();
    let column = leaf_index(metadata, column_name)?;
    let column_index = metadata.column_index()?;
    let offset_index = metadata.offset_index()?;
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut first_row = 0usize;
    for &row_group in row_groups {
        let num_rows = usize::try_from(metadata.row_group(row_group).num_rows()).ok()?;
        let pages = offset_index.get(row_group)?.get(column)?.page_locations();
        let index = match column_index.get(row_group)?.get(column)? {
            ColumnIndexMetaData::BYTE_ARRAY(index)
            | ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) => index,
            _ => return None,
        };
        for (page, location) in pages.iter().enumerate() {
            let start = usize::try_from(location.first_row_index).ok()?;
            let end = match pages.get(page + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => num_rows,
            };
            let may_hold = match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => min <= value && value <= max,
                _ => true,
            };
            if may_hold {
                ranges.push(first_row + start..first_row + end);
            }
        }
        first_row += num_rows;
    }
    Some(RowSelection::from_consecutive_ranges(
        ranges.into_iter(),
        first_row,
    ))
}

/// Reads the rows of `row_groups` (all when `None`) that `predicate` keeps; when the predicate
/// is an equality on a column with a column index, only the pages that may hold the value.
pub async fn read_rows(
    objects: &Objects,
    file: &LiveFile,
    footer: &ArrowReaderMetadata,
    row_groups: Option<Vec<usize>>,
    predicate: Option<(&str, ColumnPredicate)>,
) -> Result<Vec<RecordBatch>, StorageError> {
    read_rows_on_pages(objects, file, footer, row_groups, predicate, None).await
}

/// [`read_rows`], reading only the pages that may hold `equal_to` in the predicate's column.
pub async fn read_rows_on_pages(
    objects: &Objects,
    file: &LiveFile,
    footer: &ArrowReaderMetadata,
    row_groups: Option<Vec<usize>>,
    predicate: Option<(&str, ColumnPredicate)>,
    equal_to: Option<&[u8]>,
) -> Result<Vec<RecordBatch>, StorageError> {
    let codec = |source: parquet::errors::ParquetError| StorageError::Codec(source.into());
    let reader = ParquetObjectReader::new(Arc::clone(objects.store()), file.path.clone())
        .with_file_size(file.meta.size_bytes);
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.clone())
        .with_batch_size(8192);
    let selected: Vec<usize> =
        row_groups.unwrap_or_else(|| (0..footer.metadata().num_row_groups()).collect());
    if let (Some((column_name, _)), Some(value)) = (&predicate, equal_to)
        && let Some(selection) = pages_holding(footer, &selected, column_name, value)
    {
        builder = builder.with_row_selection(selection);
    }
    builder = builder.with_row_groups(selected);
    if let Some((column_name, mut keep)) = predicate {
        let schema = footer.metadata().file_metadata().schema_descr();
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
