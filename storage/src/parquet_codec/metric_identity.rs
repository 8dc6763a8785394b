//! What identifies a metric series, as columns: built for every point of a batch of the full
//! metric schema (buffered points answering a scan, files of format 1), and restored from a
//! file's series index into rows of format 2, which keep only the series id.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, RecordBatch, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{Schema, SchemaRef};

use super::CodecError;
use super::attributes::AttributesBuilder;
use super::columns::column;
use super::json::SharedJsonBuilder;
use super::metrics::SERIES_ID;
use crate::metrics::SeriesIndex;
use crate::model::{InstrumentationScope, MetricSeries, Resource};

/// The service name (from the resource's `service.name`).
pub(super) const SERVICE_NAME: &str = "service_name";
/// The metric's description.
pub(super) const DESCRIPTION: &str = "description";
/// The metric's unit.
pub(super) const UNIT: &str = "unit";
/// The metric kind (OTLP numbers).
pub(super) const KIND: &str = "kind";
/// The aggregation temporality (OTLP numbers).
pub(super) const TEMPORALITY: &str = "temporality";
/// Whether a sum is monotonic.
pub(super) const IS_MONOTONIC: &str = "is_monotonic";
/// The point attributes (labels).
pub(super) const ATTRIBUTES: &str = "attributes";
/// The resource, as shared JSON.
pub(super) const RESOURCE: &str = "resource";
/// The instrumentation scope, as shared JSON.
pub(super) const SCOPE: &str = "scope";

/// The columns that identify a point's series: in every row of format 1, in the series index
/// alone in format 2.
pub const SERIES_IDENTITY_COLUMNS: [&str; 9] = [
    SERVICE_NAME,
    DESCRIPTION,
    UNIT,
    KIND,
    TEMPORALITY,
    IS_MONOTONIC,
    ATTRIBUTES,
    RESOURCE,
    SCOPE,
];

/// Builds the identity columns of a batch, one row per series given.
pub(super) struct IdentityBuilder<'a> {
    service_names: StringBuilder,
    descriptions: StringBuilder,
    units: StringBuilder,
    kinds: Vec<u8>,
    temporalities: Vec<u8>,
    monotonic: Vec<bool>,
    attributes: AttributesBuilder,
    resources: SharedJsonBuilder<'a, Resource>,
    scopes: SharedJsonBuilder<'a, InstrumentationScope>,
}

impl<'a> IdentityBuilder<'a> {
    /// Room for `num_rows` rows holding `num_attributes` attributes in all.
    pub(super) fn with_capacity(num_rows: usize, num_attributes: usize) -> Self {
        Self {
            service_names: StringBuilder::with_capacity(num_rows, num_rows * 12),
            descriptions: StringBuilder::with_capacity(num_rows, 0),
            units: StringBuilder::with_capacity(num_rows, num_rows),
            kinds: Vec::with_capacity(num_rows),
            temporalities: Vec::with_capacity(num_rows),
            monotonic: Vec::with_capacity(num_rows),
            attributes: AttributesBuilder::with_capacity(ATTRIBUTES, num_rows, num_attributes),
            resources: SharedJsonBuilder::with_capacity(RESOURCE, num_rows),
            scopes: SharedJsonBuilder::with_capacity(SCOPE, num_rows),
        }
    }

    /// Appends one row of `series`.
    pub(super) fn append(&mut self, series: &'a MetricSeries) -> Result<(), CodecError> {
        let metric = &series.metric;
        self.service_names
            .append_value(series.resource.service_name());
        self.descriptions.append_value(&metric.description);
        self.units.append_value(&metric.unit);
        self.kinds.push(metric.kind as u8);
        self.temporalities.push(metric.temporality as u8);
        self.monotonic.push(metric.is_monotonic);
        self.attributes.append(&series.attributes)?;
        self.resources.append(&series.resource)?;
        self.scopes.append(&series.scope)
    }

    /// The columns, named, in [`SERIES_IDENTITY_COLUMNS`] order.
    pub(super) fn finish(mut self) -> Result<[(&'static str, ArrayRef); 9], CodecError> {
        Ok([
            (SERVICE_NAME, Arc::new(self.service_names.finish())),
            (DESCRIPTION, Arc::new(self.descriptions.finish())),
            (UNIT, Arc::new(self.units.finish())),
            (KIND, Arc::new(UInt8Array::from(self.kinds))),
            (TEMPORALITY, Arc::new(UInt8Array::from(self.temporalities))),
            (IS_MONOTONIC, Arc::new(BooleanArray::from(self.monotonic))),
            (ATTRIBUTES, self.attributes.finish()?),
            (RESOURCE, self.resources.finish()?),
            (SCOPE, self.scopes.finish()?),
        ])
    }
}

/// The identity columns of a format-2 metric file's series, one row per series of its index,
/// and where each series id's row is: what a read of its rows restores them from.
#[derive(Debug)]
pub struct SeriesIdentities {
    rows_by_id: HashMap<u64, u32>,
    columns: Vec<(&'static str, ArrayRef)>,
}

impl SeriesIdentities {
    /// The identities of the series of `index`. Fails when two of its series share an id
    /// (a file of format 2 never holds such: its rows could not tell them apart).
    pub fn of(index: &SeriesIndex) -> Result<Self, CodecError> {
        let groups: Vec<_> = index
            .groups
            .iter()
            .map(|group| {
                (
                    Arc::new(group.resource.clone()),
                    Arc::new(group.scope.clone()),
                    Arc::new(group.metric.clone()),
                )
            })
            .collect();
        let mut series = Vec::with_capacity(index.series.len());
        let mut rows_by_id = HashMap::with_capacity(index.series.len());
        for (row, indexed) in index.series.iter().enumerate() {
            let (resource, scope, metric) =
                groups
                    .get(indexed.group as usize)
                    .ok_or_else(|| CodecError::InvalidValue {
                        column: "series index".to_owned(),
                        row,
                        reason: format!("group {} of {}", indexed.group, groups.len()),
                    })?;
            let row_number = u32::try_from(row).map_err(|_| CodecError::TooLarge {
                column: "series index",
            })?;
            if rows_by_id.insert(indexed.series_id, row_number).is_some() {
                return Err(CodecError::InvalidValue {
                    column: "series index".to_owned(),
                    row,
                    reason: format!("series id {:016x} twice", indexed.series_id),
                });
            }
            series.push(MetricSeries::stored(
                indexed.series_id,
                Arc::clone(resource),
                Arc::clone(scope),
                Arc::clone(metric),
                indexed.attributes.clone(),
            ));
        }
        let num_attributes = series.iter().map(|s| s.attributes.len()).sum();
        let mut builder = IdentityBuilder::with_capacity(series.len(), num_attributes);
        for one in &series {
            builder.append(one)?;
        }
        Ok(Self {
            rows_by_id,
            columns: builder.finish()?.into(),
        })
    }

    /// `batch` (rows of a format-2 file, with their series ids) as the columns of `schema`:
    /// each one the batch has, and the identity columns restored. A row whose series the
    /// index lacks is an error (the file and its index disagree).
    pub fn restore(
        &self,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, CodecError> {
        let wanted = |name: &str| schema.column_with_name(name).is_some();
        let rows = if SERIES_IDENTITY_COLUMNS.iter().any(|name| wanted(name)) {
            Some(self.rows_of(column::<UInt64Array>(batch, SERIES_ID)?)?)
        } else {
            None
        };
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name().as_str();
            if let Some(array) = batch.column_by_name(name) {
                columns.push(Arc::clone(array));
                continue;
            }
            let restored = self.columns.iter().find(|(column, _)| *column == name);
            match (restored, &rows) {
                (Some((_, identity)), Some(rows)) => {
                    columns.push(arrow_select::take::take(identity.as_ref(), rows, None)?);
                }
                _ => {
                    return Err(CodecError::MissingColumn {
                        column: name.to_owned(),
                    });
                }
            }
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(schema.fields().clone())),
            columns,
            &options,
        )?)
    }

    /// The index row of each batch row's series (looked up once per run of one series).
    fn rows_of(&self, series_ids: &UInt64Array) -> Result<UInt32Array, CodecError> {
        let mut rows = Vec::with_capacity(series_ids.len());
        let mut last: Option<(u64, u32)> = None;
        for (position, &series_id) in series_ids.values().iter().enumerate() {
            let row = match last {
                Some((id, row)) if id == series_id => row,
                _ => *self
                    .rows_by_id
                    .get(&series_id)
                    .ok_or_else(|| CodecError::InvalidValue {
                        column: SERIES_ID.to_owned(),
                        row: position,
                        reason: format!("series {series_id:016x} is not in the file's index"),
                    })?,
            };
            last = Some((series_id, row));
            rows.push(row);
        }
        Ok(UInt32Array::from(rows))
    }

    /// Rough heap bytes held.
    pub fn memory_size(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .map(|(_, array)| array.get_array_memory_size())
            .sum();
        columns + self.rows_by_id.capacity() * 16
    }
}
