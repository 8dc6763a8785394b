//! Rule files in Prometheus's format (`groups:` of `name`, `interval`, `rules:` of `alert` or
//! `record`, `expr`, `for`, `keep_firing_for`, `labels`, `annotations`), read with every
//! error reported as `file:line: what`, so users bring the files they have.
//!
//! skewer's additions, all optional: a group's `tenant` (whose data its rules read; default
//! `default`), `query_language` (`promql`, the default, or `logql` for LogQL metric queries
//! over logs) and `labels` (added to each of its rules, as Prometheus 3 does); a rule's label
//! `skewer.query_language` overrides its group's language and is not kept on the alert.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skewer_storage::model::TenantId;

use super::template::Template;
use super::yaml::{self, Node, Value};

/// The rule label that names a rule's query language.
pub const QUERY_LANGUAGE_LABEL: &str = "skewer.query_language";

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileError {
    /// The file.
    pub file: PathBuf,
    /// Line of the problem (0 when it concerns the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// The language of a rule's expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryLanguage {
    /// PromQL over metrics.
    Promql,
    /// A LogQL metric query over logs.
    Logql,
}

impl QueryLanguage {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "promql" => Some(Self::Promql),
            "logql" => Some(Self::Logql),
            _ => None,
        }
    }
}

/// A group of rules evaluated together, at one interval.
#[derive(Debug, Clone)]
pub struct GroupDefinition {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its name, unique in its file.
    pub name: String,
    /// Whose data its rules read.
    pub tenant: TenantId,
    /// Its own evaluation interval, else the configured one.
    pub interval: Option<Duration>,
    /// Most alerts one of its rules may hold (0: any), as Prometheus's `limit`.
    pub limit: usize,
    /// Its rules, in file order.
    pub rules: Vec<RuleDefinition>,
}

/// Whether a rule alerts or records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `alert:`.
    Alerting,
    /// `record:` (its results written as the series of that name).
    Recording,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct RuleDefinition {
    /// Alerting or recording.
    pub kind: RuleKind,
    /// The alert or recorded series name.
    pub name: String,
    /// The expression's text.
    pub expr: String,
    /// Its language.
    pub language: QueryLanguage,
    /// How long a condition holds before the alert fires.
    pub hold: Duration,
    /// How long a firing alert keeps firing after its condition stops.
    pub keep_firing_for: Duration,
    /// Labels added to each alert (values may be templates).
    pub labels: BTreeMap<String, Template>,
    /// Annotations (templates).
    pub annotations: BTreeMap<String, Template>,
    /// The line the rule starts on.
    pub line: usize,
}

/// Reads every file `patterns` name (globs); all errors of all files, or the groups.
pub fn load(patterns: &[String]) -> Result<Vec<GroupDefinition>, Vec<RuleFileError>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for file in expand(patterns, &mut errors) {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse_file(&file, &text) {
                Ok(mut parsed) => groups.append(&mut parsed),
                Err(mut file_errors) => errors.append(&mut file_errors),
            },
            Err(err) => errors.push(RuleFileError {
                file,
                line: 0,
                message: format!("cannot read: {err}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// The files of `patterns`, sorted and without repeats; a pattern without wildcards must name
/// a file, a glob may match none.
fn expand(patterns: &[String], errors: &mut Vec<RuleFileError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            if Path::new(pattern).is_file() {
                files.push(PathBuf::from(pattern));
            } else {
                errors.push(RuleFileError {
                    file: PathBuf::from(pattern),
                    line: 0,
                    message: "no such rule file".to_owned(),
                });
            }
            continue;
        }
        match glob::glob(pattern) {
            Ok(paths) => files.extend(paths.filter_map(Result::ok).filter(|p| p.is_file())),
            Err(err) => errors.push(RuleFileError {
                file: PathBuf::from(pattern),
                line: 0,
                message: format!("bad pattern: {err}"),
            }),
        }
    }
    files.sort();
    files.dedup();
    files
}

/// Parses one file's text.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<GroupDefinition>, Vec<RuleFileError>> {
    let mut reader = Reader {
        file,
        errors: Vec::new(),
    };
    let groups = match yaml::parse(text) {
        Ok(root) => reader.file_groups(&root),
        Err(err) => {
            reader.error(err.line, format!("not YAML: {}", err.message));
            Vec::new()
        }
    };
    if reader.errors.is_empty() {
        Ok(groups)
    } else {
        Err(reader.errors)
    }
}

struct Reader<'a> {
    file: &'a Path,
    errors: Vec<RuleFileError>,
}

impl Reader<'_> {
    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(RuleFileError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Mapping(entries) => Some(entries),
            _ => {
                self.error(
                    node.line,
                    format!("{what} must be a mapping, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn text(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(text) => Some(text.clone()),
            _ => {
                self.error(
                    node.line,
                    format!("{key} must be a string, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let text = self.text(node, key)?;
        match promql_parser::util::duration::parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(err) => {
                self.error(node.line, format!("{key}: bad duration {text:?}: {err}"));
                None
            }
        }
    }

    fn string_map(&mut self, node: &Node, key: &str) -> Vec<(String, String, usize)> {
        if node.value == Value::Null {
            return Vec::new();
        }
        let Some(entries) = self.mapping(node, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in entries {
            let (Some(name_text), Some(value_text)) = (self.text(name, key), self.text(value, key))
            else {
                continue;
            };
            out.push((name_text, value_text, value.line));
        }
        out
    }

    fn file_groups(&mut self, root: &Node) -> Vec<GroupDefinition> {
        if root.value == Value::Null {
            return Vec::new();
        }
        let Some(entries) = self.mapping(root, "a rule file") else {
            return Vec::new();
        };
        let mut groups = Vec::new();
        for (key, value) in entries {
            match &key.value {
                Value::Scalar(name) if name == "groups" => match &value.value {
                    Value::Sequence(items) => {
                        for item in items {
                            if let Some(group) = self.group(item) {
                                groups.push(group);
                            }
                        }
                    }
                    Value::Null => {}
                    _ => self.error(value.line, "groups must be a list"),
                },
                _ => self.error(
                    key.line,
                    format!("unknown key {:?} (expected groups)", scalar(key)),
                ),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for group in &groups {
            if !seen.insert(group.name.clone()) {
                self.error(
                    0,
                    format!("group name {:?} repeated in the file", group.name),
                );
            }
        }
        groups
    }

    fn group(&mut self, node: &Node) -> Option<GroupDefinition> {
        let entries = self.mapping(node, "a group")?;
        let mut name = None;
        let mut interval = None;
        let mut limit = 0;
        let mut tenant = TenantId::default_tenant();
        let mut language = QueryLanguage::Promql;
        let mut group_labels = Vec::new();
        let mut rule_nodes: &[Node] = &[];
        for (key, value) in entries {
            match scalar(key) {
                "name" => name = self.text(value, "name"),
                "interval" => interval = self.duration(value, "interval"),
                "limit" => match self.text(value, "limit").map(|t| t.parse::<usize>()) {
                    Some(Ok(n)) => limit = n,
                    Some(Err(_)) => self.error(value.line, "limit must be a whole number"),
                    None => {}
                },
                "tenant" => {
                    if let Some(text) = self.text(value, "tenant") {
                        match text.parse::<TenantId>() {
                            Ok(id) => tenant = id,
                            Err(err) => self.error(value.line, format!("tenant: {err}")),
                        }
                    }
                }
                "query_language" => {
                    if let Some(text) = self.text(value, "query_language") {
                        match QueryLanguage::parse(&text) {
                            Some(parsed) => language = parsed,
                            None => self.error(
                                value.line,
                                format!("query_language {text:?}: expected promql or logql"),
                            ),
                        }
                    }
                }
                "labels" => group_labels = self.string_map(value, "labels"),
                "rules" => match &value.value {
                    Value::Sequence(items) => rule_nodes = items,
                    Value::Null => {}
                    _ => self.error(value.line, "rules must be a list"),
                },
                other => self.error(key.line, format!("unknown group key {other:?}")),
            }
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            self.error(node.line, "a group needs a name");
            return None;
        };
        if interval == Some(Duration::ZERO) {
            self.error(node.line, "interval must be above 0");
        }
        let rules = rule_nodes
            .iter()
            .filter_map(|rule| self.rule(rule, language, &group_labels))
            .collect();
        Some(GroupDefinition {
            file: self.file.to_path_buf(),
            name,
            tenant,
            interval,
            limit,
            rules,
        })
    }

    fn rule(
        &mut self,
        node: &Node,
        group_language: QueryLanguage,
        group_labels: &[(String, String, usize)],
    ) -> Option<RuleDefinition> {
        let entries = self.mapping(node, "a rule")?;
        let mut alert = None;
        let mut record = None;
        let mut expr = None;
        let mut hold = Duration::ZERO;
        let mut keep_firing_for = Duration::ZERO;
        let mut label_entries = group_labels.to_vec();
        let mut annotation_entries = Vec::new();
        let mut seen_for = false;
        for (key, value) in entries {
            match scalar(key) {
                "alert" => alert = self.text(value, "alert").map(|t| (t, value.line)),
                "record" => record = self.text(value, "record").map(|t| (t, value.line)),
                "expr" => expr = self.text(value, "expr").map(|t| (t, value.line)),
                "for" => {
                    seen_for = true;
                    hold = self.duration(value, "for").unwrap_or_default();
                }
                "keep_firing_for" => {
                    seen_for = true;
                    keep_firing_for = self.duration(value, "keep_firing_for").unwrap_or_default();
                }
                "labels" => {
                    for entry in self.string_map(value, "labels") {
                        label_entries.retain(|(name, _, _)| *name != entry.0);
                        label_entries.push(entry);
                    }
                }
                "annotations" => annotation_entries = self.string_map(value, "annotations"),
                other => self.error(key.line, format!("unknown rule key {other:?}")),
            }
        }
        let (kind, (name, name_line)) = match (alert, record) {
            (Some(alert), None) => (RuleKind::Alerting, alert),
            (None, Some(record)) => (RuleKind::Recording, record),
            (Some(_), Some(_)) => {
                self.error(node.line, "a rule has either alert or record, not both");
                return None;
            }
            (None, None) => {
                self.error(node.line, "a rule needs alert or record");
                return None;
            }
        };
        if name.is_empty() {
            self.error(name_line, "the rule's name is empty");
        }
        if kind == RuleKind::Recording {
            if !is_metric_name(&name) {
                self.error(name_line, format!("{name:?} is not a valid metric name"));
            }
            if seen_for || !annotation_entries.is_empty() {
                self.error(
                    node.line,
                    "a recording rule takes no for, keep_firing_for or annotations",
                );
            }
        }
        let mut language = group_language;
        let mut labels = BTreeMap::new();
        for (label, value, line) in label_entries {
            if label == QUERY_LANGUAGE_LABEL {
                match QueryLanguage::parse(&value) {
                    Some(parsed) => language = parsed,
                    None => self.error(
                        line,
                        format!("{QUERY_LANGUAGE_LABEL} {value:?}: expected promql or logql"),
                    ),
                }
                continue;
            }
            if !is_label_name(&label) {
                self.error(line, format!("{label:?} is not a valid label name"));
                continue;
            }
            match Template::parse(&value) {
                Ok(template) => {
                    labels.insert(label, template);
                }
                Err(err) => self.error(line, format!("label {label}: {err}")),
            }
        }
        let mut annotations = BTreeMap::new();
        for (name, value, line) in annotation_entries {
            match Template::parse(&value) {
                Ok(template) => {
                    annotations.insert(name, template);
                }
                Err(err) => self.error(line, format!("annotation {name}: {err}")),
            }
        }
        let Some((expr, expr_line)) = expr.filter(|(text, _)| !text.trim().is_empty()) else {
            self.error(node.line, "a rule needs an expr");
            return None;
        };
        if let Err(message) = check_expr(&expr, language) {
            self.error(expr_line, message);
        }
        Some(RuleDefinition {
            kind,
            name,
            expr,
            language,
            hold,
            keep_firing_for,
            labels,
            annotations,
            line: node.line,
        })
    }
}

fn scalar(node: &Node) -> &str {
    match &node.value {
        Value::Scalar(text) => text,
        _ => "",
    }
}

/// Whether `expr` is a valid query in `language` (for LogQL: a metric query).
fn check_expr(expr: &str, language: QueryLanguage) -> Result<(), String> {
    match language {
        QueryLanguage::Promql => skewer_query::promql::check_query(expr)
            .map_err(|err| format!("bad PromQL expr: {err}")),
        QueryLanguage::Logql => match skewer_query::logql::parse(expr) {
            Ok(skewer_query::logql::ast::Expr::Metric(_)) => Ok(()),
            Ok(skewer_query::logql::ast::Expr::Log(_)) => Err(
                "a LogQL rule needs a metric query (count_over_time(...), rate(...)…), not log lines"
                    .to_owned(),
            ),
            Err(err) => Err(format!("bad LogQL expr: {err}")),
        },
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<GroupDefinition>, Vec<RuleFileError>> {
        parse_file(Path::new("rules.yml"), text)
    }

    #[test]
    fn reads_prometheus_rule_files_with_skewer_keys() {
        let groups = parse(
            r#"
groups:
  - name: checkout
    interval: 30s
    tenant: shop
    labels:
      team: payments
    rules:
      - alert: HighErrorRate
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) > 1
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} errors at {{ $value }}"
      - alert: Timeouts
        expr: sum by (service_name) (count_over_time({service_name="checkout"} |= "timeout" [5m])) > 10
        labels:
          skewer.query_language: logql
      - record: job:up:sum
        expr: sum by (job) (up)
"#,
        )
        .expect("valid");
        assert_eq!(groups.len(), 1);
        let group = &groups[0];
        assert_eq!(group.name, "checkout");
        assert_eq!(group.tenant.as_str(), "shop");
        assert_eq!(group.interval, Some(Duration::from_secs(30)));
        let [high, timeouts, record] = &group.rules[..] else {
            panic!("three rules")
        };
        assert_eq!(high.kind, RuleKind::Alerting);
        assert_eq!(high.hold, Duration::from_secs(300));
        assert_eq!(high.keep_firing_for, Duration::from_secs(60));
        assert_eq!(
            high.labels.keys().collect::<Vec<_>>(),
            ["severity", "team"],
            "group labels join the rule's"
        );
        assert_eq!(high.line, 9);
        assert_eq!(timeouts.language, QueryLanguage::Logql);
        assert!(!timeouts.labels.contains_key(QUERY_LANGUAGE_LABEL));
        assert_eq!(record.kind, RuleKind::Recording);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let errors = parse(
            r#"groups:
  - name: a
    rules:
      - alert: Bad
        expr: sum(rate(x[5m]) >
      - alert: Slow
        expr: up == 0
        for: soon
        colour: red
      - alert: Logs
        expr: '{service_name="a"} |= "x"'
        labels:
          skewer.query_language: logql
          bad-label: x
  - name: a
"#,
        )
        .expect_err("invalid");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 8, 9, 14, 11, 0], "{errors:#?}");
        assert!(
            errors[0]
                .to_string()
                .starts_with("rules.yml:5: bad PromQL expr")
        );
        assert!(errors[4].message.contains("metric query"));
        assert!(errors[5].message.contains("repeated"));
    }

    #[test]
    fn structure_errors_are_named() {
        for (text, wanted) in [
            ("groups: {a: 1}", "groups must be a list"),
            ("groups:\n  - rules: []\n", "needs a name"),
            (
                "groups:\n  - name: x\n    rules:\n      - expr: up\n",
                "alert or record",
            ),
            (
                "groups:\n  - name: x\n    rules:\n      - alert: A\n",
                "needs an expr",
            ),
            ("spam: 1", "unknown key"),
            ("groups: [", "not YAML"),
        ] {
            let errors = parse(text).expect_err(text);
            assert!(
                errors.iter().any(|e| e.message.contains(wanted)),
                "{text}: {errors:?}"
            );
        }
        assert!(parse("").expect("empty file").is_empty());
    }
}
