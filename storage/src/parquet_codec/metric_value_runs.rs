//! Metric rows read for the series index: runs of one series' values decoded with the
//! identity the index gives (a read that has it needs none of the identity columns), and a
//! merge's rows added to the output's series index without decoding every point.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array, UInt64Array};

use super::columns::column;
use super::metric_values::{self, NumberValuesReader, PointValuesReader, value_fields};
use super::metrics::{FLAGS, SERIES_ID, START_TIME, SeriesRun, decode_metric_points};
use super::{CodecError, POINT_TIME_COLUMN};
use crate::metrics::{SeriesIndexBuilder, StoredRun};
use crate::model::{MetricKind, MetricPoint, MetricSeries, PointValue};

/// A number point as a read of values alone gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberSample {
    /// Time of the point, Unix ns.
    pub time_unix_nano: u64,
    /// Start of its aggregation interval, Unix ns.
    pub start_time_unix_nano: u64,
    /// OTLP data point flags.
    pub flags: u32,
    /// The value (an int one as a double).
    pub value: f64,
}

/// Decodes a batch projected to [`metric_value_columns`] with `numbers_only` as runs of one
/// series' samples each, for the series `wanted` accepts: a quarter of the memory of points,
/// for reads of gauges and sums. A row that is not a number is an error.
pub fn decode_metric_number_runs(
    batch: &RecordBatch,
    mut wanted: impl FnMut(u64) -> bool,
) -> Result<Vec<(u64, Vec<NumberSample>)>, CodecError> {
    let series_ids = column::<UInt64Array>(batch, SERIES_ID)?;
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    let start_times = column::<UInt64Array>(batch, START_TIME)?;
    let flags = column::<UInt32Array>(batch, FLAGS)?;
    let values = NumberValuesReader::new(batch)?;
    let mut runs: Vec<(u64, Vec<NumberSample>)> = Vec::new();
    for (series_id, rows) in series_runs(series_ids) {
        if !wanted(series_id) {
            continue;
        }
        let mut samples = Vec::with_capacity(rows.len());
        for row in rows {
            let PointValue::Number { value } = values.read(row)? else {
                continue;
            };
            samples.push(NumberSample {
                time_unix_nano: times.value(row),
                start_time_unix_nano: start_times.value(row),
                flags: flags.value(row),
                value: value.as_f64(),
            });
        }
        runs.push((series_id, samples));
    }
    Ok(runs)
}

/// Adds the rows of a batch of the metric schema to a series index (a merge's): a series'
/// identity is decoded once per run of its rows, and only the times of the others, and their
/// values where the kind has layouts (histograms, summaries).
pub fn add_metric_rows_to_series_index(
    batch: &RecordBatch,
    index: &mut SeriesIndexBuilder,
) -> Result<(), CodecError> {
    let series_ids = column::<UInt64Array>(batch, SERIES_ID)?;
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    let values = PointValuesReader::new(batch)?;
    for (series_id, rows) in series_runs(series_ids) {
        let Some(first_point) = decode_metric_points(&batch.slice(rows.start, 1))?.pop() else {
            break;
        };
        let run_times = &times.values()[rows.clone()];
        let first = run_times
            .iter()
            .copied()
            .min()
            .unwrap_or(first_point.time_unix_nano);
        let last = run_times
            .iter()
            .copied()
            .max()
            .unwrap_or(first_point.time_unix_nano);
        let stored = StoredRun {
            series_id,
            first_time_unix_nano: first,
            last_time_unix_nano: last,
            points: rows.len() as u64,
        };
        let identity = &first_point.series;
        match identity.metric.kind {
            // One layout whatever the values: none to read.
            MetricKind::Gauge | MetricKind::Sum => {
                index.add_stored(
                    &stored,
                    identity,
                    std::iter::once(first_point.value.clone()),
                );
            }
            _ => {
                let run_values = rows.map(|row| values.read(row));
                let run_values: Vec<PointValue> = run_values.collect::<Result<_, _>>()?;
                index.add_stored(&stored, identity, run_values);
            }
        }
    }
    Ok(())
}

/// The runs of equal series ids in a batch (rows are sorted by series): each id with its rows.
fn series_runs(series_ids: &UInt64Array) -> impl Iterator<Item = (u64, Range<usize>)> + '_ {
    let ids = series_ids.values();
    let mut start = 0;
    std::iter::from_fn(move || {
        let series_id = *ids.get(start)?;
        let len = ids[start..]
            .iter()
            .take_while(|id| **id == series_id)
            .count();
        let rows = start..start + len;
        start = rows.end;
        Some((series_id, rows))
    })
}

/// The top-level columns [`decode_metric_value_runs`] reads: the series id, times, flags and
/// values, none of what identifies a series (a reader that has it from the series index).
/// With `numbers_only` (every series read is a gauge or sum), the value columns of numbers
/// alone.
pub fn metric_value_columns(numbers_only: bool) -> Vec<String> {
    let values: Vec<String> = match numbers_only {
        true => metric_values::NUMBER_COLUMNS.map(str::to_owned).to_vec(),
        false => value_fields().iter().map(|f| f.name().clone()).collect(),
    };
    [SERIES_ID, POINT_TIME_COLUMN, START_TIME, FLAGS]
        .into_iter()
        .map(str::to_owned)
        .chain(values)
        .collect()
}

/// The values of a batch: every shape, or numbers alone when only their columns were read.
enum ValuesReader<'a> {
    Any(PointValuesReader<'a>),
    Numbers(NumberValuesReader<'a>),
}

impl<'a> ValuesReader<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, CodecError> {
        match batch.schema_ref().column_with_name(metric_values::COUNT) {
            Some(_) => PointValuesReader::new(batch).map(Self::Any),
            None => NumberValuesReader::new(batch).map(Self::Numbers),
        }
    }

    fn read(&self, row: usize) -> Result<PointValue, CodecError> {
        match self {
            Self::Any(reader) => reader.read(row),
            Self::Numbers(reader) => reader.read(row),
        }
    }
}

/// Decodes a batch projected to [`metric_value_columns`] as runs of one series each, the
/// series taken from `identity` by its stored id (as [`decode_metric_series_runs`] would
/// decode it). Rows of a series `identity` does not know are skipped.
pub fn decode_metric_value_runs(
    batch: &RecordBatch,
    mut identity: impl FnMut(u64) -> Option<Arc<MetricSeries>>,
) -> Result<Vec<SeriesRun>, CodecError> {
    let series_ids = column::<UInt64Array>(batch, SERIES_ID)?;
    let times = column::<UInt64Array>(batch, POINT_TIME_COLUMN)?;
    let start_times = column::<UInt64Array>(batch, START_TIME)?;
    let flags = column::<UInt32Array>(batch, FLAGS)?;
    let values = ValuesReader::new(batch)?;
    let mut runs: Vec<SeriesRun> = Vec::new();
    for (series_id, rows) in series_runs(series_ids) {
        let Some(series) = identity(series_id) else {
            continue;
        };
        // Sized once: points are large, and a run is most of a batch.
        let mut points = Vec::with_capacity(rows.len());
        for row in rows {
            points.push(MetricPoint {
                series: Arc::clone(&series),
                start_time_unix_nano: start_times.value(row),
                time_unix_nano: times.value(row),
                flags: flags.value(row),
                value: values.read(row)?,
                exemplars: Vec::new(),
            });
        }
        runs.push(SeriesRun { series_id, points });
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::parquet_codec::decode_metric_series_runs;
    use crate::parquet_codec::encode_metric_points;
    use crate::parquet_codec::test_fixtures::{points_of_every_kind, read_metric_batches};

    /// `batch` cut down to `columns`.
    fn projected(batch: &RecordBatch, columns: &[String]) -> RecordBatch {
        let schema = batch.schema();
        let indices: Vec<usize> = columns
            .iter()
            .map(|c| schema.index_of(c).unwrap())
            .collect();
        batch.project(&indices).unwrap()
    }

    #[test]
    fn value_runs_take_their_identity_from_the_caller() {
        let mut points = points_of_every_kind();
        let file = encode_metric_points(&mut points).unwrap().unwrap();
        let batch = &read_metric_batches(&file, &points)[0];
        let full = decode_metric_series_runs(batch).unwrap();
        let identities: HashMap<u64, MetricPoint> = full
            .iter()
            .map(|run| (run.series_id, run.points[0].clone()))
            .collect();
        let values = projected(batch, &metric_value_columns(false));
        let runs = decode_metric_value_runs(&values, |id| {
            identities.get(&id).map(|p| Arc::clone(&p.series))
        })
        .unwrap();
        assert_eq!(runs, full, "the same points, identity from the caller");

        let skipped = full[0].series_id;
        let some = decode_metric_value_runs(&values, |id| {
            (id != skipped)
                .then(|| identities.get(&id).map(|p| Arc::clone(&p.series)))
                .flatten()
        })
        .unwrap();
        assert_eq!(some, full[1..], "unknown series are skipped");

        let numbers = projected(batch, &metric_value_columns(true));
        assert!(numbers.num_columns() < values.num_columns() / 2);
        let number_runs = decode_metric_value_runs(&numbers, |id| {
            identities
                .get(&id)
                .filter(|p| matches!(p.value, PointValue::Number { .. }))
                .map(|p| Arc::clone(&p.series))
        })
        .unwrap();
        assert!(!number_runs.is_empty());
        assert!(
            number_runs.iter().all(|run| full.iter().any(|f| f == run)),
            "numbers read from their columns alone"
        );
        assert!(
            decode_metric_value_runs(&numbers, |id| identities
                .get(&id)
                .map(|p| Arc::clone(&p.series)))
            .is_err(),
            "a histogram is not read as a number"
        );
        let is_number = |id: u64| {
            identities
                .get(&id)
                .is_some_and(|p| matches!(p.value, PointValue::Number { .. }))
        };
        let samples = decode_metric_number_runs(&numbers, is_number).unwrap();
        assert_eq!(samples.len(), number_runs.len());
        for ((series_id, samples), run) in samples.iter().zip(&number_runs) {
            assert_eq!(*series_id, run.series_id);
            let times: Vec<u64> = samples.iter().map(|s| s.time_unix_nano).collect();
            let expected: Vec<u64> = run.points.iter().map(|p| p.time_unix_nano).collect();
            assert_eq!(times, expected);
        }
        assert!(decode_metric_number_runs(&numbers, |_| true).is_err());
    }
}
