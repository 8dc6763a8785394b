//! skewer's stored OTLP metrics as Prometheus series, for PromQL and the Prometheus HTTP
//! API: names and labels after the OpenTelemetry specification's "Prometheus and
//! OpenMetrics compatibility" section ([`naming`], [`labels`]), point values as samples
//! ([`convert`]), and the store read as a [`crate::promql::SeriesSource`]
//! ([`store_source`]).
//!
//! Storage stays OTLP-native; this is the one place that knows how OTLP metrics look to
//! Prometheus. It knows no HTTP: the API adapter in the binary shapes the answers.

pub mod convert;
pub mod exemplars;
mod exponential;
mod histogram;
mod indexed_read;
pub mod labels;
pub mod naming;
mod parts;
pub mod series_view;
pub mod store_source;

pub use convert::convert_series;
pub use naming::PrometheusType;
pub use store_source::{MetricMetadata, StoreSource};

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
