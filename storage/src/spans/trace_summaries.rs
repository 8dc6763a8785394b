//! Trace summaries kept at ingest: for each trace of a span file, what its spans there add up
//! to (times, span, error and orphan counts, the root, each service's spans and errors),
//! sorted by trace id in a sidecar beside the file (`.traces`). A result list reads one block
//! of summaries per trace and file instead of the traces' spans; the summaries of one trace
//! from several files and the buffers add up at read ([`PartialTraceSummary`]).
//!
//! Stored form: a format byte, then blocks of up to [`BLOCK_TRACES`] summaries sorted by
//! trace id (each postcard, then ZSTD, names local to the block), then a footer (postcard:
//! each block's first trace id, offset and length) and the footer's length as 4 bytes LE. A
//! lookup reads the footer once (cached), then the one block that may hold the trace.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::model::{SpanId, TraceId};

/// The format byte of the stored form.
const FORMAT_V1: u8 = 1;
/// Summaries per block: a lookup decodes one block (a few kilobytes).
pub const BLOCK_TRACES: usize = 128;
/// ZSTD level of each block (names and small counts; trace ids do not compress).
const ZSTD_LEVEL: i32 = 1;
/// Trace summaries a file keeps at most (about 90 bytes each in memory while the file is
/// written); a file with more traces (some 14M spans) has no summaries, and reads of its
/// traces summarise their spans' summary columns instead.
pub const MAX_TRACES_PER_FILE: usize = 2 << 20;
/// Bytes read from the end of a sidecar to find its footer (a footer this big indexes some
/// 300k traces); a bigger footer costs a second read.
pub const FOOTER_PROBE_BYTES: u64 = 64 << 10;

/// Why summaries cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TraceSummariesError {
    /// The bytes are not trace summaries this version reads.
    #[error("trace summaries unreadable: {0}")]
    Corrupt(String),
    /// Encoding failed.
    #[error("trace summaries not encoded: {0}")]
    Encode(String),
}

/// The root span of a trace (a span with no parent; the earliest when there are several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpan {
    /// Its service.
    pub service: String,
    /// Its operation (span name).
    pub operation: String,
    /// When it starts, Unix ns.
    pub start_unix_nano: u64,
}

/// One service's spans in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpans {
    /// The service.
    pub name: String,
    /// Its spans.
    pub spans: u64,
    /// Its spans with status `ERROR`.
    pub error_spans: u64,
}

/// What some of a trace's spans add up to: those of one file, or of the buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialTraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Earliest span start, Unix ns.
    pub start_unix_nano: u64,
    /// Latest span end (at least its start), Unix ns.
    pub end_unix_nano: u64,
    /// Spans, each span id once.
    pub spans: u64,
    /// Spans with status `ERROR`.
    pub error_spans: u64,
    /// Spans whose parent is not among these spans: orphans, unless another part of the
    /// trace holds the parent.
    pub spans_missing_parent: u64,
    /// The root, when these spans hold one.
    pub root: Option<RootSpan>,
    /// Each service, sorted by name.
    pub services: Vec<ServiceSpans>,
}

/// What summarising needs of one span.
#[derive(Debug, Clone, Copy)]
pub struct SpanFacts<'a> {
    /// The span.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent: Option<SpanId>,
    /// Its service.
    pub service: &'a str,
    /// Its operation.
    pub operation: &'a str,
    /// Whether its status is `ERROR`.
    pub error: bool,
    /// Start, Unix ns.
    pub start_unix_nano: u64,
    /// End, Unix ns.
    pub end_unix_nano: u64,
}

impl<'a> SpanFacts<'a> {
    /// The facts of a decoded span.
    pub fn of(span: &'a crate::model::Span) -> Self {
        Self {
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: span.resource.service_name(),
            operation: &span.name,
            error: span.status_code == crate::model::StatusCode::Error,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
        }
    }
}

/// The span columns a summary is made of: a trace's summary from its rows reads these only.
pub const SUMMARY_COLUMNS: [&str; 8] = [
    crate::parquet_codec::TRACE_ID_COLUMN,
    "span_id",
    "parent_span_id",
    crate::parquet_codec::SERVICE_NAME_COLUMN,
    crate::parquet_codec::SPAN_NAME_COLUMN,
    crate::parquet_codec::STATUS_CODE_COLUMN,
    crate::parquet_codec::START_TIME_COLUMN,
    crate::parquet_codec::END_TIME_COLUMN,
];

/// The summary of each trace in `batches` (span rows with at least [`SUMMARY_COLUMNS`]).
pub fn summarize_rows(
    batches: &[arrow_array::RecordBatch],
) -> Result<std::collections::HashMap<TraceId, PartialTraceSummary>, crate::parquet_codec::CodecError>
{
    use crate::parquet_codec::columns::{column, optional_id, required_id};
    use arrow_array::{FixedSizeBinaryArray, StringArray, UInt8Array, UInt64Array};
    let mut facts: std::collections::HashMap<TraceId, Vec<SpanFacts<'_>>> =
        std::collections::HashMap::new();
    for batch in batches {
        let [
            trace_ids,
            span_ids,
            parents,
            services,
            names,
            statuses,
            starts,
            ends,
        ] = SUMMARY_COLUMNS;
        let trace_ids = column::<FixedSizeBinaryArray>(batch, trace_ids)?;
        let span_ids = column::<FixedSizeBinaryArray>(batch, span_ids)?;
        let parents = column::<FixedSizeBinaryArray>(batch, parents)?;
        let services = column::<StringArray>(batch, services)?;
        let names = column::<StringArray>(batch, names)?;
        let statuses = column::<UInt8Array>(batch, statuses)?;
        let starts = column::<UInt64Array>(batch, starts)?;
        let ends = column::<UInt64Array>(batch, ends)?;
        for row in 0..batch.num_rows() {
            let trace_id = TraceId(required_id(trace_ids, row, SUMMARY_COLUMNS[0])?);
            facts.entry(trace_id).or_default().push(SpanFacts {
                span_id: SpanId(required_id(span_ids, row, SUMMARY_COLUMNS[1])?),
                parent: optional_id(parents, row, SUMMARY_COLUMNS[2])?.map(SpanId),
                service: services.value(row),
                operation: names.value(row),
                error: statuses.value(row) == crate::model::StatusCode::Error as u8,
                start_unix_nano: starts.value(row),
                end_unix_nano: ends.value(row),
            });
        }
    }
    Ok(facts
        .into_iter()
        .map(|(id, spans)| (id, PartialTraceSummary::of_spans(id, &spans)))
        .collect())
}

impl PartialTraceSummary {
    /// The summary of some spans of one trace; a span id seen twice counts once (the first).
    pub fn of_spans(trace_id: TraceId, spans: &[SpanFacts<'_>]) -> Self {
        let mut seen = HashSet::with_capacity(spans.len());
        let kept: Vec<&SpanFacts<'_>> = spans
            .iter()
            .filter(|span| seen.insert(span.span_id))
            .collect();
        let mut summary = Self {
            trace_id,
            start_unix_nano: kept.iter().map(|s| s.start_unix_nano).min().unwrap_or(0),
            end_unix_nano: kept
                .iter()
                .map(|s| s.end_unix_nano.max(s.start_unix_nano))
                .max()
                .unwrap_or(0),
            spans: kept.len() as u64,
            error_spans: 0,
            spans_missing_parent: 0,
            root: None,
            services: Vec::new(),
        };
        for span in kept {
            summary.error_spans += u64::from(span.error);
            summary.spans_missing_parent +=
                u64::from(span.parent.is_some_and(|parent| !seen.contains(&parent)));
            if span.parent.is_none()
                && summary
                    .root
                    .as_ref()
                    .is_none_or(|root| span.start_unix_nano < root.start_unix_nano)
            {
                summary.root = Some(RootSpan {
                    service: span.service.to_owned(),
                    operation: span.operation.to_owned(),
                    start_unix_nano: span.start_unix_nano,
                });
            }
            summary.add_service_spans(span.service, 1, u64::from(span.error));
        }
        summary
    }

    /// Adds `spans` and `error_spans` to a service, keeping services sorted by name.
    fn add_service_spans(&mut self, name: &str, spans: u64, error_spans: u64) {
        match self
            .services
            .binary_search_by(|service| service.name.as_str().cmp(name))
        {
            Ok(at) => {
                self.services[at].spans += spans;
                self.services[at].error_spans += error_spans;
            }
            Err(at) => self.services.insert(
                at,
                ServiceSpans {
                    name: name.to_owned(),
                    spans,
                    error_spans,
                },
            ),
        }
    }
}

/// A trace's summary while a file's summaries are gathered: names by id in the builder's
/// table.
#[derive(Debug, Clone)]
struct Entry {
    trace_id: [u8; 16],
    start_unix_nano: u64,
    end_unix_nano: u64,
    spans: u32,
    error_spans: u32,
    spans_missing_parent: u32,
    /// (service, operation, start) of the root.
    root: Option<(u32, u32, u64)>,
    /// Where the trace's (service, spans, error spans) are in `services`.
    services: Range<u32>,
}

/// The summaries of one file's traces as its rows go by, in any order; sorted and encoded at
/// the end. Names are ids into a table the caller keeps (and hands to [`Self::finish`]).
#[derive(Debug, Default)]
pub struct TraceSummariesBuilder {
    entries: Vec<Entry>,
    services: Vec<(u32, u32, u32)>,
    /// Set once more traces came than a file keeps: the file gets none.
    overflowed: bool,
}

/// One trace as the builder takes it.
#[derive(Debug, Clone, Copy)]
pub struct TraceEntry {
    /// The trace.
    pub trace_id: TraceId,
    /// Earliest start, Unix ns.
    pub start_unix_nano: u64,
    /// Latest end, Unix ns.
    pub end_unix_nano: u64,
    /// Spans whose status is `ERROR`.
    pub error_spans: u32,
    /// Spans whose parent is not among them.
    pub spans_missing_parent: u32,
    /// (service, operation, start) of the root, names as ids.
    pub root: Option<(u32, u32, u64)>,
}

impl TraceSummariesBuilder {
    /// Adds a trace, with its (service id, spans, error spans).
    pub fn add(&mut self, entry: TraceEntry, services: &[(u32, u32, u32)]) {
        if self.overflowed {
            return;
        }
        if self.entries.len() >= MAX_TRACES_PER_FILE {
            self.overflowed = true;
            self.entries = Vec::new();
            self.services = Vec::new();
            return;
        }
        let from = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        self.services.extend_from_slice(services);
        let to = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry {
            trace_id: entry.trace_id.0,
            start_unix_nano: entry.start_unix_nano,
            end_unix_nano: entry.end_unix_nano,
            spans: services.iter().map(|s| s.1).sum(),
            error_spans: entry.error_spans,
            spans_missing_parent: entry.spans_missing_parent,
            root: entry.root,
            services: from..to,
        });
    }

    /// Whether no trace was added (or too many were).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stored form, names from `names`; `None` when there is no trace or too many.
    pub fn finish(mut self, names: &[String]) -> Result<Option<Vec<u8>>, TraceSummariesError> {
        if self.overflowed || self.entries.is_empty() {
            return Ok(None);
        }
        self.entries.sort_by_key(|entry| entry.trace_id);
        self.combine_repeated_traces();
        let mut out = vec![FORMAT_V1];
        let mut footer = Footer::default();
        for chunk in self.entries.chunks(BLOCK_TRACES) {
            let block = self.stored_block(chunk, names);
            let plain = postcard::to_stdvec(&block)
                .map_err(|err| TraceSummariesError::Encode(err.to_string()))?;
            let compressed = zstd::bulk::compress(&plain, ZSTD_LEVEL)
                .map_err(|err| TraceSummariesError::Encode(err.to_string()))?;
            footer.blocks.push(BlockRef {
                first_trace_id: chunk[0].trace_id,
                offset: out.len() as u64,
                len: u32::try_from(compressed.len())
                    .map_err(|err| TraceSummariesError::Encode(err.to_string()))?,
                plain_len: u32::try_from(plain.len())
                    .map_err(|err| TraceSummariesError::Encode(err.to_string()))?,
            });
            out.extend(compressed);
        }
        footer.format = FORMAT_V1;
        footer.traces = self.entries.len() as u64;
        let footer_bytes = postcard::to_stdvec(&footer)
            .map_err(|err| TraceSummariesError::Encode(err.to_string()))?;
        let footer_len = u32::try_from(footer_bytes.len())
            .map_err(|err| TraceSummariesError::Encode(err.to_string()))?;
        out.extend(footer_bytes);
        out.extend(footer_len.to_le_bytes());
        Ok(Some(out))
    }

    /// Makes one entry of the entries of a trace (sorted by trace id): a trace's rows in
    /// slices apart come as one group per slice. Their spans missing a parent add up (a
    /// parent in the other group is not known here).
    fn combine_repeated_traces(&mut self) {
        let mut combined: Vec<Entry> = Vec::with_capacity(self.entries.len());
        for entry in std::mem::take(&mut self.entries) {
            let Some(last) = combined
                .last_mut()
                .filter(|last| last.trace_id == entry.trace_id)
            else {
                combined.push(entry);
                continue;
            };
            let mut services: Vec<(u32, u32, u32)> =
                self.services[last.services.start as usize..last.services.end as usize].to_vec();
            for &(service, spans, errors) in
                &self.services[entry.services.start as usize..entry.services.end as usize]
            {
                match services.iter_mut().find(|(known, _, _)| *known == service) {
                    Some(counts) => {
                        counts.1 += spans;
                        counts.2 += errors;
                    }
                    None => services.push((service, spans, errors)),
                }
            }
            let from = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
            self.services.extend(services);
            let to = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
            last.services = from..to;
            last.start_unix_nano = last.start_unix_nano.min(entry.start_unix_nano);
            last.end_unix_nano = last.end_unix_nano.max(entry.end_unix_nano);
            last.spans += entry.spans;
            last.error_spans += entry.error_spans;
            last.spans_missing_parent += entry.spans_missing_parent;
            if let Some(root) = entry.root
                && last.root.is_none_or(|(_, _, start)| root.2 < start)
            {
                last.root = Some(root);
            }
        }
        self.entries = combined;
    }

    /// A block of entries with names local to it.
    fn stored_block(&self, entries: &[Entry], names: &[String]) -> StoredBlock {
        let mut block = StoredBlock::default();
        let mut local = std::collections::HashMap::new();
        let mut name_of = |id: u32, block: &mut StoredBlock| -> u32 {
            *local.entry(id).or_insert_with(|| {
                let name = names.get(id as usize).cloned().unwrap_or_default();
                block.names.push(name);
                u32::try_from(block.names.len() - 1).unwrap_or(u32::MAX)
            })
        };
        for entry in entries {
            let root = entry.root.map(|(service, operation, start)| StoredRoot {
                service: name_of(service, &mut block),
                operation: name_of(operation, &mut block),
                after_start_nanos: start.saturating_sub(entry.start_unix_nano),
            });
            let services = self.services
                [entry.services.start as usize..entry.services.end as usize]
                .iter()
                .map(|&(service, spans, errors)| (name_of(service, &mut block), spans, errors))
                .collect();
            block.traces.push(StoredTrace {
                trace_id: entry.trace_id,
                start_unix_nano: entry.start_unix_nano,
                duration_nanos: entry.end_unix_nano.saturating_sub(entry.start_unix_nano),
                spans: entry.spans,
                error_spans: entry.error_spans,
                spans_missing_parent: entry.spans_missing_parent,
                root,
                services,
            });
        }
        block
    }
}

/// A block as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredBlock {
    names: Vec<String>,
    traces: Vec<StoredTrace>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredTrace {
    trace_id: [u8; 16],
    start_unix_nano: u64,
    duration_nanos: u64,
    spans: u32,
    error_spans: u32,
    spans_missing_parent: u32,
    root: Option<StoredRoot>,
    /// (name, spans, error spans).
    services: Vec<(u32, u32, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredRoot {
    service: u32,
    operation: u32,
    /// Its start after the trace's start, ns.
    after_start_nanos: u64,
}

/// Where a block is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlockRef {
    first_trace_id: [u8; 16],
    offset: u64,
    len: u32,
    /// Its size decompressed (bounds the decompression).
    plain_len: u32,
}

/// The index of a sidecar's blocks: what a lookup needs in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footer {
    /// The format byte again: a lookup reads the footer, not the file's first byte.
    format: u8,
    traces: u64,
    blocks: Vec<BlockRef>,
}

/// Where the footer of a sidecar is, from its last bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterAt {
    /// These bytes hold it, from this offset in them.
    Within(usize),
    /// It starts this many bytes before the end of the sidecar (a bigger read is needed).
    Suffix(u64),
}

impl Footer {
    /// Where the footer is in `tail`, the last bytes of a sidecar (`whole` when it is all
    /// of it).
    pub fn locate(tail: &[u8], whole: bool) -> Result<FooterAt, TraceSummariesError> {
        let corrupt = |reason: &str| TraceSummariesError::Corrupt(reason.to_owned());
        let len_at = tail
            .len()
            .checked_sub(4)
            .ok_or_else(|| corrupt("shorter than a footer"))?;
        let len = u32::from_le_bytes(
            tail[len_at..]
                .try_into()
                .map_err(|_| corrupt("footer length"))?,
        ) as usize;
        match len_at.checked_sub(len) {
            Some(at) if !whole || at >= 1 => Ok(FooterAt::Within(at)),
            Some(_) => Err(corrupt("footer overlaps the format byte")),
            None if whole => Err(corrupt("footer longer than the sidecar")),
            None => Ok(FooterAt::Suffix(len as u64 + 4)),
        }
    }

    /// The footer in `bytes` (the footer, then its 4-byte length).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TraceSummariesError> {
        let corrupt = |reason: String| TraceSummariesError::Corrupt(reason);
        let body = bytes
            .get(..bytes.len().saturating_sub(4))
            .ok_or_else(|| corrupt("shorter than a footer".to_owned()))?;
        let (footer, rest): (Self, _) =
            postcard::take_from_bytes(body).map_err(|err| corrupt(err.to_string()))?;
        if !rest.is_empty() {
            return Err(corrupt(format!("{} bytes after the footer", rest.len())));
        }
        if footer.format != FORMAT_V1 {
            return Err(corrupt(format!("unknown format {}", footer.format)));
        }
        Ok(footer)
    }

    /// Traces summarised.
    pub fn traces(&self) -> u64 {
        self.traces
    }

    /// Rough heap bytes held (the cache weighs it by this).
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.blocks.len() * std::mem::size_of::<BlockRef>()
    }

    /// The block that holds `trace_id` if any does, as (block number, byte range).
    pub fn block_of(&self, trace_id: &TraceId) -> Option<(usize, Range<u64>)> {
        let after = self
            .blocks
            .partition_point(|block| block.first_trace_id <= trace_id.0);
        let at = after.checked_sub(1)?;
        let block = &self.blocks[at];
        Some((at, block.offset..block.offset + u64::from(block.len)))
    }

    /// The summaries of `wanted` traces (sorted) in block `at`, read as `bytes`.
    pub fn read_block(
        &self,
        at: usize,
        bytes: &[u8],
        wanted: &[TraceId],
    ) -> Result<Vec<PartialTraceSummary>, TraceSummariesError> {
        let corrupt = |reason: String| TraceSummariesError::Corrupt(reason);
        let block = self
            .blocks
            .get(at)
            .ok_or_else(|| corrupt(format!("no block {at}")))?;
        let plain = zstd::bulk::decompress(bytes, block.plain_len as usize)
            .map_err(|err| corrupt(err.to_string()))?;
        let (stored, rest): (StoredBlock, _) =
            postcard::take_from_bytes(&plain).map_err(|err| corrupt(err.to_string()))?;
        if !rest.is_empty() {
            return Err(corrupt(format!("{} bytes after block {at}", rest.len())));
        }
        let name = |id: u32| {
            stored
                .names
                .get(id as usize)
                .cloned()
                .ok_or_else(|| corrupt(format!("name {id} not in block {at}")))
        };
        let mut found = Vec::new();
        for trace in &stored.traces {
            let trace_id = TraceId(trace.trace_id);
            if wanted.binary_search(&trace_id).is_err() {
                continue;
            }
            let root = match &trace.root {
                Some(root) => Some(RootSpan {
                    service: name(root.service)?,
                    operation: name(root.operation)?,
                    start_unix_nano: trace.start_unix_nano.saturating_add(root.after_start_nanos),
                }),
                None => None,
            };
            let mut services = Vec::with_capacity(trace.services.len());
            for &(id, spans, errors) in &trace.services {
                services.push(ServiceSpans {
                    name: name(id)?,
                    spans: u64::from(spans),
                    error_spans: u64::from(errors),
                });
            }
            services.sort_by(|a, b| a.name.cmp(&b.name));
            found.push(PartialTraceSummary {
                trace_id,
                start_unix_nano: trace.start_unix_nano,
                end_unix_nano: trace.start_unix_nano.saturating_add(trace.duration_nanos),
                spans: u64::from(trace.spans),
                error_spans: u64::from(trace.error_spans),
                spans_missing_parent: u64::from(trace.spans_missing_parent),
                root,
                services,
            });
        }
        Ok(found)
    }
}

/// Reads every summary of `wanted` (sorted) from a whole sidecar (tests and checks).
pub fn read_all(
    bytes: &[u8],
    wanted: &[TraceId],
) -> Result<Vec<PartialTraceSummary>, TraceSummariesError> {
    if bytes.first() != Some(&FORMAT_V1) {
        return Err(TraceSummariesError::Corrupt(format!(
            "unknown format byte {:?}",
            bytes.first()
        )));
    }
    let FooterAt::Within(at) = Footer::locate(bytes, true)? else {
        return Err(TraceSummariesError::Corrupt("footer not found".to_owned()));
    };
    let footer = Footer::from_bytes(&bytes[at..])?;
    let mut found = Vec::new();
    for id in wanted {
        if let Some((block, range)) = footer.block_of(id) {
            let bytes = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok())
                .and_then(|(start, end)| bytes.get(start..end))
                .ok_or_else(|| TraceSummariesError::Corrupt("block past the end".to_owned()))?;
            found.extend(footer.read_block(block, bytes, std::slice::from_ref(id))?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["web", "api", "GET /", "db"].map(str::to_owned).to_vec()
    }

    fn trace(n: u32) -> TraceId {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id[15] = 7;
        TraceId(id)
    }

    fn entry(n: u32) -> TraceEntry {
        TraceEntry {
            trace_id: trace(n),
            start_unix_nano: 1_000 + u64::from(n),
            end_unix_nano: 5_000 + u64::from(n),
            error_spans: n % 2,
            spans_missing_parent: u32::from(n.is_multiple_of(3)),
            root: (!n.is_multiple_of(5)).then_some((0, 2, 1_010 + u64::from(n))),
        }
    }

    fn build(count: u32) -> Vec<u8> {
        let mut builder = TraceSummariesBuilder::default();
        // Added out of order, as slices of a file give them.
        for n in (0..count).rev() {
            builder.add(entry(n), &[(0, 1, 0), (1, 2 + n % 4, n % 2)]);
        }
        builder.finish(&names()).unwrap().unwrap()
    }

    fn expected(n: u32) -> PartialTraceSummary {
        PartialTraceSummary {
            trace_id: trace(n),
            start_unix_nano: 1_000 + u64::from(n),
            end_unix_nano: 5_000 + u64::from(n),
            spans: u64::from(3 + n % 4),
            error_spans: u64::from(n % 2),
            spans_missing_parent: u64::from(n.is_multiple_of(3)),
            root: (!n.is_multiple_of(5)).then(|| RootSpan {
                service: "web".into(),
                operation: "GET /".into(),
                start_unix_nano: 1_010 + u64::from(n),
            }),
            services: vec![
                ServiceSpans {
                    name: "api".into(),
                    spans: u64::from(2 + n % 4),
                    error_spans: u64::from(n % 2),
                },
                ServiceSpans {
                    name: "web".into(),
                    spans: 1,
                    error_spans: 0,
                },
            ],
        }
    }

    #[test]
    fn summaries_are_found_in_their_block_across_many_blocks() {
        let count = 3 * BLOCK_TRACES as u32 + 5;
        let bytes = build(count);
        let mut wanted: Vec<TraceId> = [0, 1, 127, 128, 129, 300, count - 1].map(trace).to_vec();
        wanted.sort();
        let found = read_all(&bytes, &wanted).unwrap();
        let mut expected: Vec<_> = [0, 1, 127, 128, 129, 300, count - 1].map(expected).to_vec();
        expected.sort_by_key(|s| s.trace_id);
        assert_eq!(found, expected);
        // Absent ids: before the first, between two, after the last.
        let absent = [TraceId([0; 16]), TraceId([0xff; 16]), {
            let mut id = trace(5).0;
            id[15] = 8;
            TraceId(id)
        }];
        for id in absent {
            assert_eq!(read_all(&bytes, &[id]).unwrap(), []);
        }
    }

    #[test]
    fn the_footer_is_located_from_a_short_tail_or_asks_for_more() {
        let bytes = build(2_000);
        let whole = Footer::locate(&bytes, true).unwrap();
        let FooterAt::Within(at) = whole else {
            panic!("{whole:?}")
        };
        let footer = Footer::from_bytes(&bytes[at..]).unwrap();
        assert_eq!(footer.traces(), 2_000);
        assert_eq!(footer.blocks.len(), 2_000_usize.div_ceil(BLOCK_TRACES));
        let footer_len = (bytes.len() - at) as u64;
        let short = &bytes[bytes.len() - 10..];
        assert_eq!(
            Footer::locate(short, false).unwrap(),
            FooterAt::Suffix(footer_len)
        );
        assert!(Footer::locate(short, true).is_err());
    }

    #[test]
    fn damaged_sidecars_are_errors_not_panics() {
        let bytes = build(300);
        let wanted = [trace(3)];
        assert!(read_all(&bytes[..bytes.len() - 1], &wanted).is_err());
        assert!(read_all(&[], &wanted).is_err());
        assert!(read_all(&[9, 0, 0, 0, 0], &wanted).is_err());
        let mut flipped = bytes.clone();
        flipped[10] ^= 0xff;
        assert!(read_all(&flipped, &wanted).is_err());
    }

    /// The stored form is pinned: a change to it needs a new format byte (old sidecars must
    /// keep reading).
    #[test]
    fn the_stored_form_is_pinned() {
        const PINNED: &str = "0128b52ffd2051fd0100440303037765620361706905474554202f020007e807a01f030001000200010001010007e907a01f0401000100020a0200010001030103006085a05a55064b0102010000000000000000000000000000000701485116000000";
        let pinned: Vec<u8> = (0..PINNED.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&PINNED[at..at + 2], 16).unwrap())
            .collect();
        assert_eq!(
            read_all(&pinned, &[trace(0), trace(1)]).unwrap(),
            [expected(0), expected(1)]
        );
        let hex: String = build(2).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED);
    }

    #[test]
    fn a_trace_added_twice_is_one_summary() {
        let mut builder = TraceSummariesBuilder::default();
        builder.add(entry(1), &[(0, 1, 0)]);
        builder.add(entry(2), &[(0, 1, 0)]);
        let later = TraceEntry {
            start_unix_nano: 9_000,
            end_unix_nano: 9_500,
            root: None,
            ..entry(1)
        };
        builder.add(later, &[(1, 2, 1), (0, 3, 0)]);
        let found = read_all(&builder.finish(&names()).unwrap().unwrap(), &[trace(1)]).unwrap();
        let services = |web: u64, api: u64| {
            vec![
                ServiceSpans {
                    name: "api".into(),
                    spans: api,
                    error_spans: 1,
                },
                ServiceSpans {
                    name: "web".into(),
                    spans: web,
                    error_spans: 0,
                },
            ]
        };
        assert_eq!(
            found,
            [PartialTraceSummary {
                trace_id: trace(1),
                start_unix_nano: 1_001,
                end_unix_nano: 9_500,
                spans: 6,
                error_spans: 2,
                spans_missing_parent: 0,
                root: expected(1).root,
                services: services(4, 2),
            }]
        );
    }

    #[test]
    fn too_many_traces_give_no_summaries() {
        let mut builder = TraceSummariesBuilder {
            overflowed: true,
            ..TraceSummariesBuilder::default()
        };
        builder.add(entry(1), &[(0, 1, 0)]);
        assert!(builder.is_empty());
        assert_eq!(builder.finish(&names()).unwrap(), None);
    }

    fn facts(id: u8, parent: Option<u8>, service: &'static str, start: u64) -> SpanFacts<'static> {
        SpanFacts {
            span_id: SpanId([id; 8]),
            parent: parent.map(|p| SpanId([p; 8])),
            service,
            operation: "op",
            error: id == 3,
            start_unix_nano: start,
            end_unix_nano: start + 10,
        }
    }

    #[test]
    fn spans_are_summarised_each_once_with_the_earliest_root() {
        let all = [
            facts(4, Some(9), "api", 130),
            facts(1, None, "web", 100),
            facts(2, Some(1), "web", 110),
            facts(3, Some(2), "api", 120),
            facts(3, Some(2), "api", 120),
            facts(8, None, "db", 105),
        ];
        let summary = PartialTraceSummary::of_spans(trace(1), &all);
        assert_eq!(summary.spans, 5, "the repeated span counts once");
        assert_eq!(summary.spans_missing_parent, 1);
        assert_eq!(summary.error_spans, 1);
        assert_eq!((summary.start_unix_nano, summary.end_unix_nano), (100, 140));
        assert_eq!(summary.root.as_ref().unwrap().service, "web");
        let services: Vec<(&str, u64, u64)> = summary
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.spans, s.error_spans))
            .collect();
        assert_eq!(services, [("api", 2, 1), ("db", 1, 0), ("web", 2, 0)]);
    }
}
