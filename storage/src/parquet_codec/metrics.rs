//! The metric file formats, one row per data point sorted by `(metric_name, series_id,
//! time_unix_nano)` so each series is contiguous:
//!
//! - `metrics-v2` ([`METRICS_FORMAT`]): a row holds the point alone (name, series id, times,
//!   flags, values, exemplars); what identifies its series ([`SERIES_IDENTITY_COLUMNS`]) is
//!   in the file's series index, once per series, and reads restore it from there.
//! - `metrics-v1` ([`METRICS_FORMAT_V1`]): every row also holds its series' identity. Still
//!   written for a file in which two different series share a series id, whose rows alone
//!   tell them apart: the id hashes the name, kind, unit, scope name and version, resource
//!   and point attributes, so a series whose description or temporality changes keeps its
//!   id (as does a 64-bit collision); and by merges that take a file of format 1.
//!
//! Builds Arrow batches from points and points from Arrow batches of the full schema (the
//! one scans answer in); the writer settings for metric files (delta-encoded timestamps,
//! byte-stream-split doubles) live here too. No I/O.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, RecordBatch, StringArray, UInt8Array, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use super::attributes::{AttributesReader, attributes_type};
use super::columns::column;
use super::exemplars::{ExemplarsBuilder, ExemplarsReader, exemplars_type};
use super::json::{SharedJsonReader, shared_json_type};
use super::metric_identity::{
    ATTRIBUTES, DESCRIPTION, IS_MONOTONIC, IdentityBuilder, KIND, RESOURCE, SCOPE,
    SERIES_IDENTITY_COLUMNS, SERVICE_NAME, TEMPORALITY, UNIT,
};
use super::metric_values::{self, PointValuesBuilder, PointValuesReader, value_fields};
use super::{
    CodecError, EncodedFile, METRIC_NAME_COLUMN, METRICS_FORMAT, METRICS_FORMAT_V1,
    POINT_TIME_COLUMN, apply_permutation, base_properties, write_file,
};
use crate::catalog::MetricCatalog;
use crate::model::{
    InstrumentationScope, MetricDescriptor, MetricKind, MetricPoint, MetricSeries, Resource,
    Temporality,
};

pub(super) const SERIES_ID: &str = super::SERIES_ID_COLUMN;
pub(super) const START_TIME: &str = "start_time_unix_nano";
pub(super) const FLAGS: &str = "flags";
const EXEMPLARS: &str = "exemplars";

/// Top-level columns stored uncompressed (see [`metric_properties`]).
const SMALL_COLUMNS: [&str; 7] = [
    METRIC_NAME_COLUMN,
    SERVICE_NAME,
    DESCRIPTION,
    UNIT,
    KIND,
    TEMPORALITY,
    FLAGS,
];

/// ZSTD level for metric files.
const METRIC_ZSTD_LEVEL: i32 = 3;
/// Parquet leaf indices of the sort columns: `metric_name`, `series_id`, `time_unix_nano`
/// (the first three columns of both formats).
const SORT_LEAF_COLUMNS: [i32; 3] = [0, 1, 2];

/// The full schema: every point with its series' identity (format 1 files, and every batch a
/// scan answers with).
static METRIC_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(METRIC_NAME_COLUMN, DataType::Utf8, false),
        Field::new(SERIES_ID, DataType::UInt64, false),
        Field::new(POINT_TIME_COLUMN, DataType::UInt64, false),
        Field::new(START_TIME, DataType::UInt64, false),
        Field::new(SERVICE_NAME, DataType::Utf8, false),
        Field::new(DESCRIPTION, DataType::Utf8, false),
        Field::new(UNIT, DataType::Utf8, false),
        Field::new(KIND, DataType::UInt8, false),
        Field::new(TEMPORALITY, DataType::UInt8, false),
        Field::new(IS_MONOTONIC, DataType::Boolean, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(ATTRIBUTES, attributes_type(), false),
    ];
    fields.extend(value_fields());
    fields.extend([
        Field::new(EXEMPLARS, exemplars_type(), false),
        Field::new(RESOURCE, shared_json_type(), false),
        Field::new(SCOPE, shared_json_type(), false),
    ]);
    Arc::new(Schema::new(fields))
});

/// The schema of format 2 files: the full schema without the series identity.
static POINT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = METRIC_SCHEMA
        .fields()
        .iter()
        .filter(|field| !SERIES_IDENTITY_COLUMNS.contains(&field.name().as_str()))
        .map(|field| field.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
});

/// The full metric schema (what scans answer in, whatever the format of the files read).
pub fn metric_schema() -> SchemaRef {
    Arc::clone(&METRIC_SCHEMA)
}

/// The schema files of `format` hold: the full one for format 1, the points alone for
/// format 2.
pub fn metric_file_schema(format: &str) -> SchemaRef {
    match format {
        METRICS_FORMAT_V1 => Arc::clone(&METRIC_SCHEMA),
        _ => Arc::clone(&POINT_SCHEMA),
    }
}

/// Sorts by (metric name, series id, time) and encodes, in format 2 unless two different
/// series share a series id (then format 1, whose rows tell them apart). Empty -> Ok(None).
///
/// Takes points or references to them, so a flush can encode a buffer it keeps readable
/// without copying it.
pub fn encode_metric_points<P: Borrow<MetricPoint>>(
    points: &mut [P],
) -> Result<Option<EncodedFile>, CodecError> {
    encode_points(points, None)
}

/// Encodes as [`encode_metric_points`] but always in format 1, as versions before format 2
/// did (tests of reading and merging their files).
#[cfg(test)]
pub(crate) fn encode_metric_points_in_format_1<P: Borrow<MetricPoint>>(
    points: &mut [P],
) -> Result<Option<EncodedFile>, CodecError> {
    encode_points(points, Some(METRICS_FORMAT_V1))
}

fn encode_points<P: Borrow<MetricPoint>>(
    points: &mut [P],
    format: Option<&'static str>,
) -> Result<Option<EncodedFile>, CodecError> {
    if points.is_empty() {
        return Ok(None);
    }
    sort_points(points);
    let (min_time_unix_nano, max_time_unix_nano) =
        points
            .iter()
            .map(Borrow::borrow)
            .fold((u64::MAX, 0), |(min, max), point: &MetricPoint| {
                (min.min(point.time_unix_nano), max.max(point.time_unix_nano))
            });
    let format = format.unwrap_or_else(|| match series_ids_are_unique(points) {
        true => METRICS_FORMAT,
        false => METRICS_FORMAT_V1,
    });
    let properties = metric_properties(format, Some((min_time_unix_nano, max_time_unix_nano)))?;
    let with_identity = format == METRICS_FORMAT_V1;
    let bytes = write_file(
        metric_file_schema(format),
        properties,
        points,
        // Format 2 rows hold no series identity beyond the metric name.
        |point: &P| {
            let point = point.borrow();
            match with_identity {
                true => point.estimated_bytes(),
                false => point.own_bytes() + point.series.metric.name.len(),
            }
        },
        |chunk| points_batch(chunk, with_identity),
    )?;
    Ok(Some(EncodedFile {
        bytes,
        format,
        num_rows: points.len(),
        min_time_unix_nano,
        max_time_unix_nano,
    }))
}

/// Whether no two different series of `points` (sorted by name, series id and time) share a
/// series id, so a file's rows need no more than the id to find their series.
fn series_ids_are_unique<P: Borrow<MetricPoint>>(points: &[P]) -> bool {
    let mut first_of_id: HashMap<u64, &MetricSeries> = HashMap::new();
    let mut last: Option<&Arc<MetricSeries>> = None;
    for point in points.iter().map(Borrow::borrow) {
        let series = &point.series;
        if last.is_some_and(|last| Arc::ptr_eq(last, series)) {
            continue;
        }
        last = Some(series);
        match first_of_id.get(&series.id()) {
            None => {
                first_of_id.insert(series.id(), series);
            }
            Some(first) if crate::metrics::same_series(first, series) => {}
            Some(_) => return false,
        }
    }
    true
}

/// Sorts `points` by (metric name, series id, time).
///
/// Names are ranked once (distinct names are few) so the sort compares integers, not strings;
/// series ids are the ones the points' series already hold.
fn sort_points<P: Borrow<MetricPoint>>(points: &mut [P]) {
    let mut keys: Vec<(u32, u64, u64, usize)> = {
        let mut name_ids: HashMap<&str, u32> = HashMap::new();
        let mut keys = Vec::with_capacity(points.len());
        let mut last: Option<(&Arc<MetricSeries>, u32)> = None;
        for (index, point) in points.iter().enumerate() {
            let point = point.borrow();
            // Points of one series often follow each other: their name is known.
            let name_id = match last {
                Some((series, name_id)) if Arc::ptr_eq(series, &point.series) => name_id,
                _ => {
                    let next_id = name_ids.len() as u32;
                    *name_ids
                        .entry(point.series.metric.name.as_str())
                        .or_insert(next_id)
                }
            };
            last = Some((&point.series, name_id));
            keys.push((name_id, point.series_id(), point.time_unix_nano, index));
        }
        // Turn first-seen ids into ranks in name order.
        let mut names: Vec<(&str, u32)> = name_ids.into_iter().collect();
        names.sort_unstable();
        let mut rank_of = vec![0u32; names.len()];
        for (rank, (_, id)) in names.iter().enumerate() {
            rank_of[*id as usize] = rank as u32;
        }
        for key in &mut keys {
            key.0 = rank_of[key.0 as usize];
        }
        keys
    };
    // Keys are unique (they end with the index), so an unstable sort keeps arrival order
    // among equal (name, series, time).
    keys.sort_unstable();
    let mut order: Vec<usize> = keys.into_iter().map(|key| key.3).collect();
    apply_permutation(points, &mut order);
}

/// Writer settings of a metric file of `format` whose time range is not known yet
/// (compaction appends it with [`super::time_range_metadata`] when the file is finished).
pub fn metric_writer_properties(format: &'static str) -> Result<WriterProperties, CodecError> {
    metric_properties(format, None)
}

fn metric_properties(
    format: &'static str,
    time_range: Option<(u64, u64)>,
) -> Result<WriterProperties, CodecError> {
    let mut builder: WriterPropertiesBuilder = base_properties(
        format,
        time_range,
        METRIC_ZSTD_LEVEL,
        &SORT_LEAF_COLUMNS,
        &[METRIC_NAME_COLUMN, SERIES_ID, POINT_TIME_COLUMN],
    )?;
    // Sorted by series, timestamps and cumulative ints climb steadily: delta-encode them
    // (on the fixture this halved `value_int`; it does not pay for bucket counts).
    let delta_columns = [
        POINT_TIME_COLUMN,
        START_TIME,
        metric_values::VALUE_INT,
        metric_values::COUNT,
    ];
    for name in delta_columns {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    let float_columns = [
        metric_values::VALUE_DOUBLE,
        metric_values::SUM,
        metric_values::MIN,
        metric_values::MAX,
    ];
    for name in float_columns {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::BYTE_STREAM_SPLIT);
    }
    // Bucket counts: a series' next point repeats or nudges the same vector. Byte-stream
    // split keeps each count's bytes aligned so ZSTD finds the repeats; dictionary indices
    // (bit-packed at odd widths) hid them, and delta encoding across the lists did not pay
    // (on the mixed fixture: 9.3 bytes per point with the dictionary, 11.1 delta, 10.0 plain,
    // 7.3 split).
    for list in metric_values::COUNT_LISTS {
        let item = ColumnPath::new(vec![list.to_owned(), "list".to_owned(), "item".to_owned()]);
        builder = builder
            .set_column_dictionary_enabled(item.clone(), false)
            .set_column_encoding(item, Encoding::BYTE_STREAM_SPLIT);
    }
    // Columns that hold a few hundred bytes per row group (dictionary indices of a handful of
    // values, run-length encoded) are stored uncompressed: ZSTD gains nothing on them, and
    // parquet-rs builds a ZSTD compression and decompression context for every compressed
    // column chunk it reads, which cost more than the read itself on a query touching many
    // small files.
    for name in SMALL_COLUMNS
        .iter()
        .chain(metric_values::SMALL_COLUMNS.iter())
    {
        builder =
            builder.set_column_compression(ColumnPath::from(*name), Compression::UNCOMPRESSED);
    }
    Ok(builder.build())
}

/// Points (or references to them) as one Arrow batch of the full metric schema, in the given
/// order.
pub fn metric_points_batch<P: Borrow<MetricPoint>>(
    points: &[P],
) -> Result<RecordBatch, CodecError> {
    points_batch(points, true)
}

/// Points as one Arrow batch: of the full schema `with_identity`, else of format 2's.
fn points_batch<P: Borrow<MetricPoint>>(
    points: &[P],
    with_identity: bool,
) -> Result<RecordBatch, CodecError> {
    let num_points = points.len();
    let points = || points.iter().map(Borrow::borrow);
    let num_exemplars = points().map(|p: &MetricPoint| p.exemplars.len()).sum();
    let mut names = StringBuilder::with_capacity(num_points, num_points * 24);
    let mut series_ids = Vec::with_capacity(num_points);
    let mut times = Vec::with_capacity(num_points);
    let mut start_times = Vec::with_capacity(num_points);
    let mut flags = Vec::with_capacity(num_points);
    let mut values = PointValuesBuilder::with_capacity(num_points);
    let mut exemplars = ExemplarsBuilder::with_capacity(num_points, num_exemplars);
    let mut identity = with_identity.then(|| {
        let num_attributes = points()
            .map(|p: &MetricPoint| p.series.attributes.len())
            .sum();
        IdentityBuilder::with_capacity(num_points, num_attributes)
    });
    for point in points() {
        let series = &point.series;
        names.append_value(&series.metric.name);
        series_ids.push(series.id());
        times.push(point.time_unix_nano);
        start_times.push(point.start_time_unix_nano);
        flags.push(point.flags);
        values.append(&point.value)?;
        exemplars.append(&point.exemplars)?;
        if let Some(identity) = &mut identity {
            identity.append(series)?;
        }
    }
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        (METRIC_NAME_COLUMN, Arc::new(names.finish())),
        (SERIES_ID, Arc::new(UInt64Array::from(series_ids))),
        (POINT_TIME_COLUMN, Arc::new(UInt64Array::from(times))),
        (START_TIME, Arc::new(UInt64Array::from(start_times))),
        (FLAGS, Arc::new(UInt32Array::from(flags))),
        (EXEMPLARS, exemplars.finish()?),
    ];
    let value_columns = values.finish()?;
    let value_fields = value_fields();
    columns.extend(
        value_fields
            .iter()
            .map(|field| field.name().as_str())
            .zip(value_columns),
    );
    let schema = match identity {
        Some(identity) => {
            columns.extend(identity.finish()?);
            Arc::clone(&METRIC_SCHEMA)
        }
        None => Arc::clone(&POINT_SCHEMA),
    };
    let mut ordered = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let at = columns
            .iter()
            .position(|(name, _)| *name == field.name().as_str())
            .ok_or_else(|| CodecError::MissingColumn {
                column: field.name().clone(),
            })?;
        ordered.push(columns.swap_remove(at).1);
    }
    Ok(RecordBatch::try_new(schema, ordered)?)
}

/// Shares one `Arc<MetricDescriptor>` among rows with identical descriptor columns.
#[derive(Default)]
struct DescriptorInterner<'a> {
    by_name: HashMap<&'a str, Vec<Arc<MetricDescriptor>>>,
}

impl<'a> DescriptorInterner<'a> {
    fn get(
        &mut self,
        name: &'a str,
        description: &str,
        unit: &str,
        kind: MetricKind,
        temporality: Temporality,
        is_monotonic: bool,
    ) -> Arc<MetricDescriptor> {
        let candidates = self.by_name.entry(name).or_default();
        let found = candidates.iter().find(|d| {
            d.kind == kind
                && d.temporality == temporality
                && d.is_monotonic == is_monotonic
                && d.unit == unit
                && d.description == description
        });
        if let Some(descriptor) = found {
            return Arc::clone(descriptor);
        }
        let descriptor = Arc::new(MetricDescriptor {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            kind,
            temporality,
            is_monotonic,
        });
        candidates.push(Arc::clone(&descriptor));
        descriptor
    }
}

/// Counts the rows of a batch of the metric schema into `catalog` (a merge's summary), from
/// the descriptor and service columns alone; runs of like rows are counted at once.
pub fn add_metric_rows_to_catalog(
    batch: &RecordBatch,
    catalog: &mut MetricCatalog,
) -> Result<(), CodecError> {
    let names = column::<StringArray>(batch, METRIC_NAME_COLUMN)?;
    let descriptions = column::<StringArray>(batch, DESCRIPTION)?;
    let units = column::<StringArray>(batch, UNIT)?;
    let kinds = column::<UInt8Array>(batch, KIND)?;
    let temporalities = column::<UInt8Array>(batch, TEMPORALITY)?;
    let monotonic = column::<BooleanArray>(batch, IS_MONOTONIC)?;
    let services = column::<StringArray>(batch, SERVICE_NAME)?;
    let mut resources = SharedJsonReader::<Resource>::new(batch, RESOURCE)?;
    let mut last_resource: Option<Arc<Resource>> = None;
    let same = |a: usize, b: usize| {
        names.value(a) == names.value(b)
            && services.value(a) == services.value(b)
            && kinds.value(a) == kinds.value(b)
            && units.value(a) == units.value(b)
            && temporalities.value(a) == temporalities.value(b)
            && monotonic.value(a) == monotonic.value(b)
            && descriptions.value(a) == descriptions.value(b)
    };
    let mut start = 0;
    while start < batch.num_rows() {
        let mut end = start + 1;
        while end < batch.num_rows() && same(start, end) {
            end += 1;
        }
        let kind = MetricKind::from_number(kinds.value(start)).ok_or_else(|| {
            CodecError::InvalidValue {
                column: KIND.to_owned(),
                row: start,
                reason: format!("unknown metric kind {}", kinds.value(start)),
            }
        })?;
        let descriptor = MetricDescriptor {
            name: names.value(start).to_owned(),
            description: descriptions.value(start).to_owned(),
            unit: units.value(start).to_owned(),
            kind,
            temporality: Temporality::from_number(i32::from(temporalities.value(start))),
            is_monotonic: monotonic.value(start),
        };
        catalog.add(&descriptor, services.value(start), (end - start) as u64);
        for row in start..end {
            // Rows of one resource share its decoded value: note its keys once.
            let resource = resources.get(row)?;
            if last_resource
                .as_ref()
                .is_none_or(|last| !Arc::ptr_eq(last, &resource))
            {
                catalog.add_resource_keys(resource.attributes.iter().map(|a| a.key.as_str()));
                last_resource = Some(resource);
            }
        }
        start = end;
    }
    Ok(())
}

/// The points of one series that follow each other in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRun {
    /// The stored series id (a hash of the series' identity).
    pub series_id: u64,
    /// The points, in file order, sharing one series (exemplars left empty).
    pub points: Vec<MetricPoint>,
}

/// The top-level columns [`decode_metric_series_runs`] reads (every one but the exemplars),
/// for a scan's projection: fewer column chunks to decompress.
pub fn metric_series_columns() -> Vec<String> {
    METRIC_SCHEMA
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .filter(|name| name != EXEMPLARS)
        .collect()
}

/// Decodes a batch of the metric schema as runs of one series each, decoding a series'
/// attributes once per run instead of once per point (what readers that group points by
/// series need; exemplars are left out). Rows are sorted by series in metric files, so a
/// batch holds few runs.
pub fn decode_metric_series_runs(batch: &RecordBatch) -> Result<Vec<SeriesRun>, CodecError> {
    let mut runs: Vec<SeriesRun> = Vec::new();
    decode_rows(batch, RowDetail::SeriesRuns, |point| {
        match runs.last_mut() {
            Some(run) if run.series_id == point.series_id() => run.points.push(point),
            _ => runs.push(SeriesRun {
                series_id: point.series_id(),
                points: vec![point],
            }),
        }
    })?;
    Ok(runs)
}

/// Decodes every row of a batch read from a metric file (any projection-free batch of the
/// metric schema).
pub fn decode_metric_points(batch: &RecordBatch) -> Result<Vec<MetricPoint>, CodecError> {
    let mut points = Vec::with_capacity(batch.num_rows());
    decode_rows(batch, RowDetail::Full, |point| points.push(point))?;
    Ok(points)
}

/// How much of each row [`decode_rows`] reads.
#[derive(Clone, Copy, PartialEq)]
enum RowDetail {
    /// Everything: each row's attributes (a row of a series' run shares the run's series only
    /// when its attributes are equal, order included) and exemplars.
    Full,
    /// A series' attributes once per run of its rows, and no exemplars.
    SeriesRuns,
}

/// Decodes each row of a batch into a point handed to `each`. Consecutive rows of one series
/// share one [`MetricSeries`].
fn decode_rows(
    batch: &RecordBatch,
    detail: RowDetail,
    mut each: impl FnMut(MetricPoint),
) -> Result<(), CodecError> {
    let names = column::<StringArray>(batch, METRIC_NAME_COLUMN)?;
    let series_ids = column::<UInt64Array>(batch, SERIES_ID)?;
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    let start_times = column::<UInt64Array>(batch, START_TIME)?;
    let descriptions = column::<StringArray>(batch, DESCRIPTION)?;
    let units = column::<StringArray>(batch, UNIT)?;
    let kinds = column::<UInt8Array>(batch, KIND)?;
    let temporalities = column::<UInt8Array>(batch, TEMPORALITY)?;
    let monotonic = column::<BooleanArray>(batch, IS_MONOTONIC)?;
    let flags = column::<UInt32Array>(batch, FLAGS)?;
    let attributes = AttributesReader::new(column::<ListArray>(batch, ATTRIBUTES)?, ATTRIBUTES)?;
    let values = PointValuesReader::new(batch)?;
    let exemplars = match detail {
        RowDetail::Full => Some(ExemplarsReader::new(column::<ListArray>(
            batch, EXEMPLARS,
        )?)?),
        RowDetail::SeriesRuns => None,
    };
    let mut resources = SharedJsonReader::<Resource>::new(batch, RESOURCE)?;
    let mut scopes = SharedJsonReader::<InstrumentationScope>::new(batch, SCOPE)?;
    let mut descriptors = DescriptorInterner::default();
    let mut last_series: Option<Arc<MetricSeries>> = None;
    for row in 0..batch.num_rows() {
        let kind =
            MetricKind::from_number(kinds.value(row)).ok_or_else(|| CodecError::InvalidValue {
                column: KIND.to_owned(),
                row,
                reason: format!("unknown metric kind {}", kinds.value(row)),
            })?;
        let metric = descriptors.get(
            names.value(row),
            descriptions.value(row),
            units.value(row),
            kind,
            Temporality::from_number(i32::from(temporalities.value(row))),
            monotonic.value(row),
        );
        let resource = resources.get(row)?;
        let scope = scopes.get(row)?;
        let series_id = series_ids.value(row);
        let same_run = last_series.as_ref().filter(|series| {
            series.id() == series_id
                && Arc::ptr_eq(&series.metric, &metric)
                && Arc::ptr_eq(&series.resource, &resource)
                && Arc::ptr_eq(&series.scope, &scope)
        });
        let series = match (same_run, detail) {
            (Some(series), RowDetail::SeriesRuns) => Arc::clone(series),
            (same_run, _) => {
                let row_attributes = attributes.read(row)?;
                match same_run {
                    Some(series) if series.attributes == row_attributes => Arc::clone(series),
                    _ => Arc::new(MetricSeries::stored(
                        series_id,
                        resource,
                        scope,
                        metric,
                        row_attributes,
                    )),
                }
            }
        };
        last_series = Some(Arc::clone(&series));
        each(MetricPoint {
            series,
            start_time_unix_nano: start_times.value(row),
            time_unix_nano: times.value(row),
            flags: flags.value(row),
            value: values.read(row)?,
            exemplars: match &exemplars {
                Some(exemplars) => exemplars.read(row)?,
                None => Vec::new(),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_codec::test_fixtures::{
        any_point, points_of_every_kind, read_metric_batches, realistic_points,
    };
    use crate::parquet_codec::{FORMAT_METADATA_KEY, MAX_TIME_METADATA_KEY, MIN_TIME_METADATA_KEY};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    fn decode_all(file: &EncodedFile, points: &[MetricPoint]) -> Vec<MetricPoint> {
        read_metric_batches(file, points)
            .iter()
            .flat_map(|batch| decode_metric_points(batch).unwrap())
            .collect()
    }

    #[test]
    fn empty_input_encodes_to_nothing() {
        assert!(
            encode_metric_points::<MetricPoint>(&mut [])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_kind_round_trips_sorted() {
        let mut points = points_of_every_kind();
        points.reverse();
        let original = points.clone();
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        assert_eq!(file.num_rows, original.len());
        assert_eq!((file.min_time_unix_nano, file.max_time_unix_nano), (10, 61));
        let keys: Vec<(String, u64, u64)> = points
            .iter()
            .map(|p| {
                (
                    p.series.metric.name.clone(),
                    p.series_id(),
                    p.time_unix_nano,
                )
            })
            .collect();
        assert!(keys.is_sorted(), "input sorted in place");
        assert!(
            original.iter().all(|p| points.contains(p)),
            "sorting kept every point"
        );
        let decoded = decode_all(&file, &points);
        assert_eq!(decoded.len(), points.len());
        for (got, want) in decoded.iter().zip(&points) {
            assert_eq!(got.series.metric, want.series.metric);
            assert_eq!(got.series.attributes, want.series.attributes);
            assert_eq!(got.value, want.value);
            assert_eq!(got.exemplars, want.exemplars);
            assert_eq!(got.series.resource, want.series.resource);
            assert_eq!(got.series.scope, want.series.scope);
            assert_eq!(got, want);
        }
        assert!(
            decoded
                .windows(2)
                .all(|w| Arc::ptr_eq(&w[0].series.resource, &w[1].series.resource))
        );
        let sums: Vec<&MetricPoint> = decoded
            .iter()
            .filter(|p| p.series.metric.name == "requests")
            .collect();
        assert!(Arc::ptr_eq(&sums[0].series.metric, &sums[1].series.metric));
    }

    #[test]
    fn file_metadata_names_format_times_and_sort_order() {
        let mut points = realistic_points(500, 1);
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.bytes.clone()).unwrap();
        let metadata = builder.metadata();
        let value = |key: &str| {
            let kvs = metadata.file_metadata().key_value_metadata().unwrap();
            kvs.iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone())
                .unwrap()
        };
        assert_eq!(value(FORMAT_METADATA_KEY), METRICS_FORMAT);
        assert_eq!(
            value(MIN_TIME_METADATA_KEY),
            file.min_time_unix_nano.to_string()
        );
        assert_eq!(
            value(MAX_TIME_METADATA_KEY),
            file.max_time_unix_nano.to_string()
        );
        let schema = metadata.file_metadata().schema_descr();
        for (leaf, name) in
            SORT_LEAF_COLUMNS
                .iter()
                .zip([METRIC_NAME_COLUMN, SERIES_ID, POINT_TIME_COLUMN])
        {
            assert_eq!(schema.column(*leaf as usize).path().string(), name);
        }
        let encodings = |name: &str| {
            let row_group = metadata.row_group(0);
            let index = row_group
                .columns()
                .iter()
                .position(|c| c.column_path().string() == name);
            row_group
                .column(index.unwrap())
                .encodings()
                .collect::<Vec<_>>()
        };
        assert!(encodings(POINT_TIME_COLUMN).contains(&Encoding::DELTA_BINARY_PACKED));
        assert!(encodings(metric_values::VALUE_DOUBLE).contains(&Encoding::BYTE_STREAM_SPLIT));
        assert!(encodings("bucket_counts.list.item").contains(&Encoding::BYTE_STREAM_SPLIT));
        assert_eq!(decode_all(&file, &points), points);
    }

    #[test]
    fn bytes_per_sample() {
        let mut mixed = realistic_points(30_000, 5);
        let mut numbers: Vec<MetricPoint> = mixed
            .iter()
            .filter(|p| p.series.metric.kind != MetricKind::Histogram)
            .cloned()
            .collect();
        for (label, points) in [
            ("numbers only", &mut numbers),
            ("1/3 12-bucket histograms", &mut mixed),
        ] {
            let file = encode_metric_points(points).unwrap().unwrap();
            let per_point = file.bytes.len() as f64 / points.len() as f64;
            println!(
                "metrics ({label}): {} bytes for {} points = {per_point:.1} bytes/point",
                file.bytes.len(),
                points.len()
            );
            assert_eq!(&decode_all(&file, points), points);
        }
    }

    #[test]
    fn format_2_rows_leave_the_series_identity_to_the_index() {
        let mut points = realistic_points(300, 2);
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        assert_eq!(file.format, METRICS_FORMAT);
        let stored = crate::parquet_codec::test_fixtures::read_batches(&file.bytes);
        for name in SERIES_IDENTITY_COLUMNS {
            assert!(stored[0].column_by_name(name).is_none(), "{name} stored");
        }
        assert_eq!(decode_all(&file, &points), points);
    }

    /// Two different series made to share one series id (a 64-bit hash collision).
    fn colliding_points() -> Vec<MetricPoint> {
        let mut points = realistic_points(40, 3);
        let first = Arc::clone(&points[0].series);
        let twin = Arc::new(MetricSeries::stored(
            first.id(),
            Arc::clone(&first.resource),
            Arc::clone(&first.scope),
            Arc::clone(&first.metric),
            vec![crate::model::Attribute::string("twin", "yes")],
        ));
        let mut twin_point = points[0].clone();
        twin_point.series = twin;
        twin_point.time_unix_nano += 1;
        points.push(twin_point);
        points
    }

    #[test]
    fn series_sharing_an_id_are_written_with_their_identity() {
        let mut points = colliding_points();
        let twin_id = points.last().unwrap().series_id();
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        assert_eq!(file.format, METRICS_FORMAT_V1);
        let decoded = decode_all(&file, &points);
        assert_eq!(decoded, points);
        let twins: Vec<&MetricPoint> = decoded
            .iter()
            .filter(|p| p.series_id() == twin_id)
            .collect();
        assert!(twins.iter().any(|p| p.series.attributes.len() == 1));
        assert!(twins.iter().any(|p| p.series.attributes.len() > 1));
        let mut unique = realistic_points(40, 3);
        assert_eq!(
            encode_metric_points(&mut unique).unwrap().unwrap().format,
            METRICS_FORMAT
        );
    }

    #[test]
    fn a_series_holding_nan_is_one_series() {
        let mut points = realistic_points(20, 4);
        let nan = Arc::new(MetricSeries::new(
            Arc::clone(&points[0].series.resource),
            Arc::clone(&points[0].series.scope),
            Arc::clone(&points[0].series.metric),
            vec![crate::model::Attribute {
                key: "ratio".into(),
                value: crate::model::AttributeValue::Double(f64::NAN),
            }],
        ));
        for (n, point) in points.iter_mut().take(4).enumerate() {
            // Separate copies of the series, as separate exports would make them.
            point.series = Arc::new((*nan).clone());
            point.time_unix_nano = n as u64;
        }
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        assert_eq!(file.format, METRICS_FORMAT, "NaN equals itself by bits");
        let mut index = crate::metrics::SeriesIndexBuilder::default();
        for point in &points {
            index.add_points([point]);
        }
        let identities = super::super::SeriesIdentities::of(&index.finish());
        assert!(identities.is_ok(), "the index holds the series once");
    }

    #[test]
    fn sliced_batches_decode_their_own_rows() {
        let mut points = points_of_every_kind();
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        let batches = read_metric_batches(&file, &points);
        assert_eq!(
            decode_metric_points(&batches[0].slice(2, 4)).unwrap(),
            points[2..6]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_points_round_trip_through_parquet(
            mut points in proptest::collection::vec(any_point(), 1..12),
        ) {
            let file = encode_metric_points(&mut points).unwrap().unwrap();
            let keys: Vec<(&str, u64, u64)> = points
                .iter()
                .map(|p| (p.series.metric.name.as_str(), p.series_id(), p.time_unix_nano))
                .collect();
            prop_assert!(keys.is_sorted());
            prop_assert_eq!(decode_all(&file, &points), points);
        }
    }
}
