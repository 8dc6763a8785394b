//! The alerting engine: the loaded rule groups with their alerts, the dispatcher and the
//! silences behind one lock (held only to read or apply, never across a query), the
//! receivers, and the loop that drives them. Reloads swap the rules in whole or not at all: a
//! rule file with any error leaves the running rules as they were.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skewer_ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use skewer_query::prometheus::StoreSource;
use skewer_storage::Storage;
use skewer_storage::model::TenantId;
use skewer_storage::scan::ScanLimits;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::AlertingSettings;
use super::alert_state::{ActiveAlert, AlertState, RuleAlerts, Timing};
use super::delivery::{self, Outgoing, Receiver, write_atomically};
use super::dispatch::{Dispatcher, ReceiverView};
use super::labels::LabelSet;
use super::payload::GroupAlert;
use super::rule::{ExampleTraces, Rule};
use super::rule_file::{self, GroupDefinition, RuleFileError};
use super::shared_reads::{SharedReads, SharedSource};
use super::silences::{Silence, Silences};

/// The label a rule names its receiver with.
pub const RECEIVER_LABEL: &str = "receiver";

/// The state file under the alerting directory.
const STATE_FILE: &str = "state.json";
/// The silences file.
const SILENCES_FILE: &str = "silences.json";
/// How far past its boundary a group's first evaluation may start; later, it waits for the
/// next boundary.
const LATE_START_MS: i64 = 2_000;
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
    /// The example traces looked up for its alerts.
    examples: ExampleTraces,
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

/// Each rule's key: tenant, file, group, name and which rule of that name in the group it is,
/// so alerts stay with their rule when other rules are added, removed or reordered (and never
/// cross to another tenant).
fn rule_keys(definition: &GroupDefinition) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let group = group_key(definition);
    definition
        .rules
        .iter()
        .map(|rule| {
            let occurrence = seen.entry(rule.name.as_str()).or_default();
            *occurrence += 1;
            format!(
                "{}\u{0}{group}\u{0}{}\u{0}{occurrence}",
                definition.tenant, rule.name
            )
        })
        .collect()
}

/// A rule's alerts and last evaluation, carried from before a reload or a restart.
struct Carried {
    tenant: String,
    alerts: RuleAlerts,
    evaluation: Option<(Health, String, i64, Duration)>,
}

/// A group's schedule, carried over a reload (a running evaluation stays the only one).
struct Schedule {
    next_due: Instant,
    running: bool,
    last_evaluation_ms: i64,
    evaluation_time: Duration,
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
    rules: BTreeMap<String, SavedRule>,
    dispatcher: Dispatcher,
}

/// One rule's saved alerts.
#[derive(Serialize, Deserialize)]
struct SavedRule {
    tenant: String,
    alerts: RuleAlerts,
}

impl Persisted {
    /// Reads the state file part by part: an entry that does not read is skipped (and said),
    /// not the whole state.
    fn read(path: &std::path::Path) -> Self {
        let Some(value) = read_json::<serde_json::Value>(path) else {
            return Self::default();
        };
        let mut persisted = Self::default();
        if let Some(rules) = value.get("rules").and_then(serde_json::Value::as_object) {
            for (key, saved) in rules {
                match serde_json::from_value::<SavedRule>(saved.clone()) {
                    Ok(saved) => {
                        persisted.rules.insert(key.clone(), saved);
                    }
                    Err(err) => warn!(error = %err, "a rule's saved alerts do not read: dropped"),
                }
            }
        }
        if let Some(dispatcher) = value.get("dispatcher") {
            match serde_json::from_value(dispatcher.clone()) {
                Ok(dispatcher) => persisted.dispatcher = dispatcher,
                Err(err) => warn!(error = %err, "saved notification groups do not read: dropped"),
            }
        }
        persisted
    }
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
    /// Each running round's shared reads, by evaluation time.
    rounds: Mutex<HashMap<i64, std::sync::Weak<SharedReads>>>,
    /// Where recording rules' series go to be written ([`Self::record_into`]).
    recorder: std::sync::OnceLock<mpsc::Sender<RecordedSeries>>,
}

/// What one group's recording rules produced at one evaluation: a tenant's series as a
/// Prometheus remote write request (one sample each, at the evaluation time).
pub type RecordedSeries = (TenantId, WriteRequest);

/// Recorded requests waiting to be written at most; past it an evaluation's are dropped
/// (logged), as a full budget would refuse them.
pub const RECORDED_QUEUE: usize = 64;

/// Current time, Unix ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Alerting {
    /// Loads the rule files (every error reported), the persisted state and silences under
    /// `data_dir/alerting`, and opens the receivers' outboxes. Saved alerts of rules that are
    /// gone resolve; notification groups of receivers that are gone are dropped.
    pub fn open(
        settings: AlertingSettings,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<Self>> {
        let directory = data_dir.join("alerting");
        std::fs::create_dir_all(&directory)?;
        let compiled = rule_file::load(&settings.rule_files)
            .and_then(compile)
            .map_err(|errors| {
                let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
                anyhow::anyhow!("invalid rule files:\n  {}", listed.join("\n  "))
            })?;
        let persisted = Persisted::read(&directory.join(STATE_FILE));
        let silences: Vec<Silence> = read_json(&directory.join(SILENCES_FILE)).unwrap_or_default();
        let mut receivers = Vec::new();
        for receiver in &settings.receivers {
            receivers.push(Receiver::open(receiver.clone(), &directory.join("outbox"))?);
        }
        let mut dispatcher = persisted.dispatcher;
        let names: Vec<&str> = settings.receivers.iter().map(|r| r.name.as_str()).collect();
        dispatcher.retain_receivers(&names);
        let alerting = Arc::new(Self {
            state: Mutex::new(EngineState {
                groups: Vec::new(),
                dispatcher,
                silences: Silences::from_list(silences),
                state_dirty: true,
                silences_dirty: false,
            }),
            settings,
            receivers,
            directory,
            wake: Notify::new(),
            rounds: Mutex::default(),
            recorder: std::sync::OnceLock::new(),
        });
        let carried = persisted
            .rules
            .into_iter()
            .map(|(key, saved)| {
                let carried = Carried {
                    tenant: saved.tenant,
                    alerts: saved.alerts,
                    evaluation: None,
                };
                (key, carried)
            })
            .collect();
        let loaded = {
            let mut state = alerting.lock();
            alerting.install(&mut state, compiled, carried, BTreeMap::new())
        };
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

    /// Reads the rule files again; on any error the running rules stay. Alerts of rules that
    /// remain carry over; firing alerts of removed rules resolve.
    pub fn reload(&self) -> Result<Loaded, ReloadError> {
        let compiled = rule_file::load(&self.settings.rule_files)
            .and_then(compile)
            .map_err(ReloadError)?;
        let mut state = self.lock();
        let mut carried = BTreeMap::new();
        let mut schedules = BTreeMap::new();
        for group in state.groups.drain(..) {
            let keys = rule_keys(&group.definition);
            let tenant = group.definition.tenant.to_string();
            schedules.insert(
                group.key(),
                Schedule {
                    next_due: group.next_due,
                    running: group.running,
                    last_evaluation_ms: group.last_evaluation_ms,
                    evaluation_time: group.evaluation_time,
                },
            );
            for (key, runtime) in keys.into_iter().zip(group.rules) {
                let evaluation = Some((
                    runtime.health,
                    runtime.last_error,
                    runtime.last_evaluation_ms,
                    runtime.evaluation_time,
                ));
                let carried_rule = Carried {
                    tenant: tenant.clone(),
                    alerts: runtime.alerts,
                    evaluation,
                };
                carried.insert(key, carried_rule);
            }
        }
        let loaded = self.install(&mut state, compiled, carried, schedules);
        drop(state);
        self.wake.notify_one();
        info!(
            groups = loaded.groups,
            rules = loaded.rules,
            "alerting rules reloaded"
        );
        Ok(loaded)
    }

    /// Puts `compiled` in place, with the alerts and schedules carried over; carried alerts
    /// of rules that are gone resolve.
    fn install(
        &self,
        state: &mut EngineState,
        compiled: Vec<(GroupDefinition, Vec<Rule>)>,
        mut carried: BTreeMap<String, Carried>,
        mut schedules: BTreeMap<String, Schedule>,
    ) -> Loaded {
        let now = now_ms();
        let mut groups = Vec::with_capacity(compiled.len());
        for (definition, rules) in compiled {
            let keys = rule_keys(&definition);
            let rules = keys
                .iter()
                .zip(rules)
                .map(|(key, rule)| {
                    let mut runtime = new_runtime(rule);
                    if let Some(previous) = carried.remove(key) {
                        runtime.alerts = previous.alerts;
                        if let Some((health, error, at_ms, took)) = previous.evaluation {
                            runtime.health = health;
                            runtime.last_error = error;
                            runtime.last_evaluation_ms = at_ms;
                            runtime.evaluation_time = took;
                        }
                    }
                    runtime
                })
                .collect();
            let schedule = schedules.remove(&group_key(&definition));
            groups.push(GroupRuntime {
                interval: definition
                    .interval
                    .unwrap_or(self.settings.evaluation_interval),
                rules,
                next_due: schedule.as_ref().map_or_else(Instant::now, |s| s.next_due),
                running: schedule.as_ref().is_some_and(|s| s.running),
                last_evaluation_ms: schedule.as_ref().map_or(0, |s| s.last_evaluation_ms),
                evaluation_time: schedule.map_or(Duration::ZERO, |s| s.evaluation_time),
                definition,
            });
        }
        state.groups = groups;
        for gone in carried.into_values() {
            for alert in gone.alerts.iter().filter(|a| a.state == AlertState::Firing) {
                if let Some(receiver) = self.receiver_for(&alert.labels) {
                    let resolved = self.group_alert(alert, Some(now));
                    let grouping = &self.settings.grouping;
                    state
                        .dispatcher
                        .add(grouping, &receiver, &gone.tenant, resolved, now);
                }
            }
        }
        state.state_dirty = true;
        Loaded {
            groups: state.groups.len(),
            rules: state.groups.iter().map(|g| g.rules.len()).sum(),
        }
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

    /// Sends what recording rules produce to `sender` (the server writes it as remote write
    /// into the tenant's metrics); without one, recording rules are evaluated but nothing is
    /// written.
    pub fn record_into(&self, sender: mpsc::Sender<RecordedSeries>) {
        if self.recorder.set(sender).is_err() {
            warn!("recorded series already have a destination");
        }
    }

    /// Hands a group's recorded series to the writer (dropped, and logged, when it lags).
    fn record(&self, outcome: &GroupOutcome) {
        let timeseries: Vec<TimeSeries> = outcome
            .results
            .iter()
            .flat_map(|result| &result.recorded)
            .map(|(labels, value)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: *value,
                    timestamp: outcome.time_ms,
                }],
                ..TimeSeries::default()
            })
            .collect();
        if timeseries.is_empty() {
            return;
        }
        let Some(recorder) = self.recorder.get() else {
            return;
        };
        let request = WriteRequest {
            timeseries,
            ..WriteRequest::default()
        };
        if let Err(err) = recorder.try_send((outcome.tenant.clone(), request)) {
            warn!(group = %outcome.key, error = %err, "recorded series not written this evaluation");
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
        let wall_ms = now_ms();
        let mut state = self.lock();
        for group in &mut state.groups {
            if group.running || group.next_due > now {
                continue;
            }
            // Evaluated at the interval's boundary (groups of one interval share it, and
            // their reads with it), next at the following one.
            let interval_ms = i64::try_from(group.interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let time_ms = wall_ms - wall_ms.rem_euclid(interval_ms);
            let until_next = u64::try_from(time_ms + interval_ms - wall_ms).unwrap_or(0);
            group.next_due = now + Duration::from_millis(until_next);
            // A group first scheduled (start, reload) well past a boundary waits for the next
            // one rather than evaluate an old time; a time already evaluated is not again.
            let late = group.last_evaluation_ms == 0 && wall_ms - time_ms > LATE_START_MS;
            if late
                || time_ms <= group.last_evaluation_ms
                || group.rules.iter().all(|r| !r.rule.is_evaluated())
            {
                continue;
            }
            group.running = true;
            let job = GroupJob {
                time_ms,
                key: group.key(),
                tenant: group.definition.tenant.clone(),
                rules: group.rules.iter().map(|r| Arc::clone(&r.rule)).collect(),
                known_examples: group.rules.iter().map(|r| r.examples.clone()).collect(),
                deadline: group.interval,
            };
            let engine = Arc::clone(self);
            let storage = Arc::clone(storage);
            let limits = Arc::clone(limits);
            let shared = self.round_reads(time_ms);
            let external_url = self.settings.external_url.clone();
            let key = job.key.clone();
            tokio::spawn(async move {
                // Its own task, so a panic in a query still frees the group.
                let evaluation = tokio::spawn(async move {
                    job.evaluate(&storage, limits.as_ref(), &shared, &external_url)
                        .await
                });
                match evaluation.await {
                    Ok(outcome) => {
                        engine.record(&outcome);
                        engine.apply(outcome);
                    }
                    Err(err) => {
                        error!(group = %key, error = %err, "alerting group evaluation failed");
                        engine.free_group(&key);
                    }
                }
                engine.wake.notify_one();
            });
        }
    }

    /// The shared reads of the round evaluated at `time_ms`: held by that round's jobs only,
    /// freed when the last of them ends.
    fn round_reads(&self, time_ms: i64) -> Arc<SharedReads> {
        let mut rounds = self
            .rounds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rounds.retain(|_, reads| reads.strong_count() > 0);
        if let Some(reads) = rounds.get(&time_ms).and_then(std::sync::Weak::upgrade) {
            return reads;
        }
        let reads = Arc::new(SharedReads::default());
        rounds.insert(time_ms, Arc::downgrade(&reads));
        reads
    }

    /// Marks `key`'s group as no longer evaluating.
    fn free_group(&self, key: &str) {
        let mut state = self.lock();
        if let Some(group) = state.groups.iter_mut().find(|g| g.key() == key) {
            group.running = false;
        }
    }

    /// Applies a group's evaluation: alert states, then the dispatcher. Results of rules that
    /// a reload replaced meanwhile are dropped.
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
            runtime.examples = result.examples;
            let candidates = match result.candidates {
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
            let mut resolved = runtime.alerts.apply(candidates, outcome.time_ms, timing);
            let current: HashSet<u64> = runtime
                .alerts
                .iter()
                .map(|alert| super::labels::fingerprint(&alert.labels))
                .collect();
            runtime.examples.retain(|key, _| current.contains(key));
            if limit > 0 && runtime.alerts.len() > limit {
                // As Prometheus: a rule over its group's limit holds no alerts and fails.
                let error = format!(
                    "{} alerts exceed the group's limit of {limit}",
                    runtime.alerts.len()
                );
                warn!(rule = %runtime.rule.definition.name, %error, "alerting rule over its limit; its alerts resolve");
                resolved.extend(runtime.alerts.resolve_all(outcome.time_ms));
                runtime.health = Health::Err;
                runtime.last_error = error;
            }
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
                            let tenant = group.definition.tenant.to_string();
                            rule_keys(&group.definition)
                                .into_iter()
                                .zip(&group.rules)
                                .map(move |(key, runtime)| {
                                    let saved = SavedRule {
                                        tenant: tenant.clone(),
                                        alerts: runtime.alerts.clone(),
                                    };
                                    (key, saved)
                                })
                        })
                        .filter(|(_, saved)| !saved.alerts.is_empty())
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
            let outgoing = Outgoing::new(
                notification.previous_ms,
                notification.created_ms,
                notification.message,
            );
            let receiver = Arc::clone(receiver);
            match tokio::task::spawn_blocking(move || receiver.enqueue(outgoing)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    error!(receiver = %notification.receiver, error = %err, "cannot write a notification to the outbox; it is sent from memory only")
                }
                Err(err) => error!(error = %err, "outbox task failed"),
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

fn new_runtime(rule: Rule) -> RuleRuntime {
    RuleRuntime {
        rule: Arc::new(rule),
        alerts: RuleAlerts::default(),
        health: Health::Unknown,
        last_error: String::new(),
        last_evaluation_ms: 0,
        evaluation_time: Duration::ZERO,
        examples: ExampleTraces::new(),
    }
}

/// Every rule of `definitions` made ready to run, or every one that cannot be.
fn compile(
    definitions: Vec<GroupDefinition>,
) -> Result<Vec<(GroupDefinition, Vec<Rule>)>, Vec<RuleFileError>> {
    let mut errors = Vec::new();
    let mut compiled = Vec::with_capacity(definitions.len());
    for definition in definitions {
        let mut rules = Vec::with_capacity(definition.rules.len());
        for rule in &definition.rules {
            match Rule::new(rule.clone()) {
                Ok(rule) => rules.push(rule),
                Err(message) => errors.push(RuleFileError {
                    file: definition.file.clone(),
                    line: rule.line,
                    message,
                }),
            }
        }
        compiled.push((definition, rules));
    }
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(errors)
    }
}

/// A group's evaluation, run outside the lock.
struct GroupJob {
    key: String,
    /// The evaluation time: the interval boundary the group was due at.
    time_ms: i64,
    tenant: TenantId,
    rules: Vec<Arc<Rule>>,
    /// Per rule, the example traces its alerts already name (by fingerprint).
    known_examples: Vec<ExampleTraces>,
    deadline: Duration,
}

struct RuleOutcome {
    rule: Arc<Rule>,
    candidates: Result<Vec<super::alert_state::AlertCandidate>, String>,
    /// A recording rule's series.
    recorded: Vec<(LabelSet, f64)>,
    examples: ExampleTraces,
    took: Duration,
}

struct GroupOutcome {
    key: String,
    tenant: TenantId,
    time_ms: i64,
    took: Duration,
    results: Vec<RuleOutcome>,
}

impl GroupJob {
    async fn evaluate(
        self,
        storage: &Arc<Storage>,
        limits: &(dyn Fn(&TenantId) -> ScanLimits + Send + Sync),
        shared: &SharedReads,
        external_url: &str,
    ) -> GroupOutcome {
        let started = Instant::now();
        let time_ms = self.time_ms;
        let mut results = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.into_iter().enumerate() {
            let rule_started = Instant::now();
            let mut scan_limits = limits(&self.tenant);
            // A group's evaluation must end before it is due again.
            let group_deadline = started + self.deadline;
            scan_limits.deadline = Some(
                scan_limits
                    .deadline
                    .map_or(group_deadline, |d| d.min(group_deadline)),
            );
            let mut examples = self.known_examples.get(index).cloned().unwrap_or_default();
            let mut recorded = Vec::new();
            let candidates = if rule.is_evaluated() {
                let deadline = tokio::time::Instant::from_std(group_deadline);
                let store = StoreSource::new(storage, self.tenant.clone(), scan_limits);
                let series = SharedSource::new(store, self.tenant.clone(), shared);
                let samples = rule.samples(&series, storage, &self.tenant, scan_limits, time_ms);
                match tokio::time::timeout_at(deadline, samples).await {
                    Ok(Ok(samples)) if rule.is_recording() => {
                        rule.recorded_series(samples).map(|series| {
                            recorded = series;
                            Vec::new()
                        })
                    }
                    Ok(Ok(samples)) => match rule.candidates(samples, external_url) {
                        Ok(mut candidates) if !candidates.is_empty() => {
                            let source =
                                StoreSource::new(storage, self.tenant.clone(), scan_limits);
                            // An example is a nicety: a tenth of the interval at most, so the
                            // group's other rules keep their time.
                            let lookup_deadline =
                                deadline.min(tokio::time::Instant::now() + self.deadline / 10);
                            rule.name_example_traces(
                                &mut candidates,
                                &mut examples,
                                &source,
                                time_ms,
                                lookup_deadline,
                                external_url,
                            )
                            .await;
                            Ok(candidates)
                        }
                        other => other,
                    },
                    Ok(Err(err)) => Err(err),
                    Err(_) => Err(format!(
                        "the group's evaluation took longer than its interval ({:?})",
                        self.deadline
                    )),
                }
            } else {
                Err("the rule has no query to evaluate".to_owned())
            };
            results.push(RuleOutcome {
                rule,
                candidates,
                recorded,
                examples,
                took: rule_started.elapsed(),
            });
        }
        GroupOutcome {
            key: self.key,
            tenant: self.tenant,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn keys(text: &str) -> Vec<String> {
        let groups = rule_file::parse_file(Path::new("r.yml"), text).expect("valid");
        rule_keys(&groups[0])
    }

    #[test]
    fn rule_keys_survive_insertions_and_name_the_tenant() {
        let before = keys(
            "groups:\n  - name: g\n    rules:\n      - {alert: A, expr: up}\n      - {alert: B, expr: up}\n      - {alert: B, expr: up == 0}\n",
        );
        let after = keys(
            "groups:\n  - name: g\n    rules:\n      - {alert: New, expr: up}\n      - {alert: B, expr: up}\n      - {alert: A, expr: up}\n      - {alert: B, expr: up == 0}\n",
        );
        assert_eq!(after[2], before[0], "A keeps its key");
        assert_eq!(&after[1..2], &before[1..2], "the first B keeps its key");
        assert_eq!(after[3], before[2], "the second B keeps its key");
        let other_tenant = keys(
            "groups:\n  - name: g\n    tenant: shop\n    rules:\n      - {alert: A, expr: up}\n",
        );
        assert_ne!(other_tenant[0], before[0]);
    }
}
