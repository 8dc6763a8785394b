//! Silences, as Alertmanager has them: label matchers (`=`, `!=`, `=~`, `!~`) and a time
//! window; an alert that all matchers of an active silence of its tenant match is not
//! notified (it still shows in `/api/alerts`, marked silenced). Expiring a silence ends its
//! window now; expired silences are kept a day for the record, then dropped.

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::labels::LabelSet;

/// How long an expired silence stays listed.
const EXPIRED_RETENTION_MS: i64 = 24 * 3_600_000;

/// One matcher of a silence (Alertmanager API v2 shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression (anchored, as in Prometheus).
    pub value: String,
    /// Whether `value` is a regular expression.
    #[serde(default)]
    pub is_regex: bool,
    /// `true` for `=`/`=~`, `false` for `!=`/`!~`.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Option<Regex>, String> {
        if !self.is_regex {
            return Ok(None);
        }
        Regex::new(&format!("^(?:{})$", self.value))
            .map(Some)
            .map_err(|err| format!("matcher {}: {err}", self.name))
    }

    fn matches(&self, regex: Option<&Regex>, labels: &LabelSet) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        let equal = match regex {
            Some(regex) => regex.is_match(value),
            None => value == self.value,
        };
        equal == self.is_equal
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// The tenant whose alerts it mutes.
    pub tenant: String,
    /// All must match.
    pub matchers: Vec<SilenceMatcher>,
    /// Start, Unix ms.
    pub starts_at_ms: i64,
    /// End, Unix ms.
    pub ends_at_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if now_ms < self.starts_at_ms {
            "pending"
        } else if now_ms < self.ends_at_ms {
            "active"
        } else {
            "expired"
        }
    }

    /// Checks what a new silence must satisfy.
    pub fn validate(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".to_owned());
        }
        if self.ends_at_ms <= self.starts_at_ms {
            return Err("endsAt must be after startsAt".to_owned());
        }
        for matcher in &self.matchers {
            if matcher.name.is_empty() {
                return Err("a matcher needs a label name".to_owned());
            }
            matcher.compile()?;
        }
        let matches_empty = self
            .compiled()?
            .iter()
            .all(|(matcher, regex)| matcher.matches(regex.as_ref(), &LabelSet::new()));
        if matches_empty {
            return Err("the matchers would silence every alert".to_owned());
        }
        Ok(())
    }

    fn compiled(&self) -> Result<Vec<(&SilenceMatcher, Option<Regex>)>, String> {
        self.matchers
            .iter()
            .map(|matcher| Ok((matcher, matcher.compile()?)))
            .collect()
    }
}

/// Every silence, with their compiled matchers.
#[derive(Debug, Default)]
pub struct Silences {
    silences: Vec<(Silence, Vec<Option<Regex>>)>,
}

impl Silences {
    /// Silences as stored (invalid ones, which validation kept out, are skipped).
    pub fn from_list(list: Vec<Silence>) -> Self {
        let mut silences = Self::default();
        for silence in list {
            // Stored silences passed validation; one that no longer compiles is dropped.
            let _ = silences.upsert(silence);
        }
        silences
    }

    /// All silences, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut list: Vec<Silence> = self.silences.iter().map(|(s, _)| s.clone()).collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.updated_at_ms));
        list
    }

    /// Adds `silence`, or replaces the one with its id.
    pub fn upsert(&mut self, silence: Silence) -> Result<(), String> {
        let regexes = silence
            .matchers
            .iter()
            .map(SilenceMatcher::compile)
            .collect::<Result<Vec<_>, _>>()?;
        self.silences.retain(|(s, _)| s.id != silence.id);
        self.silences.push((silence, regexes));
        Ok(())
    }

    /// Ends the silence `id` of `tenant` at `now_ms`; whether it existed.
    pub fn expire(&mut self, tenant: &str, id: &str, now_ms: i64) -> bool {
        let Some((silence, _)) = self
            .silences
            .iter_mut()
            .find(|(s, _)| s.id == id && s.tenant == tenant)
        else {
            return false;
        };
        if silence.ends_at_ms > now_ms {
            // A silence not started yet ends before it starts.
            silence.starts_at_ms = silence.starts_at_ms.min(now_ms);
            silence.ends_at_ms = now_ms;
            silence.updated_at_ms = now_ms;
        }
        true
    }

    /// Drops silences expired for longer than a day; whether any was.
    pub fn prune(&mut self, now_ms: i64) -> bool {
        let before = self.silences.len();
        self.silences
            .retain(|(s, _)| s.ends_at_ms + EXPIRED_RETENTION_MS > now_ms);
        before != self.silences.len()
    }

    /// The ids of the active silences of `tenant` that mute `labels` at `now_ms`.
    pub fn muting(&self, tenant: &str, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.silences
            .iter()
            .filter(|(s, _)| s.tenant == tenant && s.state(now_ms) == "active")
            .filter(|(s, regexes)| {
                s.matchers
                    .iter()
                    .zip(regexes)
                    .all(|(matcher, regex)| matcher.matches(regex.as_ref(), labels))
            })
            .map(|(s, _)| s.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(matchers: Vec<SilenceMatcher>) -> Silence {
        Silence {
            id: "s1".into(),
            tenant: "default".into(),
            matchers,
            starts_at_ms: 100,
            ends_at_ms: 200,
            created_by: "me".into(),
            comment: "deploy".into(),
            updated_at_ms: 100,
        }
    }

    fn matcher(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn active_silences_of_the_tenant_mute_matching_alerts() {
        let mut silences = Silences::default();
        silences
            .upsert(silence(vec![
                matcher("alertname", "Down", false, true),
                matcher("instance", "db-.*", true, true),
                matcher("severity", "info", false, false),
            ]))
            .expect("valid");
        let down = labels(&[
            ("alertname", "Down"),
            ("instance", "db-1"),
            ("severity", "page"),
        ]);
        assert_eq!(silences.muting("default", &down, 150), ["s1"]);
        assert!(silences.muting("default", &down, 99).is_empty(), "pending");
        assert!(silences.muting("default", &down, 200).is_empty(), "expired");
        assert!(silences.muting("other", &down, 150).is_empty(), "tenant");
        let info = labels(&[
            ("alertname", "Down"),
            ("instance", "db-1"),
            ("severity", "info"),
        ]);
        assert!(silences.muting("default", &info, 150).is_empty());
        let web = labels(&[("alertname", "Down"), ("instance", "web-db-1")]);
        assert!(silences.muting("default", &web, 150).is_empty(), "anchored");
        assert!(silences.expire("default", "s1", 160));
        assert!(silences.muting("default", &down, 170).is_empty());
        assert!(!silences.expire("default", "nope", 160));
    }

    #[test]
    fn validation_refuses_what_would_be_a_mistake() {
        assert!(silence(vec![]).validate().is_err());
        assert!(
            silence(vec![matcher("a", ".*", true, true)])
                .validate()
                .is_err(),
            "matches everything"
        );
        assert!(
            silence(vec![matcher("a", "(", true, true)])
                .validate()
                .is_err()
        );
        let mut backwards = silence(vec![matcher("a", "b", false, true)]);
        backwards.ends_at_ms = 50;
        assert!(backwards.validate().is_err());
        assert!(
            silence(vec![matcher("a", "b", false, true)])
                .validate()
                .is_ok()
        );
    }
}
