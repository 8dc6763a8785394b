//! LogQL: Loki's query language over skewer's log store.
//!
//! [`parser`] turns text into the [`ast`] (errors carry line and column, as Loki's do);
//! [`labels`] says what labels a stored record has; [`pipeline`] runs the stages over one
//! entry; [`logs`] answers log queries (streams of lines, newest or oldest first, up to a
//! limit); [`metric`] answers metric queries (range functions over the lines, aggregations and
//! binary operators, at one time or every step of a range). Evaluation reads the store through
//! its scan API: the selector's `service_name="…"` and any leading `| trace_id="…"` or
//! `| span_id="…"` filter narrow the scan in the index; everything else is evaluated on each
//! record.

pub mod ast;
pub mod error;
pub mod labels;
pub mod lexer;
pub mod logs;
pub mod metric;
pub mod parser;
pub mod pipeline;
mod pushdown;
pub mod stats;
pub mod streams;

pub use error::LogqlError;
pub use labels::{Entry, Labels};
pub use logs::{LogQueryRequest, Stream, StreamEntry, run_log_query};
pub use metric::{MetricRequest, MetricResult, run_metric_query};
pub use parser::{parse, parse_selector};

/// Bounds on what one query may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogqlLimits {
    /// Most lines one log query returns (Loki's `max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Most series a metric query may hold at once, before or after aggregation.
    pub max_series: usize,
    /// Most steps of a range query (Loki's 11,000 points per series).
    pub max_steps: usize,
}

impl Default for LogqlLimits {
    fn default() -> Self {
        Self {
            max_entries: 5_000,
            max_series: 10_000,
            max_steps: 11_000,
        }
    }
}
