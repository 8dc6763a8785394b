//! Quiet partitions' small segments merged: a day that is over, or a tenant that stopped
//! sending, has its small segments (and the smallest large one, up to 1.5M records,
//! `LogIndex::quiet_merge_candidates`) rewritten as one, which keeps each term once (a term
//! dictionary per segment repeats the common words and packs a small segment's unique terms
//! less densely; ~9% of the bytes at rest on the benchmark's load).
//!
//! Locking: the merge starts under the partition's read lock (as a commit adds: the writer
//! cannot close meanwhile) and runs with no lock held, beside commits and searches. It is
//! made searchable under the write lock, unless a commit holds records committed but not yet
//! shown (they are read from its frozen buffer until that commit reloads, which then shows
//! the merge too). Its writer is closed at once unless records came meanwhile.
//!
//! The storage's background task runs one merge at a time ([`LogStore::quiet_partitions`],
//! [`LogStore::start_quiet_merge`], [`QuietMerge::merged`], [`LogStore::finish_quiet_merge`])
//! and leaves a merge in flight at shutdown to end with the process: its files are deleted
//! when the partition's writer next opens.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::partitions::Partition;
use super::{CommitStep, LogStore, last_write};
use crate::error::StorageError;
use crate::logs::{LogIndex, LogIndexError, SegmentMerge};

/// A partition is merged again this long after a quiet merge at the earliest: a tenant that
/// sends in bursts does not have its day rewritten after every burst.
const QUIET_MERGE_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// A partition whose quiet merge failed is tried again after this long.
const FAILED_MERGE_RETRY: Duration = Duration::from_secs(600);
/// How long making a merge searchable waits for the partition's write lock without queueing
/// (searches would queue behind a waiting writer), and how often it tries meanwhile; then it
/// queues.
const WRITE_LOCK_PATIENCE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_millis(20));

/// A quiet merge started by [`LogStore::start_quiet_merge`].
pub struct QuietMerge {
    partition: Arc<Partition>,
    merge: SegmentMerge,
    segments: usize,
    written_before: Option<Instant>,
    started: Instant,
}

/// A quiet merge that has ended, to be made searchable ([`LogStore::finish_quiet_merge`]).
pub struct EndedQuietMerge {
    merge: QuietMergeFacts,
    result: Result<(), LogIndexError>,
}

/// What finishing a quiet merge needs to know of it.
struct QuietMergeFacts {
    partition: Arc<Partition>,
    segments: usize,
    written_before: Option<Instant>,
    started: Instant,
}

impl QuietMerge {
    fn split(self) -> (SegmentMerge, QuietMergeFacts) {
        let facts = QuietMergeFacts {
            partition: self.partition,
            segments: self.segments,
            written_before: self.written_before,
            started: self.started,
        };
        (self.merge, facts)
    }

    /// Waits for the merge to end, holding no lock.
    pub async fn merged(self) -> EndedQuietMerge {
        let (merge, facts) = self.split();
        EndedQuietMerge {
            result: merge.finished().await,
            merge: facts,
        }
    }

    /// Blocks until the merge ends, holding no lock.
    pub fn wait(self) -> EndedQuietMerge {
        let (merge, facts) = self.split();
        EndedQuietMerge {
            result: merge.wait(),
            merge: facts,
        }
    }
}

impl LogStore {
    /// The partitions to merge now: no records for the writer idle time since they were
    /// written or opened, not merged so within [`QUIET_MERGE_INTERVAL`] (nor failed within
    /// [`FAILED_MERGE_RETRY`]), not being dropped.
    pub fn quiet_partitions(&self) -> Vec<Arc<Partition>> {
        let partitions: Vec<Arc<Partition>> = self.partitions().values().cloned().collect();
        let dropping = self.dropping().clone();
        partitions
            .into_iter()
            .filter(|partition| {
                let quiet_since = last_write(partition).unwrap_or(partition.opened_at);
                quiet_since.elapsed() >= self.writer_idle
                    && partition
                        .quiet_merge_not_before()
                        .is_none_or(|at| Instant::now() >= at)
                    && !dropping.contains(&partition.key)
            })
            .collect()
    }

    /// Starts merging `partition`'s segments into one, if it has no writer (an open writer's
    /// own merges may hold segments: the idle writers' round closes it first) and its
    /// segments are worth merging (`LogIndex::quiet_merge_candidates`). Brief: under the
    /// partition's read lock.
    pub fn start_quiet_merge(
        &self,
        partition: &Arc<Partition>,
    ) -> Result<Option<QuietMerge>, StorageError> {
        let written_before = last_write(partition);
        let index = partition.index.read().unwrap_or_else(|p| p.into_inner());
        if index.has_writer() {
            return Ok(None);
        }
        let Some(segments) = index.quiet_merge_candidates()? else {
            return Ok(None);
        };
        let arena = self.reserve_arena(index.writer_memory_bytes());
        let started = Instant::now();
        let merge = match index.start_merge(&segments, arena) {
            Ok(merge) => merge,
            Err(err) => {
                self.quiet_merge_failed(partition, &err);
                return Err(err.into());
            }
        };
        Ok(Some(QuietMerge {
            partition: Arc::clone(partition),
            merge,
            segments: segments.len(),
            written_before,
            started,
        }))
    }

    /// Makes an ended merge searchable (see the module's locking), closes its writer unless
    /// records came meanwhile, and counts it. Blocking: takes the partition's write lock.
    pub fn finish_quiet_merge(&self, ended: EndedQuietMerge) {
        let EndedQuietMerge { merge, result } = ended;
        let partition = &merge.partition;
        let index = write_lock_patiently(partition);
        let committing =
            self.lock().frozen_progress.get(&partition.key) == Some(&CommitStep::Write);
        let result = match result {
            Ok(()) if !committing => index.show_merged(),
            other => other,
        };
        // Its arena goes back unless records came meanwhile (they keep using the writer, and
        // the idle writers' round closes it).
        let closed = if last_write(partition) == merge.written_before {
            index.close_writer()
        } else {
            Ok(())
        };
        drop(index);
        if let Err(err) = result.and(closed) {
            self.quiet_merge_failed(partition, &err);
            return;
        }
        partition.set_quiet_merge_not_before(Instant::now() + QUIET_MERGE_INTERVAL);
        let took = merge.started.elapsed();
        self.stats.merges.fetch_add(1, Ordering::Relaxed);
        self.stats
            .merge_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        info!(
            tenant = %partition.key.0,
            dir = %partition.dir.display(),
            segments = merge.segments,
            seconds = took.as_secs_f64(),
            "merged a quiet log partition's small segments"
        );
    }

    fn quiet_merge_failed(&self, partition: &Partition, err: &LogIndexError) {
        self.stats.merge_failures.fetch_add(1, Ordering::Relaxed);
        partition.set_quiet_merge_not_before(Instant::now() + FAILED_MERGE_RETRY);
        warn!(
            dir = %partition.dir.display(),
            error = %err,
            retry_seconds = FAILED_MERGE_RETRY.as_secs(),
            "merging a quiet log partition failed"
        );
    }

    /// Merges every quiet partition, one after the other, blocking (tests; the server's
    /// background task does the same with its shutdown in view).
    #[cfg(test)]
    pub(crate) fn merge_quiet_partitions(&self) {
        for partition in self.quiet_partitions() {
            if let Ok(Some(merge)) = self.start_quiet_merge(&partition) {
                self.finish_quiet_merge(merge.wait());
            }
        }
    }
}

/// The partition's write lock, tried for [`WRITE_LOCK_PATIENCE`] before queueing for it.
fn write_lock_patiently(partition: &Partition) -> std::sync::RwLockWriteGuard<'_, LogIndex> {
    let (patience, pause) = WRITE_LOCK_PATIENCE;
    let deadline = Instant::now() + patience;
    loop {
        match partition.index.try_write() {
            Ok(index) => return index,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return partition.index.write().unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}
