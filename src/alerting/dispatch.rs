//! Grouping, as Alertmanager groups: alerts of one receiver and tenant with the same values of
//! the `group_by` labels form a group; a new group is notified after `group_wait`, then looked
//! at every `group_interval` and notified again only when an alert started firing, resolved,
//! or `repeat_interval` passed since the last notification. Silenced alerts are left out.
//! What each group last told its receiver is kept (and persisted), so a restart neither
//! repeats a notification nor forgets one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::labels::{Display, LabelSet, fingerprint};
use super::payload::{GroupAlert, WebhookMessage, webhook_message};
use super::silences::Silences;

/// How alerts are grouped and how often groups are notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingSettings {
    /// Labels a group is made by; `["..."]` groups by every label (one group per alert).
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification (to gather its alerts).
    pub group_wait: Duration,
    /// Wait between looks at a group that was notified.
    pub group_interval: Duration,
    /// Wait before a group that did not change is notified again.
    pub repeat_interval: Duration,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What a group last told its receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Notified {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    at_ms: i64,
}

/// The alerts of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    receiver: String,
    tenant: String,
    group_labels: LabelSet,
    group_key: String,
    alerts: BTreeMap<u64, GroupAlert>,
    next_flush_ms: i64,
    last: Option<Notified>,
}

/// A notification ready for its receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The receiver's name.
    pub receiver: String,
    /// The body (its `groupKey` names the group).
    pub message: WebhookMessage,
    /// When it was made, Unix ms.
    pub created_ms: i64,
    /// When the group was notified before, Unix ms (0: never).
    pub previous_ms: i64,
}

/// Every group, by receiver and key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispatcher {
    groups: BTreeMap<String, Group>,
}

/// What a receiver wants: its name and whether it hears of resolved alerts.
pub struct ReceiverView<'a> {
    /// Name.
    pub name: &'a str,
    /// `send_resolved`.
    pub send_resolved: bool,
}

impl Dispatcher {
    /// Adds or updates `alert` (firing, or resolved with its end) in its group for `receiver`.
    pub fn add(
        &mut self,
        settings: &GroupingSettings,
        receiver: &str,
        tenant: &str,
        alert: GroupAlert,
        now_ms: i64,
    ) {
        let group_labels: LabelSet = if settings.group_by.iter().any(|name| name == "...") {
            alert.labels.clone()
        } else {
            settings
                .group_by
                .iter()
                .filter_map(|name| Some((name.clone(), alert.labels.get(name)?.clone())))
                .collect()
        };
        let group_key = format!("{{}}/{{tenant={tenant:?}}}:{}", Display(&group_labels));
        let id = format!("{receiver}\u{0}{group_key}");
        let key = fingerprint(&alert.labels);
        if !alert.is_firing()
            && !self
                .groups
                .get(&id)
                .is_some_and(|g| g.alerts.contains_key(&key))
        {
            // A resolution of an alert the group does not hold: nothing to tell.
            return;
        }
        let group = self.groups.entry(id).or_insert_with(|| Group {
            receiver: receiver.to_owned(),
            tenant: tenant.to_owned(),
            group_labels,
            group_key,
            alerts: BTreeMap::new(),
            next_flush_ms: now_ms.saturating_add(millis(settings.group_wait)),
            last: None,
        });
        group.alerts.insert(key, alert);
    }

    /// When the next group is due, Unix ms.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.groups.values().map(|group| group.next_flush_ms).min()
    }

    /// Drops the groups of receivers no longer configured (their notifications could not be
    /// sent, and would be made again at every repeat).
    pub fn retain_receivers(&mut self, names: &[&str]) {
        self.groups
            .retain(|_, group| names.contains(&group.receiver.as_str()));
    }

    /// How many groups are held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Flushes every group due at `now_ms`: the notifications to send.
    pub fn flush_due(
        &mut self,
        settings: &GroupingSettings,
        receivers: &[ReceiverView<'_>],
        silences: &Silences,
        external_url: &str,
        now_ms: i64,
    ) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let repeat_ms = millis(settings.repeat_interval);
        self.groups.retain(|_, group| {
            if group.next_flush_ms > now_ms {
                return true;
            }
            let send_resolved = receivers
                .iter()
                .find(|r| r.name == group.receiver)
                .is_none_or(|r| r.send_resolved);
            let audible: Vec<(u64, &GroupAlert)> = group
                .alerts
                .iter()
                .filter(|(_, alert)| {
                    silences
                        .muting(&group.tenant, &alert.labels, now_ms)
                        .is_empty()
                })
                .map(|(key, alert)| (*key, alert))
                .collect();
            let firing: BTreeSet<u64> = audible
                .iter()
                .filter(|(_, a)| a.is_firing())
                .map(|(key, _)| *key)
                .collect();
            let resolved: BTreeSet<u64> = audible
                .iter()
                .filter(|(_, a)| !a.is_firing())
                .map(|(key, _)| *key)
                .collect();
            if needs_update(
                group.last.as_ref(),
                &firing,
                &resolved,
                send_resolved,
                now_ms,
                repeat_ms,
            ) {
                let alerts: Vec<GroupAlert> = audible
                    .iter()
                    .filter(|(_, a)| send_resolved || a.is_firing())
                    .map(|(_, a)| (*a).clone())
                    .collect();
                if !alerts.is_empty() {
                    notifications.push(Notification {
                        receiver: group.receiver.clone(),
                        previous_ms: group.last.as_ref().map_or(0, |last| last.at_ms),
                        message: webhook_message(
                            &group.receiver,
                            &group.group_key,
                            &group.group_labels,
                            external_url,
                            &alerts,
                        ),
                        created_ms: now_ms,
                    });
                }
                group.last = Some(Notified {
                    firing,
                    resolved,
                    at_ms: now_ms,
                });
            }
            group.alerts.retain(|_, alert| alert.is_firing());
            group.next_flush_ms = now_ms.saturating_add(millis(settings.group_interval));
            !group.alerts.is_empty()
        });
        notifications
    }
}

/// Alertmanager's rule for whether a group's receiver must hear of it again.
fn needs_update(
    last: Option<&Notified>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    now_ms: i64,
    repeat_ms: i64,
) -> bool {
    let Some(last) = last else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&last.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell a receiver that heard of firing alerts.
        return !last.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&last.resolved) {
        return true;
    }
    now_ms - last.at_ms >= repeat_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::payload::down_alert;
    use crate::alerting::silences::{Silence, SilenceMatcher};

    const SECOND: i64 = 1_000;

    fn settings() -> GroupingSettings {
        GroupingSettings {
            group_by: vec!["alertname".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3_600),
        }
    }

    fn flush(dispatcher: &mut Dispatcher, silences: &Silences, now_ms: i64) -> Vec<Vec<String>> {
        let receivers = [ReceiverView {
            name: "ops",
            send_resolved: true,
        }];
        dispatcher
            .flush_due(&settings(), &receivers, silences, "http://s", now_ms)
            .into_iter()
            .map(|n| {
                n.message
                    .alerts
                    .iter()
                    .map(|a| format!("{}:{}", a.labels["instance"], a.status))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn groups_wait_gather_and_notify_on_change_or_repeat() {
        let (s, none) = (settings(), Silences::default());
        let mut d = Dispatcher::default();
        d.add(&s, "ops", "default", down_alert("a", None), 0);
        d.add(&s, "ops", "default", down_alert("b", None), 10 * SECOND);
        assert!(flush(&mut d, &none, 29 * SECOND).is_empty(), "group_wait");
        assert_eq!(
            flush(&mut d, &none, 30 * SECOND),
            [["a:firing", "b:firing"]]
        );
        // Same alerts, one group_interval later: nothing new, no repeat yet.
        d.add(&s, "ops", "default", down_alert("a", None), 60 * SECOND);
        assert!(flush(&mut d, &none, 330 * SECOND).is_empty());
        // `b` resolves: told at the next interval, then forgotten.
        d.add(
            &s,
            "ops",
            "default",
            down_alert("b", Some(400 * SECOND)),
            400 * SECOND,
        );
        assert!(flush(&mut d, &none, 500 * SECOND).is_empty(), "not due yet");
        assert_eq!(
            flush(&mut d, &none, 630 * SECOND),
            [["a:firing", "b:resolved"]]
        );
        assert!(flush(&mut d, &none, 930 * SECOND).is_empty());
        // The repeat interval after the last notification (at 630 s), at the first look past it.
        assert!(flush(&mut d, &none, 4_229 * SECOND).is_empty());
        assert_eq!(flush(&mut d, &none, 4_529 * SECOND), [["a:firing"]]);
        // `a` resolves: the group is told and dropped.
        d.add(
            &s,
            "ops",
            "default",
            down_alert("a", Some(4_600 * SECOND)),
            4_600 * SECOND,
        );
        assert_eq!(flush(&mut d, &none, 4_829 * SECOND), [["a:resolved"]]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn silenced_alerts_are_left_out_until_the_silence_ends() {
        let s = settings();
        let mut silences = Silences::default();
        silences
            .upsert(Silence {
                id: "x".into(),
                tenant: "default".into(),
                matchers: vec![SilenceMatcher {
                    name: "instance".into(),
                    value: "b".into(),
                    is_regex: false,
                    is_equal: true,
                }],
                starts_at_ms: 0,
                ends_at_ms: 100 * SECOND,
                created_by: String::new(),
                comment: String::new(),
                updated_at_ms: 0,
            })
            .expect("valid");
        let mut d = Dispatcher::default();
        d.add(&s, "ops", "default", down_alert("a", None), 0);
        d.add(&s, "ops", "default", down_alert("b", None), 0);
        assert_eq!(flush(&mut d, &silences, 30 * SECOND), [["a:firing"]]);
        assert_eq!(
            flush(&mut d, &silences, 330 * SECOND),
            [["a:firing", "b:firing"]]
        );
    }

    #[test]
    fn groups_are_per_tenant_and_grouping_label() {
        let s = settings();
        let mut d = Dispatcher::default();
        d.add(&s, "ops", "default", down_alert("a", None), 0);
        d.add(&s, "ops", "shop", down_alert("a", None), 0);
        let mut other = down_alert("a", None);
        other.labels.insert("alertname".into(), "Slow".into());
        d.add(&s, "ops", "default", other, 0);
        assert_eq!(d.len(), 3);
        let keys: Vec<String> = d
            .flush_due(&s, &[], &Silences::default(), "", 30 * SECOND)
            .into_iter()
            .map(|n| n.message.group_key)
            .collect();
        assert_eq!(
            keys,
            [
                r#"{}/{tenant="default"}:{alertname="Down"}"#,
                r#"{}/{tenant="default"}:{alertname="Slow"}"#,
                r#"{}/{tenant="shop"}:{alertname="Down"}"#,
            ]
        );
    }

    #[test]
    fn an_alert_that_fired_and_resolved_unheard_is_not_told() {
        let s = settings();
        let mut d = Dispatcher::default();
        d.add(&s, "ops", "default", down_alert("a", None), 0);
        d.add(
            &s,
            "ops",
            "default",
            down_alert("a", Some(5 * SECOND)),
            5 * SECOND,
        );
        assert!(flush(&mut d, &Silences::default(), 30 * SECOND).is_empty());
        assert_eq!(d.len(), 0);
    }
}
