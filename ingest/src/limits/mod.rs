//! Bulkheads between tenants at ingest: a cap on how many tenants may exist, per-tenant rates
//! of records and bytes per second, and per-tenant active metric series. A tenant past a rate
//! or the cap gets a retryable answer (`429`, `UNAVAILABLE`) naming the limit; past its series
//! limit, the points of new series are refused through OTLP's partial success (retrying cannot
//! help) while its active series go on. No other tenant notices: each tenant has its own
//! buckets and series set, checked without any lock shared with the write path.

mod bucket;
mod config;
mod gate;
mod live;
mod series;

pub use config::{LimitsConfig, TenantLimitOverrides};
pub use gate::{LimitExceeded, TenantFigures, TenantGate};
pub use live::LiveLimits;
pub use series::{ACTIVE_SERIES_WINDOW, ActiveSeries};
