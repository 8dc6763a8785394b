//! The WAL writer thread: group commit (one write and one fsync per group of waiting appends),
//! then hands each record to the applier in LSN order, then acknowledges.
//!
//! It runs on a dedicated OS thread so fsync never blocks the async runtime. A failed write or
//! fsync (a full disk, an I/O error) fails that group, which nobody was told was durable: the
//! segment is cut back to the end of the last fsynced group (the kernel may have dropped the
//! failed pages, so nothing after it is trusted) and the log turns degraded. While degraded,
//! appends are refused at once as retryable, except one probe group per second, which is
//! written normally: when it succeeds (space came back) the log is healthy again, with no
//! restart.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::record::{Lsn, WalEntry, encode_record};
use super::segment::{SEGMENT_MAGIC, create_segment};
use super::{WalConfig, WalError, WalStats};

/// How often a degraded log tries a write again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The file operations the writer needs from a segment (a seam for injected I/O faults).
pub trait SegmentWrite: Send {
    /// Appends bytes.
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes the appended bytes durable.
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// Cuts the segment back to `len` bytes and continues writing there, durably.
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()>;
}

impl SegmentWrite for File {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }

    fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len))?;
        File::sync_data(self)
    }
}

/// Creates the segment that starts at an LSN.
pub type SegmentOpener = Box<dyn Fn(&Path, Lsn) -> Result<Box<dyn SegmentWrite>, WalError> + Send>;

/// The real segments: files in the WAL directory.
pub fn file_segments() -> SegmentOpener {
    Box::new(|dir, first_lsn| {
        create_segment(dir, first_lsn).map(|file| Box::new(file) as Box<dyn SegmentWrite>)
    })
}

struct Degraded {
    reason: String,
    next_probe: Instant,
    /// The segment still holds bytes of a failed group: cut them before writing.
    needs_repair: bool,
}

/// Called for each durable record, in LSN order, before its append is acknowledged.
pub type Applier<A> = Box<dyn FnMut(Lsn, A) + Send>;

pub(super) enum Command<A> {
    Append {
        entry: WalEntry,
        attachment: A,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Rotate {
        reply: oneshot::Sender<Result<(), WalError>>,
    },
    Shutdown,
}

struct PendingAppend<A> {
    lsn: Lsn,
    attachment: A,
    reply: oneshot::Sender<Result<Lsn, WalError>>,
}

pub(super) struct Writer<A> {
    dir: PathBuf,
    config: WalConfig,
    open_segment: SegmentOpener,
    file: Box<dyn SegmentWrite>,
    /// Bytes of the current segment that are durable (the end of the last fsynced group).
    segment_bytes: u64,
    next_lsn: Lsn,
    applier: Applier<A>,
    stats: Arc<WalStats>,
    degraded: Option<Degraded>,
    buffer: Vec<u8>,
}

impl<A: Send + 'static> Writer<A> {
    pub(super) fn new(
        config: WalConfig,
        next_lsn: Lsn,
        applier: Applier<A>,
        stats: Arc<WalStats>,
        open_segment: SegmentOpener,
    ) -> Result<Self, WalError> {
        let dir = config.dir.clone();
        let file = open_segment(&dir, next_lsn)?;
        Ok(Self {
            dir,
            config,
            open_segment,
            file,
            segment_bytes: SEGMENT_MAGIC.len() as u64,
            next_lsn,
            applier,
            stats,
            degraded: None,
            buffer: Vec::new(),
        })
    }

    /// Whether appends must be refused now without trying (degraded, and no probe due).
    fn refusing(&self) -> Option<String> {
        self.degraded
            .as_ref()
            .filter(|degraded| Instant::now() < degraded.next_probe)
            .map(|degraded| degraded.reason.clone())
    }

    fn set_degraded(&mut self, reason: String, needs_repair: bool) {
        *self
            .stats
            .degraded_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        self.degraded = Some(Degraded {
            reason,
            next_probe: Instant::now() + PROBE_INTERVAL,
            needs_repair,
        });
    }

    fn set_healthy(&mut self) {
        if self.degraded.take().is_some() {
            info!("WAL writes succeed again; appends accepted");
            *self
                .stats
                .degraded_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The thread body: runs until a shutdown command or until every sender is gone.
    pub(super) fn run(mut self, mut receiver: mpsc::Receiver<Command<A>>) {
        let mut group: Vec<Command<A>> = Vec::new();
        while let Some(first) = receiver.blocking_recv() {
            group.push(first);
            let mut group_bytes = 0usize;
            while group_bytes < self.config.max_group_bytes && group.len() < 4096 {
                match receiver.try_recv() {
                    Ok(command) => {
                        if let Command::Append { entry, .. } = &command {
                            group_bytes += entry.encoded_len();
                        }
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            if self.process(&mut group) {
                info!(next_lsn = self.next_lsn, "WAL writer stopped");
                return;
            }
        }
    }

    /// Handles one group; returns true on shutdown.
    fn process(&mut self, group: &mut Vec<Command<A>>) -> bool {
        let mut pending: Vec<PendingAppend<A>> = Vec::with_capacity(group.len());
        let mut shutdown = false;
        for command in group.drain(..) {
            match command {
                Command::Append {
                    entry,
                    attachment,
                    reply,
                } => {
                    if let Some(reason) = self.refusing() {
                        // The receiver may have given up waiting; nothing else to tell.
                        let _ = reply.send(Err(WalError::Unavailable(reason)));
                        continue;
                    }
                    let lsn = self.next_lsn;
                    self.next_lsn += 1;
                    encode_record(lsn, &entry, &mut self.buffer);
                    pending.push(PendingAppend {
                        lsn,
                        attachment,
                        reply,
                    });
                }
                Command::Rotate { reply } => {
                    self.commit(&mut pending);
                    let result = self.rotate();
                    let _ = reply.send(result);
                }
                Command::Shutdown => shutdown = true,
            }
        }
        self.commit(&mut pending);
        if !shutdown
            && self.segment_bytes >= self.config.segment_max_bytes
            && let Err(err) = self.rotate()
        {
            error!(error = %err, "WAL segment rotation failed");
        }
        shutdown
    }

    /// Writes and fsyncs the buffered records, applies them in order, acknowledges them.
    fn commit(&mut self, pending: &mut Vec<PendingAppend<A>>) {
        if pending.is_empty() {
            return;
        }
        let repaired = match &self.degraded {
            Some(degraded) if degraded.needs_repair => self.file.truncate_to(self.segment_bytes),
            _ => Ok(()),
        };
        let written = repaired
            .and_then(|()| self.file.write_all(&self.buffer))
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.set_healthy();
                self.segment_bytes += self.buffer.len() as u64;
                self.stats
                    .bytes_written
                    .fetch_add(self.buffer.len() as u64, Ordering::Relaxed);
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                self.buffer.clear();
                for append in pending.drain(..) {
                    (self.applier)(append.lsn, append.attachment);
                    // A caller that stopped waiting still has its data durable and applied.
                    let _ = append.reply.send(Ok(append.lsn));
                }
            }
            Err(err) => {
                let reason = format!("WAL writes fail in {}: {err}", self.dir.display());
                if self.degraded.is_none() {
                    error!(error = %reason, "WAL write failed; refusing appends until a write succeeds");
                }
                // Nothing of this group was acknowledged: cut its bytes (the kernel may have
                // dropped its pages), hand its LSNs out again, and tell its writers to retry.
                let needs_repair = self.file.truncate_to(self.segment_bytes).is_err();
                self.set_degraded(reason.clone(), needs_repair);
                self.buffer.clear();
                if let Some(first) = pending.first() {
                    self.next_lsn = first.lsn;
                }
                for append in pending.drain(..) {
                    let _ = append
                        .reply
                        .send(Err(WalError::Unavailable(reason.clone())));
                }
            }
        }
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        if let Some(degraded) = &self.degraded {
            return Err(WalError::Unavailable(degraded.reason.clone()));
        }
        if self.segment_bytes == SEGMENT_MAGIC.len() as u64 {
            return Ok(()); // the current segment is still empty
        }
        self.file = (self.open_segment)(&self.dir, self.next_lsn)?;
        self.segment_bytes = SEGMENT_MAGIC.len() as u64;
        self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
