//! One alerting rule's alerts through their states, as Prometheus moves them: a label set
//! that appears in the query result is *pending*; once it has held for the rule's `for` it is
//! *firing*; when it leaves the result a pending alert is dropped and a firing one keeps firing
//! for `keep_firing_for`, then *resolves* (handed to notification once, then forgotten).
//! Pure: evaluation time comes in as an argument, so tests drive a clock by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::labels::{LabelSet, fingerprint};

/// Pending or firing (inactive alerts are not held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, not yet for long enough.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
}

/// An alert that is pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Its identity: the result's labels (without `__name__`), the rule's labels and
    /// `alertname`.
    pub labels: LabelSet,
    /// Annotations expanded at the last evaluation.
    pub annotations: LabelSet,
    /// Pending or firing.
    pub state: AlertState,
    /// The query's value at the last evaluation (saved as text: JSON has no NaN or Inf).
    #[serde(with = "float_text")]
    pub value: f64,
    /// When the condition first held, Unix ms.
    pub active_at_ms: i64,
    /// When it started firing, Unix ms.
    pub fired_at_ms: Option<i64>,
    /// Since when a firing alert is kept firing without its condition, Unix ms.
    pub keep_firing_since_ms: Option<i64>,
}

/// A firing alert whose condition ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAlert {
    /// The alert as it last was.
    pub alert: ActiveAlert,
    /// When it resolved, Unix ms.
    pub resolved_at_ms: i64,
}

/// One result of the rule's query, labels and annotations already made.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCandidate {
    /// Final labels.
    pub labels: LabelSet,
    /// Expanded annotations.
    pub annotations: LabelSet,
    /// The query's value.
    pub value: f64,
}

/// How long a condition must hold and a firing alert is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// `for`.
    pub hold: Duration,
    /// `keep_firing_for`.
    pub keep_firing_for: Duration,
}

/// The alerts of one rule, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleAlerts {
    alerts: BTreeMap<u64, ActiveAlert>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl RuleAlerts {
    /// The alerts, pending and firing.
    pub fn iter(&self) -> impl Iterator<Item = &ActiveAlert> {
        self.alerts.values()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Resolves every firing alert and drops the pending ones (a rule over its group's
    /// `limit`, as Prometheus discards its alerts).
    pub fn resolve_all(&mut self, now_ms: i64) -> Vec<ResolvedAlert> {
        std::mem::take(&mut self.alerts)
            .into_values()
            .filter(|alert| alert.state == AlertState::Firing)
            .map(|alert| ResolvedAlert {
                alert,
                resolved_at_ms: now_ms,
            })
            .collect()
    }

    /// How many alerts are held.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Applies one evaluation at `now_ms`: returns the alerts that resolved.
    pub fn apply(
        &mut self,
        candidates: Vec<AlertCandidate>,
        now_ms: i64,
        timing: Timing,
    ) -> Vec<ResolvedAlert> {
        let mut seen = std::collections::HashSet::with_capacity(candidates.len());
        for candidate in candidates {
            let key = fingerprint(&candidate.labels);
            seen.insert(key);
            let alert = self.alerts.entry(key).or_insert_with(|| ActiveAlert {
                labels: candidate.labels.clone(),
                annotations: LabelSet::new(),
                state: AlertState::Pending,
                value: candidate.value,
                active_at_ms: now_ms,
                fired_at_ms: None,
                keep_firing_since_ms: None,
            });
            alert.annotations = candidate.annotations;
            alert.value = candidate.value;
            alert.keep_firing_since_ms = None;
        }
        let mut resolved = Vec::new();
        let keep_ms = millis(timing.keep_firing_for);
        self.alerts.retain(|key, alert| {
            if seen.contains(key) {
                return true;
            }
            if alert.state == AlertState::Pending {
                return false;
            }
            let since = *alert.keep_firing_since_ms.get_or_insert(now_ms);
            if keep_ms > 0 && now_ms - since < keep_ms {
                return true;
            }
            resolved.push(ResolvedAlert {
                alert: alert.clone(),
                resolved_at_ms: now_ms,
            });
            false
        });
        let hold_ms = millis(timing.hold);
        for alert in self.alerts.values_mut() {
            if alert.state == AlertState::Pending && now_ms - alert.active_at_ms >= hold_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(now_ms);
            }
        }
        resolved
    }
}

/// A float as text (`NaN`, `inf` included), read back exactly.
mod float_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(instance: &str, value: f64) -> AlertCandidate {
        AlertCandidate {
            labels: [("alertname", "Down"), ("instance", instance)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            annotations: LabelSet::new(),
            value,
        }
    }

    fn states(alerts: &RuleAlerts) -> Vec<(String, AlertState)> {
        alerts
            .iter()
            .map(|a| (a.labels["instance"].clone(), a.state))
            .collect()
    }

    const MINUTE: i64 = 60_000;

    #[test]
    fn pending_then_firing_then_resolved() {
        let timing = Timing {
            hold: Duration::from_secs(120),
            keep_firing_for: Duration::ZERO,
        };
        let mut alerts = RuleAlerts::default();
        assert!(
            alerts
                .apply(vec![candidate("a", 1.0)], 0, timing)
                .is_empty()
        );
        assert_eq!(states(&alerts), [("a".into(), AlertState::Pending)]);
        alerts.apply(vec![candidate("a", 2.0)], MINUTE, timing);
        assert_eq!(states(&alerts), [("a".into(), AlertState::Pending)]);
        alerts.apply(vec![candidate("a", 3.0)], 2 * MINUTE, timing);
        assert_eq!(states(&alerts), [("a".into(), AlertState::Firing)]);
        let firing = alerts.iter().next().expect("one").clone();
        assert_eq!(
            (firing.active_at_ms, firing.fired_at_ms),
            (0, Some(2 * MINUTE))
        );
        assert_eq!(firing.value, 3.0);
        let resolved = alerts.apply(Vec::new(), 3 * MINUTE, timing);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].resolved_at_ms, 3 * MINUTE);
        assert!(alerts.is_empty());
    }

    #[test]
    fn saved_alerts_read_back_exactly_even_infinite_ones() {
        let mut alerts = RuleAlerts::default();
        let timing = Timing::default();
        alerts.apply(
            vec![
                candidate("a", f64::INFINITY),
                candidate("b", f64::NAN),
                candidate("c", 0.1),
            ],
            0,
            timing,
        );
        let text = serde_json::to_string(&alerts).expect("saves");
        let mut back: RuleAlerts = serde_json::from_str(&text).expect("reads back");
        let values: Vec<String> = back.iter().map(|a| a.value.to_string()).collect();
        assert_eq!(values, ["inf", "NaN", "0.1"]);
        assert_eq!(back.resolve_all(5).len(), 3);
    }

    #[test]
    fn a_pending_alert_that_stops_is_dropped_without_resolving() {
        let timing = Timing {
            hold: Duration::from_secs(300),
            keep_firing_for: Duration::ZERO,
        };
        let mut alerts = RuleAlerts::default();
        alerts.apply(vec![candidate("a", 1.0)], 0, timing);
        assert!(alerts.apply(Vec::new(), MINUTE, timing).is_empty());
        assert!(alerts.is_empty());
        // Back again: pending from the start.
        alerts.apply(vec![candidate("a", 1.0)], 2 * MINUTE, timing);
        assert_eq!(
            alerts.iter().next().map(|a| a.active_at_ms),
            Some(2 * MINUTE)
        );
    }

    #[test]
    fn without_for_an_alert_fires_at_once_and_keep_firing_for_holds_it() {
        let timing = Timing {
            hold: Duration::ZERO,
            keep_firing_for: Duration::from_secs(120),
        };
        let mut alerts = RuleAlerts::default();
        alerts.apply(vec![candidate("a", 1.0), candidate("b", 1.0)], 0, timing);
        assert_eq!(
            states(&alerts),
            [
                ("a".into(), AlertState::Firing),
                ("b".into(), AlertState::Firing)
            ]
        );
        assert!(
            alerts
                .apply(vec![candidate("b", 1.0)], MINUTE, timing)
                .is_empty()
        );
        // `a` is kept; back in the result it is no longer counting down.
        alerts.apply(
            vec![candidate("a", 1.0), candidate("b", 1.0)],
            2 * MINUTE,
            timing,
        );
        assert!(alerts.apply(Vec::new(), 3 * MINUTE, timing).is_empty());
        assert!(alerts.apply(Vec::new(), 4 * MINUTE, timing).is_empty());
        let resolved = alerts.apply(Vec::new(), 5 * MINUTE, timing);
        assert_eq!(resolved.len(), 2);
    }
}
