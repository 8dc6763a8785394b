//! Background upkeep of the Parquet tables: compaction passes (run on one low-priority thread
//! by the storage facade) and retention sweeps. Each pass looks at every tenant's manifest,
//! plans with the pure planners ([`crate::table::compaction`], [`crate::retention`]) and commits
//! through the table store, so flushes, merges and sweeps never step on each other's files.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::StorageError;
use crate::catalog::ManifestChange;
use crate::retention::{RetentionPolicy, expired_files};
use crate::table::compaction::{CompactionPolicy, plan_merges};
use crate::table::{TableSignal, TableStore};

/// Compaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionConfig {
    /// Whether compaction runs at all.
    pub enabled: bool,
    /// What is merged.
    pub policy: CompactionPolicy,
    /// Pause between passes.
    pub interval: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            policy: CompactionPolicy::default(),
            interval: Duration::from_secs(30),
        }
    }
}

/// Wall-clock time, Unix ns.
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One compaction pass over every tenant of a store: runs each merge the planner asks for.
/// Returns how many merges ran. A failing merge does not stop the others; the pass then ends
/// with the first failure, so the caller backs off and reports it.
pub async fn compact_store<S: TableSignal>(
    store: &TableStore<S>,
    policy: &CompactionPolicy,
    delete_grace: Duration,
    cancel: &CancellationToken,
) -> Result<usize, StorageError> {
    let mut merges = 0;
    let mut first_failure = None;
    for tenant in store.tenants() {
        let Some(table) = store.table_files(&tenant) else {
            continue;
        };
        let plans = plan_merges(
            &table.manifest.files,
            now_unix_nano(),
            policy,
            S::merges_format,
            S::needs_rewrite,
        );
        for plan in plans {
            if cancel.is_cancelled() {
                return Ok(merges);
            }
            let claim = format!(
                "compaction/{tenant}/{}/{}",
                S::SIGNAL.name(),
                plan.partition_hour
            );
            let inputs = match claim_inputs(store, &tenant, &plan.inputs, &claim).await {
                Ok(Some(inputs)) => inputs,
                Ok(None) => continue,
                Err(err) => {
                    warn!(signal = S::SIGNAL.name(), tenant = %tenant, error = %err, "cannot claim a compaction");
                    first_failure.get_or_insert(err);
                    continue;
                }
            };
            let started = Instant::now();
            let outcome = store
                .merge(
                    &tenant,
                    &inputs,
                    policy.target_file_bytes,
                    delete_grace,
                    cancel,
                )
                .await;
            release(store, &claim).await;
            let stats = store.stats();
            match outcome {
                Ok(outcome) => {
                    merges += 1;
                    stats.merges.fetch_add(1, Ordering::Relaxed);
                    stats
                        .merged_files_read
                        .fetch_add(outcome.inputs as u64, Ordering::Relaxed);
                    stats
                        .merged_files_written
                        .fetch_add(outcome.outputs as u64, Ordering::Relaxed);
                    stats
                        .merged_bytes_read
                        .fetch_add(outcome.bytes_read, Ordering::Relaxed);
                    stats
                        .merged_bytes_written
                        .fetch_add(outcome.bytes_written, Ordering::Relaxed);
                    stats
                        .merge_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    info!(
                        signal = S::SIGNAL.name(),
                        tenant = %tenant,
                        hour = plan.partition_hour,
                        inputs = outcome.inputs,
                        outputs = outcome.outputs,
                        rows = outcome.rows,
                        bytes_read = outcome.bytes_read,
                        bytes_written = outcome.bytes_written,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "compacted"
                    );
                }
                Err(StorageError::ShuttingDown) => return Ok(merges),
                Err(err) => {
                    stats.merge_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(signal = S::SIGNAL.name(), tenant = %tenant, hour = plan.partition_hour, error = %err, "merge failed");
                    first_failure.get_or_insert(err);
                }
            }
        }
    }
    match first_failure {
        Some(err) => Err(err),
        None => Ok(merges),
    }
}

/// How long a claim of a partition's compaction or a table's retention sweep lasts when its
/// node dies before releasing it.
const CLAIM_TTL: Duration = Duration::from_secs(15 * 60);

/// The live files of a planned merge, once this node holds the partition's claim; `None`
/// when another node holds it or merged some of the inputs meanwhile (the next pass plans
/// again). Without other writers the claim is granted at once and nothing is reloaded.
async fn claim_inputs<S: TableSignal>(
    store: &TableStore<S>,
    tenant: &crate::model::TenantId,
    planned: &[String],
    claim: &str,
) -> Result<Option<Vec<std::sync::Arc<crate::table::LiveFile>>>, StorageError> {
    if !store.claim(claim, CLAIM_TTL).await? {
        return Ok(None);
    }
    if store.shares_tables() {
        // Another node may have merged these files before this claim: plan on the newest.
        if let Err(err) = store.refresh_tenant(tenant).await {
            release(store, claim).await;
            return Err(err);
        }
    }
    let live = store
        .table_files(tenant)
        .map(|table| table.files)
        .unwrap_or_default();
    let inputs: Vec<_> = live
        .iter()
        .filter(|file| planned.contains(&file.meta.path))
        .cloned()
        .collect();
    if inputs.len() != planned.len() {
        release(store, claim).await;
        return Ok(None);
    }
    Ok(Some(inputs))
}

/// Gives up a claim; one left behind expires.
async fn release<S: TableSignal>(store: &TableStore<S>, claim: &str) {
    if let Err(err) = store.release(claim).await {
        warn!(claim, error = %err, "could not release a claim; it expires");
    }
}

/// One retention sweep over every tenant of a store: removes wholly expired files from the
/// manifests and deletes those no reader holds. Returns (files, bytes) removed.
pub async fn sweep_store<S: TableSignal>(
    store: &TableStore<S>,
    policy: &RetentionPolicy,
    now_unix_nano: u64,
    delete_grace: Duration,
) -> Result<(u64, u64), StorageError> {
    let mut removed = (0, 0);
    for tenant in store.tenants() {
        let Some(cutoff) = policy.cutoff_unix_nano(&tenant, S::SIGNAL, now_unix_nano) else {
            continue;
        };
        let Some(table) = store.table_files(&tenant) else {
            continue;
        };
        let expired = expired_files(&table.manifest.files, cutoff);
        if expired.is_empty() {
            continue;
        }
        let claim = format!("retention/{tenant}/{}", S::SIGNAL.name());
        if !store.claim(&claim, CLAIM_TTL).await? {
            continue;
        }
        let num_files = expired.len() as u64;
        let bytes: u64 = expired.iter().map(|file| file.size_bytes).sum();
        let change = ManifestChange {
            remove: expired.iter().map(|file| file.path.clone()).collect(),
            ..ManifestChange::default()
        };
        let committed = store.commit(&tenant, change, delete_grace, |_| {}).await;
        release(store, &claim).await;
        match committed {
            Ok(_) => {
                info!(signal = S::SIGNAL.name(), tenant = %tenant, num_files, bytes, "retention removed expired files");
                removed.0 += num_files;
                removed.1 += bytes;
            }
            // A merge replaced some of them meanwhile: the next sweep sees the new files.
            Err(StorageError::Catalog(err)) => {
                warn!(signal = S::SIGNAL.name(), tenant = %tenant, error = %err, "retention sweep deferred");
            }
            Err(err) => return Err(err),
        }
    }
    let stats = store.stats();
    stats
        .retention_files_removed
        .fetch_add(removed.0, Ordering::Relaxed);
    stats
        .retention_bytes_removed
        .fetch_add(removed.1, Ordering::Relaxed);
    store.delete_unreferenced().await;
    Ok(removed)
}

thread_local! {
    /// Set on the compaction thread: only there do merges drop their priority.
    static COMPACTOR_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the compaction thread.
pub fn mark_compactor_thread() {
    COMPACTOR_THREAD.set(true);
}

/// While alive on the compaction thread, the thread runs only when no other thread wants the
/// CPU (Linux `SCHED_IDLE`; nice 19 where that is refused): the CPU-heavy part of a merge yields
/// to ingest and queries. Everything that takes locks ingest needs (manifest commits) runs
/// outside it, at normal priority, so an idle thread never holds them while others wait.
pub struct IdleWhileMerging {
    active: bool,
}

impl IdleWhileMerging {
    /// Lowers the priority if this is the compaction thread; a no-op elsewhere.
    pub fn enter() -> Self {
        let active = COMPACTOR_THREAD.get();
        if active {
            set_scheduling(true);
        }
        Self { active }
    }
}

impl Drop for IdleWhileMerging {
    fn drop(&mut self) {
        if self.active {
            set_scheduling(false);
        }
    }
}

/// Idle (or nice 19) scheduling for the calling thread, or back to normal.
fn set_scheduling(idle: bool) {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        let policy = if idle {
            libc::SCHED_IDLE
        } else {
            libc::SCHED_OTHER
        };
        // SAFETY: sched_setscheduler reads `param` during the call only; pid 0 is the calling
        // thread.
        let switched = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if switched != 0 {
            // SAFETY: setpriority only reads its integer arguments; on Linux, PRIO_PROCESS
            // with who = 0 applies to the calling thread alone.
            let niced =
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, if idle { 19 } else { 0 }) };
            if niced != 0 {
                warn!("could not change the compaction thread's priority");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = idle;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Reservation;
    use crate::parquet_codec::test_fixtures::realistic_spans;
    use crate::spans::SpanStore;

    #[tokio::test]
    async fn a_sweep_racing_a_reader_deletes_only_after_the_reader_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = SpanStore::open_local(dir.path()).await;
        let tenant: crate::model::TenantId = "t".parse().unwrap();
        let spans = realistic_spans(200, 9);
        store.apply(1, tenant.clone(), spans.clone(), 1, Reservation::default());
        store.flush().await.unwrap();
        let reader = store.snapshot(&tenant);
        let path = store.objects().local_path(&reader.files[0].path).unwrap();
        let newest = spans.iter().map(|s| s.end_time_unix_nano).max().unwrap();
        let policy = RetentionPolicy::default();
        let now = newest + 8 * 86_400 * 1_000_000_000;
        let (files, bytes) = sweep_store(&store, &policy, now, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(files, 1);
        assert!(bytes > 0);
        assert_eq!(store.files(), (0, 0), "gone from the manifest");
        assert!(path.exists(), "still on disk while a reader holds it");
        assert_eq!(
            store
                .stats()
                .retention_files_removed
                .load(Ordering::Relaxed),
            1
        );
        drop(reader);
        assert_eq!(store.delete_unreferenced().await, 1);
        assert!(!path.exists());
        let fresh = sweep_store(&store, &policy, now, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(fresh, (0, 0));
    }
}
