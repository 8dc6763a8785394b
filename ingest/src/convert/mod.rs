//! OTLP messages to the storage model: the one place that knows both shapes.

pub mod common;
pub mod logs;
pub mod metrics;
pub(crate) mod metrics_walk;
pub mod traces;

pub use common::{Converted, Rejections};
pub use logs::convert_logs;
pub use metrics::convert_metrics;
pub use traces::convert_traces;
