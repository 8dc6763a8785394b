//! Delivery to one webhook receiver: its own bounded queue and task (a dead receiver delays no
//! other), each notification written to the outbox before it is queued and removed once the
//! receiver took it (at least once across restarts), a stable `Idempotency-Key` per
//! notification, an optional HMAC-SHA256 signature, a timeout per request, retries with
//! exponential backoff and full jitter on connection errors, timeouts, 5xx, 408 and 429 (other
//! 4xx are dropped: the receiver refuses the message itself), and a circuit breaker that stops
//! calling a receiver after consecutive failures and probes it again after a cool-down.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Skewer-Signature";
/// The header that names a notification, the same on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Consecutive failures that open a receiver's breaker.
const BREAKER_FAILURES: u32 = 5;
/// The first cool-down of an open breaker; doubled while probes fail, up to the maximum.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(30);
const BREAKER_MAX_COOL_DOWN: Duration = Duration::from_secs(300);
/// The first retry's backoff ceiling; doubled per attempt up to the maximum.
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A receiver as configured.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    /// Its name.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// HMAC key for the signature header.
    pub secret: Option<Vec<u8>>,
    /// Extra headers (authorization…).
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts before a notification is given up.
    pub max_attempts: u32,
    /// Whether resolved alerts are sent.
    pub send_resolved: bool,
    /// Most notifications waiting (one per group at most).
    pub queue_capacity: usize,
    /// A CA certificate (PEM) trusted beside the bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// A notification as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The idempotency key.
    pub key: String,
    /// The group it is about (a newer one replaces it while undelivered).
    pub group_key: String,
    /// When it was made, Unix ms.
    pub created_ms: i64,
    /// The JSON body.
    pub body: String,
}

impl Outgoing {
    /// A notification of `group_key` with `body`, made at `created_ms` for `receiver`; its key
    /// is derived from all four.
    pub fn new(receiver: &str, group_key: &str, created_ms: i64, body: String) -> Self {
        let mut hash = Sha256::new();
        for part in [
            receiver.as_bytes(),
            group_key.as_bytes(),
            &created_ms.to_le_bytes(),
            body.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        Self {
            key: hex::encode(&hash.finalize()[..16]),
            group_key: group_key.to_owned(),
            created_ms,
            body,
        }
    }

    fn file_name(&self) -> String {
        format!(
            "{}.json",
            hex::encode(&Sha256::digest(self.group_key.as_bytes())[..12])
        )
    }
}

/// The signature header's value for `body` at `unix_seconds`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Counters of one receiver, for `/metrics` and `/api/alerts/receivers`.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Notifications the receiver took.
    pub delivered: AtomicU64,
    /// Attempts that failed.
    pub failed_attempts: AtomicU64,
    /// Notifications given up (refused with a 4xx, out of attempts, or pushed out of a full
    /// queue).
    pub dropped: AtomicU64,
    /// 1 while the breaker is open.
    pub breaker_open: AtomicU64,
}

/// One receiver's queue, outbox directory and counters.
pub struct Receiver {
    /// Settings.
    pub settings: ReceiverSettings,
    /// Counters.
    pub stats: ReceiverStats,
    queue: Mutex<VecDeque<Outgoing>>,
    wake: Notify,
    outbox: PathBuf,
}

impl Receiver {
    /// A receiver whose outbox is under `outbox_root`; notifications left there by an earlier
    /// run are queued again, oldest first.
    pub fn open(settings: ReceiverSettings, outbox_root: &Path) -> std::io::Result<Arc<Self>> {
        let outbox = outbox_root.join(hex::encode(settings.name.as_bytes()));
        std::fs::create_dir_all(&outbox)?;
        let mut left: Vec<Outgoing> = Vec::new();
        for entry in std::fs::read_dir(&outbox)? {
            let path = entry?.path();
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Outgoing>(&bytes).ok());
            match parsed {
                Some(outgoing) => left.push(outgoing),
                None => {
                    warn!(file = %path.display(), "unreadable notification in the outbox: removed");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        left.sort_by_key(|o| o.created_ms);
        if !left.is_empty() {
            info!(receiver = %settings.name, notifications = left.len(), "undelivered notifications queued again");
        }
        Ok(Arc::new(Self {
            settings,
            stats: ReceiverStats::default(),
            queue: Mutex::new(left.into()),
            wake: Notify::new(),
            outbox,
        }))
    }

    /// Notifications waiting.
    pub fn queued(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    /// Writes `outgoing` to the outbox and queues it, replacing an undelivered one of its
    /// group; a full queue drops its oldest (counted).
    pub fn enqueue(&self, outgoing: Outgoing) -> std::io::Result<()> {
        write_atomically(
            &self.outbox.join(outgoing.file_name()),
            &serde_json::to_vec(&outgoing)?,
        )?;
        let Ok(mut queue) = self.queue.lock() else {
            return Ok(());
        };
        if let Some(slot) = queue.iter_mut().find(|o| o.group_key == outgoing.group_key) {
            *slot = outgoing;
        } else {
            let full = queue.len() >= self.settings.queue_capacity.max(1);
            if let Some(oldest) = full.then(|| queue.pop_front()).flatten() {
                self.forget(&oldest);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                error!(receiver = %self.settings.name, group = %oldest.group_key, "notification queue full: the oldest was dropped");
            }
            queue.push_back(outgoing);
        }
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    fn front(&self) -> Option<Outgoing> {
        self.queue.lock().ok().and_then(|q| q.front().cloned())
    }

    /// Removes `done` (if a newer notification of its group did not replace it meanwhile).
    fn finish(&self, done: &Outgoing) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        if queue.front().is_some_and(|o| o.key == done.key) {
            queue.pop_front();
            drop(queue);
            self.forget(done);
        }
    }

    fn forget(&self, outgoing: &Outgoing) {
        let path = self.outbox.join(outgoing.file_name());
        // Only the file of this very notification: a newer one of the group has another key.
        let same = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Outgoing>(&bytes).ok())
            .is_some_and(|stored| stored.key == outgoing.key);
        if same {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Refused(String),
    Failed(String),
}

/// An HTTP client for `settings`: TLS verified against the bundled roots and `ca_file`.
pub fn client(settings: &ReceiverSettings) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("skewer/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|err| err.to_string())
}

async fn attempt(client: &reqwest::Client, receiver: &Receiver, outgoing: &Outgoing) -> Attempt {
    let settings = &receiver.settings;
    let mut request = client
        .post(&settings.url)
        .header("Content-Type", "application/json")
        .header(IDEMPOTENCY_HEADER, &outgoing.key);
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    if let Some(secret) = &settings.secret {
        let now = chrono::Utc::now().timestamp();
        request = request.header(SIGNATURE_HEADER, signature(secret, now, &outgoing.body));
    }
    match request.body(outgoing.body.clone()).send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Attempt::Delivered
            } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Attempt::Failed(format!("answered {status}"))
            } else {
                Attempt::Refused(format!("answered {status}"))
            }
        }
        Err(err) if err.is_timeout() => {
            Attempt::Failed(format!("no answer within {:?}", settings.timeout))
        }
        Err(err) => Attempt::Failed(format!("cannot reach it: {err}")),
    }
}

/// Delivers `receiver`'s notifications until `stop`.
pub async fn run(receiver: Arc<Receiver>, client: reqwest::Client, stop: CancellationToken) {
    let name = receiver.settings.name.clone();
    let mut consecutive_failures: u32 = 0;
    let mut cool_down = BREAKER_COOL_DOWN;
    let mut attempts_of: Option<(String, u32)> = None;
    loop {
        let Some(outgoing) = receiver.front() else {
            tokio::select! {
                () = receiver.wake.notified() => continue,
                () = stop.cancelled() => return,
            }
        };
        let outcome = tokio::select! {
            outcome = attempt(&client, &receiver, &outgoing) => outcome,
            () = stop.cancelled() => return,
        };
        let attempts = match &mut attempts_of {
            Some((key, count)) if *key == outgoing.key => {
                *count += 1;
                *count
            }
            _ => {
                attempts_of = Some((outgoing.key.clone(), 1));
                1
            }
        };
        let wait = match outcome {
            Attempt::Delivered => {
                receiver.stats.delivered.fetch_add(1, Ordering::Relaxed);
                receiver.stats.breaker_open.store(0, Ordering::Relaxed);
                receiver.finish(&outgoing);
                if consecutive_failures >= BREAKER_FAILURES {
                    info!(receiver = %name, "receiver answers again: breaker closed");
                }
                consecutive_failures = 0;
                cool_down = BREAKER_COOL_DOWN;
                continue;
            }
            Attempt::Refused(reason) => {
                receiver.stats.dropped.fetch_add(1, Ordering::Relaxed);
                error!(receiver = %name, group = %outgoing.group_key, %reason, "receiver refused the notification: dropped");
                receiver.finish(&outgoing);
                continue;
            }
            Attempt::Failed(reason) => {
                receiver
                    .stats
                    .failed_attempts
                    .fetch_add(1, Ordering::Relaxed);
                consecutive_failures = consecutive_failures.saturating_add(1);
                if attempts >= receiver.settings.max_attempts.max(1) {
                    receiver.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    error!(receiver = %name, group = %outgoing.group_key, %reason, attempts, "notification given up");
                    receiver.finish(&outgoing);
                }
                if consecutive_failures >= BREAKER_FAILURES {
                    receiver.stats.breaker_open.store(1, Ordering::Relaxed);
                    warn!(receiver = %name, %reason, cool_down_seconds = cool_down.as_secs(), "receiver failing: breaker open");
                    let wait = cool_down;
                    cool_down = (cool_down * 2).min(BREAKER_MAX_COOL_DOWN);
                    wait
                } else {
                    warn!(receiver = %name, %reason, attempts, "notification not delivered: will retry");
                    backoff(attempts)
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Full jitter: a random wait up to `RETRY_BASE * 2^(attempts-1)`, at most `RETRY_MAX`.
fn backoff(attempts: u32) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(millis / 10..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str, capacity: usize) -> ReceiverSettings {
        ReceiverSettings {
            name: name.into(),
            url: "http://127.0.0.1:9/".into(),
            secret: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            max_attempts: 3,
            send_resolved: true,
            queue_capacity: capacity,
            ca_file: None,
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_over_time_and_body() {
        // RFC 4231 test case 2 ("what do ya want for nothing?") shifted by our prefix is
        // checked the other way round: recompute with the same primitive.
        let header = signature(b"key", 1_700_000_000, r#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("any key length");
        mac.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn the_outbox_keeps_one_notification_per_group_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let receiver = Receiver::open(settings("ops", 2), dir.path()).expect("opens");
        let first = Outgoing::new("ops", "g1", 1, "one".into());
        let newer = Outgoing::new("ops", "g1", 2, "two".into());
        assert_ne!(first.key, newer.key);
        receiver.enqueue(first.clone()).expect("written");
        receiver.enqueue(newer.clone()).expect("written");
        assert_eq!(receiver.queued(), 1, "the newer replaces the older");
        receiver
            .enqueue(Outgoing::new("ops", "g2", 3, "x".into()))
            .expect("written");
        // Finishing the replaced one removes nothing.
        receiver.finish(&first);
        assert_eq!(receiver.queued(), 2);
        drop(receiver);
        let reopened = Receiver::open(settings("ops", 2), dir.path()).expect("reopens");
        assert_eq!(
            reopened.front(),
            Some(newer.clone()),
            "oldest first, same key"
        );
        reopened.finish(&newer);
        // A full queue drops its oldest.
        reopened
            .enqueue(Outgoing::new("ops", "g3", 4, "y".into()))
            .expect("written");
        reopened
            .enqueue(Outgoing::new("ops", "g4", 5, "z".into()))
            .expect("written");
        assert_eq!(reopened.queued(), 2);
        assert_eq!(reopened.stats.dropped.load(Ordering::Relaxed), 1);
        drop(reopened);
        let files = std::fs::read_dir(dir.path().join(hex::encode("ops")))
            .expect("outbox")
            .count();
        assert_eq!(files, 2);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempts in 1..40 {
            let wait = backoff(attempts);
            assert!(wait <= RETRY_MAX, "{attempts}: {wait:?}");
        }
        assert!(backoff(1) <= RETRY_BASE);
    }
}
