//! Quiet partitions merged into one segment: a day that is over, or a tenant that stopped
//! sending, is rewritten once as one segment, which keeps each term once (a term dictionary
//! per segment repeats the common words and packs a small segment's unique terms less
//! densely; ~10% of the bytes at rest on the benchmark's load) and is searched as one.
//!
//! Locking: the merge starts under the partition's read lock (as a commit adds: the writer
//! cannot close meanwhile) and runs with no lock held, beside commits and searches. It is
//! made searchable under the write lock, unless a commit holds records committed but not yet
//! shown (they are read from its frozen buffer until that commit reloads, which then shows
//! the merge too). Its writer is closed at once unless records came meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::partitions::Partition;
use super::{CommitStep, LogStore, last_write};
use crate::error::StorageError;

/// A partition is merged again this long after its last quiet merge at the earliest: a
/// tenant that sends in bursts does not have its day rewritten after every burst.
const QUIET_MERGE_INTERVAL: Duration = Duration::from_secs(6 * 3600);

impl LogStore {
    /// Merges into one segment each partition that has no writer and took no records for
    /// the writer idle time since it was written or opened, unless it was merged within
    /// [`QUIET_MERGE_INTERVAL`] or its segments are not worth it
    /// (`LogIndex::quiet_merge_candidates`). Blocking: one merge after the other.
    pub(super) fn merge_quiet_partitions(&self) {
        let partitions: Vec<Arc<Partition>> = self.partitions().values().cloned().collect();
        for partition in partitions {
            let quiet_since = last_write(&partition).unwrap_or(partition.opened_at);
            let merged_lately = partition
                .last_quiet_merge()
                .is_some_and(|at| at.elapsed() < QUIET_MERGE_INTERVAL);
            if quiet_since.elapsed() < self.writer_idle
                || merged_lately
                || self.dropping().contains(&partition.key)
            {
                continue;
            }
            let started = Instant::now();
            match self.merge_quiet_partition(&partition) {
                Ok(0) => {}
                Ok(segments) => {
                    let took = started.elapsed();
                    self.stats.merges.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .merge_micros
                        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                    info!(
                        tenant = %partition.key.0,
                        dir = %partition.dir.display(),
                        segments,
                        seconds = took.as_secs_f64(),
                        "merged a quiet log partition into one segment"
                    );
                }
                Err(err) => {
                    self.stats.merge_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        dir = %partition.dir.display(),
                        error = %err,
                        "merging a quiet log partition failed; it is tried again later"
                    );
                }
            }
        }
    }

    /// Merges `partition`'s segments into one if worth it; returns how many it merged (0:
    /// none).
    fn merge_quiet_partition(&self, partition: &Partition) -> Result<usize, StorageError> {
        let written_before = last_write(partition);
        let (merge, segments) = {
            let index = partition.index.read().unwrap_or_else(|p| p.into_inner());
            // An open writer's own merges may hold segments: it is closed first (a partition
            // that was written to since it went quiet waits for the next round).
            if index.has_writer() {
                return Ok(0);
            }
            let Some(segments) = index.quiet_merge_candidates()? else {
                return Ok(0);
            };
            partition.set_last_quiet_merge(Instant::now());
            let arena = self.reserve_arena(index.writer_memory_bytes());
            (index.start_merge(&segments, arena)?, segments.len())
        };
        let merged = merge.wait();
        let index = partition.index.write().unwrap_or_else(|p| p.into_inner());
        let committing =
            self.lock().frozen_progress.get(&partition.key) == Some(&CommitStep::Write);
        let shown = match merged {
            Ok(()) if !committing => index.show_merged(),
            other => other,
        };
        // Its arena goes back unless records came meanwhile (they keep using the writer, and
        // the idle writers' round closes it).
        if last_write(partition) == written_before {
            index.close_writer()?;
        }
        shown?;
        Ok(segments)
    }
}
