//! File summaries of a table store: written beside each new file, read back once per live
//! file, added up per manifest version, and joined with the buffers' summaries so a listing
//! sees acknowledged data at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::{FileSidecars, LiveFile, TableFiles, TableSignal, TableStore};
use crate::StorageError;
use crate::catalog::{DataFileMeta, FileSummary};
use crate::layout;
use crate::model::{TenantId, TraceId};
use crate::objects::Objects;
use crate::parquet_codec::CodecError;

impl TableFiles {
    /// Every file's summary added up, built once per manifest version. Files without one add
    /// nothing (they are rewritten with one by the next compaction pass).
    pub async fn summary(&self, objects: &Objects) -> Arc<FileSummary> {
        let files = Arc::clone(&self.files);
        self.summary
            .get_or_init(|| async move { Arc::new(add_up(files.iter(), objects).await) })
            .await
            .clone()
    }
}

impl<S: TableSignal> TableStore<S> {
    /// What one tenant's data holds: every live file's summary and the buffers'. Empty for a
    /// signal without summaries.
    pub async fn summary(&self, tenant: &TenantId) -> FileSummary {
        let (files, buffered) = {
            let state = self.lock();
            (
                state.tables.get(tenant).cloned(),
                buffered_summary(&state, tenant, None),
            )
        };
        let mut total = match files {
            Some(files) => FileSummary::clone(&*files.summary(&self.objects).await),
            None => FileSummary::default(),
        };
        total.merge(&buffered);
        total
    }

    /// What one tenant's records in `range` may hold: the summaries of the live files and the
    /// buffers whose time span meets it (a superset: a span meeting the range may hold
    /// records outside it). `None` when a
    /// file in the range has no summary, so its contents are unknown.
    pub async fn summary_in(
        &self,
        tenant: &TenantId,
        range: crate::scan::TimeRange,
    ) -> Option<FileSummary> {
        let (files, mut total) = {
            let state = self.lock();
            let files = state.tables.get(tenant).map(|t| Arc::clone(&t.files));
            (files, buffered_summary(&state, tenant, Some(range)))
        };
        let in_range = files
            .iter()
            .flat_map(|files| files.iter())
            .filter(|file| file.overlaps(range.start_unix_nano, range.end_unix_nano));
        for file in in_range {
            total.merge(&*file.summary(&self.objects).await?);
        }
        Some(total)
    }

    /// The traces holding a span that links to `trace_id`, among one tenant's live files and
    /// buffers whose time span meets `range`, and whether that is all of them (not when a
    /// file's links are unknown: written before links were kept, or too many).
    pub async fn traces_linking_to(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
        range: crate::scan::TimeRange,
    ) -> (BTreeSet<TraceId>, bool) {
        let (files, buffered) = {
            let state = self.lock();
            let files = state.tables.get(tenant).map(|t| Arc::clone(&t.files));
            (files, buffered_linking(&state, tenant, trace_id, range))
        };
        let (mut found, mut complete) = buffered;
        let in_range = files
            .iter()
            .flat_map(|files| files.iter())
            .filter(|file| file.overlaps(range.start_unix_nano, range.end_unix_nano));
        for file in in_range {
            match file.summary(&self.objects).await {
                Some(summary) => {
                    let (linking, all) = summary.traces_linking_to(trace_id);
                    found.extend(linking);
                    complete &= all;
                }
                None => complete = false,
            }
        }
        (found, complete)
    }

    /// The summaries of one tenant's live files whose time range meets `range`, added up
    /// (files only: buffered spans count once flushed).
    pub async fn files_summary_in(
        &self,
        tenant: &TenantId,
        range: crate::scan::TimeRange,
    ) -> FileSummary {
        let files = self.lock().tables.get(tenant).map(|t| Arc::clone(&t.files));
        let in_range = files
            .iter()
            .flat_map(|files| files.iter())
            .filter(|file| file.overlaps(range.start_unix_nano, range.end_unix_nano));
        add_up(in_range, &self.objects).await
    }

    /// Writes the sidecars of the new data file at `data_path` durably (each path noted in
    /// `written` first, so a failed write is cleaned up) and notes them in its manifest entry.
    pub(super) async fn put_sidecars(
        &self,
        data_path: &ObjectPath,
        sidecars: FileSidecars,
        meta: &mut DataFileMeta,
        written: &mut Vec<ObjectPath>,
    ) -> Result<(), StorageError> {
        if let Some(summary) = sidecars.summary {
            let path = layout::summary_path(data_path);
            written.push(path.clone());
            let bytes = serde_json::to_vec(&summary).map_err(|source| CodecError::Json {
                column: "summary".to_owned(),
                source,
            })?;
            self.objects.put(&path, Bytes::from(bytes)).await?;
            meta.summary_path = Some(path.to_string());
        }
        if let Some(bytes) = sidecars.index {
            let path = layout::index_path(S::SIGNAL, data_path);
            written.push(path.clone());
            self.objects.put(&path, bytes).await?;
            meta.index_path = Some(path.to_string());
        }
        Ok(())
    }
}

/// The summaries of what `tenant` holds in memory whose time span meets `range` (any, when
/// `None`): the active buffer and a frozen one whose flush has not committed yet.
fn buffered_summaries<'a, R>(
    state: &'a super::State<R>,
    tenant: &'a TenantId,
    range: Option<crate::scan::TimeRange>,
) -> impl Iterator<Item = &'a FileSummary> {
    let frozen = state
        .frozen
        .as_ref()
        .filter(|frozen| !frozen.committed.contains(tenant))
        .map(|frozen| &*frozen.buffer);
    std::iter::once(&state.active)
        .chain(frozen)
        .filter(
            move |buffer| match (range, buffer.summary_times.get(tenant)) {
                (Some(range), Some(&(first, last))) => {
                    first < range.end_unix_nano && last >= range.start_unix_nano
                }
                _ => true,
            },
        )
        .filter_map(|buffer| buffer.summaries.get(tenant))
}

/// The summary of what `tenant` holds in memory (see [`buffered_summaries`]), added up.
fn buffered_summary<R>(
    state: &super::State<R>,
    tenant: &TenantId,
    range: Option<crate::scan::TimeRange>,
) -> FileSummary {
    let mut buffered = FileSummary::default();
    for summary in buffered_summaries(state, tenant, range) {
        buffered.merge(summary);
    }
    buffered
}

/// [`TableStore::traces_linking_to`] over what `tenant` holds in memory.
fn buffered_linking<R>(
    state: &super::State<R>,
    tenant: &TenantId,
    trace_id: TraceId,
    range: crate::scan::TimeRange,
) -> (BTreeSet<TraceId>, bool) {
    let mut found = BTreeSet::new();
    let mut complete = true;
    for summary in buffered_summaries(state, tenant, Some(range)) {
        let (linking, all) = summary.traces_linking_to(trace_id);
        found.extend(linking);
        complete &= all;
    }
    (found, complete)
}

/// The summaries of `files` added up; a file without one adds nothing.
async fn add_up<'a>(
    files: impl Iterator<Item = &'a Arc<LiveFile>>,
    objects: &Objects,
) -> FileSummary {
    let mut total = FileSummary::default();
    for file in files {
        if let Some(summary) = file.summary(objects).await {
            total.merge(&summary);
        }
    }
    total
}
