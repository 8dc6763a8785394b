//! The WAL writer thread: group commit (one write and one fsync per group of waiting appends),
//! then hands each record to the applier in LSN order, then acknowledges.
//!
//! It runs on a dedicated OS thread so fsync never blocks the async runtime. After a failed
//! write or fsync the log refuses further appends: the kernel may have dropped dirty pages,
//! and acknowledging on top of them would break the durability promise.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::record::{Lsn, WalEntry, encode_record};
use super::segment::{SEGMENT_MAGIC, create_segment};
use super::{WalConfig, WalError, WalStats};

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
    file: File,
    segment_bytes: u64,
    next_lsn: Lsn,
    applier: Applier<A>,
    stats: Arc<WalStats>,
    poisoned: Option<String>,
    buffer: Vec<u8>,
}

impl<A: Send + 'static> Writer<A> {
    pub(super) fn new(
        config: WalConfig,
        next_lsn: Lsn,
        applier: Applier<A>,
        stats: Arc<WalStats>,
    ) -> Result<Self, WalError> {
        let dir = config.dir.clone();
        let file = create_segment(&dir, next_lsn)?;
        Ok(Self {
            dir,
            config,
            file,
            segment_bytes: SEGMENT_MAGIC.len() as u64,
            next_lsn,
            applier,
            stats,
            poisoned: None,
            buffer: Vec::new(),
        })
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
                    if let Some(reason) = &self.poisoned {
                        // The receiver may have given up waiting; nothing else to tell.
                        let _ = reply.send(Err(WalError::Poisoned(reason.clone())));
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
        let written = self
            .file
            .write_all(&self.buffer)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
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
                let reason = format!("{}: {err}", self.dir.display());
                error!(error = %reason, "WAL write failed; refusing further appends");
                self.poisoned = Some(reason.clone());
                self.buffer.clear();
                for append in pending.drain(..) {
                    let _ = append.reply.send(Err(WalError::Poisoned(reason.clone())));
                }
            }
        }
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        if let Some(reason) = &self.poisoned {
            return Err(WalError::Poisoned(reason.clone()));
        }
        if self.segment_bytes == SEGMENT_MAGIC.len() as u64 {
            return Ok(()); // the current segment is still empty
        }
        self.file = create_segment(&self.dir, self.next_lsn)?;
        self.segment_bytes = SEGMENT_MAGIC.len() as u64;
        self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
