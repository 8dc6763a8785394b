//! Evaluates a log text query against one record in memory, with the meaning tantivy gives it.
//!
//! Records still in the buffer are not in the index yet, but a search must treat them the same.
//! So the query text goes through tantivy's own grammar (`tantivy::query_grammar`) and tantivy's
//! own `default` analyzer, and the resulting tree is evaluated here with tantivy's rules: clauses
//! without an operator are required (conjunction by default), a `BooleanQuery` with required
//! clauses treats optional ones as scoring only, a literal that yields no token drops out,
//! multi-token literals are phrases (with slop and phrase-prefix), and a query of only
//! exclusions is an error.
//!
//! Supported clauses: body terms and phrases (the default field), exact `service_name:`,
//! `severity_text:`, `trace_id:`, `span_id:`, `correlation_id:`, `severity_number:` (value and
//! `[a TO b]` range), `attributes.<path>:<value>`, and `*`. Sets, regexes and `$exists` are
//! reported as unsupported. This file does not search the index.

use std::ops::{Bound, RangeBounds};
use std::sync::LazyLock;

use tantivy::query_grammar::{
    self, Occur, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};

use super::schema::{
    ATTRIBUTES, BATCH_MARKER, BODY, CORRELATION_ID, DEFAULT_TOKENIZER, RECORD, RECORD_BATCH,
    RECORD_BATCH_V2, SERVICE_NAME, SEVERITY_NUMBER, SEVERITY_TEXT, SPAN_ID, TIMESTAMP, TRACE_ID,
    body_text,
};
use crate::model::{Attribute, AttributeValue, LogRecord};

/// tantivy's `default` analyzer, taken from tantivy itself so the tokens are the index's tokens.
static BODY_ANALYZER: LazyLock<TextAnalyzer> = LazyLock::new(|| {
    TokenizerManager::default()
        .get(DEFAULT_TOKENIZER)
        // tantivy registers `default` as this chain; kept only as a fallback.
        .unwrap_or_else(|| {
            TextAnalyzer::builder(tantivy::tokenizer::SimpleTokenizer::default())
                .filter(tantivy::tokenizer::RemoveLongFilter::limit(40))
                .filter(tantivy::tokenizer::LowerCaser)
                .build()
        })
});

/// Tokenizes text as the body field is indexed: `(position, token)` pairs.
pub(crate) fn body_tokens(text: &str) -> Vec<(usize, String)> {
    let mut analyzer = BODY_ANALYZER.clone();
    let mut tokens = Vec::new();
    analyzer
        .token_stream(text)
        .process(&mut |token| tokens.push((token.position, token.text.clone())));
    tokens
}

/// The parts of `text` that become the body's tokens, as written (before lowercasing, which
/// may turn one character into several, so a token is re-tokenized from its own text).
pub(crate) fn body_token_spans(text: &str) -> Vec<&str> {
    let mut analyzer = BODY_ANALYZER.clone();
    let mut spans = Vec::new();
    analyzer
        .token_stream(text)
        .process(&mut |token| spans.push((token.offset_from, token.offset_to)));
    spans
        .into_iter()
        .filter_map(|(from, to)| text.get(from..to))
        .collect()
}

/// A text query compiled once, then matched against any number of records.
#[derive(Debug, Clone)]
pub(crate) struct TextMatcher {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// Children with their occurrence; an empty clause stands for "no token" and drops out.
    Clause(Vec<(Occur, Node)>),
    Leaf(Leaf),
}

#[derive(Debug, Clone)]
enum Leaf {
    All,
    Body(Phrase),
    Exact {
        field: ExactField,
        value: String,
    },
    Severity {
        lower: Bound<i64>,
        upper: Bound<i64>,
    },
    Attribute {
        path: String,
        value: String,
    },
}

/// Body tokens with their query positions; one token is a plain term.
#[derive(Debug, Clone)]
struct Phrase {
    terms: Vec<(usize, String)>,
    slop: u32,
    prefix: bool,
}

#[derive(Debug, Clone, Copy)]
enum ExactField {
    ServiceName,
    SeverityText,
    TraceId,
    SpanId,
    CorrelationId,
}

/// Where and why `text` is not valid query syntax, from the grammar's lenient parse (the
/// strict one says only that it failed): "syntax error at character N: …".
fn syntax_error(text: &str) -> String {
    let (_, errors) = query_grammar::parse_query_lenient(text);
    match errors.first() {
        Some(error) => {
            let at = error.pos.min(text.len());
            let column = text.get(..at).map_or(at, |before| before.chars().count()) + 1;
            format!("syntax error at character {column}: {}", error.message)
        }
        None => "syntax error".to_string(),
    }
}

impl TextMatcher {
    /// Parses `text`; the error is a reason fit to show the user.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let ast = query_grammar::parse_query(text).map_err(|_| syntax_error(text))?;
        let root = compile(ast)?;
        let is_empty = matches!(&root, Node::Clause(children) if children.is_empty());
        if !is_empty && all_negative(&root) {
            return Err("only excluding terms given".to_string());
        }
        Ok(Self { root })
    }

    /// True when the record matches (a query that reduces to nothing matches nothing).
    pub(crate) fn matches(&self, record: &LogRecord) -> bool {
        let mut view = RecordView {
            record,
            body_tokens: None,
        };
        evaluate(&self.root, &mut view).unwrap_or(false)
    }
}

fn compile(ast: UserInputAst) -> Result<Node, String> {
    match ast {
        UserInputAst::Clause(children) => children
            .into_iter()
            .map(|(occur, child)| Ok((occur.unwrap_or(Occur::Must), compile(child)?)))
            .collect::<Result<_, String>>()
            .map(Node::Clause),
        UserInputAst::Boost(child, _) => compile(*child),
        UserInputAst::Leaf(leaf) => compile_leaf(*leaf),
    }
}

fn compile_leaf(leaf: UserInputLeaf) -> Result<Node, String> {
    match leaf {
        UserInputLeaf::All => Ok(Node::Leaf(Leaf::All)),
        UserInputLeaf::Literal(literal) => compile_literal(literal),
        UserInputLeaf::Range {
            field,
            lower,
            upper,
        } => match field.as_deref() {
            Some(SEVERITY_NUMBER) => Ok(Node::Leaf(Leaf::Severity {
                lower: severity_bound(&lower)?,
                upper: severity_bound(&upper)?,
            })),
            _ => Err("in-memory search supports ranges on severity_number only".to_string()),
        },
        UserInputLeaf::Set { .. } | UserInputLeaf::Regex { .. } | UserInputLeaf::Exists { .. } => {
            Err("in-memory search does not support sets, regexes or $exists".to_string())
        }
    }
}

fn compile_literal(literal: UserInputLiteral) -> Result<Node, String> {
    let UserInputLiteral {
        field_name,
        phrase,
        slop,
        prefix,
        ..
    } = literal;
    let field = field_name.as_deref().unwrap_or(BODY);
    let single_token_prefix = || format!("a prefix query on {phrase:?} needs at least two terms");
    let exact = |field| {
        if prefix {
            return Err(single_token_prefix());
        }
        Ok(Node::Leaf(Leaf::Exact {
            field,
            value: phrase.clone(),
        }))
    };
    match field {
        BODY => {
            let terms = body_tokens(&phrase);
            if prefix && terms.len() < 2 {
                return Err(single_token_prefix());
            }
            if terms.is_empty() {
                return Ok(Node::Clause(Vec::new()));
            }
            Ok(Node::Leaf(Leaf::Body(Phrase {
                terms,
                slop,
                prefix,
            })))
        }
        SERVICE_NAME => exact(ExactField::ServiceName),
        SEVERITY_TEXT => exact(ExactField::SeverityText),
        TRACE_ID => exact(ExactField::TraceId),
        SPAN_ID => exact(ExactField::SpanId),
        CORRELATION_ID => exact(ExactField::CorrelationId),
        SEVERITY_NUMBER => {
            let number = parse_severity(&phrase)?;
            Ok(Node::Leaf(Leaf::Severity {
                lower: Bound::Included(number),
                upper: Bound::Included(number),
            }))
        }
        TIMESTAMP | RECORD | RECORD_BATCH | RECORD_BATCH_V2 | BATCH_MARKER => {
            Err(format!("the field {field:?} is not indexed"))
        }
        _ => match field.strip_prefix(ATTRIBUTES) {
            Some(rest) if rest.is_empty() || rest.starts_with('.') => {
                if prefix {
                    return Err(single_token_prefix());
                }
                // An escaped dot is a dot of the key: the index expands dots in keys either
                // way, so `a\.b` and `a.b` name the same attribute there and here.
                Ok(Node::Leaf(Leaf::Attribute {
                    path: rest.trim_start_matches('.').replace("\\.", "."),
                    value: phrase,
                }))
            }
            _ => Err(format!("unknown field {field:?}")),
        },
    }
}

fn parse_severity(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("severity_number expects an integer, got {text:?}"))
}

fn severity_bound(bound: &UserInputBound) -> Result<Bound<i64>, String> {
    Ok(match bound {
        UserInputBound::Inclusive(text) if text == "*" => Bound::Unbounded,
        UserInputBound::Exclusive(text) if text == "*" => Bound::Unbounded,
        UserInputBound::Inclusive(text) => Bound::Included(parse_severity(text)?),
        UserInputBound::Exclusive(text) => Bound::Excluded(parse_severity(text)?),
        UserInputBound::Unbounded => Bound::Unbounded,
    })
}

/// tantivy rejects a query whose every clause excludes (`-foo`).
fn all_negative(node: &Node) -> bool {
    match node {
        Node::Leaf(_) => false,
        Node::Clause(children) => children
            .iter()
            .all(|(occur, child)| *occur == Occur::MustNot || all_negative(child)),
    }
}

/// The record with its body tokenized on first need.
struct RecordView<'a> {
    record: &'a LogRecord,
    body_tokens: Option<Vec<(usize, String)>>,
}

impl RecordView<'_> {
    fn body_tokens(&mut self) -> &[(usize, String)] {
        let record = self.record;
        self.body_tokens
            .get_or_insert_with(|| body_tokens(&body_text(&record.body)))
    }
}

/// `None` when the node holds no token at all (tantivy trims such clauses).
fn evaluate(node: &Node, view: &mut RecordView<'_>) -> Option<bool> {
    let children = match node {
        Node::Leaf(leaf) => return Some(leaf_matches(leaf, view)),
        Node::Clause(children) => children,
    };
    let (mut any_child, mut has_required, mut all_required) = (false, false, true);
    let (mut has_optional, mut any_optional, mut excluded) = (false, false, false);
    for (occur, child) in children {
        let Some(matched) = evaluate(child, view) else {
            continue;
        };
        any_child = true;
        match occur {
            Occur::Must => {
                has_required = true;
                all_required &= matched;
            }
            Occur::Should => {
                has_optional = true;
                any_optional |= matched;
            }
            Occur::MustNot => excluded |= matched,
        }
    }
    if !any_child {
        return None;
    }
    let included = if has_required {
        all_required
    } else {
        has_optional && any_optional
    };
    Some(included && !excluded)
}

fn leaf_matches(leaf: &Leaf, view: &mut RecordView<'_>) -> bool {
    let record = view.record;
    match leaf {
        Leaf::All => true,
        Leaf::Body(phrase) => phrase_matches(phrase, view.body_tokens()),
        Leaf::Exact { field, value } => match field {
            ExactField::ServiceName => record.resource.service_name() == value,
            ExactField::SeverityText => {
                !record.severity_text.is_empty() && record.severity_text == *value
            }
            ExactField::TraceId => record.trace_id.is_some_and(|id| id.to_string() == *value),
            ExactField::SpanId => record.span_id.is_some_and(|id| id.to_string() == *value),
            ExactField::CorrelationId => record.correlation_id.as_deref() == Some(value.as_str()),
        },
        Leaf::Severity { lower, upper } => {
            (*lower, *upper).contains(&i64::from(record.severity_number))
        }
        Leaf::Attribute { path, value } => attribute_matches(&record.attributes, "", path, value),
    }
}

/// Matches as tantivy's phrase scorer does. Each term's occurrences are shifted back by the
/// term's place in the phrase, so an exact phrase puts every term at one shifted position.
/// With slop, distances count both ways (`"b a"~2` matches "a b", as in tantivy): two terms
/// match when two shifted occurrences are at most the slop apart; longer phrases spend the
/// slop along the phrase, each term within what is left of it from a position carried from
/// the terms before (tantivy orders those terms by their rarity in the segment, which a record
/// alone cannot know, so sloppy phrases of three or more terms may differ from an index that
/// keeps positions in rare cases). A prefix phrase matches its last term as a prefix.
fn phrase_matches(phrase: &Phrase, tokens: &[(usize, String)]) -> bool {
    let last = phrase.terms.len() - 1;
    let term_matches = |index: usize, token: &str| {
        let term = phrase.terms[index].1.as_str();
        if phrase.prefix && index == last {
            token.starts_with(term)
        } else {
            token == term
        }
    };
    let shifted: Vec<Vec<i64>> = phrase
        .terms
        .iter()
        .enumerate()
        .map(|(index, (offset, _))| {
            tokens
                .iter()
                .filter(|(_, token)| term_matches(index, token))
                .map(|&(at, _)| at as i64 - *offset as i64)
                .collect()
        })
        .collect();
    if last == 0 || phrase.slop == 0 {
        return shifted[0]
            .iter()
            .any(|position| shifted[1..].iter().all(|other| other.contains(position)));
    }
    let slop = i64::from(phrase.slop);
    // (position, slop spent so far), the positions of both ends of every pair within reach.
    let mut reached: Vec<(i64, i64)> = shifted[0].iter().map(|&at| (at, 0)).collect();
    for next in &shifted[1..last] {
        let mut carried: std::collections::BTreeMap<i64, i64> = Default::default();
        for &(at, spent) in &reached {
            for &other in next {
                let spent = spent + (at - other).abs();
                if spent <= slop {
                    for position in [at, other] {
                        let entry = carried.entry(position).or_insert(spent);
                        *entry = (*entry).min(spent);
                    }
                }
            }
        }
        reached = carried.into_iter().collect();
    }
    reached.iter().any(|&(at, spent)| {
        shifted[last]
            .iter()
            .any(|&other| spent + (at - other).abs() <= slop)
    })
}

/// Walks the attributes with dotted paths (keys with dots count as nested, as the index's
/// expand-dots option does) and compares values as the JSON field indexes them.
fn attribute_matches(attributes: &[Attribute], prefix: &str, path: &str, wanted: &str) -> bool {
    attributes.iter().any(|attribute| {
        let key_path = if prefix.is_empty() {
            attribute.key.clone()
        } else {
            format!("{prefix}.{}", attribute.key)
        };
        value_matches(&attribute.value, &key_path, path, wanted)
    })
}

fn value_matches(value: &AttributeValue, key_path: &str, path: &str, wanted: &str) -> bool {
    match value {
        AttributeValue::Map(entries) => attribute_matches(entries, key_path, path, wanted),
        AttributeValue::Array(values) => values
            .iter()
            .any(|value| value_matches(value, key_path, path, wanted)),
        _ if key_path != path => false,
        AttributeValue::Empty => false,
        AttributeValue::String(text) => text == wanted,
        AttributeValue::Bytes(bytes) => hex::encode(bytes) == wanted,
        AttributeValue::Bool(flag) => wanted.parse::<bool>() == Ok(*flag),
        AttributeValue::Int(number) => {
            wanted.parse::<i64>() == Ok(*number)
                || wanted
                    .parse::<f64>()
                    .is_ok_and(|parsed| parsed == *number as f64)
        }
        AttributeValue::Double(number) => wanted.parse::<f64>().is_ok_and(|p| p == *number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_records::record;

    fn matches(text: &str, body: &str) -> bool {
        TextMatcher::parse(text).unwrap().matches(&record(1, body))
    }

    #[test]
    fn terms_are_anded_and_lowercased() {
        assert!(matches("timeout", "Upstream TIMEOUT after 30s"));
        assert!(matches("upstream 30s", "Upstream TIMEOUT after 30s"));
        assert!(!matches("upstream refused", "Upstream TIMEOUT after 30s"));
        assert!(matches("upstream OR refused", "Upstream TIMEOUT after 30s"));
        assert!(matches(
            "upstream AND timeout",
            "Upstream TIMEOUT after 30s"
        ));
        assert!(!matches("upstream -timeout", "Upstream TIMEOUT after 30s"));
        assert!(matches("*", "anything"));
    }

    #[test]
    fn phrases_need_adjacent_terms_unless_slop_allows() {
        let body = "payment declined by issuer bank";
        assert!(matches("\"declined by\"", body));
        assert!(!matches("\"declined issuer\"", body));
        assert!(matches("\"declined issuer\"~1", body));
        assert!(matches("\"by iss\"*", body));
        // Slop counts both ways, as tantivy counts it.
        assert!(matches("\"issuer by\"~2", body));
        assert!(!matches("\"issuer by\"~1", body));
        assert!(matches("\"payment by bank\"~2", body));
        assert!(!matches("\"payment by bank\"~1", body));
        // A hyphenated word is a phrase of its tokens.
        assert!(matches("user-42", "login failed for user-42"));
        assert!(!matches("user-42", "user 7 has 42 items"));
    }

    #[test]
    fn fields_resolve_like_the_schema() {
        let record = record(1, "hello");
        let matcher = |text: &str| TextMatcher::parse(text).unwrap().matches(&record);
        assert!(matcher("service_name:checkout"));
        assert!(!matcher("service_name:Checkout"));
        assert!(matcher("severity_number:[9 TO *]"));
        assert!(matcher("attributes.http.method:GET"));
        assert!(matcher("attributes.http.status_code:200"));
        assert!(!matcher("attributes.http.method:get"));
    }

    #[test]
    fn bad_queries_are_rejected() {
        for text in [
            "(unclosed",
            "-only",
            "nosuchfield:x",
            "timestamp:1",
            "severity_number:x",
        ] {
            assert!(TextMatcher::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = TextMatcher::parse("timeout AND (retry").unwrap_err();
        assert!(error.starts_with("syntax error at character "), "{error}");
        let column: usize = error
            .trim_start_matches("syntax error at character ")
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((13..=19).contains(&column), "{error}");
    }

    #[test]
    fn a_query_without_tokens_matches_nothing() {
        assert!(!matches("...", "anything ... here"));
        // Like tantivy: several literals without tokens count as "only excluding terms".
        assert!(TextMatcher::parse("... ;;").is_err());
        assert!(matches("here ...", "anything ... here"));
    }
}
