//! The scan API: storage's one general read for the query layer. A [`ScanRequest`] names a
//! tenant, a signal, a time range, the columns wanted and a [`Predicate`]; the answer is a
//! stream of Arrow record batches (in the signal's file schema, projected) from the buffers and
//! the live files of one consistent snapshot.
//!
//! The work runs off the async workers (a blocking thread drives the Parquet reads) and is
//! bounded: the stream is a small channel (a slow consumer pauses the scan), and rows, bytes and
//! a deadline are checked as batches are produced. Pushdown: files are pruned by time range and,
//! for an equality on the trace id, by their trace-id filters; row groups by column statistics;
//! pages by the column index; rows by the predicate inside the Parquet reader, before any other
//! column is decoded. Logs are searched through their index ([`crate::log_store`]), not here.

mod execute;
pub mod predicate;
pub mod pruning;

use std::time::Instant;

use arrow_array::RecordBatch;
use tokio::sync::mpsc;

use crate::model::{Signal, TenantId};
use crate::{Storage, StorageError};
pub use predicate::{Predicate, PredicateError, Value};

/// A half-open time range `[start, end)` in Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub start_unix_nano: u64,
    /// Exclusive end.
    pub end_unix_nano: u64,
}

impl TimeRange {
    /// All of time.
    pub const ALL: Self = Self {
        start_unix_nano: 0,
        end_unix_nano: u64::MAX,
    };

    /// Whether `time` is in the range.
    pub fn contains(&self, time_unix_nano: u64) -> bool {
        time_unix_nano >= self.start_unix_nano && time_unix_nano < self.end_unix_nano
    }
}

/// What one scan may cost before it is stopped with a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Rows returned.
    pub max_rows: u64,
    /// Arrow bytes returned.
    pub max_bytes: u64,
    /// When the scan gives up.
    pub deadline: Option<Instant>,
    /// Whether `max_rows` is the tenant's own `query_max_rows` (past it: a tenant limit,
    /// `429`), not the server-wide bound (`422`).
    pub max_rows_is_tenants: bool,
    /// The longest time range the tenant's queries may span (its `query_max_range_hours`),
    /// nanoseconds; 0 for any.
    pub max_range_nanos: u64,
    /// Past `max_rows` or `max_bytes`, end the scan with what fits and say so
    /// ([`ScanStream::truncated`]) instead of failing: for reads whose first part is an
    /// answer (a trace too large to show whole).
    pub truncate: bool,
}

/// Why a truncating scan stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// `rows` or `bytes`.
    pub what: &'static str,
    /// The limit reached.
    pub limit: u64,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped at the limit of {} {}", self.limit, self.what)
    }
}

/// Refuses a time range longer than a tenant's `query_max_range_hours` (`max_range_nanos`; 0
/// for any). Lookups by id, over all of time, are not ranged queries and pass.
pub fn check_range(max_range_nanos: u64, start: u64, end: u64) -> Result<(), StorageError> {
    let unbounded = start == 0 && end == u64::MAX;
    if max_range_nanos == 0 || unbounded || end.saturating_sub(start) <= max_range_nanos {
        return Ok(());
    }
    Err(StorageError::TenantQueryLimit {
        limit: "query_max_range_hours",
        value: max_range_nanos / 3_600_000_000_000,
    })
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            max_bytes: 512 << 20,
            deadline: None,
            max_rows_is_tenants: false,
            max_range_nanos: 0,
            truncate: false,
        }
    }
}

/// One read of one signal of one tenant.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Whose data.
    pub tenant: TenantId,
    /// Traces or metrics.
    pub signal: Signal,
    /// Rows whose time (span start, point time) is in this range.
    pub time_range: TimeRange,
    /// Top-level columns to return, in this order; `None` returns every column.
    pub columns: Option<Vec<String>>,
    /// Rows to keep.
    pub predicate: Predicate,
    /// Bounds.
    pub limits: ScanLimits,
    /// In which order the data is read.
    pub order: ScanOrder,
}

/// The order a scan reads its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanOrder {
    /// Whatever is cheapest: buffers, then files oldest first.
    #[default]
    Any,
    /// Buffers, then the row groups of every file by their newest time, newest first; the
    /// stream's [`ScanStream::time_bound`] says how new the rows still to come can be, so a
    /// consumer that wants the newest matches stops when it has enough.
    NewestFirst,
}

impl ScanRequest {
    /// Every span of one trace, with no time range.
    pub fn trace(tenant: TenantId, trace_id: crate::model::TraceId, limits: ScanLimits) -> Self {
        Self {
            tenant,
            signal: Signal::Traces,
            time_range: TimeRange::ALL,
            columns: None,
            predicate: Predicate::eq(
                crate::parquet_codec::TRACE_ID_COLUMN,
                Value::Bytes(trace_id.0.to_vec()),
            ),
            limits,
            order: ScanOrder::Any,
        }
    }

    /// Every span of several traces, with no time range (one pass however many ids).
    pub fn traces(
        tenant: TenantId,
        trace_ids: &[crate::model::TraceId],
        limits: ScanLimits,
    ) -> Self {
        Self {
            tenant,
            signal: Signal::Traces,
            time_range: TimeRange::ALL,
            columns: None,
            predicate: Predicate::In(
                crate::parquet_codec::TRACE_ID_COLUMN.to_owned(),
                trace_ids
                    .iter()
                    .map(|id| Value::Bytes(id.0.to_vec()))
                    .collect(),
            ),
            limits,
            order: ScanOrder::Any,
        }
    }

    /// The points of one metric in a time range.
    pub fn metric(tenant: TenantId, name: &str, time_range: TimeRange, limits: ScanLimits) -> Self {
        Self {
            tenant,
            signal: Signal::Metrics,
            time_range,
            columns: None,
            predicate: Predicate::eq(
                crate::parquet_codec::METRIC_NAME_COLUMN,
                Value::Text(name.to_owned()),
            ),
            limits,
            order: ScanOrder::Any,
        }
    }

    /// The points of the metrics named in `names` (every metric when `None`) in a time range:
    /// for readers that work out the stored names from the metric catalog, or cannot.
    pub fn metrics(
        tenant: TenantId,
        names: Option<Vec<String>>,
        time_range: TimeRange,
        limits: ScanLimits,
    ) -> Self {
        let predicate = match names {
            None => Predicate::All,
            Some(names) => Predicate::In(
                crate::parquet_codec::METRIC_NAME_COLUMN.to_owned(),
                names.into_iter().map(Value::Text).collect(),
            ),
        };
        Self {
            tenant,
            signal: Signal::Metrics,
            time_range,
            columns: None,
            predicate,
            limits,
            order: ScanOrder::Any,
        }
    }
}

/// Batches of a running scan. Dropping it stops the scan.
pub struct ScanStream {
    receiver: mpsc::Receiver<Result<BoundedBatch, StorageError>>,
    time_bound: u64,
    truncated: Option<Truncation>,
}

/// A batch and the newest time any row after it can have.
pub(crate) type BoundedBatch = (RecordBatch, u64);

/// Batches in flight between the scan and its consumer.
const STREAM_CAPACITY: usize = 4;

impl ScanStream {
    /// The next batch; `None` when the scan is complete.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, StorageError>> {
        let (batch, bound) = match self.receiver.recv().await? {
            Ok(bounded) => bounded,
            Err(StorageError::Truncated(truncation)) => {
                self.truncated = Some(truncation);
                return None;
            }
            Err(err) => return Some(Err(err)),
        };
        self.time_bound = bound;
        Some(Ok(batch))
    }

    /// After the batch last returned, the newest time (span start, point time) a row still
    /// to come can have: exact for [`ScanOrder::NewestFirst`], `u64::MAX` otherwise.
    pub fn time_bound(&self) -> u64 {
        self.time_bound
    }

    /// After the stream ended: whether a truncating scan stopped at a limit, and which.
    pub fn truncated(&self) -> Option<Truncation> {
        self.truncated
    }

    /// Every remaining batch.
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>, StorageError> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }
}

impl Storage {
    /// Starts a scan; batches arrive on the returned stream.
    pub fn scan(&self, request: ScanRequest) -> Result<ScanStream, StorageError> {
        if request.signal == Signal::Logs {
            return Err(StorageError::InvalidQuery(
                "logs are searched through their index, not scanned".to_owned(),
            ));
        }
        if request.time_range.start_unix_nano >= request.time_range.end_unix_nano {
            return Err(StorageError::InvalidQuery(format!(
                "empty time range [{}, {})",
                request.time_range.start_unix_nano, request.time_range.end_unix_nano
            )));
        }
        check_range(
            request.limits.max_range_nanos,
            request.time_range.start_unix_nano,
            request.time_range.end_unix_nano,
        )?;
        let (sender, receiver) = mpsc::channel(STREAM_CAPACITY);
        let stores = self.stores();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut sink = execute::Sink::new(sender, request.limits);
            let scanned = runtime.block_on(async {
                match request.signal {
                    Signal::Traces => execute::scan_table(&stores.spans, &request, &mut sink).await,
                    Signal::Metrics => {
                        execute::scan_table(&stores.metrics, &request, &mut sink).await
                    }
                    Signal::Logs => Ok(()),
                }
            });
            match scanned {
                Ok(()) | Err(StorageError::ScanAbandoned) => {}
                Err(err) => runtime.block_on(sink.fail(err)),
            }
        });
        Ok(ScanStream {
            receiver,
            time_bound: u64::MAX,
            truncated: None,
        })
    }
}

/// Runs a scan of one table store to completion (tests and tools).
#[cfg(test)]
pub(crate) async fn scan_to_vec<S: crate::table::TableSignal>(
    store: &crate::table::TableStore<S>,
    request: &ScanRequest,
) -> Result<Vec<RecordBatch>, StorageError> {
    let batches = scan_with_bounds(store, request).await?;
    Ok(batches.into_iter().map(|(batch, _)| batch).collect())
}

/// Runs a scan to completion, each batch with its time bound (tests).
#[cfg(test)]
pub(crate) async fn scan_with_bounds<S: crate::table::TableSignal>(
    store: &crate::table::TableStore<S>,
    request: &ScanRequest,
) -> Result<Vec<BoundedBatch>, StorageError> {
    let (sender, mut receiver) = mpsc::channel(1024);
    let mut sink = execute::Sink::new(sender, request.limits);
    execute::scan_table(store, request, &mut sink).await?;
    drop(sink);
    let mut batches = Vec::new();
    while let Some(batch) = receiver.recv().await {
        batches.push(batch?);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests;
