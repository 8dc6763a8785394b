//! Retention: how long each signal's data is kept, per tenant, and which files or log
//! partitions have expired. Pure: policies and a clock in, what to drop out.
//!
//! Data is dropped in whole units (an hour's Parquet file, a day's log index) once everything
//! in the unit is older than the retention, so a record is kept at least as long as its
//! retention and at most one unit longer.

use std::collections::HashMap;
use std::time::Duration;

use crate::catalog::DataFileMeta;
use crate::model::{Signal, TenantId};

/// How long each signal is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalRetention {
    /// Spans.
    pub traces: Option<Duration>,
    /// Log records.
    pub logs: Option<Duration>,
    /// Metric points.
    pub metrics: Option<Duration>,
}

impl SignalRetention {
    /// Seven days for every signal.
    pub const DEFAULT: Self = Self {
        traces: Some(Duration::from_secs(7 * 86_400)),
        logs: Some(Duration::from_secs(7 * 86_400)),
        metrics: Some(Duration::from_secs(7 * 86_400)),
    };

    /// The retention of one signal.
    pub fn get(&self, signal: Signal) -> Option<Duration> {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
    }
}

/// Retention for every tenant: the defaults, and per-tenant overrides of single signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// What applies when a tenant has no override.
    pub default: SignalRetention,
    /// Per-tenant overrides; a `None` signal inherits the default.
    pub tenants: HashMap<TenantId, TenantRetention>,
    /// How often expired data is looked for.
    pub check_interval: Duration,
}

/// One tenant's overrides; absent signals inherit the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantRetention {
    /// Spans; `Some(None)` keeps forever.
    pub traces: Option<Option<Duration>>,
    /// Log records.
    pub logs: Option<Option<Duration>>,
    /// Metric points.
    pub metrics: Option<Option<Duration>>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            default: SignalRetention::DEFAULT,
            tenants: HashMap::new(),
            check_interval: Duration::from_secs(60),
        }
    }
}

impl RetentionPolicy {
    /// How long `tenant`'s `signal` is kept; `None` is forever.
    pub fn retention(&self, tenant: &TenantId, signal: Signal) -> Option<Duration> {
        let inherited = self.default.get(signal);
        match self.tenants.get(tenant) {
            Some(overrides) => match signal {
                Signal::Traces => overrides.traces,
                Signal::Logs => overrides.logs,
                Signal::Metrics => overrides.metrics,
            }
            .unwrap_or(inherited),
            None => inherited,
        }
    }

    /// The Unix-ns time before which `tenant`'s `signal` has expired at `now`; `None` when it
    /// is kept forever.
    pub fn cutoff_unix_nano(
        &self,
        tenant: &TenantId,
        signal: Signal,
        now_unix_nano: u64,
    ) -> Option<u64> {
        let keep = self.retention(tenant, signal)?;
        Some(now_unix_nano.saturating_sub(u64::try_from(keep.as_nanos()).unwrap_or(u64::MAX)))
    }
}

/// Files whose every record is older than `cutoff`.
pub fn expired_files(files: &[DataFileMeta], cutoff_unix_nano: u64) -> Vec<&DataFileMeta> {
    files
        .iter()
        .filter(|file| file.max_time_unix_nano < cutoff_unix_nano)
        .collect()
}

/// Whether a log partition covering `[start, end)` has expired at `cutoff`.
pub fn partition_expired(end_unix_nano: u64, cutoff_unix_nano: u64) -> bool {
    end_unix_nano <= cutoff_unix_nano
}

/// Parses a retention as configured: `0` (forever), or a number with a unit: `s`, `m`, `h`,
/// `d`, `w` (`7d`, `36h`, `90m`).
pub fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("{text:?} has no unit: use s, m, h, d or w (\"7d\"), or 0 to keep forever")
    })?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}, use s, m, h, d or w"
            ));
        }
    };
    match number.checked_mul(seconds_per_unit) {
        Some(0) => Ok(None),
        Some(seconds) => Ok(Some(Duration::from_secs(seconds))),
        None => Err(format!("{text:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn file(name: &str, max_time: u64) -> DataFileMeta {
        DataFileMeta {
            min_time_unix_nano: 0,
            max_time_unix_nano: max_time,
            ..crate::catalog::manifest::test_file(name)
        }
    }

    #[test]
    fn tenants_override_single_signals_and_inherit_the_rest() {
        let acme: TenantId = "acme".parse().unwrap();
        let mut policy = RetentionPolicy::default();
        policy.tenants.insert(
            acme.clone(),
            TenantRetention {
                traces: Some(Some(30 * DAY)),
                logs: Some(None),
                metrics: None,
            },
        );
        let other = TenantId::default_tenant();
        assert_eq!(policy.retention(&acme, Signal::Traces), Some(30 * DAY));
        assert_eq!(policy.retention(&acme, Signal::Logs), None, "kept forever");
        assert_eq!(policy.retention(&acme, Signal::Metrics), Some(7 * DAY));
        assert_eq!(policy.retention(&other, Signal::Traces), Some(7 * DAY));
        let now = 100 * DAY.as_nanos() as u64;
        assert_eq!(
            policy.cutoff_unix_nano(&other, Signal::Metrics, now),
            Some(93 * DAY.as_nanos() as u64)
        );
        assert_eq!(policy.cutoff_unix_nano(&acme, Signal::Logs, now), None);
    }

    #[test]
    fn only_wholly_expired_files_and_partitions_go() {
        let files = [file("old", 99), file("straddles", 100), file("new", 500)];
        let expired: Vec<&str> = expired_files(&files, 100)
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(expired, ["old"]);
        assert!(partition_expired(100, 100));
        assert!(!partition_expired(101, 100));
    }

    #[test]
    fn retentions_parse_with_units_and_zero_keeps_forever() {
        assert_eq!(parse_retention("7d"), Ok(Some(7 * DAY)));
        assert_eq!(
            parse_retention("36h"),
            Ok(Some(Duration::from_secs(36 * 3600)))
        );
        assert_eq!(parse_retention(" 2w "), Ok(Some(14 * DAY)));
        assert_eq!(parse_retention("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_retention("0"), Ok(None));
        assert_eq!(parse_retention("0d"), Ok(None));
        for bad in ["", "7", "d", "7x", "-1d", "99999999999999999999w"] {
            assert!(parse_retention(bad).is_err(), "{bad:?}");
        }
    }
}
