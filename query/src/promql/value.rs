//! Query results: what `/api/v1/query` and `/api/v1/query_range` answer with.

use super::series::{Labels, Series};

/// One series' value at the evaluation time of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation time, ms.
    pub timestamp_ms: i64,
    /// Value.
    pub value: f64,
}

/// The result of a query, by PromQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A number at a time.
    Scalar {
        /// Evaluation time, ms.
        timestamp_ms: i64,
        /// Value.
        value: f64,
    },
    /// A string at a time.
    String {
        /// Evaluation time, ms.
        timestamp_ms: i64,
        /// Value.
        value: String,
    },
    /// An instant vector: one sample per series.
    Vector(Vec<InstantSample>),
    /// A range vector or a range query's result: series with their samples, sorted by labels.
    Matrix(Vec<Series>),
}

impl QueryValue {
    /// The Prometheus API's `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Self::Scalar { .. } => "scalar",
            Self::String { .. } => "string",
            Self::Vector(_) => "vector",
            Self::Matrix(_) => "matrix",
        }
    }
}
