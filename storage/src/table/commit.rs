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

impl<S: TableSignal> TableStore<S> {
    fn commit_lock(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
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
        let base = self
            .table_files(tenant)
            .map(|table| table.manifest)
            .unwrap_or_else(|| Arc::new(Manifest::empty(&table)));
        let next = Arc::new(
            self.catalog
                .commit(&table, &base, &change)
                .await
                .map_err(StorageError::from)?,
        );
        let mut state = self.lock();
        let previous: Vec<Arc<LiveFile>> = state
            .tables
            .get(tenant)
            .map(|table| table.files.iter().cloned().collect())
            .unwrap_or_default();
        let removed: HashSet<&str> = change.remove.iter().map(String::as_str).collect();
        let (gone, mut kept): (Vec<_>, Vec<_>) = previous
            .into_iter()
            .partition(|file| removed.contains(file.meta.path.as_str()));
        kept.extend(change.add.iter().cloned().map(LiveFile::new));
        kept.sort_by_key(|file| file.meta.min_time_unix_nano);
        state.tables.insert(
            tenant.clone(),
            TableFiles {
                manifest: Arc::clone(&next),
                files: Arc::new(kept),
            },
        );
        on_commit(&mut FrozenView {
            frozen: state.frozen.as_mut().map(|frozen| &mut frozen.committed),
            tenant,
        });
        drop(state);
        if !gone.is_empty() {
            let not_before = Instant::now() + delete_grace;
            let mut pending = self
                .pending_deletes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.extend(
                gone.into_iter()
                    .map(|file| PendingDelete { file, not_before }),
            );
        }
        Ok(next)
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
            let mut paths = vec![file.path.clone()];
            if let Some(filter) = &file.meta.trace_id_filter {
                paths.push(object_store::path::Path::from(filter.path.as_str()));
            }
            self.footers.forget(&file.path);
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
