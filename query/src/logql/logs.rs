//! Log queries: the lines a selector and pipeline pass in `[start, end)`, newest or oldest
//! first, up to a limit, grouped into streams.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use skewer_storage::Storage;
use skewer_storage::log_store::{LogVisitor, ScanDirection};
use skewer_storage::model::TenantId;

use super::ast::LogExpr;
use super::labels::{Entry, Labels};
use super::pipeline::{run_pipeline, selector_matches};
use super::pushdown::store_query;
use crate::QueryError;

/// What a log query asks for.
#[derive(Debug, Clone)]
pub struct LogQueryRequest {
    /// Inclusive start, Unix ns.
    pub start_unix_nano: u64,
    /// Exclusive end, Unix ns.
    pub end_unix_nano: u64,
    /// Most lines returned.
    pub limit: usize,
    /// Newest first (backward) or oldest first.
    pub direction: ScanDirection,
    /// Whether streams are keyed by stream labels only, structured metadata and parsed labels
    /// travelling with each line (Loki's `categorize-labels`), or by every label.
    pub categorize_labels: bool,
}

/// One line of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    /// Unix ns.
    pub time_unix_nano: u64,
    /// The line.
    pub line: String,
    /// Structured metadata (empty unless labels are categorised).
    pub metadata: Labels,
    /// Parsed labels (empty unless labels are categorised).
    pub parsed: Labels,
}

/// Lines sharing one label set, in the query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The labels.
    pub labels: Labels,
    /// The lines.
    pub entries: Vec<StreamEntry>,
}

/// Collects what passes, stopping at the limit.
struct Collector {
    log: Arc<LogExpr>,
    limit: usize,
    categorize: bool,
    found: usize,
    streams: Vec<Stream>,
    positions: HashMap<Labels, usize>,
}

impl LogVisitor for Collector {
    fn visit(&mut self, record: &skewer_storage::model::LogRecord) -> ControlFlow<()> {
        let mut entry = Entry::from_record(record);
        if !selector_matches(&self.log, &entry) || !run_pipeline(&self.log.pipeline, &mut entry) {
            return ControlFlow::Continue(());
        }
        let (labels, line) = if self.categorize {
            (
                entry.stream,
                StreamEntry {
                    time_unix_nano: entry.time_unix_nano,
                    line: entry.line,
                    metadata: entry.metadata,
                    parsed: entry.parsed,
                },
            )
        } else {
            let labels = entry.stream.merged(&entry.metadata).merged(&entry.parsed);
            (
                labels,
                StreamEntry {
                    time_unix_nano: entry.time_unix_nano,
                    line: entry.line,
                    metadata: Labels::default(),
                    parsed: Labels::default(),
                },
            )
        };
        let position = *self.positions.entry(labels.clone()).or_insert_with(|| {
            self.streams.push(Stream {
                labels,
                entries: Vec::new(),
            });
            self.streams.len() - 1
        });
        self.streams[position].entries.push(line);
        self.found += 1;
        if self.found >= self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Runs a log query.
pub async fn run_log_query(
    storage: &Storage,
    tenant: &TenantId,
    log: LogExpr,
    request: &LogQueryRequest,
) -> Result<Vec<Stream>, QueryError> {
    if request.limit == 0 || request.start_unix_nano >= request.end_unix_nano {
        return Ok(Vec::new());
    }
    let query = store_query(&log, request.start_unix_nano, request.end_unix_nano);
    let collector = Collector {
        log: Arc::new(log),
        limit: request.limit,
        categorize: request.categorize_labels,
        found: 0,
        streams: Vec::new(),
        positions: HashMap::new(),
    };
    let collector = storage
        .scan_logs(tenant, query, request.direction, collector)
        .await?;
    Ok(collector.streams)
}
