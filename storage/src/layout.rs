//! Where things live: the data directory's layout and object paths, in one place.
//!
//! ```text
//! {data_dir}/wal/{first_lsn:020}.wal        write-ahead log segments
//! {data_dir}/wal/checkpoint.json            last flushed LSN per signal
//! {data_dir}/objects/tenants/{tenant}/{signal}/{yyyy-mm-dd}/{hh}/{min_time:020}-{file_id}.parquet
//! {data_dir}/objects/tenants/{tenant}/traces/{yyyy-mm-dd}/{hh}/{min_time:020}-{file_id}.traceids
//! {data_dir}/objects/tenants/{tenant}/{signal}/_manifest/{version:020}.json
//! {data_dir}/logs/{tenant}/{yyyy-mm-dd}/    tantivy index of the tenant's logs of one UTC day
//! {data_dir}/log-cache/{tenant}/{yyyy-mm-dd}/{node}/   another node's copy of one, read from the bucket
//! bucket: tenants/{tenant}/logs/{yyyy-mm-dd}/{node}/{segment file}, log-replicas/{tenant}/{yyyy-mm-dd}/{node}.json
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

/// Directory of one tenant's log partitions.
pub fn log_tenant_dir(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join("logs").join(tenant.as_str())
}

/// Directory of one tenant's log index of one UTC day (`day` counted from the Unix epoch).
pub fn log_partition_dir(data_dir: &Path, tenant: &TenantId, day: u64) -> PathBuf {
    log_tenant_dir(data_dir, tenant).join(day_name(day))
}

/// `yyyy-mm-dd` of a day counted from the Unix epoch.
pub fn day_name(day: u64) -> String {
    let seconds = i64::try_from(day.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let time = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap_or_default();
    format!("{:04}-{:02}-{:02}", time.year(), time.month(), time.day())
}

/// The day a `yyyy-mm-dd` directory name stands for.
pub fn parse_day_name(name: &str) -> Option<u64> {
    let date = chrono::NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
    let seconds = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    u64::try_from(seconds / 86_400).ok()
}

/// The HMAC key of redaction `hash` rules, made in the data directory when none is configured.
pub const REDACTION_KEY_FILE: &str = "redaction.key";

/// Files at the data directory's root that hold secrets (API key hashes, the redaction key):
/// readable by their owner only, carried by backups.
pub const OWNER_ONLY_FILES: [&str; 2] = [crate::auth::KEYS_FILE, REDACTION_KEY_FILE];

/// One day, the unit log indexes are partitioned by.
pub const DAY_NANOS: u64 = 86_400 * 1_000_000_000;
/// Nanoseconds in an hour.
pub const HOUR_NANOS: u64 = 3_600 * 1_000_000_000;

/// Prefix of the manifest versions of one table.
pub fn manifest_prefix(tenant: &TenantId, signal: Signal) -> ObjectPath {
    ObjectPath::from(format!("{}/_manifest", signal_prefix(tenant, signal)))
}

/// The object of one manifest version.
pub fn manifest_path(tenant: &TenantId, signal: Signal, version: u64) -> ObjectPath {
    ObjectPath::from(format!(
        "{}/{version:020}.json",
        manifest_prefix(tenant, signal)
    ))
}

/// The version of a manifest object, if `path` is one.
pub fn parse_manifest_version(path: &ObjectPath) -> Option<u64> {
    let name = path.filename()?;
    let version = name.strip_suffix(".json")?;
    let in_manifest_dir = path.parts().rev().nth(1)?.as_ref() == "_manifest";
    in_manifest_dir.then(|| version.parse().ok()).flatten()
}

/// The trace-id filter sidecar of a span file.
pub fn trace_id_filter_path(data_file: &ObjectPath) -> ObjectPath {
    let text = data_file.as_ref();
    let stem = text.strip_suffix(".parquet").unwrap_or(text);
    ObjectPath::from(format!("{stem}.traceids"))
}

/// The summary sidecar of a data file (services and operations of a span file).
pub fn summary_path(data_file: &ObjectPath) -> ObjectPath {
    let text = data_file.as_ref();
    let stem = text.strip_suffix(".parquet").unwrap_or(text);
    ObjectPath::from(format!("{stem}.summary.json"))
}

/// The index sidecar of a data file: a metric file's series index, a span file's trace
/// summaries.
pub fn index_path(signal: Signal, data_file: &ObjectPath) -> ObjectPath {
    let text = data_file.as_ref();
    let stem = text.strip_suffix(".parquet").unwrap_or(text);
    let extension = match signal {
        Signal::Metrics => "series",
        Signal::Traces | Signal::Logs => "traces",
    };
    ObjectPath::from(format!("{stem}.{extension}"))
}

/// Directory of other nodes' log partitions downloaded from the bucket.
pub fn log_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log-cache")
}

/// Directory holding every tenant's log index.
pub fn log_indexes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The tenants with data in `data_dir` (span or metric files, or log indexes), sorted; read
/// from directory names, so it works before storage is opened.
pub fn tenants_on_disk(data_dir: &Path) -> Vec<TenantId> {
    let mut tenants: Vec<TenantId> = [
        objects_dir(data_dir).join("tenants"),
        log_indexes_dir(data_dir),
    ]
    .iter()
    .filter_map(|dir| std::fs::read_dir(dir).ok())
    .flatten()
    .flatten()
    .filter(|entry| entry.path().is_dir())
    .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
    .collect();
    tenants.sort();
    tenants.dedup();
    tenants
}

/// Prefix of all objects of one signal of one tenant.
pub fn signal_prefix(tenant: &TenantId, signal: Signal) -> ObjectPath {
    ObjectPath::from(format!("tenants/{}/{}", tenant.as_str(), signal.name()))
}

/// Prefix of every tenant's objects.
pub fn tenants_prefix() -> ObjectPath {
    ObjectPath::from("tenants")
}

/// The tenant and signal a data file (`.parquet`) belongs to, if it follows the layout.
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

/// The path of a new Parquet file for records whose earliest time is `min_time_unix_nano`;
/// `file_id` makes it unique.
pub fn data_file_path(
    tenant: &TenantId,
    signal: Signal,
    min_time_unix_nano: u64,
    file_id: u64,
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
        file_id,
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
        assert_eq!(
            trace_id_filter_path(&path).as_ref(),
            "tenants/acme/traces/2023-11-14/22/01700000000000000000-000000000000002a.traceids"
        );
        assert_eq!(
            summary_path(&path).as_ref(),
            "tenants/acme/traces/2023-11-14/22/01700000000000000000-000000000000002a.summary.json"
        );
        assert_eq!(parse_object_path(&summary_path(&path)), None);
    }

    #[test]
    fn manifest_paths_carry_their_version() {
        let tenant: TenantId = "acme".parse().unwrap();
        let path = manifest_path(&tenant, Signal::Metrics, 12);
        assert_eq!(
            path.as_ref(),
            "tenants/acme/metrics/_manifest/00000000000000000012.json"
        );
        assert_eq!(parse_manifest_version(&path), Some(12));
        assert_eq!(
            parse_object_path(&path),
            None,
            "a manifest is not a data file"
        );
        assert_eq!(
            parse_manifest_version(&ObjectPath::from("tenants/acme/metrics/x/1.json")),
            None
        );
    }

    #[test]
    fn day_names_round_trip() {
        let day = 1_700_000_000 / 86_400;
        assert_eq!(day_name(day), "2023-11-14");
        assert_eq!(parse_day_name("2023-11-14"), Some(day));
        assert_eq!(parse_day_name("meta.json"), None);
    }
}
