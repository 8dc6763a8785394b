//! Carrying out a merge: a streaming k-way merge of sorted files into new sorted files of at
//! most the target size, written through the object store (local or remote) with the same
//! writer settings, sort order, bloom filters, page index and metadata as a flush, plus a
//! trace-id filter for spans; then one manifest commit replaces the inputs by the outputs.
//!
//! Crash-safe at every step: outputs are durable before the commit; the inputs are deleted
//! only after it (and after the grace period); a crash before the commit leaves outputs no
//! manifest lists, which the next start removes. Memory is bounded: one batch per input and
//! one output row group at a time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::id_filter::IdFilter;
use super::{LiveFile, Summarizer, TableSignal, TableStore, now_unix_ms};
use crate::StorageError;
use crate::catalog::{DataFileMeta, IdFilterMeta, ManifestChange};
use crate::layout;
use crate::model::TenantId;
use crate::parquet_codec::{CodecError, SeriesIdentities, time_range_metadata};

/// Rows read per input batch: memory is about this many rows per input.
const INPUT_BATCH_ROWS: usize = 2048;
/// Rows per batch handed to the writer.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Files read.
    pub inputs: usize,
    /// Files written.
    pub outputs: usize,
    /// Rows merged.
    pub rows: u64,
    /// Bytes read (input file sizes).
    pub bytes_read: u64,
    /// Bytes written (output file sizes).
    pub bytes_written: u64,
}

fn codec(err: parquet::errors::ParquetError) -> StorageError {
    StorageError::Codec(CodecError::from(err))
}

struct Cursor<K> {
    stream: ParquetRecordBatchStream<ParquetObjectReader>,
    /// For a file whose rows leave their series' identity to its index: the identities, and
    /// the full schema its rows are restored to.
    restore: Option<(Arc<SeriesIdentities>, SchemaRef)>,
    batch: Option<RecordBatch>,
    keys: VecDeque<K>,
    row: usize,
    /// Index of the current batch among the sources of the pending output rows.
    source: Option<usize>,
}

impl<K> Cursor<K> {
    /// Moves to the next batch; `false` when the file is exhausted.
    async fn next_batch<S: TableSignal<SortKey = K>>(&mut self) -> Result<bool, StorageError> {
        self.source = None;
        self.row = 0;
        while let Some(batch) = self.stream.next().await {
            let mut batch = batch.map_err(codec)?;
            if batch.num_rows() == 0 {
                continue;
            }
            if let Some((identities, schema)) = &self.restore {
                batch = identities.restore(&batch, schema)?;
            }
            self.keys = S::sort_keys(&batch)?.into();
            self.batch = Some(batch);
            return Ok(true);
        }
        self.batch = None;
        Ok(false)
    }
}

/// What every output file of one merge shares.
struct NewOutput {
    /// The format written.
    format: &'static str,
    /// The schema of the rows merged.
    schema: SchemaRef,
    /// The schema of the rows written (the merged rows' own, or fewer columns of them).
    file_schema: SchemaRef,
    tenant: TenantId,
    /// The time in output file names (the inputs' earliest).
    name_time: u64,
    /// Rows of all inputs (sizes the bloom filters).
    expected_rows: u64,
    /// Distinct trace ids of all inputs, at most (sizes the trace-id filters).
    filter_capacity: u64,
}

/// One output file being written.
struct Output<M> {
    path: ObjectPath,
    writer: AsyncArrowWriter<ParquetObjectWriter>,
    rows: u64,
    time_range: Option<(u64, u64)>,
    filter: Option<IdFilter>,
    format: &'static str,
    summarizer: M,
}

impl<S: TableSignal> TableStore<S> {
    /// Merges `inputs` (live files of one tenant and hour, sorted alike) into files of at most
    /// `target_file_bytes` and commits the replacement. Stops early, leaving nothing behind,
    /// when `cancel` fires or an input left the manifest meanwhile.
    pub async fn merge(
        &self,
        tenant: &TenantId,
        inputs: &[Arc<LiveFile>],
        target_file_bytes: u64,
        delete_grace: Duration,
        cancel: &CancellationToken,
    ) -> Result<MergeOutcome, StorageError> {
        let readable = self.readable_inputs(inputs).await;
        if readable.is_empty() {
            return Ok(MergeOutcome::default());
        }
        let inputs = readable.as_slice();
        let mut written: Vec<ObjectPath> = Vec::new();
        let result = self
            .merge_into(tenant, inputs, target_file_bytes, cancel, &mut written)
            .await;
        let committed = match result {
            Ok(outputs) => {
                let outcome = MergeOutcome {
                    inputs: inputs.len(),
                    outputs: outputs.len(),
                    rows: outputs.iter().map(|file| file.num_rows).sum(),
                    bytes_read: inputs.iter().map(|file| file.meta.size_bytes).sum(),
                    bytes_written: outputs.iter().map(|file| file.size_bytes).sum(),
                };
                let change = ManifestChange {
                    add: outputs,
                    remove: inputs.iter().map(|file| file.meta.path.clone()).collect(),
                    flushed: None,
                };
                self.commit(tenant, change, delete_grace, |_| {})
                    .await
                    .map(|_| outcome)
            }
            Err(err) => Err(err),
        };
        if committed.is_err()
            && !matches!(committed, Err(StorageError::CommitOutcomeUnknown { .. }))
        {
            for path in written {
                if let Err(err) = self.objects.delete(&path).await {
                    warn!(path = %path, error = %err, "could not remove an output of a failed merge");
                }
            }
        }
        committed
    }

    async fn merge_into(
        &self,
        tenant: &TenantId,
        inputs: &[Arc<LiveFile>],
        target_file_bytes: u64,
        cancel: &CancellationToken,
        written: &mut Vec<ObjectPath>,
    ) -> Result<Vec<DataFileMeta>, StorageError> {
        let mut cursors: Vec<Cursor<S::SortKey>> = Vec::with_capacity(inputs.len());
        let mut schema: Option<SchemaRef> = None;
        for file in inputs {
            let footer = self.footer(file).await?;
            // Rows that leave their series' identity to the file's index are read with it
            // restored, so inputs of every format merge alike.
            let restore = match S::rows_leave_identity(&file.meta.format) {
                true => Some((
                    self.series_identities(file).await?,
                    S::to_batch(&[])?.schema(),
                )),
                false => None,
            };
            // Fields only: the schema metadata carries each file's own time range.
            let read_schema = match &restore {
                Some((_, full)) => Arc::clone(full),
                None => Arc::new(arrow_schema::Schema::new(footer.schema().fields().clone())),
            };
            if schema
                .as_ref()
                .is_some_and(|first| first.fields() != read_schema.fields())
            {
                return Err(StorageError::InvalidQuery(format!(
                    "cannot merge {}: its schema differs from the other inputs",
                    file.path
                )));
            }
            schema.get_or_insert(read_schema);
            let reader =
                ParquetObjectReader::new(Arc::clone(self.objects.store()), file.path.clone())
                    .with_file_size(file.meta.size_bytes);
            let stream =
                ParquetRecordBatchStreamBuilder::new_with_metadata(reader, (*footer).clone())
                    .with_batch_size(INPUT_BATCH_ROWS)
                    .build()
                    .map_err(codec)?;
            cursors.push(Cursor {
                stream,
                restore,
                batch: None,
                keys: VecDeque::new(),
                row: 0,
                source: None,
            });
        }
        let Some(schema) = schema else {
            return Ok(Vec::new());
        };
        let format = self.merge_format(inputs).await;
        let file_schema = S::file_schema(format).unwrap_or_else(|| Arc::clone(&schema));
        // From here on: decode, merge, encode, write. No lock ingest needs is taken.
        let _idle = crate::maintenance::IdleWhileMerging::enter();
        let expected_rows: u64 = inputs.iter().map(|file| file.meta.num_rows).sum();
        let filter_capacity: u64 = inputs
            .iter()
            .map(|file| {
                file.meta
                    .trace_id_filter
                    .as_ref()
                    .map_or(file.meta.num_rows, |filter| filter.num_ids)
            })
            .sum();
        let level = inputs.iter().map(|file| file.meta.level).max().unwrap_or(0) + 1;
        let name_time = inputs
            .iter()
            .map(|file| file.meta.min_time_unix_nano)
            .min()
            .unwrap_or(0);
        let partition_hour = name_time / layout::WINDOW_NANOS;

        let mut heap: BinaryHeap<Reverse<(S::SortKey, usize)>> = BinaryHeap::new();
        for (index, cursor) in cursors.iter_mut().enumerate() {
            if cursor.next_batch::<S>().await?
                && let Some(key) = cursor.keys.pop_front()
            {
                heap.push(Reverse((key, index)));
            }
        }
        let new_output = NewOutput {
            format,
            schema: Arc::clone(&schema),
            file_schema,
            tenant: tenant.clone(),
            name_time,
            expected_rows,
            filter_capacity,
        };
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_BATCH_ROWS);
        let mut output: Option<Output<S::Summarizer>> = None;
        let mut finished: Vec<DataFileMeta> = Vec::new();
        while let Some(Reverse((_, index))) = heap.pop() {
            let cursor = &mut cursors[index];
            let Some(batch) = &cursor.batch else { continue };
            let source = match cursor.source {
                Some(source) => source,
                None => {
                    sources.push(batch.clone());
                    cursor.source = Some(sources.len() - 1);
                    sources.len() - 1
                }
            };
            pending.push((source, cursor.row));
            cursor.row += 1;
            let next_key = match cursor.keys.pop_front() {
                Some(key) => Some(key),
                None if cursor.next_batch::<S>().await? => cursor.keys.pop_front(),
                None => None,
            };
            if let Some(key) = next_key {
                heap.push(Reverse((key, index)));
            }
            if pending.len() >= OUTPUT_BATCH_ROWS {
                if cancel.is_cancelled() {
                    return Err(StorageError::ShuttingDown);
                }
                let batch = interleave_rows(&schema, &sources, &pending)?;
                pending.clear();
                sources.clear();
                for cursor in &mut cursors {
                    cursor.source = None;
                }
                self.write_output(&mut output, &batch, &new_output, written)
                    .await?;
                let full = output.as_ref().is_some_and(|out| {
                    (out.writer.bytes_written() + out.writer.in_progress_size()) as u64
                        >= target_file_bytes
                });
                if full && let Some(out) = output.take() {
                    finished.push(
                        self.finish_output(out, level, partition_hour, written)
                            .await?,
                    );
                }
            }
        }
        if !pending.is_empty() {
            let batch = interleave_rows(&schema, &sources, &pending)?;
            self.write_output(&mut output, &batch, &new_output, written)
                .await?;
        }
        if let Some(out) = output.take() {
            finished.push(
                self.finish_output(out, level, partition_hour, written)
                    .await?,
            );
        }
        Ok(finished)
    }

    /// Writes a merged batch, starting an output file first when none is open.
    async fn write_output(
        &self,
        output: &mut Option<Output<S::Summarizer>>,
        batch: &RecordBatch,
        new: &NewOutput,
        written: &mut Vec<ObjectPath>,
    ) -> Result<(), StorageError> {
        if output.is_none() {
            let path = self.new_file_path(&new.tenant, new.name_time);
            written.push(path.clone());
            let properties = S::writer_properties(
                usize::try_from(new.expected_rows).unwrap_or(usize::MAX),
                new.format,
            )?;
            let sink = ParquetObjectWriter::new(Arc::clone(self.objects.store()), path.clone());
            let writer =
                AsyncArrowWriter::try_new(sink, Arc::clone(&new.file_schema), Some(properties))
                    .map_err(codec)?;
            let trace_ids = S::batch_trace_ids(batch)?;
            let filter = (!trace_ids.is_empty()).then(|| {
                IdFilter::with_capacity(usize::try_from(new.filter_capacity).unwrap_or(usize::MAX))
            });
            *output = Some(Output {
                path,
                writer,
                rows: 0,
                time_range: None,
                filter,
                format: new.format,
                summarizer: S::Summarizer::default(),
            });
        }
        let Some(out) = output.as_mut() else {
            return Ok(());
        };
        if new.file_schema.fields() == new.schema.fields() {
            out.writer.write(batch).await.map_err(codec)?;
        } else {
            let kept = new
                .file_schema
                .fields()
                .iter()
                .map(|field| new.schema.index_of(field.name()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| StorageError::Codec(err.into()))?;
            let narrow = batch
                .project(&kept)
                .map_err(|err| StorageError::Codec(err.into()))?;
            out.writer.write(&narrow).await.map_err(codec)?;
        }
        out.rows += batch.num_rows() as u64;
        if let Some((min, max)) = S::batch_time_range(batch)? {
            out.time_range = Some(
                out.time_range
                    .map_or((min, max), |(lo, hi)| (lo.min(min), hi.max(max))),
            );
        }
        out.summarizer.add_batch(batch)?;
        if let Some(filter) = &mut out.filter {
            let mut ids = S::batch_trace_ids(batch)?;
            // Sorted by trace id within a slice: a batch may hold two slices.
            ids.sort_unstable();
            ids.dedup();
            for id in &ids {
                filter.insert(id);
            }
        }
        Ok(())
    }

    async fn finish_output(
        &self,
        mut out: Output<S::Summarizer>,
        level: u32,
        partition_hour: u64,
        written: &mut Vec<ObjectPath>,
    ) -> Result<DataFileMeta, StorageError> {
        let (min_time, max_time) = out.time_range.unwrap_or((0, 0));
        for key_value in time_range_metadata(min_time, max_time) {
            out.writer.append_key_value_metadata(key_value);
        }
        out.writer.close().await.map_err(codec)?;
        self.objects.sync(&out.path).await?;
        let size_bytes = self
            .objects
            .store()
            .head(&out.path)
            .await
            .map_err(|source| crate::objects::object_error(&out.path, source))?
            .size;
        let trace_id_filter = match out.filter {
            Some(filter) => {
                let filter_path = layout::trace_id_filter_path(&out.path);
                written.push(filter_path.clone());
                self.objects
                    .put(&filter_path, Bytes::from(filter.to_bytes()))
                    .await?;
                Some(IdFilterMeta {
                    path: filter_path.to_string(),
                    num_blocks: filter.num_blocks(),
                    num_ids: filter.num_ids(),
                })
            }
            None => None,
        };
        let mut meta = DataFileMeta {
            path: out.path.to_string(),
            format: out.format.to_owned(),
            size_bytes,
            num_rows: out.rows,
            min_time_unix_nano: min_time,
            max_time_unix_nano: max_time,
            partition_hour,
            level,
            created_unix_ms: now_unix_ms(),
            trace_id_filter,
            summary_path: None,
            index_path: None,
        };
        let sidecars = out.summarizer.finish()?;
        self.put_sidecars(&out.path, sidecars, &mut meta, written)
            .await?;
        Ok(meta)
    }
}

impl<S: TableSignal> TableStore<S> {
    /// The inputs a merge can read: a file whose rows leave their series' identity to an
    /// index it cannot read is left out (logged), so it does not hold back the merges of the
    /// rest of its hour; `skewer check` reports it.
    async fn readable_inputs(&self, inputs: &[Arc<LiveFile>]) -> Vec<Arc<LiveFile>> {
        let mut readable = Vec::with_capacity(inputs.len());
        for file in inputs {
            if S::rows_leave_identity(&file.meta.format)
                && let Err(err) = self.series_identities(file).await
            {
                warn!(error = %err, "left out of a merge");
                continue;
            }
            readable.push(Arc::clone(file));
        }
        readable
    }

    /// The format a merge of `inputs` writes: for a signal whose files leave series
    /// identities to their indexes, as their indexes allow.
    async fn merge_format(&self, inputs: &[Arc<LiveFile>]) -> &'static str {
        if !S::rows_leave_identity(S::FORMAT) {
            return S::FORMAT;
        }
        let mut indexes = Vec::with_capacity(inputs.len());
        for file in inputs {
            let index = match S::rows_leave_identity(&file.meta.format) {
                true => self.file_series_index(file).await,
                false => None,
            };
            indexes.push((file.meta.format.as_str(), index));
        }
        S::merge_format(&indexes)
    }
}

/// Gathers the pending rows (source batch, row) into one batch of `schema`.
fn interleave_rows(
    schema: &SchemaRef,
    sources: &[RecordBatch],
    rows: &[(usize, usize)],
) -> Result<RecordBatch, StorageError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for column in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = sources
            .iter()
            .map(|batch| batch.column(column).as_ref())
            .collect();
        columns.push(
            arrow_select::interleave::interleave(&arrays, rows)
                .map_err(|err| StorageError::Codec(CodecError::from(err)))?,
        );
    }
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|err| StorageError::Codec(CodecError::from(err)))
}
