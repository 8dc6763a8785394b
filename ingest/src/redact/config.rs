//! `[redaction]` as the config file spells it.

use std::path::PathBuf;

use serde::Deserialize;

/// What a rule does to what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactionAction {
    /// Attributes: removed. Patterns: the matched text cut out.
    Drop,
    /// Replaced by `[REDACTED]`.
    Mask,
    /// Replaced by `hmac:` and a keyed hash: equal values give equal hashes.
    Hash,
}

/// One `[[redaction.rules]]`: either `attributes` (key patterns, `*` matching any run of
/// characters) or `pattern` (a regular expression over log bodies and string attribute values).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionRule {
    /// Attribute keys, exact or with `*` (`"*.password"`, `"http.request.header.*"`).
    #[serde(default)]
    pub attributes: Vec<String>,
    /// A regular expression (Rust `regex` syntax) matched inside log bodies and string values.
    pub pattern: Option<String>,
    /// What happens to a match.
    pub action: RedactionAction,
}

/// `[redaction]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    /// The rules, tried in order; the first whose key pattern matches an attribute decides it.
    pub rules: Vec<RedactionRule>,
    /// The HMAC key for `hash` (32 bytes or more); default `{data_dir}/redaction.key`, made on
    /// first use.
    pub hash_key_file: Option<PathBuf>,
}

impl RedactionConfig {
    /// Whether any rule hashes (and so a key is needed).
    pub fn needs_hash_key(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.action == RedactionAction::Hash)
    }
}
