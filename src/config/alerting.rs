//! `[alerting]`: rule files, evaluation and grouping timing, the external URL alerts link to,
//! and `[[alerting.receivers]]` (webhooks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::alerting::{AlertingSettings, GroupingSettings, ReceiverSettings};

/// `[alerting]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSection {
    /// Rule files or globs (relative ones from the config file's directory).
    pub rule_files: Vec<String>,
    /// How often a group without its own `interval` is evaluated.
    pub evaluation_interval: String,
    /// The address alerts link back to (`generatorURL`, `externalURL`); default: the query
    /// address.
    pub external_url: String,
    /// Labels alerts are grouped by (`["..."]`: every label).
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification.
    pub group_wait: String,
    /// Wait between notifications of a changed group.
    pub group_interval: String,
    /// Wait before an unchanged firing group is notified again.
    pub repeat_interval: String,
    /// Webhooks.
    pub receivers: Vec<ReceiverSection>,
}

impl Default for AlertingSection {
    fn default() -> Self {
        Self {
            rule_files: Vec::new(),
            evaluation_interval: "1m".to_owned(),
            external_url: String::new(),
            group_by: vec!["alertname".to_owned()],
            group_wait: "30s".to_owned(),
            group_interval: "5m".to_owned(),
            repeat_interval: "4h".to_owned(),
            receivers: Vec::new(),
        }
    }
}

/// `[[alerting.receivers]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSection {
    /// The name rules pick it by (a `receiver` label); the first receiver takes the rest.
    pub name: String,
    /// Where notifications are POSTed.
    pub url: String,
    /// HMAC-SHA256 key of the `X-Skewer-Signature` header.
    #[serde(default)]
    pub secret: Option<String>,
    /// An environment variable holding the key (instead of `secret`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// An environment variable holding a bearer token, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Whether resolved alerts are sent.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Most notifications waiting for this receiver.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// A PEM CA certificate to trust beside the bundled roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_timeout() -> String {
    "10s".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_queue_capacity() -> usize {
    1_000
}

fn duration(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    promql_parser::util::duration::parse_duration(text).map_err(|err| ConfigError::Invalid {
        key,
        reason: format!("{text:?}: {err}"),
    })
}

/// [`duration`], `0` (with any unit) allowed.
fn duration_or_zero(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let number = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if number.parse::<u64>() == Ok(0) {
        return Ok(Duration::ZERO);
    }
    duration(key, text)
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

impl AlertingSection {
    /// Makes relative rule file paths relative to `dir` (the config file's directory).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for pattern in &mut self.rule_files {
            if Path::new(pattern.as_str()).is_relative() {
                *pattern = dir.join(pattern.as_str()).to_string_lossy().into_owned();
            }
        }
    }

    /// The settings, or which key is wrong (secrets from the environment are read here).
    pub fn settings(&self, default_external_url: &str) -> Result<AlertingSettings, ConfigError> {
        let evaluation_interval =
            duration("alerting.evaluation_interval", &self.evaluation_interval)?;
        if evaluation_interval.is_zero() {
            return Err(invalid(
                "alerting.evaluation_interval",
                "must be above 0".into(),
            ));
        }
        let grouping = GroupingSettings {
            group_by: self.group_by.clone(),
            group_wait: duration_or_zero("alerting.group_wait", &self.group_wait)?,
            group_interval: duration("alerting.group_interval", &self.group_interval)?,
            repeat_interval: duration("alerting.repeat_interval", &self.repeat_interval)?,
        };
        if grouping.group_interval.is_zero() || grouping.repeat_interval.is_zero() {
            return Err(invalid(
                "alerting.group_interval",
                "group_interval and repeat_interval must be above 0".into(),
            ));
        }
        let mut receivers = Vec::new();
        for receiver in &self.receivers {
            if receiver.name.is_empty()
                || receivers
                    .iter()
                    .any(|r: &ReceiverSettings| r.name == receiver.name)
            {
                return Err(invalid(
                    "alerting.receivers.name",
                    format!("{:?}: every receiver needs its own name", receiver.name),
                ));
            }
            let url = reqwest::Url::parse(&receiver.url).map_err(|err| {
                invalid(
                    "alerting.receivers.url",
                    format!("{:?}: {err}", receiver.url),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    "alerting.receivers.url",
                    format!("{:?}: only http and https", receiver.url),
                ));
            }
            let secret = match (&receiver.secret, &receiver.secret_env) {
                (Some(secret), None) => Some(secret.clone().into_bytes()),
                (None, Some(name)) => {
                    Some(read_env("alerting.receivers.secret_env", name)?.into_bytes())
                }
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "alerting.receivers.secret",
                        "give secret or secret_env, not both".into(),
                    ));
                }
            };
            let mut headers: Vec<(String, String)> = receiver
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(name) = &receiver.bearer_token_env {
                let token = read_env("alerting.receivers.bearer_token_env", name)?;
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
            }
            for (name, value) in &headers {
                let bad_name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err();
                let bad_value = reqwest::header::HeaderValue::from_str(value).is_err();
                if bad_name || bad_value {
                    return Err(invalid(
                        "alerting.receivers.headers",
                        format!("header {name:?} is not a valid HTTP header"),
                    ));
                }
            }
            let timeout = duration("alerting.receivers.timeout", &receiver.timeout)?;
            if timeout.is_zero() {
                return Err(invalid(
                    "alerting.receivers.timeout",
                    "must be above 0".into(),
                ));
            }
            receivers.push(ReceiverSettings {
                name: receiver.name.clone(),
                url: receiver.url.clone(),
                secret,
                headers,
                timeout,
                send_resolved: receiver.send_resolved,
                queue_capacity: receiver.queue_capacity.max(1),
                ca_file: receiver.ca_file.clone(),
            });
        }
        let external_url = if self.external_url.is_empty() {
            default_external_url.to_owned()
        } else {
            self.external_url.trim_end_matches('/').to_owned()
        };
        Ok(AlertingSettings {
            rule_files: self.rule_files.clone(),
            evaluation_interval,
            external_url,
            grouping,
            receivers,
        })
    }
}

fn read_env(key: &'static str, name: &str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| invalid(key, format!("environment variable {name} is not set")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> AlertingSection {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn defaults_are_alertmanagers() {
        let settings = AlertingSection::default()
            .settings("http://127.0.0.1:8080")
            .expect("valid");
        assert_eq!(settings.evaluation_interval, Duration::from_secs(60));
        assert_eq!(settings.grouping.group_wait, Duration::from_secs(30));
        assert_eq!(settings.grouping.group_interval, Duration::from_secs(300));
        assert_eq!(
            settings.grouping.repeat_interval,
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(settings.external_url, "http://127.0.0.1:8080");
        let at_once = section("group_wait = \"0s\"").settings("").expect("valid");
        assert_eq!(at_once.grouping.group_wait, Duration::ZERO);
    }

    #[test]
    fn receivers_are_checked() {
        let good = section(
            r#"
            [[receivers]]
            name = "ops"
            url = "https://hooks.example/alerts"
            secret = "s3cret"
            headers = { "X-Team" = "ops" }
            timeout = "5s"
            "#,
        )
        .settings("")
        .expect("valid");
        assert_eq!(good.receivers[0].secret.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(good.receivers[0].timeout, Duration::from_secs(5));
        for bad in [
            "[[receivers]]\nname = \"a\"\nurl = \"ftp://x\"",
            "[[receivers]]\nname = \"a\"\nurl = \"not a url\"",
            "[[receivers]]\nname = \"a\"\nurl = \"http://x\"\nsecret_env = \"SKEWER_TEST_UNSET_VARIABLE\"",
            "[[receivers]]\nname = \"a\"\nurl = \"http://x\"\n[[receivers]]\nname = \"a\"\nurl = \"http://y\"",
            "[[receivers]]\nname = \"a\"\nurl = \"http://x\"\ntimeout = \"soon\"",
            "group_wait = \"-1s\"",
        ] {
            assert!(section(bad).settings("").is_err(), "{bad}");
        }
    }
}
