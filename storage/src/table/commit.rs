//! Changing a table: every change of the live files (a flush adds, compaction replaces,
//! retention removes) is one manifest commit published to readers in the same step, and files
//! that leave the manifest are deleted once no reader holds them and their grace is over.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{LiveFile, PendingDelete, TableFiles, TableSignal, TableStore};
use crate::StorageError;
use crate::catalog::{Manifest, ManifestChange, TableKey};
use crate::model::TenantId;

/// How often a change is made again on top of other writers' newer versions before the
/// commit gives up (the caller retries later: a flush on its next tick).
const MAX_COMMIT_ATTEMPTS: usize = 8;

impl<S: TableSignal> TableStore<S> {
    pub(super) fn commit_lock(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .commit_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(tenant.clone()).or_default())
    }

    /// Applies one change to a tenant's manifest and to the live files readers see, in one
    /// step. Removed files are deleted after `delete_grace` once no reader holds them.
    /// `on_commit` runs under the same lock that publishes the change (a flush uses it to hide
    /// the committed records from the frozen buffer).
    pub async fn commit(
        &self,
        tenant: &TenantId,
        change: ManifestChange,
        delete_grace: Duration,
        on_commit: impl FnOnce(&mut FrozenView<'_>),
    ) -> Result<Arc<Manifest>, StorageError> {
        let lock = self.commit_lock(tenant);
        let _serial = lock.lock().await;
        let table = TableKey {
            tenant: tenant.clone(),
            signal: S::SIGNAL,
        };
        let mut base = self
            .table_files(tenant)
            .map(|table| table.manifest)
            .unwrap_or_else(|| Arc::new(Manifest::empty(&table)));
        let mut attempts = 0;
        let next = loop {
            attempts += 1;
            let err = match self.catalog.commit(&table, &base, &change).await {
                Ok(next) => break next,
                Err(err) => err,
            };
            // The outcome may be unknown (the version may be stored although an error came
            // back) or another writer (another node) moved the table on: read what the
            // catalog holds now, so the files are never deleted under a manifest that lists
            // them and later commits start from the current version.
            let current = match self.catalog.load(&table).await {
                Ok(current) => current,
                Err(reload) => {
                    return Err(StorageError::CommitOutcomeUnknown {
                        table: table.to_string(),
                        reason: format!("{err}; reading the manifest back: {reload}"),
                    });
                }
            };
            let Some(current) = current.filter(|current| current.version > base.version) else {
                return Err(err.into());
            };
            if change_applied(&current, &change) {
                break current;
            }
            let current = Arc::new(current);
            // Another node's flush or compaction came first: a change that still applies
            // (its files to remove are still live) is made again on top of theirs.
            let still_applies = current.apply(&change).is_ok();
            self.publish(tenant, Arc::clone(&current), None, |_| {});
            if !still_applies || attempts >= MAX_COMMIT_ATTEMPTS {
                return Err(err.into());
            }
            base = current;
        };
        let next = Arc::new(next);
        let ours = Removed {
            paths: &change.remove,
            delete_grace,
        };
        self.publish(tenant, Arc::clone(&next), Some(ours), on_commit);
        Ok(next)
    }

    /// Makes `manifest` what readers of `tenant` see (reusing the entries of files that stay
    /// live), and queues the files this node's change removed for deletion. Files another
    /// writer removed are that writer's to delete, after its grace.
    pub(super) fn publish(
        &self,
        tenant: &TenantId,
        manifest: Arc<Manifest>,
        removed: Option<Removed<'_>>,
        on_commit: impl FnOnce(&mut FrozenView<'_>),
    ) {
        let mut state = self.lock();
        let previous: Vec<Arc<LiveFile>> = state
            .tables
            .get(tenant)
            .map(|table| table.files.iter().cloned().collect())
            .unwrap_or_default();
        let live: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let (kept, gone): (Vec<_>, Vec<_>) = previous
            .into_iter()
            .partition(|file| live.contains(file.meta.path.as_str()));
        let kept_paths: HashSet<String> = kept.iter().map(|f| f.meta.path.clone()).collect();
        let mut files = kept;
        files.extend(
            manifest
                .files
                .iter()
                .filter(|meta| !kept_paths.contains(&meta.path))
                .cloned()
                .map(LiveFile::new),
        );
        state
            .tables
            .insert(tenant.clone(), TableFiles::new(manifest, files));
        on_commit(&mut FrozenView {
            frozen: state.frozen.as_mut().map(|frozen| &mut frozen.committed),
            tenant,
        });
        drop(state);
        let Some(removed) = removed else {
            return;
        };
        let ours: HashSet<&str> = removed.paths.iter().map(String::as_str).collect();
        let gone: Vec<_> = gone
            .into_iter()
            .filter(|file| ours.contains(file.meta.path.as_str()))
            .collect();
        if !gone.is_empty() {
            let not_before = Instant::now() + removed.delete_grace;
            let mut pending = self
                .pending_deletes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.extend(
                gone.into_iter()
                    .map(|file| PendingDelete { file, not_before }),
            );
        }
    }

    /// Deletes removed files that no reader holds any more and whose grace is over; returns
    /// how many were deleted.
    pub async fn delete_unreferenced(&self) -> usize {
        let due: Vec<Arc<LiveFile>> = {
            let mut pending = self
                .pending_deletes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let (due, waiting): (Vec<_>, Vec<_>) = pending.drain(..).partition(|entry| {
                // Only this list holds it: no snapshot can reach it any more.
                Arc::strong_count(&entry.file) == 1 && entry.not_before <= now
            });
            *pending = waiting;
            due.into_iter().map(|entry| entry.file).collect()
        };
        let mut deleted = 0;
        for file in due {
            let paths: Vec<object_store::path::Path> = file
                .meta
                .object_paths()
                .map(object_store::path::Path::from)
                .collect();
            self.footers.forget(&file.path);
            self.id_filters.forget(&file.path);
            self.series_indexes.forget(&file.path);
            self.trace_summary_footers.forget(&file.path);
            let mut failed = false;
            for path in &paths {
                if let Err(err) = self.objects.delete(path).await {
                    warn!(path = %path, error = %err, "could not delete a removed file; will retry");
                    failed = true;
                }
            }
            if failed {
                let mut pending = self
                    .pending_deletes
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                pending.push(PendingDelete {
                    file,
                    not_before: Instant::now() + Duration::from_secs(10),
                });
            } else {
                deleted += 1;
            }
        }
        self.stats
            .files_deleted
            .fetch_add(deleted as u64, Ordering::Relaxed);
        deleted
    }

    /// Files removed from manifests but not yet deleted.
    pub fn pending_deletes(&self) -> usize {
        self.pending_deletes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// The files a commit of this node removed, deleted after their grace.
pub(super) struct Removed<'a> {
    pub(super) paths: &'a [String],
    pub(super) delete_grace: Duration,
}

/// Whether `manifest` holds `change`: every added file listed, every removed one gone.
fn change_applied(manifest: &Manifest, change: &ManifestChange) -> bool {
    let live: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    change
        .add
        .iter()
        .all(|file| live.contains(file.path.as_str()))
        && change
            .remove
            .iter()
            .all(|path| !live.contains(path.as_str()))
}

/// What a commit's `on_commit` may change: whether the frozen buffer still shows a tenant.
pub struct FrozenView<'a> {
    frozen: Option<&'a mut HashSet<TenantId>>,
    tenant: &'a TenantId,
}

impl FrozenView<'_> {
    /// Hides the tenant's part of the frozen buffer: its records are in the committed files.
    pub fn mark_committed(&mut self) {
        if let Some(committed) = self.frozen.as_mut() {
            committed.insert(self.tenant.clone());
        }
    }
}
