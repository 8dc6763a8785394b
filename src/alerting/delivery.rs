//! Delivery to one webhook receiver: its own bounded queue and task (a dead receiver delays no
//! other), each notification written to the outbox before it is queued and removed once the
//! receiver took it (at least once across restarts), an `Idempotency-Key` derived from what a
//! notification says (a repeat after a crash carries the same key), an optional HMAC-SHA256
//! signature, a timeout per request, and retries with exponential backoff and full jitter on
//! connection errors, timeouts, 5xx, 408 and 429 (other 4xx are dropped: the receiver refuses
//! the message itself). After consecutive failures a circuit breaker stops calling the
//! receiver and probes it again after a cool-down. A notification is never given up: it waits
//! until delivered or replaced by a newer one of its group, which carries its resolutions.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::payload::WebhookMessage;

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
    /// When the group was notified before (Unix ms, 0: never): part of the key, so a repeat
    /// is a new notification and the same flush after a crash is the same one.
    pub previous_ms: i64,
    /// When it was made, Unix ms.
    pub created_ms: i64,
    /// What it says.
    pub message: WebhookMessage,
}

impl Outgoing {
    /// A notification of `message`, its key derived from the receiver, the group, the
    /// previous notification's time and every alert's fingerprint, status and times.
    pub fn new(previous_ms: i64, created_ms: i64, message: WebhookMessage) -> Self {
        let mut outgoing = Self {
            key: String::new(),
            previous_ms,
            created_ms,
            message,
        };
        outgoing.key = outgoing.identity();
        outgoing
    }

    fn identity(&self) -> String {
        let mut hash = Sha256::new();
        let mut add = |part: &[u8]| {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        };
        add(self.message.receiver.as_bytes());
        add(self.message.group_key.as_bytes());
        add(&self.previous_ms.to_le_bytes());
        for alert in &self.message.alerts {
            for part in [
                &alert.fingerprint,
                &alert.status,
                &alert.starts_at,
                &alert.ends_at,
            ] {
                add(part.as_bytes());
            }
        }
        hex::encode(&hash.finalize()[..16])
    }

    /// The group it is about (a newer one replaces it while undelivered).
    pub fn group_key(&self) -> &str {
        &self.message.group_key
    }

    /// Takes the place of `older`, an undelivered notification of its group: its resolutions
    /// come along (and the key follows the content).
    fn replace(&mut self, older: &Outgoing) {
        self.message.absorb_resolutions(&older.message);
        self.key = self.identity();
    }

    fn file_name(&self) -> String {
        file_name(self.group_key())
    }
}

fn file_name(group_key: &str) -> String {
    format!(
        "{}.json",
        hex::encode(&Sha256::digest(group_key.as_bytes())[..12])
    )
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
    /// The queue; its outbox files are written and removed under the same lock, so a file
    /// always belongs to the queued notification of its group.
    queue: Mutex<VecDeque<Outgoing>>,
    wake: Notify,
    outbox: PathBuf,
}

impl Receiver {
    /// A receiver whose outbox is under `outbox_root`; notifications left there by an earlier
    /// run are queued again, oldest first (half-written files are removed).
    pub fn open(settings: ReceiverSettings, outbox_root: &Path) -> std::io::Result<Arc<Self>> {
        let outbox = outbox_root.join(hex::encode(settings.name.as_bytes()));
        std::fs::create_dir_all(&outbox)?;
        let mut left: Vec<Outgoing> = Vec::new();
        for entry in std::fs::read_dir(&outbox)? {
            let path = entry?.path();
            let parsed = (path.extension().and_then(|e| e.to_str()) == Some("json"))
                .then(|| std::fs::read(&path).ok())
                .flatten()
                .and_then(|bytes| serde_json::from_slice::<Outgoing>(&bytes).ok());
            match parsed {
                Some(outgoing) => left.push(outgoing),
                None => {
                    warn!(file = %path.display(), "unfinished or unreadable notification in the outbox: removed");
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

    fn lock(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notifications waiting.
    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    /// Queues `outgoing`, replacing an undelivered one of its group (whose resolutions it
    /// takes along), and writes it to the outbox; a full queue drops its oldest (counted). A
    /// failed write is returned, the notification queued all the same (sent from memory).
    pub fn enqueue(&self, mut outgoing: Outgoing) -> std::io::Result<()> {
        let mut queue = self.lock();
        if let Some(slot) = queue
            .iter_mut()
            .find(|o| o.group_key() == outgoing.group_key())
        {
            outgoing.replace(slot);
            *slot = outgoing.clone();
        } else {
            let full = queue.len() >= self.settings.queue_capacity.max(1);
            if let Some(oldest) = full.then(|| queue.pop_front()).flatten() {
                let _ = std::fs::remove_file(self.outbox.join(oldest.file_name()));
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                error!(receiver = %self.settings.name, group = %oldest.group_key(), "notification queue full: the oldest was dropped");
            }
            queue.push_back(outgoing.clone());
        }
        let written = serde_json::to_vec(&outgoing)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&self.outbox.join(outgoing.file_name()), &bytes));
        drop(queue);
        self.wake.notify_one();
        written
    }

    fn front(&self) -> Option<Outgoing> {
        self.lock().front().cloned()
    }

    /// Removes `done` and its outbox file, unless a newer notification of its group replaced
    /// it meanwhile (that one is still to send).
    fn finish(&self, done: &Outgoing) {
        let mut queue = self.lock();
        if queue.front().is_some_and(|o| o.key == done.key) {
            queue.pop_front();
            if let Err(err) = std::fs::remove_file(self.outbox.join(done.file_name())) {
                warn!(receiver = %self.settings.name, error = %err, "cannot remove a delivered notification from the outbox; it may be sent again after a restart");
            }
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file, a rename and a synced directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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
    let body = match serde_json::to_string(&outgoing.message) {
        Ok(body) => body,
        Err(err) => return Attempt::Refused(format!("cannot encode it: {err}")),
    };
    let mut request = client
        .post(&settings.url)
        .header("Content-Type", "application/json")
        .header(IDEMPOTENCY_HEADER, &outgoing.key);
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    if let Some(secret) = &settings.secret {
        let now = chrono::Utc::now().timestamp();
        request = request.header(SIGNATURE_HEADER, signature(secret, now, &body));
    }
    match request.body(body).send().await {
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

/// Takes `done` off `receiver`'s queue and outbox (file work, off the async threads).
async fn finish(receiver: &Arc<Receiver>, done: Outgoing) {
    let receiver = Arc::clone(receiver);
    if tokio::task::spawn_blocking(move || receiver.finish(&done))
        .await
        .is_err()
    {
        error!("outbox task failed");
    }
}

/// Delivers `receiver`'s notifications until `stop`.
pub async fn run(receiver: Arc<Receiver>, client: reqwest::Client, stop: CancellationToken) {
    let name = receiver.settings.name.clone();
    let mut consecutive_failures: u32 = 0;
    let mut cool_down = BREAKER_COOL_DOWN;
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
        let reason = match outcome {
            Attempt::Delivered => {
                receiver.stats.delivered.fetch_add(1, Ordering::Relaxed);
                receiver.stats.breaker_open.store(0, Ordering::Relaxed);
                if consecutive_failures >= BREAKER_FAILURES {
                    info!(receiver = %name, "receiver answers again: breaker closed");
                }
                consecutive_failures = 0;
                cool_down = BREAKER_COOL_DOWN;
                finish(&receiver, outgoing).await;
                continue;
            }
            Attempt::Refused(reason) => {
                receiver.stats.dropped.fetch_add(1, Ordering::Relaxed);
                error!(receiver = %name, group = %outgoing.group_key(), %reason, "receiver refused the notification: dropped");
                finish(&receiver, outgoing).await;
                continue;
            }
            Attempt::Failed(reason) => reason,
        };
        receiver
            .stats
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        consecutive_failures = consecutive_failures.saturating_add(1);
        let wait = if consecutive_failures >= BREAKER_FAILURES {
            receiver.stats.breaker_open.store(1, Ordering::Relaxed);
            warn!(receiver = %name, %reason, cool_down_seconds = cool_down.as_secs(), "receiver failing: breaker open, notifications wait");
            let wait = cool_down;
            cool_down = (cool_down * 2).min(BREAKER_MAX_COOL_DOWN);
            wait
        } else {
            warn!(receiver = %name, %reason, consecutive_failures, "notification not delivered: will retry");
            backoff(consecutive_failures)
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
    use crate::alerting::labels::LabelSet;
    use crate::alerting::payload::{GroupAlert, down_alert, webhook_message};

    fn settings(name: &str, capacity: usize) -> ReceiverSettings {
        ReceiverSettings {
            name: name.into(),
            url: "http://127.0.0.1:9/".into(),
            secret: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            send_resolved: true,
            queue_capacity: capacity,
            ca_file: None,
        }
    }

    fn outgoing(group: &str, created_ms: i64, alerts: &[GroupAlert]) -> Outgoing {
        let message = webhook_message("ops", group, &LabelSet::new(), "", alerts);
        Outgoing::new(0, created_ms, message)
    }

    #[test]
    fn signatures_are_hmac_sha256_over_time_and_body() {
        let header = signature(b"key", 1_700_000_000, r#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("any key length");
        mac.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn keys_follow_content_not_creation_time() {
        let firing = [down_alert("a", None)];
        assert_eq!(outgoing("g", 1, &firing).key, outgoing("g", 2, &firing).key);
        assert_ne!(outgoing("g", 1, &firing).key, outgoing("h", 1, &firing).key);
        let message = webhook_message("ops", "g", &LabelSet::new(), "", &firing);
        assert_ne!(
            Outgoing::new(0, 1, message.clone()).key,
            Outgoing::new(5, 1, message).key,
            "a repeat is a new notification"
        );
    }

    #[test]
    fn the_outbox_keeps_one_notification_per_group_with_its_resolutions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let receiver = Receiver::open(settings("ops", 2), dir.path()).expect("opens");
        let first = outgoing("g1", 1, &[down_alert("a", None), down_alert("x", Some(5))]);
        let newer = outgoing("g1", 2, &[down_alert("a", None), down_alert("b", None)]);
        receiver.enqueue(first.clone()).expect("written");
        receiver.enqueue(newer).expect("written");
        assert_eq!(receiver.queued(), 1, "the newer replaces the older");
        let queued = receiver.front().expect("one");
        let statuses: Vec<(&str, &str)> = queued
            .message
            .alerts
            .iter()
            .map(|a| (a.labels["instance"].as_str(), a.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [("a", "firing"), ("b", "firing"), ("x", "resolved")],
            "the older's resolution comes along"
        );
        receiver
            .enqueue(outgoing("g2", 3, &[down_alert("c", None)]))
            .expect("written");
        // Finishing the replaced one removes nothing.
        receiver.finish(&first);
        assert_eq!(receiver.queued(), 2);
        drop(receiver);
        std::fs::write(dir.path().join(hex::encode("ops")).join("x.tmp"), b"{").expect("tmp");
        let reopened = Receiver::open(settings("ops", 2), dir.path()).expect("reopens");
        assert_eq!(
            reopened.front(),
            Some(queued.clone()),
            "oldest first, same key"
        );
        reopened.finish(&queued);
        // A full queue drops its oldest.
        reopened
            .enqueue(outgoing("g3", 4, &[down_alert("d", None)]))
            .expect("written");
        reopened
            .enqueue(outgoing("g4", 5, &[down_alert("e", None)]))
            .expect("written");
        assert_eq!(reopened.queued(), 2);
        assert_eq!(reopened.stats.dropped.load(Ordering::Relaxed), 1);
        drop(reopened);
        let files = std::fs::read_dir(dir.path().join(hex::encode("ops")))
            .expect("outbox")
            .count();
        assert_eq!(files, 2, "one file per queued notification, no leftovers");
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
