//! Replaying the WAL into the stores at start, flushing between segments when buffers grow.

use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Applied, Stores, WalDecoder};
use crate::StorageError;
use crate::budget::MemoryBudget;
use crate::checkpoint::Checkpoint;
use crate::config::StorageConfig;
use crate::model::{Signal, SignalBatch};
use crate::wal::{Lsn, Replay};

/// Replays the WAL into the stores, flushing between segments when buffers grow large.
pub(super) async fn replay(
    config: &StorageConfig,
    wal_dir: &Path,
    stores: &Arc<Stores>,
    budget: &Arc<MemoryBudget>,
    decoder: &Arc<dyn WalDecoder>,
    checkpoint: &mut Checkpoint,
) -> Result<Lsn, StorageError> {
    let mut reader = Replay::open(wal_dir)?;
    let mut replayed = 0u64;
    loop {
        let (returned, segment) = tokio::task::spawn_blocking(move || {
            let segment = reader.next_segment();
            (reader, segment)
        })
        .await?;
        reader = returned;
        let Some(records) = segment else { break };
        for (lsn, entry) in records? {
            if lsn <= checkpoint.get(entry.signal)
                || stores.already_flushed(lsn, entry.signal, &entry.tenant)
            {
                continue;
            }
            let mut batch = match decoder.decode(&entry) {
                Ok(batch) => batch,
                Err(reason) => {
                    warn!(lsn, %reason, "undecodable WAL record skipped");
                    continue;
                }
            };
            if let SignalBatch::Logs(records) = &mut batch {
                stores.logs.drop_committed(lsn, &entry.tenant, records);
            }
            // Replayed data was accepted before: never refuse it, but account for it.
            let reservation = budget.reserve_unchecked(batch.estimated_bytes());
            replayed += 1;
            stores.apply(
                lsn,
                Applied {
                    tenant: entry.tenant,
                    batch,
                    reservation,
                },
            );
        }
        let over = |(_, bytes): (usize, usize)| bytes >= config.flush_max_bytes;
        if over(stores.spans.buffered()) {
            checkpoint.advance(Signal::Traces, stores.spans.flush().await?);
        }
        if over(stores.metrics.buffered()) {
            checkpoint.advance(Signal::Metrics, stores.metrics.flush().await?);
        }
        if over(stores.logs.buffered()) {
            checkpoint.advance(Signal::Logs, stores.logs.flush().await?);
        }
    }
    let stats = reader.stats();
    // Never hand out an LSN a checkpoint, a manifest or a log commit already covers (a
    // segment cut to nothing, or a restored backup whose files are newer than its WAL, could
    // otherwise lower the next LSN), or new records would be skipped on the next replay.
    let covered = checkpoint
        .traces
        .max(checkpoint.logs)
        .max(checkpoint.metrics)
        .max(stores.spans.max_flushed_lsn())
        .max(stores.metrics.max_flushed_lsn())
        .max(stores.logs.max_committed_lsn());
    let next_lsn = stats.next_lsn.max(covered + 1);
    info!(
        records_replayed = replayed,
        segments_repaired = stats.segments_repaired,
        next_lsn,
        "WAL replayed"
    );
    Ok(next_lsn)
}
