//! Running a pipeline over one entry: line filters, parsers, label filters, keep/drop, and the
//! unwrap of metric queries, with Loki's meaning (errors become the `__error__` label, a
//! failed numeric conversion keeps the line and reports the error).

use regex::Regex;

use super::ast::{LabelFilter, LineParser, LogExpr, NumberKind, Stage, Unwrap};
use super::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL, Entry};
use super::lexer::{parse_bytes, parse_duration};
use skewer_storage::logs::streams::sanitize_label_name;

/// Whether the entry's stream labels satisfy the selector.
pub fn selector_matches(log: &LogExpr, entry: &Entry) -> bool {
    log.selector
        .iter()
        .all(|matcher| matcher.matches(entry.stream.get(&matcher.name).unwrap_or("")))
}

/// Runs every stage; `false` when the entry is filtered out.
pub fn run_pipeline(stages: &[Stage], entry: &mut Entry) -> bool {
    stages.iter().all(|stage| run_stage(stage, entry))
}

fn run_stage(stage: &Stage, entry: &mut Entry) -> bool {
    match stage {
        Stage::LineFilter(filter) => filter.passes(&entry.line),
        Stage::Parser(parser) => {
            parse_line(parser, entry);
            true
        }
        Stage::LabelFilter(filter) => apply_label_filter(filter, entry),
        Stage::Keep(names) => {
            entry.retain_labels(|name| {
                names.iter().any(|n| n == name)
                    || name == ERROR_LABEL
                    || name == ERROR_DETAILS_LABEL
            });
            true
        }
        Stage::Drop(names) => {
            for name in names {
                entry.remove_label(name);
            }
            true
        }
        Stage::Decolorize => {
            entry.line = strip_ansi(&entry.line);
            true
        }
    }
}

/// Applies a label filter: `false` filters the entry out. A value that cannot be read as the
/// filter's kind of number keeps the entry with `__error__="LabelFilterErr"`.
pub fn apply_label_filter(filter: &LabelFilter, entry: &mut Entry) -> bool {
    match evaluate_label_filter(filter, entry) {
        Ok(passes) => passes,
        Err(details) => {
            set_error(entry, "LabelFilterErr", &details);
            true
        }
    }
}

fn evaluate_label_filter(filter: &LabelFilter, entry: &Entry) -> Result<bool, String> {
    match filter {
        LabelFilter::And(left, right) => {
            Ok(evaluate_label_filter(left, entry)? && evaluate_label_filter(right, entry)?)
        }
        LabelFilter::Or(left, right) => {
            Ok(evaluate_label_filter(left, entry)? || evaluate_label_filter(right, entry)?)
        }
        LabelFilter::Matcher(matcher) => {
            Ok(matcher.matches(entry.label(&matcher.name).unwrap_or("")))
        }
        LabelFilter::Number {
            name,
            op,
            value,
            kind,
        } => match entry.label(name) {
            // A missing label passes only `!=`, as in Loki.
            None => Ok(*op == super::ast::Comparison::NotEqual),
            Some(text) => {
                let number = read_number(text, *kind)?;
                Ok(op.holds(number, *value))
            }
        },
    }
}

/// Reads a label value as a number of `kind`.
pub fn read_number(text: &str, kind: NumberKind) -> Result<f64, String> {
    let text = text.trim();
    let parsed = match kind {
        NumberKind::Number => text.parse::<f64>().ok(),
        NumberKind::Duration => parse_duration(text).or_else(|| (text == "0").then_some(0.0)),
        NumberKind::Bytes => parse_bytes(text),
    };
    parsed.ok_or_else(|| {
        let what = match kind {
            NumberKind::Number => "a number",
            NumberKind::Duration => "a duration",
            NumberKind::Bytes => "a byte size",
        };
        format!("{text:?} is not {what}")
    })
}

/// The sample value of an entry for an unwrapped range function: the label's value read as
/// the unwrap says, the label then removed from the entry's labels. `None` when the value is
/// missing or unreadable (the entry then carries `__error__="SampleExtractionErr"`) or a post
/// filter drops the entry.
pub fn unwrap_value(unwrap: &Unwrap, entry: &mut Entry) -> Option<f64> {
    let value = match entry.label(&unwrap.label) {
        Some(text) => match read_number(text, unwrap.kind) {
            Ok(value) => Some(value),
            Err(details) => {
                set_error(entry, "SampleExtractionErr", &details);
                None
            }
        },
        None => {
            set_error(
                entry,
                "SampleExtractionErr",
                &format!("the label {:?} is missing", unwrap.label),
            );
            None
        }
    };
    entry.remove_label(&unwrap.label);
    if !unwrap
        .post_filters
        .iter()
        .all(|filter| apply_label_filter(filter, entry))
    {
        return None;
    }
    // An entry whose error a post filter let through still counts as an error.
    if value.is_none() && !entry.has_label(ERROR_LABEL) {
        return None;
    }
    Some(value.unwrap_or(f64::NAN))
}

fn set_error(entry: &mut Entry, error: &str, details: &str) {
    if !entry.has_label(ERROR_LABEL) {
        entry
            .parsed
            .insert(ERROR_LABEL.to_owned(), error.to_owned());
        entry
            .parsed
            .insert(ERROR_DETAILS_LABEL.to_owned(), details.to_owned());
    }
}

/// Adds an extracted label; a name the stream or metadata already has gets `_extracted`.
fn add_parsed(entry: &mut Entry, name: String, value: String) {
    let name = if entry.stream.contains(&name) || entry.metadata.contains(&name) {
        format!("{name}_extracted")
    } else {
        name
    };
    entry.parsed.insert(name, value);
}

fn parse_line(parser: &LineParser, entry: &mut Entry) {
    match parser {
        LineParser::Json => match serde_json::from_str::<serde_json::Value>(&entry.line) {
            Ok(serde_json::Value::Object(fields)) => {
                let mut found = Vec::new();
                flatten_json("", &fields, &mut found);
                for (name, value) in found {
                    add_parsed(entry, name, value);
                }
            }
            Ok(_) => set_error(entry, "JSONParserErr", "the line is not a JSON object"),
            Err(err) => set_error(entry, "JSONParserErr", &err.to_string()),
        },
        LineParser::Logfmt => match parse_logfmt(&entry.line) {
            Ok(pairs) => {
                for (name, value) in pairs {
                    add_parsed(entry, name, value);
                }
            }
            Err(details) => set_error(entry, "LogfmtParserErr", &details),
        },
        LineParser::Regexp(regex) => {
            let found = regexp_labels(regex, &entry.line);
            for (name, value) in found {
                add_parsed(entry, name, value);
            }
        }
    }
}

/// Object fields as labels: nested keys joined with `_`, arrays skipped, `null` empty.
fn flatten_json(
    prefix: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    found: &mut Vec<(String, String)>,
) {
    for (key, value) in fields {
        let name = if prefix.is_empty() {
            sanitize_label_name(key)
        } else {
            format!("{prefix}_{}", sanitize_label_name(key))
        };
        match value {
            serde_json::Value::Object(inner) => flatten_json(&name, inner, found),
            serde_json::Value::Array(_) => {}
            serde_json::Value::String(text) => found.push((name, text.clone())),
            serde_json::Value::Null => found.push((name, String::new())),
            other => found.push((name, other.to_string())),
        }
    }
}

/// `key=value key2="quoted value" flag` pairs; a bare key has the empty value.
pub fn parse_logfmt(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key_end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if c == '"' {
                return Err(format!("unexpected '\"' in a key at byte {i}"));
            }
            key_end = i + c.len_utf8();
            chars.next();
        }
        let key = &line[start..key_end];
        if key.is_empty() {
            return Err(format!("a value without a key at byte {start}"));
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '=') {
            chars.next();
            if chars.peek().is_some_and(|&(_, c)| c == '"') {
                chars.next();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, 'r')) => value.push('\r'),
                            Some((_, other)) => value.push(other),
                            None => break,
                        },
                        other => value.push(other),
                    }
                }
                if !closed {
                    return Err(format!("unterminated quoted value of {key:?}"));
                }
            } else {
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        pairs.push((sanitize_label_name(key), value));
    }
    Ok(pairs)
}

fn regexp_labels(regex: &Regex, line: &str) -> Vec<(String, String)> {
    let Some(captures) = regex.captures(line) else {
        return Vec::new();
    };
    regex
        .capture_names()
        .flatten()
        .filter_map(|name| {
            captures
                .name(name)
                .map(|found| (sanitize_label_name(name), found.as_str().to_owned()))
        })
        .collect()
}

/// The line without ANSI escape sequences (colours, cursor moves).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::ast::Expr;
    use crate::logql::labels::Labels;
    use crate::logql::parser::parse;

    fn entry(line: &str) -> Entry {
        Entry {
            time_unix_nano: 1,
            line: line.to_owned(),
            stream: Labels::from_pairs([("service_name".to_owned(), "api".to_owned())]),
            metadata: Labels::from_pairs([("trace_id".to_owned(), "abc".to_owned())]),
            parsed: Labels::default(),
        }
    }

    /// Runs the pipeline of `query` (a log query) over `line`.
    fn run(query: &str, line: &str) -> Option<Entry> {
        let Expr::Log(log) = parse(query).unwrap() else {
            panic!("not a log query: {query}");
        };
        let mut entry = entry(line);
        (selector_matches(&log, &entry) && run_pipeline(&log.pipeline, &mut entry)).then_some(entry)
    }

    #[test]
    fn line_filters_chain_and_alternate() {
        let query = r#"{service_name="api"} |= "timeout" != "retry" |~ "db-[0-9]+" or "cache""#;
        assert!(run(query, "timeout talking to db-12").is_some());
        assert!(run(query, "timeout talking to cache").is_some());
        assert!(run(query, "timeout talking to db-12, retry").is_none());
        assert!(run(query, "Timeout talking to db-12").is_none());
        assert!(run(r#"{service_name="web"}"#, "x").is_none());
    }

    #[test]
    fn negative_selectors_and_the_negative_regex_filter_exclude() {
        let line = "timeout talking to db-12";
        // The stream is {service_name="api"}. A selector of negative matchers alone is
        // refused, as Loki does; beside a positive one they exclude.
        assert!(parse(r#"{service_name!="web"}"#).is_err());
        let any = r#"service_name=~".+""#;
        assert!(run(&format!(r#"{{{any}, service_name!="web"}}"#), line).is_some());
        assert!(run(&format!(r#"{{{any}, service_name!="api"}}"#), line).is_none());
        assert!(run(&format!(r#"{{{any}, service_name!~"w.*"}}"#), line).is_some());
        assert!(run(&format!(r#"{{{any}, service_name!~"a.i"}}"#), line).is_none());
        // Regexes are anchored as Loki's selectors are: "a" alone does not match "api".
        assert!(run(&format!(r#"{{{any}, service_name!~"a"}}"#), line).is_some());
        // A line filter `!~` keeps the lines the regex does not match anywhere in.
        assert!(run(r#"{service_name="api"} !~ "db-[0-9]+""#, line).is_none());
        assert!(run(r#"{service_name="api"} !~ "cache""#, line).is_some());
        assert!(run(r#"{service_name="api"} |= "timeout" !~ "db-1[3-9]""#, line).is_some());
    }

    #[test]
    fn json_flattens_and_reports_errors() {
        let entry = run(
            r#"{service_name="api"} | json"#,
            r#"{"a":{"b":1,"c-d":"x"},"list":[1],"trace_id":"t","n":null,"ok":true}"#,
        )
        .unwrap();
        assert_eq!(entry.parsed.get("a_b"), Some("1"));
        assert_eq!(entry.parsed.get("a_c_d"), Some("x"));
        assert_eq!(entry.parsed.get("list"), None);
        assert_eq!(entry.parsed.get("trace_id_extracted"), Some("t"));
        assert_eq!(entry.parsed.get("n"), Some(""));
        assert_eq!(entry.parsed.get("ok"), Some("true"));
        let broken = run(r#"{service_name="api"} | json"#, "not json").unwrap();
        assert_eq!(broken.label(ERROR_LABEL), Some("JSONParserErr"));
        assert!(run(r#"{service_name="api"} | json | __error__="""#, "not json").is_none());
    }

    #[test]
    fn logfmt_reads_quoted_and_bare_values() {
        assert_eq!(
            parse_logfmt(r#"level=info msg="hello \"you\"" dur=15ms flag"#).unwrap(),
            [
                ("level".to_owned(), "info".to_owned()),
                ("msg".to_owned(), "hello \"you\"".to_owned()),
                ("dur".to_owned(), "15ms".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert!(parse_logfmt(r#"a="open"#).is_err());
        assert!(parse_logfmt("=x").is_err());
    }

    #[test]
    fn label_filters_compare_strings_numbers_durations_and_sizes() {
        let query = |filter: &str| format!(r#"{{service_name="api"}} | logfmt | {filter}"#);
        let line = "status=503 took=250ms size=2KB method=GET";
        assert!(run(&query("status >= 500 and method=\"GET\""), line).is_some());
        assert!(run(&query("status >= 500, method=\"POST\""), line).is_none());
        assert!(run(&query("status < 500 or took > 200ms"), line).is_some());
        assert!(run(&query("size > 1KB size < 3KB"), line).is_some());
        assert!(run(&query("(status=404 or status=503) method=~\"G.*\""), line).is_some());
        assert!(run(&query("missing > 1"), line).is_none());
        assert!(run(&query("missing != 1"), line).is_some());
        // An unreadable number keeps the line and says why.
        let kept = run(&query("method > 1"), line).unwrap();
        assert_eq!(kept.label(ERROR_LABEL), Some("LabelFilterErr"));
        assert!(run(&query("trace_id=\"abc\""), line).is_some());
    }

    #[test]
    fn regexp_keep_drop_and_decolorize() {
        let entry = run(
            r#"{service_name="api"} | regexp "(?P<verb>[A-Z]+) (?P<path>/\\S*)" | keep verb, service_name"#,
            "GET /cart 200",
        )
        .unwrap();
        assert_eq!(entry.parsed.get("verb"), Some("GET"));
        assert_eq!(entry.parsed.get("path"), None);
        assert_eq!(entry.metadata.get("trace_id"), None);
        assert_eq!(entry.stream.get("service_name"), Some("api"));
        let dropped = run(r#"{service_name="api"} | drop trace_id"#, "x").unwrap();
        assert!(dropped.metadata.is_empty());
        let plain = run(
            r#"{service_name="api"} | decolorize"#,
            "\u{1b}[31mred\u{1b}[0m",
        )
        .unwrap();
        assert_eq!(plain.line, "red");
    }
}
