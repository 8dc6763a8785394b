//! Where things live: the data directory's layout and object paths, in one place.
//!
//! ```text
//! {data_dir}/wal/{first_lsn:020}.wal        write-ahead log segments
//! {data_dir}/wal/checkpoint.json            last flushed LSN per signal
//! {data_dir}/objects/tenants/{tenant}/{signal}/{yyyy-mm-dd}/{hh}/{min_time:020}-{flush_id}.parquet
//! {data_dir}/logs/{tenant}/                 tantivy index of the tenant's logs
//! ```
//! The tenant is in every path, so per-tenant isolation, retention and deletion are prefix
//! operations, and object storage later is a different `object_store` root, not a new layout.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use object_store::path::Path as ObjectPath;

use crate::model::{Signal, TenantId};

/// Directory of the write-ahead log.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

/// Root of the local object store.
pub fn objects_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("objects")
}

/// Directory of one tenant's log index.
pub fn log_index_dir(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join("logs").join(tenant.as_str())
}

/// Directory holding every tenant's log index.
pub fn log_indexes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// Prefix of all objects of one signal of one tenant.
pub fn signal_prefix(tenant: &TenantId, signal: Signal) -> ObjectPath {
    ObjectPath::from(format!("tenants/{}/{}", tenant.as_str(), signal.name()))
}

/// Prefix of every tenant's objects.
pub fn tenants_prefix() -> ObjectPath {
    ObjectPath::from("tenants")
}

/// The tenant and signal an object path belongs to, if it follows the layout.
pub fn parse_object_path(path: &ObjectPath) -> Option<(TenantId, Signal)> {
    let mut parts = path.parts();
    if parts.next()?.as_ref() != "tenants" {
        return None;
    }
    let tenant = parts.next()?.as_ref().parse().ok()?;
    let signal = match parts.next()?.as_ref() {
        "traces" => Signal::Traces,
        "metrics" => Signal::Metrics,
        "logs" => Signal::Logs,
        _ => return None,
    };
    let is_parquet = path
        .filename()
        .is_some_and(|name| name.ends_with(".parquet"));
    is_parquet.then_some((tenant, signal))
}

/// One hour-long time window, the unit files are partitioned by.
pub const WINDOW_NANOS: u64 = 3_600 * 1_000_000_000;

/// The path of a new Parquet file for records whose earliest time is `min_time_unix_nano`.
pub fn data_file_path(
    tenant: &TenantId,
    signal: Signal,
    min_time_unix_nano: u64,
    flush_id: u64,
) -> ObjectPath {
    let seconds = i64::try_from(min_time_unix_nano / 1_000_000_000).unwrap_or(i64::MAX);
    let time = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap_or_default();
    ObjectPath::from(format!(
        "{}/{:04}-{:02}-{:02}/{:02}/{:020}-{:016x}.parquet",
        signal_prefix(tenant, signal),
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        min_time_unix_nano,
        flush_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_carry_tenant_signal_and_hour() {
        let tenant: TenantId = "acme".parse().unwrap();
        let path = data_file_path(&tenant, Signal::Traces, 1_700_000_000_000_000_000, 42);
        assert_eq!(
            path.as_ref(),
            "tenants/acme/traces/2023-11-14/22/01700000000000000000-000000000000002a.parquet"
        );
        assert_eq!(parse_object_path(&path), Some((tenant, Signal::Traces)));
        assert_eq!(
            parse_object_path(&ObjectPath::from("tenants/acme/traces/x.tmp")),
            None
        );
    }
}
