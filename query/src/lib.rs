//! skewer-query: the read side. Assembles answers from storage reads: a whole trace by id,
//! trace search, services and operations, log search, metric series. Returns model types and knows no HTTP; API adapters in the
//! binary shape them for each wire format.

pub mod critical_path;
pub mod error;
pub mod log_facets;
pub mod logql;
pub mod logs;
pub mod metrics;
pub mod prometheus;
pub mod promql;
pub mod skew;
pub mod span_tree;
pub mod stitch;
#[cfg(test)]
mod test_storage;
pub mod trace;
pub mod trace_filter;
pub mod trace_search;
pub mod trace_summary;

pub use error::QueryError;
