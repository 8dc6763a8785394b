//! `skewer check`: verifies a data directory against its manifests, and with `repair` fixes
//! what can be fixed: a missing or damaged manifest is rebuilt from the files' footers, entries
//! whose files are gone or unreadable are dropped, files no manifest lists are deleted.
//! Log partitions and WAL segments are checked too (a torn tail on the newest segment is what
//! a crash leaves, and the next start cuts it).
//!
//! Repairs change what a server reads: run them with the server stopped (the binary takes the
//! data directory's lock). A shared deployment (a bucket and its catalog) is checked
//! read-only ([`check_deployment`]).

use std::collections::HashMap;
use std::path::Path;

use object_store::path::Path as ObjectPath;

use crate::StorageError;
use crate::catalog::database::Schema;
use crate::catalog::{Catalog, DataFileMeta, Manifest, ManifestChange, ObjectCatalog, TableKey};
use crate::config::StorageConfig;
use crate::deployment::Deployment;
use crate::layout;
use crate::log_store::shared::upload::parse_manifest;
use crate::log_store::shared::{
    ReplicaKey, file_path, files_prefix, manifest_path, manifests_prefix, parse_manifest_path,
};
use crate::logs::{LogIndex, LogIndexConfig};
use crate::model::Signal;
use crate::objects::Objects;
use crate::table::live_file::read_footer;
use crate::table::open::{files_from_footers, find_orphans};

/// What a check found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems found (each one line, naming the file or table).
    pub problems: Vec<String>,
    /// Repairs made.
    pub repairs: Vec<String>,
    /// Tables (tenant and signal) checked.
    pub tables: u64,
    /// Data files verified.
    pub data_files: u64,
    /// Log partitions opened.
    pub log_partitions: u64,
    /// WAL segments read.
    pub wal_segments: u64,
}

impl CheckReport {
    /// True when nothing is wrong (after repairs, if any were made).
    pub fn healthy(&self) -> bool {
        self.problems.len() == self.repairs.len()
    }
}

/// Checks `data_dir`; repairs it when `repair` is set.
pub async fn check(data_dir: &Path, repair: bool) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    let objects = Objects::local(&layout::objects_dir(data_dir))?;
    let catalog = ObjectCatalog::new(objects.clone());
    for tenant in objects.tenants().await? {
        for signal in [Signal::Traces, Signal::Metrics] {
            let table = TableKey {
                tenant: tenant.clone(),
                signal,
            };
            check_table(&objects, &catalog, &table, repair, &mut report).await?;
        }
    }
    let data_dir = data_dir.to_path_buf();
    let (partitions, wal) =
        tokio::task::spawn_blocking(move || (check_logs(&data_dir), check_wal(&data_dir))).await?;
    merge(&mut report, partitions?);
    merge(&mut report, wal?);
    Ok(report)
}

/// Checks the shared deployment `config` names, read-only, while its nodes run: every table
/// of its catalog against the bucket (files old enough to be past an upload in flight count as
/// orphans), and every log replica's files against its manifest.
pub async fn check_deployment(config: &StorageConfig) -> Result<CheckReport, StorageError> {
    let deployment = Deployment::open(config, Schema::Existing).await?;
    let mut report = CheckReport::default();
    for table in deployment.catalog.list_tables().await? {
        check_table(
            &deployment.objects,
            deployment.catalog.as_ref(),
            &table,
            false,
            &mut report,
        )
        .await?;
    }
    for object in deployment.objects.list(&manifests_prefix()).await? {
        if let Some(replica) = parse_manifest_path(&object.location) {
            check_replica(&deployment.objects, &replica, &mut report).await?;
        }
    }
    Ok(report)
}

/// What is wrong with one log replica: files its manifest names that are missing or of
/// another size. A manifest replaced meanwhile (a merge) is read again once.
async fn check_replica(
    objects: &Objects,
    replica: &ReplicaKey,
    report: &mut CheckReport,
) -> Result<(), StorageError> {
    let path = manifest_path(replica);
    let mut problems = Vec::new();
    for _ in 0..2 {
        let body = match objects.get(&path).await {
            Ok(body) => body,
            // Expired meanwhile.
            Err(StorageError::ObjectStore {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let manifest = match parse_manifest(&path, &body) {
            Ok(manifest) => manifest,
            Err(err) => {
                problems = vec![format!("log replica {path}: {err}")];
                break;
            }
        };
        let listed: HashMap<String, u64> = objects
            .list(&files_prefix(replica))
            .await?
            .into_iter()
            .map(|object| (object.location.to_string(), object.size))
            .collect();
        problems = manifest
            .files
            .iter()
            .filter_map(|file| {
                let location = file_path(replica, &file.name).to_string();
                match listed.get(&location) {
                    None => Some(format!("log replica {path}: {} missing", file.name)),
                    Some(&size) if size != file.bytes => Some(format!(
                        "log replica {path}: {} has {size} bytes, the manifest says {}",
                        file.name, file.bytes
                    )),
                    Some(_) => None,
                }
            })
            .collect();
        if problems.is_empty() {
            break;
        }
    }
    report.log_partitions += 1;
    report.problems.extend(problems);
    Ok(())
}

fn merge(report: &mut CheckReport, part: CheckReport) {
    report.problems.extend(part.problems);
    report.repairs.extend(part.repairs);
    report.log_partitions += part.log_partitions;
    report.wal_segments += part.wal_segments;
}

async fn check_table(
    objects: &Objects,
    catalog: &dyn Catalog,
    table: &TableKey,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), StorageError> {
    let listed: HashMap<String, u64> = objects
        .list(&layout::signal_prefix(&table.tenant, table.signal))
        .await?
        .into_iter()
        .map(|object| (object.location.to_string(), object.size))
        .collect();
    let has_data = listed
        .keys()
        .any(|path| layout::parse_object_path(&ObjectPath::from(path.as_str())).is_some());
    let manifest = match catalog.load(table).await {
        Ok(manifest) => manifest,
        Err(err) => {
            report.problems.push(format!("{table}: {err}"));
            None
        }
    };
    let Some(manifest) = manifest else {
        if !has_data {
            return Ok(());
        }
        report.tables += 1;
        if !report
            .problems
            .last()
            .is_some_and(|p| p.starts_with(&table.to_string()))
        {
            report
                .problems
                .push(format!("{table}: data files but no manifest"));
        }
        if repair {
            let format = match table.signal {
                Signal::Metrics => crate::parquet_codec::METRICS_FORMAT,
                _ => crate::parquet_codec::SPANS_FORMAT,
            };
            let files = files_from_footers(objects, table, format).await?;
            let rebuilt = Manifest {
                files,
                ..Manifest::empty(table)
            };
            catalog.overwrite(table, &rebuilt).await?;
            report.repairs.push(format!(
                "{table}: manifest rebuilt from {} files' footers",
                rebuilt.files.len()
            ));
            remove_orphans(objects, table, &rebuilt, true, report).await?;
        }
        return Ok(());
    };
    report.tables += 1;
    let mut broken = Vec::new();
    let mut filterless = Vec::new();
    for file in &manifest.files {
        report.data_files += 1;
        let problem = match listed.get(&file.path) {
            None => Some("missing".to_owned()),
            Some(&size) if size != file.size_bytes => Some(format!(
                "{size} bytes, the manifest says {}",
                file.size_bytes
            )),
            Some(&size) => {
                match read_footer(objects, &ObjectPath::from(file.path.as_str()), size).await {
                    Err(err) => Some(format!("unreadable footer: {err}")),
                    Ok(_) => identity_problem(objects, file).await?,
                }
            }
        };
        if let Some(problem) = problem {
            report
                .problems
                .push(format!("{table}: {}: {problem}", file.path));
            broken.push(file.path.clone());
            continue;
        }
        let filter_problem = file.trace_id_filter.as_ref().and_then(|filter| {
            let expected = u64::from(filter.num_blocks) * 32;
            match listed.get(&filter.path) {
                None => Some(format!("trace-id filter {} missing", filter.path)),
                Some(&size) if size != expected => Some(format!(
                    "trace-id filter {} has {size} bytes, not {expected}",
                    filter.path
                )),
                Some(_) => None,
            }
        });
        let summary_problem = file
            .summary_path
            .as_ref()
            .filter(|path| !listed.contains_key(*path))
            .map(|path| format!("summary {path} missing"));
        let index_problem = file
            .index_path
            .as_ref()
            .filter(|path| !listed.contains_key(*path))
            .map(|path| format!("index {path} missing"));
        let sidecar_problems = [&filter_problem, &summary_problem, &index_problem];
        for problem in sidecar_problems.into_iter().flatten() {
            report
                .problems
                .push(format!("{table}: {}: {problem}", file.path));
        }
        if sidecar_problems.iter().any(|problem| problem.is_some()) {
            filterless.push(DataFileMeta {
                trace_id_filter: file
                    .trace_id_filter
                    .clone()
                    .filter(|_| filter_problem.is_none()),
                summary_path: file
                    .summary_path
                    .clone()
                    .filter(|_| summary_problem.is_none()),
                index_path: file.index_path.clone().filter(|_| index_problem.is_none()),
                ..file.clone()
            });
        }
    }
    let manifest = if repair && !(broken.is_empty() && filterless.is_empty()) {
        // A lost filter only costs lookups a footer read: keep the file without it (the next
        // merge writes a new one). A lost or unreadable data file leaves the manifest.
        let mut remove = broken.clone();
        remove.extend(filterless.iter().map(|file| file.path.clone()));
        let add = filterless.clone();
        let change = ManifestChange {
            add,
            remove,
            ..ManifestChange::default()
        };
        let repaired = catalog.commit(table, &manifest, &change).await?;
        for path in &broken {
            report
                .repairs
                .push(format!("{table}: {path}: dropped from the manifest"));
        }
        for file in &filterless {
            report.repairs.push(format!(
                "{table}: {}: kept without its lost sidecar (filter or summary)",
                file.path
            ));
        }
        repaired
    } else {
        manifest
    };
    remove_orphans(objects, table, &manifest, repair, report).await
}

/// What keeps the points of a metric file whose rows leave their series' identity to its
/// series index from being read: that index missing, unreadable or naming a series id twice
/// (then the file is as lost as an unreadable one). Other failures to read it (a store that
/// does not answer) end the check: they say nothing of the file.
async fn identity_problem(
    objects: &Objects,
    file: &DataFileMeta,
) -> Result<Option<String>, StorageError> {
    if file.format != crate::parquet_codec::METRICS_FORMAT {
        return Ok(None);
    }
    let Some(path) = file.index_path.as_deref() else {
        return Ok(Some(
            "no series index, so its points have no series".to_owned(),
        ));
    };
    let bytes = match objects.get(&ObjectPath::from(path)).await {
        Ok(bytes) => bytes,
        Err(StorageError::ObjectStore {
            source: object_store::Error::NotFound { .. },
            ..
        }) => {
            return Ok(Some(format!(
                "series index {path} missing, so its points have no series"
            )));
        }
        Err(err) => return Err(err),
    };
    let problem = crate::metrics::SeriesIndex::from_bytes(&bytes)
        .map_err(|err| err.to_string())
        .and_then(|index| {
            crate::parquet_codec::SeriesIdentities::of(&index).map_err(|err| err.to_string())
        })
        .err()
        .map(|err| format!("series index {path}: {err}, so its points have no series"));
    Ok(problem)
}

/// Reports (and with `repair` deletes) files `manifest` does not list.
async fn remove_orphans(
    objects: &Objects,
    table: &TableKey,
    manifest: &Manifest,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), StorageError> {
    let orphans = find_orphans(objects, &table.tenant, table.signal, manifest).await?;
    for orphan in orphans {
        report
            .problems
            .push(format!("{table}: {orphan}: no manifest lists it"));
        if repair {
            objects.delete(&orphan).await?;
            report.repairs.push(format!("{table}: {orphan}: deleted"));
        }
    }
    Ok(())
}

/// Opens every log partition read-only and counts its records.
fn check_logs(data_dir: &Path) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    let logs = layout::log_indexes_dir(data_dir);
    let Ok(tenants) = std::fs::read_dir(&logs) else {
        return Ok(report);
    };
    for tenant in tenants.flatten() {
        let Ok(partitions) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for partition in partitions.flatten() {
            let path = partition.path();
            if !path.join("meta.json").is_file() {
                continue;
            }
            report.log_partitions += 1;
            if let Err(err) = LogIndex::open(&path, &LogIndexConfig::default()) {
                report
                    .problems
                    .push(format!("log partition {}: {err}", path.display()));
            }
        }
    }
    Ok(report)
}

/// Reads every WAL segment without changing it; damage before the newest segment's tail is a
/// problem (records after it would be lost on replay).
fn check_wal(data_dir: &Path) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    let wal = layout::wal_dir(data_dir);
    if !wal.is_dir() {
        return Ok(report);
    }
    let segments = crate::wal::segment::list_segments(&wal)?;
    let newest = segments.last().map(|(lsn, _)| *lsn);
    for (first_lsn, path) in &segments {
        report.wal_segments += 1;
        let inspected = crate::wal::segment::inspect_segment(path)?;
        if let Some(problem) = inspected.problem
            && Some(*first_lsn) != newest
        {
            report
                .problems
                .push(format!("WAL segment {}: {problem}", path.display()));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Reservation;
    use crate::parquet_codec::test_fixtures::realistic_spans;
    use crate::spans::SpanStore;
    use crate::table::FooterCache;
    use bytes::Bytes;
    use std::sync::Arc;

    async fn data_dir_with_spans(dir: &Path) -> Objects {
        let objects = Objects::local(&layout::objects_dir(dir)).unwrap();
        let catalog = Arc::new(ObjectCatalog::new(objects.clone()));
        let store = SpanStore::open(
            objects.clone(),
            catalog,
            Arc::new(FooterCache::new(1 << 20)),
        )
        .await
        .unwrap();
        store.apply(
            1,
            "t".parse().unwrap(),
            realistic_spans(300, 1),
            1,
            Reservation::default(),
        );
        store.flush().await.unwrap();
        objects
    }

    #[tokio::test]
    async fn a_deployment_check_finds_files_its_manifests_name_but_the_store_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let objects = data_dir_with_spans(dir.path()).await;
        let (_, segment) = crate::log_store::shared::put_test_replica(&objects, "t").await;
        let config = StorageConfig::new(dir.path().to_path_buf());
        let healthy = check_deployment(&config).await.unwrap();
        assert!(healthy.problems.is_empty(), "{:?}", healthy.problems);
        assert_eq!(
            (healthy.tables, healthy.data_files, healthy.log_partitions),
            (1, 1, 1)
        );
        objects.delete(&segment).await.unwrap();
        let table = TableKey {
            tenant: "t".parse().unwrap(),
            signal: Signal::Traces,
        };
        let data = ObjectCatalog::new(objects.clone())
            .load(&table)
            .await
            .unwrap()
            .unwrap()
            .files[0]
            .path
            .clone();
        objects
            .delete(&ObjectPath::from(data.as_str()))
            .await
            .unwrap();
        let found = check_deployment(&config).await.unwrap();
        assert_eq!(found.problems.len(), 2, "{:?}", found.problems);
        assert!(found.problems.iter().any(|p| p.contains("seg.idx missing")));
        assert!(found.problems.iter().any(|p| p.ends_with(": missing")));
    }

    #[tokio::test]
    async fn a_metric_file_whose_series_index_is_damaged_is_as_lost_as_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(&layout::objects_dir(dir.path())).unwrap();
        let catalog = Arc::new(ObjectCatalog::new(objects.clone()));
        let store = crate::metrics::MetricStore::open(
            objects.clone(),
            catalog,
            Arc::new(FooterCache::new(1 << 20)),
        )
        .await
        .unwrap();
        let points = crate::parquet_codec::test_fixtures::realistic_points(100, 1);
        store.apply(1, "t".parse().unwrap(), points, 1, Reservation::default());
        store.flush().await.unwrap();
        drop(store);
        assert!(check(dir.path(), false).await.unwrap().problems.is_empty());
        let table = TableKey {
            tenant: "t".parse().unwrap(),
            signal: Signal::Metrics,
        };
        let manifest = ObjectCatalog::new(objects.clone())
            .load(&table)
            .await
            .unwrap()
            .unwrap();
        let index = manifest.files[0].index_path.clone().unwrap();
        objects
            .put(&ObjectPath::from(index.as_str()), Bytes::from_static(b"?"))
            .await
            .unwrap();
        let found = check(dir.path(), false).await.unwrap();
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert!(
            found.problems[0].contains("so its points have no series"),
            "{:?}",
            found.problems
        );
    }

    #[tokio::test]
    async fn a_sound_directory_has_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        data_dir_with_spans(dir.path()).await;
        let report = check(dir.path(), false).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.tables, report.data_files), (1, 1));
    }

    #[tokio::test]
    async fn damage_is_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let objects = data_dir_with_spans(dir.path()).await;
        let table = TableKey {
            tenant: "t".parse().unwrap(),
            signal: Signal::Traces,
        };
        // A damaged newest manifest and a stray file.
        let damaged = layout::manifest_path(&table.tenant, table.signal, 2);
        objects
            .put(&damaged, Bytes::from_static(b"{"))
            .await
            .unwrap();
        let stray = ObjectPath::from("tenants/t/traces/stray.parquet.part");
        objects.put(&stray, Bytes::from_static(b"x")).await.unwrap();
        let found = check(dir.path(), false).await.unwrap();
        assert!(!found.healthy());
        assert!(
            found.problems[0].contains("damaged"),
            "{:?}",
            found.problems
        );

        let repaired = check(dir.path(), true).await.unwrap();
        assert!(repaired.healthy(), "{repaired:?}");
        let after = check(dir.path(), false).await.unwrap();
        assert!(after.problems.is_empty(), "{:?}", after.problems);
        let manifest = ObjectCatalog::new(objects)
            .load(&table)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(manifest.files.len(), 1, "rebuilt from the file's footer");
        assert!(
            manifest.files[0].trace_id_filter.is_some(),
            "with its filter"
        );
    }

    #[tokio::test]
    async fn a_missing_data_file_is_dropped_from_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let objects = data_dir_with_spans(dir.path()).await;
        let table = TableKey {
            tenant: "t".parse().unwrap(),
            signal: Signal::Traces,
        };
        let catalog = ObjectCatalog::new(objects.clone());
        let manifest = catalog.load(&table).await.unwrap().unwrap();
        objects
            .delete(&ObjectPath::from(manifest.files[0].path.as_str()))
            .await
            .unwrap();
        let found = check(dir.path(), false).await.unwrap();
        assert!(
            found.problems.iter().any(|p| p.contains("missing")),
            "{found:?}"
        );
        let repaired = check(dir.path(), true).await.unwrap();
        assert!(repaired.healthy(), "{repaired:?}");
        assert!(
            catalog
                .load(&table)
                .await
                .unwrap()
                .unwrap()
                .files
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_lost_trace_id_filter_keeps_its_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let objects = data_dir_with_spans(dir.path()).await;
        let table = TableKey {
            tenant: "t".parse().unwrap(),
            signal: Signal::Traces,
        };
        let catalog = ObjectCatalog::new(objects.clone());
        let manifest = catalog.load(&table).await.unwrap().unwrap();
        let filter = manifest.files[0].trace_id_filter.clone().unwrap();
        objects
            .delete(&ObjectPath::from(filter.path.as_str()))
            .await
            .unwrap();
        let found = check(dir.path(), false).await.unwrap();
        assert!(found.problems[0].contains("filter"), "{found:?}");
        let repaired = check(dir.path(), true).await.unwrap();
        assert!(repaired.healthy(), "{repaired:?}");
        let after = catalog.load(&table).await.unwrap().unwrap();
        assert_eq!(after.files.len(), 1, "the data file stays");
        assert_eq!(after.files[0].trace_id_filter, None);
        assert!(check(dir.path(), false).await.unwrap().problems.is_empty());
    }
}
