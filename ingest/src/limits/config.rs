//! `[limits]` as the config file spells it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One tenant's own rates (unset: the defaults of `[limits]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimitOverrides {
    /// Records (spans, log records, metric points) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_records_per_second: Option<u64>,
    /// Request bytes (after decompression) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_bytes_per_second: Option<u64>,
    /// Queries running at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_max_concurrent: Option<usize>,
    /// Metric series with a point in the last hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active_series: Option<u64>,
    /// Rows one query may read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_max_rows: Option<u64>,
    /// Hours one query's time range may span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_max_range_hours: Option<u64>,
}

/// `[limits]`: 0 means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Tenants that may exist; exports for a new tenant past it are refused.
    pub max_tenants: usize,
    /// Records per second each tenant may send.
    pub ingest_records_per_second: u64,
    /// Request bytes per second each tenant may send.
    pub ingest_bytes_per_second: u64,
    /// Queries each tenant may run at once (within the server-wide `[query] max_concurrent`).
    pub query_max_concurrent: usize,
    /// Rows one query of each tenant may read (0: the server-wide `[query] max_rows`; a
    /// tenant's limit above that one changes nothing).
    pub query_max_rows: u64,
    /// Hours one query of each tenant may span (0: any).
    pub query_max_range_hours: u64,
    /// Metric series each tenant may have active (a point in the last hour); points of
    /// further new series are refused, those of active series still accepted.
    pub max_active_series: u64,
    /// `[limits.tenants.NAME]`: a tenant's own rates.
    pub tenants: BTreeMap<String, TenantLimitOverrides>,
}

impl LimitsConfig {
    /// The queries `tenant` may run at once; 0 is unlimited.
    pub fn query_concurrency_of(&self, tenant: &str) -> usize {
        self.tenants
            .get(tenant)
            .and_then(|own| own.query_max_concurrent)
            .unwrap_or(self.query_max_concurrent)
    }

    /// The rows one query of `tenant` may read; 0 is the server-wide bound.
    pub fn query_max_rows_of(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .and_then(|own| own.query_max_rows)
            .unwrap_or(self.query_max_rows)
    }

    /// The time range one query of `tenant` may span, in nanoseconds; 0 is any.
    pub fn query_max_range_nanos_of(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .and_then(|own| own.query_max_range_hours)
            .unwrap_or(self.query_max_range_hours)
            .saturating_mul(3_600_000_000_000)
    }

    /// The active series `tenant` may have; 0 is unlimited.
    pub fn max_active_series_of(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .and_then(|own| own.max_active_series)
            .unwrap_or(self.max_active_series)
    }

    /// The (records, bytes) per second of `tenant`.
    pub fn rates_of(&self, tenant: &str) -> (u64, u64) {
        let own = self.tenants.get(tenant);
        (
            own.and_then(|o| o.ingest_records_per_second)
                .unwrap_or(self.ingest_records_per_second),
            own.and_then(|o| o.ingest_bytes_per_second)
                .unwrap_or(self.ingest_bytes_per_second),
        )
    }
}
