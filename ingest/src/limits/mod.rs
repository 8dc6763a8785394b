//! Bulkheads between tenants at ingest: a cap on how many tenants may exist, and per-tenant
//! rates of records and bytes per second. A tenant past a limit gets a retryable answer (`429`,
//! `UNAVAILABLE`) naming the limit, and no other tenant notices: each tenant has its own
//! buckets, checked without any lock shared with the write path.

mod bucket;
mod config;
mod gate;

pub use config::{LimitsConfig, TenantLimitOverrides};
pub use gate::{LimitExceeded, TenantFigures, TenantGate};
