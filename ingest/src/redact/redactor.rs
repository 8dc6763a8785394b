//! The compiled rules and what they do to one key, one text, one value.

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;

use super::config::{RedactionAction, RedactionConfig};

/// What masked values become.
pub const MASK: &str = "[REDACTED]";

/// Hashed values are `hmac:` and this many hex digits (128 bits of the HMAC).
const HASH_HEX_DIGITS: usize = 32;

/// Why redaction could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    /// A rule cannot work as written.
    #[error("[[redaction.rules]] number {number}: {reason}")]
    BadRule {
        /// 1-based, in file order.
        number: usize,
        /// What is wrong.
        reason: String,
    },
    /// The hash key cannot be read or made.
    #[error("redaction hash key {path}: {reason}")]
    HashKey {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Rules ready to apply.
#[derive(Debug)]
pub struct Redactor {
    keys: Vec<(Regex, RedactionAction)>,
    patterns: Vec<(Regex, RedactionAction)>,
    hash_key: Vec<u8>,
}

/// `*` globs as an anchored, case-insensitive regular expression.
fn glob_regex(glob: &str) -> Result<Regex, regex::Error> {
    let parts: Vec<String> = glob.split('*').map(regex::escape).collect();
    Regex::new(&format!("(?i)^{}$", parts.join(".*")))
}

impl Redactor {
    /// Compiles `config`; `None` when it has no rules. `hash_key` is needed when a rule hashes.
    pub fn new(
        config: &RedactionConfig,
        hash_key: Option<Vec<u8>>,
    ) -> Result<Option<Self>, RedactionError> {
        if config.rules.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        let mut patterns = Vec::new();
        for (index, rule) in config.rules.iter().enumerate() {
            let bad = |reason: String| RedactionError::BadRule {
                number: index + 1,
                reason,
            };
            match (&rule.pattern, rule.attributes.is_empty()) {
                (Some(_), false) | (None, true) => {
                    return Err(bad(
                        "give either `attributes` (key patterns) or `pattern` (a regular expression)"
                            .to_owned(),
                    ));
                }
                (Some(pattern), true) => {
                    let regex = Regex::new(pattern).map_err(|err| bad(err.to_string()))?;
                    if regex.is_match("") {
                        return Err(bad(format!("pattern {pattern:?} matches empty text")));
                    }
                    patterns.push((regex, rule.action));
                }
                (None, false) => {
                    for glob in &rule.attributes {
                        let regex = glob_regex(glob).map_err(|err| bad(err.to_string()))?;
                        keys.push((regex, rule.action));
                    }
                }
            }
        }
        let hash_key = match hash_key {
            Some(key) => key,
            None if config.needs_hash_key() => {
                return Err(RedactionError::BadRule {
                    number: 0,
                    reason: "hash rules need a hash key".to_owned(),
                });
            }
            None => Vec::new(),
        };
        Ok(Some(Self {
            keys,
            patterns,
            hash_key,
        }))
    }

    /// What the first key rule matching `key` says, if one does.
    pub fn attribute_action(&self, key: &str) -> Option<RedactionAction> {
        self.keys
            .iter()
            .find(|(regex, _)| regex.is_match(key))
            .map(|(_, action)| *action)
    }

    /// Redacts `text` in place; true when a pattern matched.
    pub fn redact_in_place(&self, text: &mut String) -> bool {
        match self.redact_text(text) {
            Some(redacted) => {
                *text = redacted;
                true
            }
            None => false,
        }
    }

    /// `text` with every pattern's matches redacted; `None` when nothing matched.
    pub fn redact_text(&self, text: &str) -> Option<String> {
        let mut changed: Option<String> = None;
        for (regex, action) in &self.patterns {
            let current = changed.as_deref().unwrap_or(text);
            if !regex.is_match(current) {
                continue;
            }
            let replaced = regex
                .replace_all(current, |captures: &regex::Captures<'_>| match action {
                    RedactionAction::Drop => String::new(),
                    RedactionAction::Mask => MASK.to_owned(),
                    RedactionAction::Hash => self.hash(captures[0].as_bytes()),
                })
                .into_owned();
            changed = Some(replaced);
        }
        changed
    }

    /// `hmac:` and the first 128 bits of HMAC-SHA-256(key, bytes), in hex.
    pub fn hash(&self, bytes: &[u8]) -> String {
        // HMAC takes keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.hash_key) else {
            return MASK.to_owned();
        };
        mac.update(bytes);
        let digest = mac.finalize().into_bytes();
        let mut text = String::from("hmac:");
        text.push_str(&hex::encode(digest)[..HASH_HEX_DIGITS]);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::RedactionRule;

    fn rule(attributes: &[&str], pattern: Option<&str>, action: RedactionAction) -> RedactionRule {
        RedactionRule {
            attributes: attributes.iter().map(|s| (*s).to_owned()).collect(),
            pattern: pattern.map(str::to_owned),
            action,
        }
    }

    fn redactor(rules: Vec<RedactionRule>) -> Redactor {
        let config = RedactionConfig {
            rules,
            hash_key_file: None,
        };
        Redactor::new(&config, Some(vec![7; 32])).unwrap().unwrap()
    }

    #[test]
    fn key_globs_match_whole_keys_first_rule_first() {
        let r = redactor(vec![
            rule(&["user.email"], None, RedactionAction::Hash),
            rule(
                &["*.password", "http.request.header.*"],
                None,
                RedactionAction::Drop,
            ),
            rule(&["user.*"], None, RedactionAction::Mask),
        ]);
        assert_eq!(
            r.attribute_action("user.email"),
            Some(RedactionAction::Hash)
        );
        assert_eq!(
            r.attribute_action("db.password"),
            Some(RedactionAction::Drop)
        );
        assert_eq!(
            r.attribute_action("http.request.header.authorization"),
            Some(RedactionAction::Drop)
        );
        assert_eq!(r.attribute_action("user.id"), Some(RedactionAction::Mask));
        assert_eq!(
            r.attribute_action("DB.Password"),
            Some(RedactionAction::Drop)
        );
        assert_eq!(r.attribute_action("user"), None);
        assert_eq!(r.attribute_action("xuser.email"), None);
        assert_eq!(r.attribute_action("password"), None);
    }

    #[test]
    fn patterns_mask_hash_or_cut_their_matches_only() {
        let r = redactor(vec![
            rule(
                &[],
                Some(r"\b\d{4}(?:[ -]?\d{4}){3}\b"),
                RedactionAction::Mask,
            ),
            rule(&[], Some(r"[\w.+-]+@[\w-]+\.[\w.]+"), RedactionAction::Hash),
            rule(&[], Some(r"(?i)bearer [\w.~+/-]+=*"), RedactionAction::Drop),
        ]);
        assert_eq!(
            r.redact_text("paid with 4111 1111 1111 1111 ok").as_deref(),
            Some("paid with [REDACTED] ok")
        );
        let a = r.redact_text("mail ann@example.com").unwrap();
        let b = r.redact_text("to ann@example.com!").unwrap();
        let hash = a.strip_prefix("mail ").unwrap();
        assert!(
            hash.starts_with("hmac:") && hash.len() == 5 + HASH_HEX_DIGITS,
            "{a}"
        );
        assert_eq!(b, format!("to {hash}!"), "equal values hash alike");
        assert_ne!(r.redact_text("mail bob@example.com").unwrap(), a);
        assert_eq!(
            r.redact_text("auth Bearer abc.def-123 done").as_deref(),
            Some("auth  done")
        );
        assert_eq!(r.redact_text("nothing to see"), None);
    }

    #[test]
    fn rules_that_cannot_work_are_refused() {
        let config = |rules| RedactionConfig {
            rules,
            hash_key_file: None,
        };
        for (rules, needle) in [
            (vec![rule(&[], None, RedactionAction::Mask)], "either"),
            (
                vec![rule(&["a"], Some("b"), RedactionAction::Mask)],
                "either",
            ),
            (
                vec![rule(&[], Some("("), RedactionAction::Mask)],
                "regex parse error",
            ),
            (
                vec![rule(&[], Some("x*"), RedactionAction::Mask)],
                "matches empty",
            ),
        ] {
            let err = Redactor::new(&config(rules), Some(vec![0; 32])).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let hash_without_key = config(vec![rule(&["k"], None, RedactionAction::Hash)]);
        assert!(Redactor::new(&hash_without_key, None).is_err());
        assert!(Redactor::new(&config(vec![]), None).unwrap().is_none());
    }
}
