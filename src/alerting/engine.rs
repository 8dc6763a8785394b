//! The alerting engine: the loaded rule groups with their alerts, the dispatcher and the
//! silences behind one lock (held only to read or apply, never across a query), the
//! receivers, and the loop that drives them. Reloads swap the rules in whole or not at all: a
//! rule file with any error leaves the running rules as they were.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skewer_storage::Storage;
use skewer_storage::model::TenantId;
use skewer_storage::scan::ScanLimits;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::AlertingSettings;
use super::alert_state::{ActiveAlert, AlertState, RuleAlerts, Timing};
use super::delivery::{self, Outgoing, Receiver, write_atomically};
use super::dispatch::{Dispatcher, ReceiverView};
use super::labels::LabelSet;
use super::payload::GroupAlert;
use super::rule::Rule;
use super::rule_file::{self, GroupDefinition, RuleFileError};
use super::silences::{Silence, Silences};

/// The label a rule names its receiver with.
pub const RECEIVER_LABEL: &str = "receiver";

/// The state file under the alerting directory.
const STATE_FILE: &str = "state.json";
/// The silences file.
const SILENCES_FILE: &str = "silences.json";
/// Longest sleep of the loop (it also wakes on reloads and finished evaluations).
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How a rule's last evaluation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// Evaluated.
    Ok,
    /// Failed (see the last error).
    Err,
}

/// One rule with its alerts and last evaluation.
pub struct RuleRuntime {
    /// The rule.
    pub rule: Arc<Rule>,
    /// Its alerts.
    pub alerts: RuleAlerts,
    /// How its last evaluation went.
    pub health: Health,
    /// The last evaluation's error.
    pub last_error: String,
    /// When it was last evaluated, Unix ms (0: never).
    pub last_evaluation_ms: i64,
    /// How long that took.
    pub evaluation_time: Duration,
}

/// One group of rules.
pub struct GroupRuntime {
    /// What the file says (rules are in `rules`).
    pub definition: GroupDefinition,
    /// Its rules.
    pub rules: Vec<RuleRuntime>,
    /// Its interval.
    pub interval: Duration,
    /// When it is next due.
    next_due: Instant,
    /// Whether an evaluation is running.
    running: bool,
    /// When it was last evaluated, Unix ms.
    pub last_evaluation_ms: i64,
    /// How long that took.
    pub evaluation_time: Duration,
}

impl GroupRuntime {
    fn key(&self) -> String {
        group_key(&self.definition)
    }
}

fn group_key(definition: &GroupDefinition) -> String {
    format!("{}\u{0}{}", definition.file.display(), definition.name)
}

fn rule_key(group: &str, index: usize, name: &str) -> String {
    format!("{group}\u{0}{index}\u{0}{name}")
}

/// What is behind the lock.
pub struct EngineState {
    /// Rule groups in file order.
    pub groups: Vec<GroupRuntime>,
    /// Notification groups.
    pub dispatcher: Dispatcher,
    /// Silences.
    pub silences: Silences,
    state_dirty: bool,
    silences_dirty: bool,
}

/// The persisted state.
#[derive(Serialize, Deserialize, Default)]
struct Persisted {
    rules: BTreeMap<String, RuleAlerts>,
    dispatcher: Dispatcher,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in the rule files; the previous rules stay", .0.len())]
pub struct ReloadError(pub Vec<RuleFileError>);

/// A summary of loaded rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Groups.
    pub groups: usize,
    /// Rules.
    pub rules: usize,
}

/// The alerting engine.
pub struct Alerting {
    settings: AlertingSettings,
    state: Mutex<EngineState>,
    receivers: Vec<Arc<Receiver>>,
    directory: PathBuf,
    wake: Notify,
}

/// Current time, Unix ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Alerting {
    /// Loads the rule files (every error reported), the persisted state and silences under
    /// `data_dir/alerting`, and opens the receivers' outboxes.
    pub fn open(
        settings: AlertingSettings,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<Self>> {
        let directory = data_dir.join("alerting");
        std::fs::create_dir_all(&directory)?;
        let definitions = rule_file::load(&settings.rule_files).map_err(|errors| {
            let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid rule files:\n  {}", listed.join("\n  "))
        })?;
        let persisted: Persisted = read_json(&directory.join(STATE_FILE)).unwrap_or_default();
        let silences: Vec<Silence> = read_json(&directory.join(SILENCES_FILE)).unwrap_or_default();
        let mut receivers = Vec::new();
        for receiver in &settings.receivers {
            receivers.push(Receiver::open(receiver.clone(), &directory.join("outbox"))?);
        }
        let mut restored = persisted.rules;
        let groups = build_groups(definitions, &settings, &mut restored)?;
        let alerting = Arc::new(Self {
            state: Mutex::new(EngineState {
                groups,
                dispatcher: persisted.dispatcher,
                silences: Silences::from_list(silences),
                state_dirty: false,
                silences_dirty: false,
            }),
            settings,
            receivers,
            directory,
            wake: Notify::new(),
        });
        let loaded = alerting.loaded();
        if loaded.rules > 0 || !alerting.receivers.is_empty() {
            info!(
                groups = loaded.groups,
                rules = loaded.rules,
                receivers = alerting.receivers.len(),
                "alerting rules loaded"
            );
        }
        Ok(alerting)
    }

    /// The engine's state, locked (a poisoned lock is taken over: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The receivers.
    pub fn receivers(&self) -> &[Arc<Receiver>] {
        &self.receivers
    }

    /// How many groups and rules are loaded.
    pub fn loaded(&self) -> Loaded {
        let state = self.lock();
        Loaded {
            groups: state.groups.len(),
            rules: state.groups.iter().map(|g| g.rules.len()).sum(),
        }
    }

    /// Reads the rule files again; on any error the running rules stay. Alerts of rules that
    /// remain carry over; firing alerts of removed rules resolve.
    pub fn reload(&self) -> Result<Loaded, ReloadError> {
        let definitions = rule_file::load(&self.settings.rule_files).map_err(ReloadError)?;
        let now = now_ms();
        let mut state = self.lock();
        let mut previous: BTreeMap<String, (String, RuleRuntime)> = BTreeMap::new();
        for group in state.groups.drain(..) {
            let key = group.key();
            let tenant = group.definition.tenant.to_string();
            for (index, runtime) in group.rules.into_iter().enumerate() {
                let rule = rule_key(&key, index, &runtime.rule.definition.name);
                previous.insert(rule, (tenant.clone(), runtime));
            }
        }
        let mut groups = Vec::new();
        for definition in definitions {
            let key = group_key(&definition);
            let interval = definition
                .interval
                .unwrap_or(self.settings.evaluation_interval);
            let mut rules = Vec::new();
            for (index, rule) in definition.rules.iter().enumerate() {
                let old = previous
                    .remove(&rule_key(&key, index, &rule.name))
                    .map(|(_, runtime)| runtime);
                let rule = Rule::new(rule.clone()).map_err(|message| {
                    ReloadError(vec![RuleFileError {
                        file: definition.file.clone(),
                        line: rule.line,
                        message,
                    }])
                })?;
                rules.push(match old {
                    Some(mut old) => {
                        old.rule = Arc::new(rule);
                        old
                    }
                    None => new_runtime(rule, RuleAlerts::default()),
                });
            }
            groups.push(GroupRuntime {
                definition,
                rules,
                interval,
                next_due: Instant::now(),
                running: false,
                last_evaluation_ms: 0,
                evaluation_time: Duration::ZERO,
            });
        }
        state.groups = groups;
        // What was removed resolves.
        for (tenant, removed) in previous.into_values() {
            for alert in removed
                .alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
            {
                if let Some(receiver) = self.receiver_for(&alert.labels) {
                    let resolved = self.group_alert(alert, Some(now));
                    let grouping = &self.settings.grouping;
                    state
                        .dispatcher
                        .add(grouping, &receiver, &tenant, resolved, now);
                }
            }
        }
        state.state_dirty = true;
        let loaded = Loaded {
            groups: state.groups.len(),
            rules: state.groups.iter().map(|g| g.rules.len()).sum(),
        };
        drop(state);
        self.wake.notify_one();
        info!(
            groups = loaded.groups,
            rules = loaded.rules,
            "alerting rules reloaded"
        );
        Ok(loaded)
    }

    /// Adds or replaces a silence.
    pub fn upsert_silence(&self, silence: Silence) -> Result<(), String> {
        silence.validate()?;
        let mut state = self.lock();
        state.silences.upsert(silence)?;
        state.silences_dirty = true;
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Expires silence `id` of `tenant`; whether it exists.
    pub fn expire_silence(&self, tenant: &str, id: &str) -> bool {
        let mut state = self.lock();
        let found = state.silences.expire(tenant, id, now_ms());
        state.silences_dirty |= found;
        drop(state);
        self.wake.notify_one();
        found
    }

    /// The receiver an alert goes to: the one its `receiver` label names, else the first.
    fn receiver_for(&self, labels: &LabelSet) -> Option<String> {
        let named = labels.get(RECEIVER_LABEL).and_then(|name| {
            self.receivers
                .iter()
                .find(|r| &r.settings.name == name)
                .map(|r| r.settings.name.clone())
        });
        named.or_else(|| self.receivers.first().map(|r| r.settings.name.clone()))
    }

    fn group_alert(&self, alert: &ActiveAlert, ends_at_ms: Option<i64>) -> GroupAlert {
        GroupAlert {
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
            ends_at_ms,
            generator_url: format!("{}/#/alerts", self.settings.external_url),
        }
    }

    /// Runs evaluations and notifications until `stop`; `limits` bounds each rule's query.
    pub async fn run(
        self: Arc<Self>,
        storage: Arc<Storage>,
        limits: Arc<dyn Fn(&TenantId) -> ScanLimits + Send + Sync>,
        stop: CancellationToken,
    ) {
        let mut workers = Vec::new();
        for receiver in &self.receivers {
            match delivery::client(&receiver.settings) {
                Ok(client) => workers.push(tokio::spawn(delivery::run(
                    Arc::clone(receiver),
                    client,
                    stop.clone(),
                ))),
                Err(err) => {
                    error!(receiver = %receiver.settings.name, error = %err, "cannot set up the receiver's HTTP client; its notifications wait in the outbox")
                }
            }
        }
        loop {
            self.start_due_groups(&storage, &limits);
            self.flush_and_persist().await;
            let wait = self.next_wake();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
        }
        self.flush_and_persist().await;
        for worker in workers {
            let _ = worker.await;
        }
    }

    fn next_wake(&self) -> Duration {
        let state = self.lock();
        let now = Instant::now();
        let mut wait = MAX_IDLE;
        for group in state.groups.iter().filter(|g| !g.running) {
            wait = wait.min(group.next_due.saturating_duration_since(now));
        }
        if let Some(due) = state.dispatcher.next_due_ms() {
            let millis = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
            wait = wait.min(Duration::from_millis(millis));
        }
        wait
    }

    fn start_due_groups(
        self: &Arc<Self>,
        storage: &Arc<Storage>,
        limits: &Arc<dyn Fn(&TenantId) -> ScanLimits + Send + Sync>,
    ) {
        let now = Instant::now();
        let mut state = self.lock();
        for group in &mut state.groups {
            if group.running || group.next_due > now {
                continue;
            }
            if group.rules.iter().all(|r| !r.rule.is_evaluated()) {
                group.next_due = now + group.interval;
                continue;
            }
            group.running = true;
            group.next_due = now + group.interval;
            let job = GroupJob {
                key: group.key(),
                tenant: group.definition.tenant.clone(),
                rules: group.rules.iter().map(|r| Arc::clone(&r.rule)).collect(),
                deadline: group.interval,
            };
            let engine = Arc::clone(self);
            let storage = Arc::clone(storage);
            let limits = Arc::clone(limits);
            tokio::spawn(async move {
                let outcome = job
                    .evaluate(&storage, limits.as_ref(), &engine.settings.external_url)
                    .await;
                engine.apply(outcome);
                engine.wake.notify_one();
            });
        }
    }

    /// Applies a group's evaluation: alert states, then the dispatcher.
    fn apply(&self, outcome: GroupOutcome) {
        let mut state = self.lock();
        let EngineState {
            groups, dispatcher, ..
        } = &mut *state;
        let Some(group) = groups.iter_mut().find(|g| g.key() == outcome.key) else {
            return;
        };
        group.running = false;
        group.last_evaluation_ms = outcome.time_ms;
        group.evaluation_time = outcome.took;
        let tenant = group.definition.tenant.to_string();
        let limit = group.definition.limit;
        for (runtime, result) in group.rules.iter_mut().zip(outcome.results) {
            if !Arc::ptr_eq(&runtime.rule, &result.rule) {
                continue;
            }
            runtime.last_evaluation_ms = outcome.time_ms;
            runtime.evaluation_time = result.took;
            let candidates = match result.candidates {
                Ok(candidates) if limit > 0 && candidates.len() > limit => Err(format!(
                    "{} alerts exceed the group's limit of {limit}",
                    candidates.len()
                )),
                other => other,
            };
            let candidates = match candidates {
                Ok(candidates) => {
                    runtime.health = Health::Ok;
                    runtime.last_error.clear();
                    candidates
                }
                Err(err) => {
                    if runtime.last_error != err {
                        warn!(rule = %runtime.rule.definition.name, error = %err, "alerting rule failed; its alerts stay as they were");
                    }
                    runtime.health = Health::Err;
                    runtime.last_error = err;
                    continue;
                }
            };
            let definition = &runtime.rule.definition;
            let timing = Timing {
                hold: definition.hold,
                keep_firing_for: definition.keep_firing_for,
            };
            let resolved = runtime.alerts.apply(candidates, outcome.time_ms, timing);
            for alert in runtime
                .alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
            {
                if let Some(receiver) = self.receiver_for(&alert.labels) {
                    dispatcher.add(
                        &self.settings.grouping,
                        &receiver,
                        &tenant,
                        self.group_alert(alert, None),
                        outcome.time_ms,
                    );
                }
            }
            for resolved in resolved {
                if let Some(receiver) = self.receiver_for(&resolved.alert.labels) {
                    let alert = self.group_alert(&resolved.alert, Some(resolved.resolved_at_ms));
                    dispatcher.add(
                        &self.settings.grouping,
                        &receiver,
                        &tenant,
                        alert,
                        outcome.time_ms,
                    );
                }
            }
        }
        state.state_dirty = true;
    }

    /// Flushes due notification groups into the receivers' outboxes, then writes the state
    /// (in that order: a crash in between repeats a notification rather than losing it).
    async fn flush_and_persist(&self) {
        let now = now_ms();
        let (notifications, state_bytes, silence_bytes) = {
            let mut state = self.lock();
            let views: Vec<ReceiverView<'_>> = self
                .receivers
                .iter()
                .map(|r| ReceiverView {
                    name: &r.settings.name,
                    send_resolved: r.settings.send_resolved,
                })
                .collect();
            let EngineState {
                dispatcher,
                silences,
                ..
            } = &mut *state;
            let before = dispatcher.len();
            let notifications = dispatcher.flush_due(
                &self.settings.grouping,
                &views,
                silences,
                &self.settings.external_url,
                now,
            );
            if !notifications.is_empty() || before != dispatcher.len() {
                state.state_dirty = true;
            }
            if state.silences.prune(now) {
                state.silences_dirty = true;
            }
            let state_bytes = std::mem::take(&mut state.state_dirty).then(|| {
                let persisted = Persisted {
                    rules: state
                        .groups
                        .iter()
                        .flat_map(|group| {
                            let key = group.key();
                            group.rules.iter().enumerate().map(move |(index, runtime)| {
                                (
                                    rule_key(&key, index, &runtime.rule.definition.name),
                                    runtime.alerts.clone(),
                                )
                            })
                        })
                        .filter(|(_, alerts)| !alerts.is_empty())
                        .collect(),
                    dispatcher: state.dispatcher.clone(),
                };
                serde_json::to_vec(&persisted)
            });
            let silence_bytes = std::mem::take(&mut state.silences_dirty)
                .then(|| serde_json::to_vec(&state.silences.list()));
            (notifications, state_bytes, silence_bytes)
        };
        for notification in notifications {
            let Some(receiver) = self
                .receivers
                .iter()
                .find(|r| r.settings.name == notification.receiver)
            else {
                continue;
            };
            let body = match serde_json::to_string(&notification.message) {
                Ok(body) => body,
                Err(err) => {
                    error!(error = %err, "cannot encode a notification");
                    continue;
                }
            };
            let outgoing = Outgoing::new(
                &notification.receiver,
                &notification.group_key,
                notification.created_ms,
                body,
            );
            let receiver = Arc::clone(receiver);
            let written = tokio::task::spawn_blocking(move || receiver.enqueue(outgoing)).await;
            if !matches!(written, Ok(Ok(()))) {
                error!(receiver = %notification.receiver, "cannot write a notification to the outbox; it is sent from memory only");
            }
        }
        for (bytes, file) in [(state_bytes, STATE_FILE), (silence_bytes, SILENCES_FILE)] {
            let Some(bytes) = bytes else { continue };
            let path = self.directory.join(file);
            let written = match bytes {
                Ok(bytes) => tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|err| std::io::Error::other(err.to_string()))
                    .and_then(|r| r),
                Err(err) => Err(std::io::Error::other(err)),
            };
            if let Err(err) = written {
                error!(file, error = %err, "cannot save the alerting state");
                let mut state = self.lock();
                if file == STATE_FILE {
                    state.state_dirty = true;
                } else {
                    state.silences_dirty = true;
                }
            }
        }
    }
}

fn new_runtime(rule: Rule, alerts: RuleAlerts) -> RuleRuntime {
    RuleRuntime {
        rule: Arc::new(rule),
        alerts,
        health: Health::Unknown,
        last_error: String::new(),
        last_evaluation_ms: 0,
        evaluation_time: Duration::ZERO,
    }
}

fn build_groups(
    definitions: Vec<GroupDefinition>,
    settings: &AlertingSettings,
    restored: &mut BTreeMap<String, RuleAlerts>,
) -> anyhow::Result<Vec<GroupRuntime>> {
    let mut groups = Vec::new();
    for definition in definitions {
        let key = group_key(&definition);
        let mut rules = Vec::new();
        for (index, rule) in definition.rules.iter().enumerate() {
            let alerts = restored
                .remove(&rule_key(&key, index, &rule.name))
                .unwrap_or_default();
            let compiled = Rule::new(rule.clone()).map_err(|message| {
                anyhow::anyhow!("{}:{}: {message}", definition.file.display(), rule.line)
            })?;
            rules.push(new_runtime(compiled, alerts));
        }
        groups.push(GroupRuntime {
            interval: definition.interval.unwrap_or(settings.evaluation_interval),
            definition,
            rules,
            next_due: Instant::now(),
            running: false,
            last_evaluation_ms: 0,
            evaluation_time: Duration::ZERO,
        });
    }
    Ok(groups)
}

/// A group's evaluation, run outside the lock.
struct GroupJob {
    key: String,
    tenant: TenantId,
    rules: Vec<Arc<Rule>>,
    deadline: Duration,
}

struct RuleOutcome {
    rule: Arc<Rule>,
    candidates: Result<Vec<super::alert_state::AlertCandidate>, String>,
    took: Duration,
}

struct GroupOutcome {
    key: String,
    time_ms: i64,
    took: Duration,
    results: Vec<RuleOutcome>,
}

impl GroupJob {
    async fn evaluate(
        self,
        storage: &Arc<Storage>,
        limits: &(dyn Fn(&TenantId) -> ScanLimits + Send + Sync),
        external_url: &str,
    ) -> GroupOutcome {
        let started = Instant::now();
        let time_ms = now_ms();
        let mut results = Vec::with_capacity(self.rules.len());
        for rule in self.rules {
            let rule_started = Instant::now();
            let mut scan_limits = limits(&self.tenant);
            // A group's evaluation must end before it is due again.
            let group_deadline = started + self.deadline;
            scan_limits.deadline = Some(
                scan_limits
                    .deadline
                    .map_or(group_deadline, |d| d.min(group_deadline)),
            );
            let candidates = if rule.is_evaluated() {
                match rule
                    .samples(storage, &self.tenant, scan_limits, time_ms)
                    .await
                {
                    Ok(samples) => rule.candidates(samples, external_url),
                    Err(err) => Err(err),
                }
            } else {
                Err("recording rules are not evaluated by skewer yet".to_owned())
            };
            results.push(RuleOutcome {
                rule,
                candidates,
                took: rule_started.elapsed(),
            });
        }
        GroupOutcome {
            key: self.key,
            time_ms,
            took: started.elapsed(),
            results,
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            warn!(file = %path.display(), error = %err, "unreadable alerting state: starting without it");
            None
        }
    }
}
