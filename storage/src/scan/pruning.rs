//! Pruning with a file's footer: the row groups whose statistics, and the pages whose column
//! index, may hold a value a scan requires. Pure: footer and value in, what to read out.

use std::ops::Range;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

/// An inclusive lower and exclusive upper bound on an unsigned integer column.
pub type UIntRange = (Option<u64>, Option<u64>);

fn overlaps((min, max): UIntRange, low: u64, high: u64) -> bool {
    min.is_none_or(|min| high >= min) && max.is_none_or(|max| low < max)
}

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
/// one of `values`; every row group when the column has no statistics.
pub fn row_groups_holding(
    footer: &ArrowReaderMetadata,
    column_name: &str,
    values: &[&[u8]],
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
            bounds
                .is_none_or(|(min, max)| values.iter().any(|value| min <= *value && *value <= max))
        })
        .collect()
}

/// The rows of `row_groups` (in order, numbered as the reader sees them) on pages whose
/// column-index min/max of `column_name` may hold one of `values`; `None` when the file has
/// no column index for it (then every row is read).
pub fn pages_holding(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    column_name: &str,
    values: &[&[u8]],
) -> Option<RowSelection> {
    pages_where(footer, row_groups, column_name, |index, page| match index {
        ColumnIndexMetaData::BYTE_ARRAY(index)
        | ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) => {
            Some(match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => values.iter().any(|value| min <= *value && *value <= max),
                _ => true,
            })
        }
        _ => None,
    })
}

/// The rows of `row_groups` on pages `may_hold` admits, given the column index of
/// `column_name` and a page number (`None` from it: an index of another kind, so every row
/// is read).
fn pages_where(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    column_name: &str,
    may_hold: impl Fn(&ColumnIndexMetaData, usize) -> Option<bool>,
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
        let index = column_index.get(row_group)?.get(column)?;
        for (page, location) in pages.iter().enumerate() {
            let start = usize::try_from(location.first_row_index).ok()?;
            let end = match pages.get(page + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => num_rows,
            };
            if may_hold(index, page)? {
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

/// Of `row_groups`, those whose min/max statistics of `column_name` (an unsigned 64-bit
/// column) overlap `range`; a row group without statistics is kept.
pub fn row_groups_in_range(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    column_name: &str,
    range: UIntRange,
) -> Vec<usize> {
    let metadata = footer.metadata();
    let column = leaf_index(metadata, column_name);
    row_groups
        .iter()
        .copied()
        .filter(|&row_group| {
            let statistics =
                column.and_then(|c| metadata.row_group(row_group).column(c).statistics());
            match statistics {
                Some(Statistics::Int64(stats)) => match (stats.min_opt(), stats.max_opt()) {
                    (Some(&low), Some(&high)) => overlaps(range, low as u64, high as u64),
                    _ => true,
                },
                _ => true,
            }
        })
        .collect()
}

/// The rows of `row_groups` (numbered as the reader sees them) on pages whose column-index
/// min/max of `column_name` (an unsigned 64-bit column) overlap `range`; `None` without a
/// column index.
pub fn pages_in_range(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    column_name: &str,
    range: UIntRange,
) -> Option<RowSelection> {
    pages_where(footer, row_groups, column_name, |index, page| match index {
        ColumnIndexMetaData::INT64(index) => {
            Some(match (index.min_value(page), index.max_value(page)) {
                (Some(&low), Some(&high)) => overlaps(range, low as u64, high as u64),
                _ => true,
            })
        }
        _ => None,
    })
}
