//! The webhook body: Alertmanager's webhook version 4 JSON, field for field, so any receiver
//! of Alertmanager webhooks takes skewer's unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::labels::{LabelSet, fingerprint_text};

/// Alertmanager's zero time, the `endsAt` of an alert still firing.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One alert as a group holds it for notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAlert {
    /// Labels.
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// When it started firing, Unix ms.
    pub starts_at_ms: i64,
    /// When it resolved, Unix ms; `None` while firing.
    pub ends_at_ms: Option<i64>,
    /// Link back to the rule in skewer.
    pub generator_url: String,
}

impl GroupAlert {
    /// Whether it still fires.
    pub fn is_firing(&self) -> bool {
        self.ends_at_ms.is_none()
    }
}

/// Alertmanager's webhook (version 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// `"4"`.
    pub version: String,
    /// The group's key.
    pub group_key: String,
    /// Alerts left out (always 0: skewer sends every alert of a group).
    pub truncated_alerts: u64,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is made by.
    pub group_labels: LabelSet,
    /// Labels every alert has (same value).
    pub common_labels: LabelSet,
    /// Annotations every alert has.
    pub common_annotations: LabelSet,
    /// Where skewer is reached.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; the zero time while firing.
    pub ends_at: String,
    /// Link to the rule.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the labels.
    pub fingerprint: String,
}

/// `ms` as RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ZERO_TIME.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

fn common(sets: impl Iterator<Item = LabelSet>) -> LabelSet {
    let mut common: Option<LabelSet> = None;
    for set in sets {
        common = Some(match common {
            None => set,
            Some(mut kept) => {
                kept.retain(|name, value| set.get(name) == Some(value));
                kept
            }
        });
    }
    common.unwrap_or_default()
}

/// The message for a group's `alerts` (firing first, then resolved, each by fingerprint).
pub fn webhook_message(
    receiver: &str,
    group_key: &str,
    group_labels: &LabelSet,
    external_url: &str,
    alerts: &[GroupAlert],
) -> WebhookMessage {
    let mut message = WebhookMessage {
        version: "4".to_owned(),
        group_key: group_key.to_owned(),
        truncated_alerts: 0,
        status: String::new(),
        receiver: receiver.to_owned(),
        group_labels: group_labels.clone(),
        common_labels: LabelSet::new(),
        common_annotations: LabelSet::new(),
        external_url: external_url.to_owned(),
        alerts: alerts
            .iter()
            .map(|alert| WebhookAlert {
                status: if alert.is_firing() { FIRING } else { RESOLVED }.to_owned(),
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at: rfc3339(alert.starts_at_ms),
                ends_at: alert
                    .ends_at_ms
                    .map_or_else(|| ZERO_TIME.to_owned(), rfc3339),
                generator_url: alert.generator_url.clone(),
                fingerprint: fingerprint_text(&alert.labels),
            })
            .collect(),
    };
    message.summarize();
    message
}

const FIRING: &str = "firing";
const RESOLVED: &str = "resolved";

impl WebhookMessage {
    /// Adds the resolved alerts of `older` (an undelivered message of the same group this one
    /// replaces) that this one does not carry, so no resolution is lost to the replacement.
    pub fn absorb_resolutions(&mut self, older: &WebhookMessage) {
        let carried: std::collections::HashSet<String> =
            self.alerts.iter().map(|a| a.fingerprint.clone()).collect();
        let missing: Vec<WebhookAlert> = older
            .alerts
            .iter()
            .filter(|a| a.status == RESOLVED && !carried.contains(&a.fingerprint))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.alerts.extend(missing);
            self.summarize();
        }
    }

    /// Orders the alerts (firing first, each by fingerprint) and derives the status and the
    /// common labels and annotations from them.
    fn summarize(&mut self) {
        self.alerts.sort_by(|a, b| {
            (a.status != FIRING, &a.fingerprint).cmp(&(b.status != FIRING, &b.fingerprint))
        });
        let firing = self.alerts.iter().any(|a| a.status == FIRING);
        self.status = if firing { FIRING } else { RESOLVED }.to_owned();
        self.common_labels = common(self.alerts.iter().map(|a| a.labels.clone()));
        self.common_annotations = common(self.alerts.iter().map(|a| a.annotations.clone()));
    }
}

/// A firing (`ends_at_ms: None`) or resolved `Down` alert of `instance`, for tests.
#[cfg(test)]
pub(crate) fn down_alert(instance: &str, ends_at_ms: Option<i64>) -> GroupAlert {
    GroupAlert {
        labels: [("alertname", "Down"), ("instance", instance)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        annotations: LabelSet::new(),
        starts_at_ms: 0,
        ends_at_ms,
        generator_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_message_is_alertmanagers_version_4() {
        let alerts = [
            GroupAlert {
                labels: set(&[("alertname", "Down"), ("instance", "b"), ("team", "x")]),
                annotations: set(&[("summary", "b down")]),
                starts_at_ms: 1_700_000_000_000,
                ends_at_ms: Some(1_700_000_060_000),
                generator_url: "http://s/#/alerts".into(),
            },
            GroupAlert {
                labels: set(&[("alertname", "Down"), ("instance", "a"), ("team", "x")]),
                annotations: set(&[("summary", "a down")]),
                starts_at_ms: 1_700_000_000_500,
                ends_at_ms: None,
                generator_url: "http://s/#/alerts".into(),
            },
        ];
        let message = webhook_message(
            "ops",
            r#"{}/{tenant="default"}:{alertname="Down"}"#,
            &set(&[("alertname", "Down")]),
            "http://s",
            &alerts,
        );
        let json = serde_json::to_value(&message).expect("serializes");
        let expected = serde_json::json!({
            "version": "4",
            "groupKey": "{}/{tenant=\"default\"}:{alertname=\"Down\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops",
            "groupLabels": {"alertname": "Down"},
            "commonLabels": {"alertname": "Down", "team": "x"},
            "commonAnnotations": {},
            "externalURL": "http://s",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "Down", "instance": "a", "team": "x"},
                    "annotations": {"summary": "a down"},
                    "startsAt": "2023-11-14T22:13:20.500Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://s/#/alerts",
                    "fingerprint": fingerprint_text(&alerts[1].labels),
                },
                {
                    "status": "resolved",
                    "labels": {"alertname": "Down", "instance": "b", "team": "x"},
                    "annotations": {"summary": "b down"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "2023-11-14T22:14:20.000Z",
                    "generatorURL": "http://s/#/alerts",
                    "fingerprint": fingerprint_text(&alerts[0].labels),
                }
            ]
        });
        assert_eq!(json, expected);

        // A replacement that lacks an earlier resolution carries it.
        let mut newer = webhook_message("ops", "g", &LabelSet::new(), "http://s", &alerts[1..]);
        assert_eq!(newer.status, "firing");
        newer.absorb_resolutions(&message);
        assert_eq!(newer.alerts.len(), 2);
        assert_eq!(newer.alerts[1].status, "resolved");
        assert_eq!(newer.common_labels, message.common_labels);
    }
}
