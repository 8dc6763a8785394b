//! The write-ahead log: accepted exports are durable here before they are acknowledged.
//!
//! Segmented files of framed, checksummed records ([`record`]), written by one thread with group
//! commit ([`writer`]), replayed on start past the checkpoint with torn tails repaired
//! ([`segment`]), and deleted once every signal has flushed past them.

pub mod record;
pub mod segment;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

pub use record::{Lsn, WalEntry};
pub use writer::{Applier, SegmentOpener, SegmentWrite, file_segments};
use writer::{Command, Writer};

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("WAL {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writes fail (a full disk, an I/O error); appends are refused until one succeeds again.
    #[error("{0}; retry later")]
    Unavailable(String),
    /// The writer has stopped (shutdown).
    #[error("WAL is closed")]
    Closed,
}

impl WalError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Directory of the segments.
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_max_bytes: u64,
    /// Appends that may wait for the writer thread.
    pub queue_capacity: usize,
    /// Upper bound of bytes written per group commit.
    pub max_group_bytes: usize,
}

/// Counters for self-metrics.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Bytes appended since start.
    pub bytes_written: AtomicU64,
    /// fsync calls since start (one per group commit).
    pub fsyncs: AtomicU64,
    /// Records appended since start.
    pub records: AtomicU64,
    /// Segments created since start.
    pub segments_created: AtomicU64,
    /// Why writes fail, while they do.
    pub degraded_reason: Mutex<Option<String>>,
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    /// Records handed to the callback.
    pub records_replayed: u64,
    /// Records skipped because a checkpoint covers them.
    pub records_skipped: u64,
    /// Segments whose tail had to be cut.
    pub segments_repaired: u64,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
}

/// Reads the log segment by segment, in LSN order, so the caller can flush between segments
/// and replay a log larger than memory. Torn and corrupt tails are cut off with a warning.
pub struct Replay {
    segments: std::collections::VecDeque<(Lsn, PathBuf)>,
    stats: ReplayStats,
}

impl Replay {
    /// Lists the segments of `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, WalError> {
        std::fs::create_dir_all(dir).map_err(|err| WalError::io(dir, err))?;
        Ok(Self {
            segments: segment::list_segments(dir)?.into(),
            stats: ReplayStats {
                next_lsn: 1,
                ..ReplayStats::default()
            },
        })
    }

    /// The records of the next segment, or `None` when all were read.
    pub fn next_segment(&mut self) -> Option<Result<Vec<(Lsn, WalEntry)>, WalError>> {
        let (first_lsn, path) = self.segments.pop_front()?;
        self.stats.next_lsn = self.stats.next_lsn.max(first_lsn);
        let scan = match segment::read_segment(&path) {
            Ok(scan) => scan,
            Err(err) => return Some(Err(err)),
        };
        if scan.truncated {
            self.stats.segments_repaired += 1;
        }
        let mut records = Vec::with_capacity(scan.records.len());
        for (lsn, entry) in scan.records {
            if lsn < self.stats.next_lsn {
                warn!(lsn, path = %path.display(), "out-of-order WAL record skipped");
                continue;
            }
            self.stats.next_lsn = lsn + 1;
            records.push((lsn, entry));
        }
        Some(Ok(records))
    }

    /// What was read so far; `next_lsn` is final once every segment was read.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }
}

/// Reads every record in `dir` in LSN order and hands those that `wanted` accepts to `apply`.
pub fn replay(
    dir: &Path,
    mut wanted: impl FnMut(Lsn, &WalEntry) -> bool,
    mut apply: impl FnMut(Lsn, WalEntry),
) -> Result<ReplayStats, WalError> {
    let mut reader = Replay::open(dir)?;
    let mut skipped = 0;
    let mut replayed = 0;
    while let Some(records) = reader.next_segment() {
        for (lsn, entry) in records? {
            if wanted(lsn, &entry) {
                apply(lsn, entry);
                replayed += 1;
            } else {
                skipped += 1;
            }
        }
    }
    Ok(ReplayStats {
        records_replayed: replayed,
        records_skipped: skipped,
        ..reader.stats()
    })
}

/// Deletes segments of `dir` whose records are all at or below `checkpoint`; never the
/// newest one. Blocking file-system work: call from a blocking thread.
pub fn remove_segments_through(dir: &Path, checkpoint: Lsn) -> Result<usize, WalError> {
    let segments = segment::list_segments(dir)?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        let (_, path) = &pair[0];
        let (next_first_lsn, _) = pair[1];
        if next_first_lsn <= checkpoint.saturating_add(1) {
            std::fs::remove_file(path).map_err(|err| WalError::io(path, err))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The running log. `A` is what travels with each record to the applier (decoded data).
pub struct Wal<A> {
    sender: mpsc::Sender<Command<A>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<WalStats>,
}

impl<A: Send + 'static> Wal<A> {
    /// Starts the writer thread with a fresh segment at `next_lsn` (from [`replay`]).
    pub fn start(config: WalConfig, next_lsn: Lsn, applier: Applier<A>) -> Result<Self, WalError> {
        Self::start_with(config, next_lsn, applier, file_segments())
    }

    /// [`Self::start`] with segments made by `open_segment` (tests inject I/O faults).
    pub fn start_with(
        config: WalConfig,
        next_lsn: Lsn,
        applier: Applier<A>,
        open_segment: SegmentOpener,
    ) -> Result<Self, WalError> {
        let stats = Arc::new(WalStats::default());
        let dir = config.dir.clone();
        let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let writer = Writer::new(config, next_lsn, applier, Arc::clone(&stats), open_segment)?;
        let thread = std::thread::Builder::new()
            .name("skewer-wal".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|err| WalError::io(&dir, err))?;
        info!(dir = %dir.display(), next_lsn, "WAL started");
        Ok(Self {
            sender,
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    /// Appends durably; returns once the record is fsynced and applied.
    pub async fn append(&self, entry: WalEntry, attachment: A) -> Result<Lsn, WalError> {
        let (reply, response) = oneshot::channel();
        self.sender
            .send(Command::Append {
                entry,
                attachment,
                reply,
            })
            .await
            .map_err(|_| WalError::Closed)?;
        response.await.map_err(|_| WalError::Closed)?
    }

    /// Closes the current segment (if it holds records) so older segments can be deleted.
    pub async fn rotate(&self) -> Result<(), WalError> {
        let (reply, response) = oneshot::channel();
        self.sender
            .send(Command::Rotate { reply })
            .await
            .map_err(|_| WalError::Closed)?;
        response.await.map_err(|_| WalError::Closed)?
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }

    /// Why writes fail, while they do.
    pub fn degraded_reason(&self) -> Option<String> {
        self.stats
            .degraded_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the writer after the appends already queued ahead of this call, and waits for it.
    pub async fn close(&self) {
        // If the writer is already gone, the send fails and there is nothing to stop.
        let _ = self.sender.send(Command::Shutdown).await;
        let handle = self.thread.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            let joined = tokio::task::spawn_blocking(move || handle.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                warn!("WAL writer thread ended abnormally");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signal;
    use bytes::Bytes;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    fn config(dir: &Path) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            segment_max_bytes: 256,
            queue_capacity: 16,
            max_group_bytes: 1 << 20,
        }
    }

    fn entry(i: u32) -> WalEntry {
        WalEntry {
            signal: Signal::Traces,
            payload_format: 1,
            tenant: "default".parse().unwrap(),
            body: Bytes::from(format!("payload-{i}").repeat(5)),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_are_applied_in_order_replayed_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let applied = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&applied);
        let wal: Wal<u32> = Wal::start(
            config(dir.path()),
            1,
            Box::new(move |lsn, i| sink.lock().unwrap().push((lsn, i))),
        )
        .unwrap();
        let wal = Arc::new(wal);
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            let wal = Arc::clone(&wal);
            tasks.push(tokio::spawn(async move {
                wal.append(entry(i), i).await.unwrap()
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let applied = applied.lock().unwrap().clone();
        assert_eq!(applied.len(), 40);
        assert!(
            applied.windows(2).all(|w| w[0].0 + 1 == w[1].0),
            "LSNs applied in order"
        );
        assert!(wal.stats().fsyncs.load(Ordering::Relaxed) <= 40);
        wal.close().await;
        assert!(
            wal.append(entry(99), 99).await.is_err(),
            "closed WAL refuses appends"
        );

        let segments_before = segment::list_segments(dir.path()).unwrap().len();
        assert!(segments_before > 1, "small segment size forces rotation");
        let mut seen = Vec::new();
        let stats = replay(dir.path(), |lsn, _| lsn > 10, |lsn, e| seen.push((lsn, e))).unwrap();
        assert_eq!(stats.records_skipped, 10);
        assert_eq!(seen.len(), 30);
        assert_eq!(stats.next_lsn, 41);
        assert_eq!(seen[0].1, entry(applied[10].1));

        let removed = remove_segments_through(dir.path(), 40).unwrap();
        assert_eq!(removed, segments_before - 1);
        let mut rest = 0;
        replay(dir.path(), |_, _| true, |_, _| rest += 1).unwrap();
        assert!(rest < 40);
    }

    use std::sync::atomic::{AtomicU32, Ordering};

    /// A segment file whose next fsyncs fail on demand, like a disk that filled up.
    struct FaultySegment {
        file: std::fs::File,
        failing_syncs: Arc<AtomicU32>,
    }

    impl SegmentWrite for FaultySegment {
        fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            SegmentWrite::write_all(&mut self.file, bytes)
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            let failing = self.failing_syncs.load(Ordering::SeqCst);
            if failing > 0 {
                self.failing_syncs.store(failing - 1, Ordering::SeqCst);
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            SegmentWrite::sync_data(&mut self.file)
        }
        fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
            self.file.truncate_to(len)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fsync_refuses_appends_until_a_probe_succeeds_and_loses_nothing_acked() {
        let dir = tempfile::tempdir().unwrap();
        let failing_syncs = Arc::new(AtomicU32::new(0));
        let opener_faults = Arc::clone(&failing_syncs);
        let opener: SegmentOpener = Box::new(move |dir, lsn| {
            Ok(Box::new(FaultySegment {
                file: segment::create_segment(dir, lsn)?,
                failing_syncs: Arc::clone(&opener_faults),
            }))
        });
        let applied = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&applied);
        let wal: Wal<u32> = Wal::start_with(
            WalConfig {
                segment_max_bytes: 1 << 20,
                ..config(dir.path())
            },
            1,
            Box::new(move |lsn, i| sink.lock().unwrap().push((lsn, i))),
            opener,
        )
        .unwrap();
        assert_eq!(wal.append(entry(1), 1).await.unwrap(), 1);
        failing_syncs.store(1, Ordering::SeqCst);
        let failed = wal.append(entry(2), 2).await.unwrap_err();
        assert!(matches!(failed, WalError::Unavailable(_)), "{failed}");
        assert!(wal.degraded_reason().unwrap().contains("os error 28"));
        // Within the probe interval appends are refused without touching the disk.
        assert!(matches!(
            wal.append(entry(3), 3).await,
            Err(WalError::Unavailable(_))
        ));
        assert_eq!(failing_syncs.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            wal.append(entry(4), 4).await.unwrap(),
            2,
            "the failed LSN is reused"
        );
        assert!(wal.degraded_reason().is_none());
        wal.close().await;
        assert_eq!(
            *applied.lock().unwrap(),
            [(1, 1), (2, 4)],
            "only acknowledged records applied"
        );
        let mut replayed = Vec::new();
        replay(dir.path(), |_, _| true, |lsn, e| replayed.push((lsn, e))).unwrap();
        assert_eq!(
            replayed,
            [(1, entry(1)), (2, entry(4))],
            "the failed group left no bytes"
        );
    }
}
