//! A YAML document as a tree whose every node knows its line, so that a rule file's errors
//! (a bad expression, a missing key) point at the line to fix. Built from `yaml-rust2`'s
//! marked events; anchors and aliases are resolved by copying the anchored node.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One node: a scalar (every scalar is text here; rule files hold no other kind), a sequence
/// or a mapping, with the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Line of its first character.
    pub line: usize,
}

/// A node's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar (`null` and `~` are [`Value::Null`]).
    Scalar(String),
    /// An explicit or implicit null.
    Null,
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in file order.
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// A short name of the node's kind, for errors.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Scalar(_) => "a string",
            Value::Null => "null",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }
}

/// Why a document is not YAML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    /// Line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses the first document of `text`; an empty text is [`Value::Null`].
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|err| YamlError {
        line: err.marker().line(),
        message: err.info().to_owned(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        line: 1,
    }))
}

/// A container being filled: its node, its anchor and (for a mapping) a key waiting for its
/// value.
struct Open {
    node: Node,
    anchor: usize,
    pending_key: Option<Node>,
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<YamlError>,
}

impl TreeBuilder {
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        match &mut parent.node.value {
            Value::Sequence(items) => items.push(node),
            Value::Mapping(entries) => match parent.pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => parent.pending_key = Some(node),
            },
            Value::Scalar(_) | Value::Null => {}
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let plain = style == yaml_rust2::scanner::TScalarStyle::Plain;
                let value = if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Null
                } else {
                    Value::Scalar(text)
                };
                self.finish(Node { value, line }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    value: Value::Sequence(Vec::new()),
                    line,
                },
                anchor,
                pending_key: None,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    value: Value::Mapping(Vec::new()),
                    line,
                },
                anchor,
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    self.finish(open.node, open.anchor);
                }
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(node) => self.finish(node, 0),
                None => {
                    self.error = Some(YamlError {
                        line,
                        message: "alias to an unknown anchor".to_owned(),
                    });
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Mapping(entries) => entries,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn nodes_carry_their_lines() {
        let text =
            "groups:\n  - name: api\n    rules:\n      - alert: Down\n        expr: up == 0\n";
        let root = parse(text).expect("parses");
        let groups = &mapping(&root)[0].1;
        let Value::Sequence(groups) = &groups.value else {
            panic!("groups is a list")
        };
        let group = mapping(&groups[0]);
        assert_eq!(group[0].0.value, Value::Scalar("name".into()));
        assert_eq!(group[0].1.line, 2);
        let Value::Sequence(rules) = &group[1].1.value else {
            panic!("rules is a list")
        };
        let rule = mapping(&rules[0]);
        assert_eq!(rule[1].1.value, Value::Scalar("up == 0".into()));
        assert_eq!(rule[1].1.line, 5);
    }

    #[test]
    fn aliases_copy_their_anchor_and_nulls_are_null() {
        let root = parse("a: &x {k: v}\nb: *x\nc:\nd: 'null'\n").expect("parses");
        let entries = mapping(&root);
        assert_eq!(entries[0].1.value, entries[1].1.value);
        assert_eq!(entries[2].1.value, Value::Null);
        assert_eq!(entries[3].1.value, Value::Scalar("null".into()));
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let err = parse("groups:\n  - name: a\n  bad: [\n").expect_err("unclosed");
        assert!(err.line >= 3, "{err}");
        assert_eq!(parse("").expect("empty").value, Value::Null);
    }
}
