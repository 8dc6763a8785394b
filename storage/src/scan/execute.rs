//! Executing a scan over one table store: buffered records first (pre-filtered on the record,
//! then as Arrow), then the live files, oldest first, with every pushdown the predicate allows
//! (time range, trace-id filter and summary per file, statistics per row group, column index
//! per page, the predicate per row).
//! Batches go to a [`Sink`] that enforces the limits.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use futures::StreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ArrowReaderMetadata, RowFilter};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use tokio::sync::mpsc;

use super::predicate::{Predicate, Value};
use super::pruning::{pages_holding, pages_in_range, row_groups_holding, row_groups_in_range};
use super::{BoundedBatch, ScanLimits, ScanOrder, ScanRequest};
use crate::StorageError;
use crate::parquet_codec::{CodecError, SERIES_ID_COLUMN, SeriesIdentities};
use crate::table::{LiveFile, TableSignal, TableStore};

/// Records of the buffer converted to Arrow at a time.
const BUFFER_BATCH_ROWS: usize = 8192;
/// Rows per batch read from files.
const FILE_BATCH_ROWS: usize = 8192;

/// Rows per batch read from files: a truncating scan reads no more rows at once than its
/// limit lets through.
fn batch_rows(limits: &ScanLimits) -> usize {
    if limits.truncate {
        let rows = usize::try_from(limits.max_rows.saturating_add(1)).unwrap_or(FILE_BATCH_ROWS);
        rows.min(FILE_BATCH_ROWS)
    } else {
        FILE_BATCH_ROWS
    }
}

/// Where a scan's batches go: counts them against the limits, then hands them on.
pub(super) struct Sink {
    sender: mpsc::Sender<Result<BoundedBatch, StorageError>>,
    limits: ScanLimits,
    rows: u64,
    bytes: u64,
    /// The newest time a row sent from now on can have (newest-first scans).
    time_bound: u64,
}

impl Sink {
    pub(super) fn new(
        sender: mpsc::Sender<Result<BoundedBatch, StorageError>>,
        limits: ScanLimits,
    ) -> Self {
        Self {
            sender,
            limits,
            rows: 0,
            bytes: 0,
            time_bound: u64::MAX,
        }
    }

    fn check_deadline(&self) -> Result<(), StorageError> {
        match self.limits.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(StorageError::DeadlineExceeded),
            _ => Ok(()),
        }
    }

    async fn send(&mut self, batch: RecordBatch) -> Result<(), StorageError> {
        self.check_deadline()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let bytes = batch.get_array_memory_size() as u64;
        if self.limits.truncate {
            return self.send_truncating(batch, rows, bytes).await;
        }
        self.rows += rows;
        self.bytes += bytes;
        if self.rows > self.limits.max_rows && self.limits.max_rows_is_tenants {
            return Err(StorageError::TenantQueryLimit {
                limit: "query_max_rows",
                value: self.limits.max_rows,
            });
        }
        if self.rows > self.limits.max_rows {
            return Err(StorageError::LimitExceeded {
                what: "rows",
                limit: self.limits.max_rows,
            });
        }
        if self.bytes > self.limits.max_bytes {
            return Err(StorageError::LimitExceeded {
                what: "bytes",
                limit: self.limits.max_bytes,
            });
        }
        self.forward(batch).await
    }

    /// Sends what of `batch` fits the limits; past them, ends the scan as truncated. Bytes
    /// are shared out evenly over the batch's rows.
    async fn send_truncating(
        &mut self,
        batch: RecordBatch,
        rows: u64,
        bytes: u64,
    ) -> Result<(), StorageError> {
        let rows_left = self.limits.max_rows.saturating_sub(self.rows);
        let bytes_left = self.limits.max_bytes.saturating_sub(self.bytes);
        if rows <= rows_left && bytes <= bytes_left {
            self.rows += rows;
            self.bytes += bytes;
            return self.forward(batch).await;
        }
        let row_bytes = bytes.div_ceil(rows).max(1);
        let (keep, what, limit) = if rows_left.saturating_mul(row_bytes) <= bytes_left {
            (rows_left, "rows", self.limits.max_rows)
        } else {
            (bytes_left / row_bytes, "bytes", self.limits.max_bytes)
        };
        if keep > 0 {
            self.rows += keep;
            self.bytes += keep * row_bytes;
            // `keep` < `rows`, a usize.
            self.forward(batch.slice(0, keep as usize)).await?;
        }
        Err(StorageError::Truncated(super::Truncation { what, limit }))
    }

    async fn forward(&mut self, batch: RecordBatch) -> Result<(), StorageError> {
        self.sender
            .send(Ok((batch, self.time_bound)))
            .await
            .map_err(|_| StorageError::ScanAbandoned)
    }

    /// Tells the consumer that no row from now on is newer than `bound` (an empty batch of
    /// the scan's schema carries it).
    async fn announce(&mut self, empty: &RecordBatch, bound: u64) -> Result<(), StorageError> {
        self.check_deadline()?;
        self.time_bound = bound;
        self.sender
            .send(Ok((empty.clone(), bound)))
            .await
            .map_err(|_| StorageError::ScanAbandoned)
    }

    /// Ends the stream with an error, waiting for room like any batch: a consumer must never
    /// take a cut-short answer for a complete one. (If it is gone, nobody needs the error.)
    pub(super) async fn fail(self, err: StorageError) {
        if self.sender.send(Err(err)).await.is_err() {
            tracing::debug!("scan ended by an error its consumer no longer waits for");
        }
    }
}

fn codec(err: impl Into<CodecError>) -> StorageError {
    StorageError::Codec(err.into())
}

/// The indices of `columns` in `schema` (every column when `None`).
fn projection(schema: &SchemaRef, columns: Option<&[String]>) -> Result<Vec<usize>, StorageError> {
    match columns {
        None => Ok((0..schema.fields().len()).collect()),
        Some(columns) => columns
            .iter()
            .map(|name| {
                schema
                    .index_of(name)
                    .map_err(|_| StorageError::InvalidQuery(format!("no column {name}")))
            })
            .collect(),
    }
}

/// The request's predicate with its time range on the signal's time column.
fn full_predicate<S: TableSignal>(request: &ScanRequest) -> Predicate {
    let range = request.time_range;
    if range == super::TimeRange::ALL {
        return request.predicate.clone();
    }
    request.predicate.clone().and(Predicate::Range {
        column: S::TIME_COLUMN.to_owned(),
        min: Some(Value::UInt(range.start_unix_nano)),
        max: (range.end_unix_nano < u64::MAX).then_some(Value::UInt(range.end_unix_nano)),
    })
}

/// Runs the scan of one table store into `sink`.
pub(super) async fn scan_table<S: TableSignal>(
    store: &TableStore<S>,
    request: &ScanRequest,
    sink: &mut Sink,
) -> Result<(), StorageError> {
    let predicate = full_predicate::<S>(request);
    // Unknown columns and values of the wrong type are errors, whatever the data holds.
    let empty = S::to_batch(&[])?;
    predicate.evaluate(&empty).map_err(invalid)?;
    projection(&empty.schema(), request.columns.as_deref())?;
    let snapshot = store.snapshot(&request.tenant);

    // Buffered records: cheap checks on the record, then the full predicate as Arrow.
    let mut survivors: Vec<&S::Record> = Vec::new();
    for record in snapshot.buffered.iter().flat_map(|chunks| chunks.iter()) {
        if S::record_may_match(record, &predicate, request.time_range) {
            survivors.push(record);
        }
    }
    for chunk in survivors.chunks(BUFFER_BATCH_ROWS) {
        sink.check_deadline()?;
        let kept = rows_matching(&predicate, &S::to_batch(chunk)?)?;
        let indices = projection(&kept.schema(), request.columns.as_deref())?;
        sink.send(kept.project(&indices).map_err(codec)?).await?;
    }
    drop(survivors);

    let mut units: Vec<(u64, usize, Arc<FilePlan>)> = Vec::new();
    for file in snapshot.files.iter() {
        sink.check_deadline()?;
        let Some(plan) = plan_file(store, file, request, &predicate).await? else {
            continue;
        };
        match request.order {
            ScanOrder::Any => {
                read_row_groups(store, &plan, &plan.row_groups, request, sink).await?
            }
            ScanOrder::NewestFirst => {
                let plan = Arc::new(plan);
                for &row_group in &plan.row_groups {
                    let newest = newest_time::<S>(&plan, row_group);
                    units.push((newest, row_group, Arc::clone(&plan)));
                }
            }
        }
    }
    // Newest first: every row of a row group is at most its newest time, so after one is
    // read nothing newer than the next one's can come.
    units.sort_by_key(|unit| std::cmp::Reverse(unit.0));
    let empty = S::to_batch(&[])?;
    let empty = empty
        .project(&projection(&empty.schema(), request.columns.as_deref())?)
        .map_err(codec)?;
    for (newest, row_group, plan) in &units {
        // Said even when the last row group left no rows: the consumer may stop here.
        sink.announce(&empty, *newest).await?;
        read_row_groups(store, plan, &[*row_group], request, sink).await?;
    }
    Ok(())
}

/// The `ids` a file's id filter admits (values that are no 16-byte id prove nothing, so they
/// are admitted). One read of the filter for all of them.
async fn ids_admitted<S: TableSignal>(
    store: &TableStore<S>,
    file: &LiveFile,
    ids: &[&Value],
) -> Result<Vec<Value>, StorageError> {
    let as_id = |value: &Value| match value {
        Value::Bytes(bytes) => <[u8; 16]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    };
    let checked: Vec<[u8; 16]> = ids.iter().filter_map(|value| as_id(value)).collect();
    let mut verdicts = store.may_hold_ids(file, &checked).await?.into_iter();
    let mut admitted = Vec::new();
    for value in ids {
        let may_hold = match as_id(value) {
            Some(_) => verdicts.next().unwrap_or(true),
            None => true,
        };
        if may_hold {
            admitted.push((*value).clone());
        }
    }
    Ok(admitted)
}

fn invalid(err: super::PredicateError) -> StorageError {
    StorageError::InvalidQuery(err.to_string())
}

/// What a scan reads of one file: its footer, the predicate for it and the row groups that
/// pruning left.
struct FilePlan<'a> {
    file: &'a LiveFile,
    footer: Arc<ArrowReaderMetadata>,
    predicate: Predicate,
    row_groups: Vec<usize>,
    /// How its rows get the columns they leave to the file's index, when the scan needs any.
    restoring: Option<RestoringRead>,
}

/// The row groups of `file` the scan must read (`None` when none): the file's time range,
/// trace-id filter and summary, then row-group statistics and trace-id bloom filters.
async fn plan_file<'a, S: TableSignal>(
    store: &TableStore<S>,
    file: &'a LiveFile,
    request: &ScanRequest,
    predicate: &Predicate,
) -> Result<Option<FilePlan<'a>>, StorageError> {
    if !file.overlaps(
        request.time_range.start_unix_nano,
        request.time_range.end_unix_nano,
    ) {
        return Ok(None);
    }
    // Ids asked for: only those the file's filter admits are looked for in it, so its
    // pages are pruned for them alone.
    let mut file_predicate = predicate.clone();
    if let Some(column) = S::ID_FILTER_COLUMN
        && let Some(ids) = predicate.required_values(column)
    {
        let admitted = ids_admitted(store, file, &ids).await?;
        if admitted.is_empty() {
            return Ok(None);
        }
        if admitted.len() < ids.len() {
            file_predicate = predicate.narrowed(column, admitted);
        }
    }
    if S::SUMMARIZED
        && let Some(summary) = file.summary(store.objects()).await
    {
        if !S::summary_may_match(&summary, &file_predicate) {
            return Ok(None);
        }
        file_predicate = file_predicate.tags_narrowed(&|key| summary.may_nest(key));
    }
    let footer = store.footer(file).await?;
    let required = required_bytes(&file_predicate);
    let mut row_groups = prune_row_groups(&footer, &file_predicate, &required);
    // Ids asked for: a row group of several slices may pass its statistics without holding
    // them; its bloom filter says.
    if let Some(column) = S::ID_FILTER_COLUMN
        && row_groups.len() > 1
        && let Some((_, ids)) = required.iter().find(|(name, _)| *name == column)
    {
        let mut builder = file_reader(store, file, &footer);
        row_groups = bloom_admitted(&mut builder, row_groups, column, ids).await?;
    }
    drop(required);
    // Text a span attribute must hold: row groups whose value filter lacks it are skipped.
    let texts: Vec<&[u8]> = file_predicate
        .required_attribute_texts()
        .into_iter()
        .filter(|text| surely_text(text))
        .map(str::as_bytes)
        .collect();
    if let Some(leaf) = S::ATTRIBUTE_TEXT_LEAF
        && !texts.is_empty()
        && !row_groups.is_empty()
    {
        let mut builder = file_reader(store, file, &footer);
        for text in texts {
            row_groups = bloom_admitted(&mut builder, row_groups, leaf, &[text]).await?;
        }
    }
    if row_groups.is_empty() {
        return Ok(None);
    }
    // After the pruning above, which uses the tags' text (the attribute value filter).
    let predicate = S::file_predicate(file_predicate, footer.schema());
    let restoring = restoring_read(store, file, footer.schema(), request, &predicate).await?;
    Ok(Some(FilePlan {
        file,
        footer,
        predicate,
        row_groups,
        restoring,
    }))
}

/// A reader of `file` over its cached footer (no I/O until something is read).
fn file_reader<S: TableSignal>(
    store: &TableStore<S>,
    file: &LiveFile,
    footer: &ArrowReaderMetadata,
) -> ParquetRecordBatchStreamBuilder<ParquetObjectReader> {
    let reader = ParquetObjectReader::new(Arc::clone(store.objects().store()), file.path.clone())
        .with_file_size(file.meta.size_bytes);
    ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.clone())
}

/// The newest time a row of `row_group` can have: its time column's statistics, else the
/// file's.
fn newest_time<S: TableSignal>(plan: &FilePlan<'_>, row_group: usize) -> u64 {
    let metadata = plan.footer.metadata();
    let file_newest = plan.file.meta.max_time_unix_nano;
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|column| column.path().string() == S::TIME_COLUMN)
        .and_then(|column| metadata.row_group(row_group).column(column).statistics())
        .and_then(|statistics| match statistics {
            parquet::file::statistics::Statistics::Int64(stats) => stats.max_opt().copied(),
            _ => None,
        })
        .map_or(file_newest, |newest| newest as u64)
}

/// Reads `row_groups` of a planned file into the sink: pages by the column index, rows by
/// the predicate inside the reader.
async fn read_row_groups<S: TableSignal>(
    store: &TableStore<S>,
    plan: &FilePlan<'_>,
    row_groups: &[usize],
    request: &ScanRequest,
    sink: &mut Sink,
) -> Result<(), StorageError> {
    let (footer, predicate) = (&plan.footer, &plan.predicate);
    let required = required_bytes(predicate);
    let selection = select_pages(footer, row_groups, predicate, &required);
    let mut builder = file_reader(store, plan.file, footer).with_row_groups(row_groups.to_vec());
    let schema = footer.schema();
    let restoring = &plan.restoring;
    let (read_indices, reader_predicate) = match restoring {
        Some(restoring) => (
            restoring.read_indices(schema)?,
            restoring.reader_predicate.clone(),
        ),
        None => (
            projection(schema, request.columns.as_deref())?,
            predicate.clone(),
        ),
    };
    let parquet_schema = footer.metadata().file_metadata().schema_descr();
    builder = builder
        .with_batch_size(batch_rows(&request.limits))
        .with_projection(ProjectionMask::roots(
            parquet_schema,
            read_indices.iter().copied(),
        ));
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    let filters = row_filters(&reader_predicate, schema, parquet_schema)?;
    if !filters.is_empty() {
        builder = builder.with_row_filter(RowFilter::new(filters));
    }
    let mut stream = builder.build().map_err(codec)?;
    while let Some(batch) = stream.next().await {
        let mut batch = batch.map_err(|err| match err {
            parquet::errors::ParquetError::ArrowError(message) => {
                StorageError::InvalidQuery(message)
            }
            other => codec(other),
        })?;
        if let Some(restoring) = restoring {
            batch = restoring.restore(&batch)?;
        }
        // The reader returns columns in file order; answer in the order asked.
        let ordered = projection(batch.schema_ref(), request.columns.as_deref())?;
        sink.send(batch.project(&ordered).map_err(codec)?).await?;
    }
    Ok(())
}

/// A read of a file whose rows leave their series' identity to its index, restoring what
/// the scan needs of it.
struct RestoringRead {
    identities: Arc<SeriesIdentities>,
    /// The columns read from the file (the scan's and the predicate's that it holds, and the
    /// series id).
    read_columns: Vec<String>,
    /// The scan's and the predicate's columns, restored.
    schema: SchemaRef,
    /// The parts of the predicate on columns the file holds (checked by the reader).
    reader_predicate: Predicate,
    /// The parts on restored columns (checked after the restore).
    restored_predicate: Predicate,
}

impl RestoringRead {
    fn read_indices(&self, file_schema: &SchemaRef) -> Result<Vec<usize>, StorageError> {
        projection(file_schema, Some(&self.read_columns))
    }

    /// A batch read as the scan's columns, rows failing the restored predicate dropped.
    fn restore(&self, batch: &RecordBatch) -> Result<RecordBatch, StorageError> {
        let restored = self.identities.restore(batch, &self.schema)?;
        if self.restored_predicate == Predicate::All {
            return Ok(restored);
        }
        rows_matching(&self.restored_predicate, &restored)
    }
}

/// The rows of `batch` that `predicate` keeps.
fn rows_matching(predicate: &Predicate, batch: &RecordBatch) -> Result<RecordBatch, StorageError> {
    let mask = predicate.evaluate(batch).map_err(invalid)?;
    arrow_select::filter::filter_record_batch(batch, &BooleanArray::new(mask, None)).map_err(codec)
}

/// How to read `file` when its rows leave columns the scan needs (its series' identity) to
/// its index; `None` when the file holds every column needed.
async fn restoring_read<S: TableSignal>(
    store: &TableStore<S>,
    file: &LiveFile,
    file_schema: &SchemaRef,
    request: &ScanRequest,
    predicate: &Predicate,
) -> Result<Option<RestoringRead>, StorageError> {
    if !S::rows_leave_identity(&file.meta.format) {
        return Ok(None);
    }
    let held = |name: &str| file_schema.column_with_name(name).is_some();
    let (reader_parts, restored_parts): (Vec<Predicate>, Vec<Predicate>) = predicate
        .conjuncts()
        .into_iter()
        .partition(|part| part.columns().into_iter().all(held));
    let full = S::to_batch(&[])?.schema();
    let mut needed: Vec<String> = match &request.columns {
        Some(columns) => columns.clone(),
        None => full.fields().iter().map(|f| f.name().clone()).collect(),
    };
    for part in &restored_parts {
        needed.extend(part.columns().into_iter().map(str::to_owned));
    }
    if needed.iter().all(|name| held(name)) {
        return Ok(None);
    }
    let identities = store.series_identities(file).await?;
    let fields: Vec<_> = full
        .fields()
        .iter()
        .filter(|field| needed.contains(field.name()))
        .cloned()
        .collect();
    let mut read_columns: Vec<String> = needed.into_iter().filter(|name| held(name)).collect();
    read_columns.push(SERIES_ID_COLUMN.to_owned());
    read_columns.sort();
    read_columns.dedup();
    Ok(Some(RestoringRead {
        identities,
        read_columns,
        schema: Arc::new(arrow_schema::Schema::new(fields)),
        reader_predicate: reader_parts
            .into_iter()
            .fold(Predicate::All, Predicate::and),
        restored_predicate: restored_parts
            .into_iter()
            .fold(Predicate::All, Predicate::and),
    }))
}

/// The predicate as row filters the reader applies in turn, each decoding its columns only
/// for the rows the ones before kept: the parts of a conjunction, cheap ones first.
fn row_filters(
    predicate: &Predicate,
    schema: &SchemaRef,
    parquet_schema: &parquet::schema::types::SchemaDescriptor,
) -> Result<Vec<Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>>, StorageError> {
    let mut parts: Vec<Predicate> = match predicate {
        Predicate::All => Vec::new(),
        other => other.conjuncts(),
    };
    parts.sort_by_key(Predicate::is_costly);
    parts
        .into_iter()
        .map(|part| {
            let columns = part
                .columns()
                .into_iter()
                .map(|name| {
                    schema
                        .index_of(name)
                        .map_err(|_| StorageError::InvalidQuery(format!("no column {name}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let filter = ArrowPredicateFn::new(
                ProjectionMask::roots(parquet_schema, columns),
                move |batch: RecordBatch| {
                    let mask = part
                        .evaluate(&batch)
                        .map_err(|err| arrow_schema::ArrowError::ComputeError(err.to_string()))?;
                    Ok(BooleanArray::new(mask, None))
                },
            );
            Ok(Box::new(filter) as Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>)
        })
        .collect()
}

/// The values each column must equal (one of), as bytes, for the columns the predicate
/// requires binary or text values of.
fn required_bytes(predicate: &Predicate) -> Vec<(&str, Vec<&[u8]>)> {
    predicate
        .columns()
        .into_iter()
        .filter_map(|column| {
            let values = predicate.required_values(column)?;
            let bytes: Option<Vec<&[u8]>> = values
                .into_iter()
                .map(|value| match value {
                    Value::Bytes(bytes) => Some(bytes.as_slice()),
                    Value::Text(text) => Some(text.as_bytes()),
                    _ => None,
                })
                .collect();
            Some((column, bytes?))
        })
        .collect()
}

/// Row groups whose statistics admit every required equality and range of the predicate.
fn prune_row_groups(
    footer: &ArrowReaderMetadata,
    predicate: &Predicate,
    required: &[(&str, Vec<&[u8]>)],
) -> Vec<usize> {
    let mut row_groups: Vec<usize> = (0..footer.metadata().num_row_groups()).collect();
    for (column, values) in required {
        let holding = row_groups_holding(footer, column, values);
        row_groups.retain(|row_group| holding.contains(row_group));
    }
    for column in predicate.columns() {
        if let Some(range) = predicate.required_range(column) {
            row_groups = row_groups_in_range(footer, &row_groups, column, range);
        }
    }
    row_groups
}

/// Whether a tag value can only be a text attribute: numbers, booleans, hex (bytes) and
/// JSON (arrays, maps) are stored in other leaves or forms, which the text filter does not
/// hold.
fn surely_text(value: &str) -> bool {
    let hex = !value.is_empty()
        && value.len().is_multiple_of(2)
        && value.bytes().all(|b| b.is_ascii_hexdigit());
    !(value.is_empty()
        || hex
        || value.parse::<f64>().is_ok()
        || matches!(value, "true" | "false")
        || value.starts_with(['[', '{']))
}

/// Of `row_groups`, those whose bloom filter on `column` may hold one of `values` (a row
/// group without one is kept).
async fn bloom_admitted(
    builder: &mut ParquetRecordBatchStreamBuilder<ParquetObjectReader>,
    row_groups: Vec<usize>,
    column: &str,
    values: &[&[u8]],
) -> Result<Vec<usize>, StorageError> {
    let Some(leaf) = builder
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|leaf| leaf.path().string() == column)
    else {
        return Ok(row_groups);
    };
    let mut admitted = Vec::with_capacity(row_groups.len());
    for row_group in row_groups {
        let bloom = builder
            .get_row_group_column_bloom_filter(row_group, leaf)
            .await
            .map_err(codec)?;
        if bloom.is_none_or(|bloom| values.iter().any(|value| bloom.check(*value))) {
            admitted.push(row_group);
        }
    }
    Ok(admitted)
}

/// The pages of `row_groups` whose column index admits the required equalities (the first
/// column that has an index) and ranges of the predicate; `None` to read every row.
fn select_pages(
    footer: &ArrowReaderMetadata,
    row_groups: &[usize],
    predicate: &Predicate,
    required: &[(&str, Vec<&[u8]>)],
) -> Option<parquet::arrow::arrow_reader::RowSelection> {
    let by_value = required
        .iter()
        .find_map(|(column, values)| pages_holding(footer, row_groups, column, values));
    predicate
        .columns()
        .into_iter()
        .filter_map(|column| {
            let range = predicate.required_range(column)?;
            pages_in_range(footer, row_groups, column, range)
        })
        .chain(by_value)
        .reduce(|a, b| a.intersection(&b))
}
