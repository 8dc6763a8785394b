//! Rewrites a parsed query text for a format 3 log index, so the text means what it meant on
//! older formats and in memory ([`super::text_match`]).
//!
//! Format 3 keeps trace and span ids as binary terms, and leaves the attribute the correlation
//! id was read from out of `attributes` (its key goes to `correlation_key` instead). Users keep
//! writing `trace_id:<hex>` and `attributes.request.id:<value>`; this file turns such leaves into
//! what the index holds, before tantivy's query parser builds the query:
//! - `trace_id:<hex>`, `span_id:<hex>`: the id's bytes, base64 encoded as tantivy's parser reads
//!   a bytes term. Only lowercase hex of the id's length matches, as on text ids; any other
//!   value becomes a term of a length no id has, which matches nothing.
//! - any leaf on `attributes.<key>`: `(<leaf> OR (correlation_key:<key> AND <leaf on
//!   correlation_id>))`. Exact: the second branch holds only for a record whose attribute
//!   `<key>` was left out as its correlation source, whose value is the correlation id.
//!
//! Ranges, regexes and existence clauses on ids are left as they are (tantivy would read their
//! bounds as base64): no search reaches an index with them, since the in-memory matcher every
//! search compiles first refuses them as unsupported.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tantivy::query_grammar::{Delimiter, Occur, UserInputAst, UserInputLeaf, UserInputLiteral};

use super::schema::{ATTRIBUTES, CORRELATION_ID, CORRELATION_KEY, SPAN_ID, TRACE_ID};

/// `ast` with id and attribute leaves rewritten for a format 3 index.
pub(crate) fn for_binary_ids(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(children) => UserInputAst::Clause(
            children
                .into_iter()
                .map(|(occur, child)| (occur, for_binary_ids(child)))
                .collect(),
        ),
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(for_binary_ids(*inner)), boost)
        }
        UserInputAst::Leaf(leaf) => rewrite_leaf(*leaf),
    }
}

fn rewrite_leaf(leaf: UserInputLeaf) -> UserInputAst {
    let Some(field) = leaf_field(&leaf) else {
        return UserInputAst::Leaf(Box::new(leaf));
    };
    if field == TRACE_ID || field == SPAN_ID {
        let length = if field == TRACE_ID { 16 } else { 8 };
        return UserInputAst::Leaf(Box::new(binary_id_leaf(leaf, length)));
    }
    let attribute_key = field
        .strip_prefix(ATTRIBUTES)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|path| path.replace("\\.", "."));
    match attribute_key {
        Some(key) => or_correlation_source(leaf, key),
        None => UserInputAst::Leaf(Box::new(leaf)),
    }
}

/// The field a leaf names, if any.
fn leaf_field(leaf: &UserInputLeaf) -> Option<&str> {
    match leaf {
        UserInputLeaf::Literal(literal) => literal.field_name.as_deref(),
        UserInputLeaf::Range { field, .. }
        | UserInputLeaf::Set { field, .. }
        | UserInputLeaf::Regex { field, .. } => field.as_deref(),
        UserInputLeaf::Exists { field } => Some(field),
        UserInputLeaf::All => None,
    }
}

/// `leaf` on `field` instead.
fn with_field(leaf: UserInputLeaf, field: &str) -> UserInputLeaf {
    let name = Some(field.to_string());
    match leaf {
        UserInputLeaf::Literal(literal) => UserInputLeaf::Literal(UserInputLiteral {
            field_name: name,
            ..literal
        }),
        UserInputLeaf::Range { lower, upper, .. } => UserInputLeaf::Range {
            field: name,
            lower,
            upper,
        },
        UserInputLeaf::Set { elements, .. } => UserInputLeaf::Set {
            field: name,
            elements,
        },
        UserInputLeaf::Regex { pattern, .. } => UserInputLeaf::Regex {
            field: name,
            pattern,
        },
        UserInputLeaf::Exists { .. } => UserInputLeaf::Exists {
            field: field.to_string(),
        },
        UserInputLeaf::All => UserInputLeaf::All,
    }
}

/// A literal or set of hex ids as base64 bytes terms; other leaves are left as they are.
fn binary_id_leaf(leaf: UserInputLeaf, length: usize) -> UserInputLeaf {
    match leaf {
        UserInputLeaf::Literal(literal) => UserInputLeaf::Literal(UserInputLiteral {
            phrase: binary_id_term(&literal.phrase, length),
            ..literal
        }),
        UserInputLeaf::Set { field, elements } => UserInputLeaf::Set {
            field,
            elements: elements
                .iter()
                .map(|element| binary_id_term(element, length))
                .collect(),
        },
        other => other,
    }
}

/// The base64 of the id `hex` spells, or of `length + 1` bytes (no id is that long) when it
/// is not `2 × length` lowercase hex digits.
fn binary_id_term(hex_text: &str, length: usize) -> String {
    let is_lowercase_hex = hex_text.len() == 2 * length
        && hex_text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    let bytes = match hex::decode(hex_text) {
        Ok(bytes) if is_lowercase_hex => bytes,
        _ => vec![0xFF; length + 1],
    };
    BASE64.encode(bytes)
}

/// `(leaf OR (correlation_key:key AND leaf on correlation_id))`.
fn or_correlation_source(leaf: UserInputLeaf, key: String) -> UserInputAst {
    let key_leaf = UserInputLeaf::Literal(UserInputLiteral {
        field_name: Some(CORRELATION_KEY.to_string()),
        phrase: key,
        delimiter: Delimiter::DoubleQuotes,
        slop: 0,
        prefix: false,
    });
    let on_correlation_id = with_field(leaf.clone(), CORRELATION_ID);
    let correlation_branch = UserInputAst::Clause(vec![
        (Some(Occur::Must), UserInputAst::Leaf(Box::new(key_leaf))),
        (
            Some(Occur::Must),
            UserInputAst::Leaf(Box::new(on_correlation_id)),
        ),
    ]);
    UserInputAst::Clause(vec![
        (Some(Occur::Should), UserInputAst::Leaf(Box::new(leaf))),
        (Some(Occur::Should), correlation_branch),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::query_grammar::parse_query;

    fn rewritten(text: &str) -> String {
        format!("{:?}", for_binary_ids(parse_query(text).unwrap()))
    }

    #[test]
    fn hex_ids_become_base64_bytes_and_anything_else_matches_no_id() {
        let id = "0af7651916cd43dd8448eb211c80319c";
        let expected = BASE64.encode(hex::decode(id).unwrap());
        assert!(rewritten(&format!("trace_id:{id}")).contains(&expected));
        let span = "b7ad6b7169203331";
        let span_bytes = BASE64.encode(hex::decode(span).unwrap());
        assert!(rewritten(&format!("span_id:{span} payment")).contains(&span_bytes));
        for other in ["0AF7651916CD43DD8448EB211C80319C", "0af7", "zz", ""] {
            let no_id = BASE64.encode([0xFF; 17]);
            assert!(
                rewritten(&format!("trace_id:\"{other}\"")).contains(&no_id),
                "{other}"
            );
        }
        // Body words and other fields are left as they are.
        assert_eq!(
            rewritten("payment"),
            format!("{:?}", parse_query("payment").unwrap())
        );
        let service = "service_name:cart -severity_text:ERROR";
        assert_eq!(
            rewritten(service),
            format!("{:?}", parse_query(service).unwrap())
        );
    }

    #[test]
    fn attribute_leaves_also_ask_the_correlation_fields() {
        let text = rewritten("attributes.request\\.id:r-1");
        assert_eq!(
            text,
            r#"(?"attributes.request\.id":r-1 ?(+"correlation_key":"request.id" +"correlation_id":r-1))"#
        );
        let exclusion = rewritten("payment -attributes.user:alice");
        assert!(
            exclusion.contains(r#""correlation_key":"user""#),
            "{exclusion}"
        );
    }
}
