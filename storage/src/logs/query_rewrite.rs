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
//! Format 5 and later keep an id (trace, span or correlation) as its digest (`schema::IdDigest`): an
//! id leaf becomes the digest's term where it includes records, which finds a superset of the
//! id's records, and nothing where it excludes them (under a `-`), as body phrases below; the
//! records found are then checked with the exact query. An attribute leaf's correlation branch
//! is rewritten the same way.
//!
//! Ranges, regexes and existence clauses on ids are left as they are (tantivy would read their
//! bounds as base64): no search reaches an index with them, since the in-memory matcher every
//! search compiles first refuses them as unsupported.
//!
//! Format 4 keeps no positions for the body, so tantivy cannot answer a phrase there.
//! [`for_body_without_positions`] turns each body literal of several tokens into a query
//! that matches at least what the phrase matches: the conjunction of its terms where the
//! phrase includes records, nothing where it excludes them (under a `-`). The index then
//! finds a superset, and every record it finds is checked with the exact query in memory
//! ([`super::LogMatcher`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tantivy::query_grammar::{Delimiter, Occur, UserInputAst, UserInputLeaf, UserInputLiteral};

use super::schema::{
    ATTRIBUTES, BODY, CORRELATION_ID, CORRELATION_KEY, IdDigest, SPAN_ID, TRACE_ID,
};
use super::text_match::body_token_spans;

/// `ast` with id and attribute leaves rewritten for a format 3 or later index. With
/// `digest_bytes` (format 5 and later) ids become their digests of that many bytes; the flag is true when one was, so matches
/// must be checked on their records. `is_correlation_key` tells whether some record took its
/// correlation id from an attribute key: only then may a leaf on that attribute match through
/// the correlation id (on format 5 a superset, so asked only where it can match).
pub(crate) fn for_binary_ids(
    ast: UserInputAst,
    digest_bytes: Option<usize>,
    is_correlation_key: impl Fn(&str) -> bool,
) -> (UserInputAst, bool) {
    let rewrite = IdRewrite {
        digest_bytes,
        is_correlation_key: &is_correlation_key,
    };
    let mut relaxed = false;
    let ast = map_leaves(ast, true, &mut |leaf, includes| {
        rewrite.leaf(leaf, includes, &mut relaxed)
    });
    (ast, relaxed)
}

/// What [`for_binary_ids`] rewrites with.
struct IdRewrite<'a> {
    /// The bytes of the index's id digests; `None` where it keeps whole ids.
    digest_bytes: Option<usize>,
    is_correlation_key: &'a dyn Fn(&str) -> bool,
}

impl IdRewrite<'_> {
    fn leaf(&self, leaf: UserInputLeaf, includes: bool, relaxed: &mut bool) -> UserInputAst {
        let Some(field) = leaf_field(&leaf) else {
            return UserInputAst::Leaf(Box::new(leaf));
        };
        let correlation_id = |text: &str| Some(text.as_bytes().to_vec());
        if field == TRACE_ID || field == SPAN_ID {
            let length = if field == TRACE_ID { 16 } else { 8 };
            let leaf = match self.digest_bytes {
                Some(bytes) => {
                    let id = |text: &str| lowercase_hex_id(text, length);
                    digest_leaf(leaf, id, bytes, includes, relaxed)
                }
                None => binary_id_leaf(leaf, length),
            };
            return UserInputAst::Leaf(Box::new(leaf));
        }
        if let (true, Some(bytes)) = (field == CORRELATION_ID, self.digest_bytes) {
            let leaf = digest_leaf(leaf, correlation_id, bytes, includes, relaxed);
            return UserInputAst::Leaf(Box::new(leaf));
        }
        let attribute_key = field
            .strip_prefix(ATTRIBUTES)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|path| path.replace("\\.", "."));
        match attribute_key {
            // No record took its correlation id from this key: the attribute alone answers.
            Some(key) if self.digest_bytes.is_some() && !(self.is_correlation_key)(&key) => {
                UserInputAst::Leaf(Box::new(leaf))
            }
            Some(key) => {
                let on_correlation_id = with_field(leaf.clone(), CORRELATION_ID);
                let on_correlation_id = match self.digest_bytes {
                    Some(bytes) => {
                        digest_leaf(on_correlation_id, correlation_id, bytes, includes, relaxed)
                    }
                    None => on_correlation_id,
                };
                or_correlation_source(leaf, key, on_correlation_id)
            }
            None => UserInputAst::Leaf(Box::new(leaf)),
        }
    }
}

/// A literal or set on an id field as its digests' terms where it includes records (a
/// superset, so `relaxed` is set), nothing where it excludes them; `id` reads an id's bytes
/// from its text, `None` when it spells no id (then it matches nothing, exactly). Other
/// leaves are left as they are (the in-memory matcher every search compiles first refuses
/// them).
fn digest_leaf(
    leaf: UserInputLeaf,
    id: impl Fn(&str) -> Option<Vec<u8>>,
    digest_bytes: usize,
    includes: bool,
    relaxed: &mut bool,
) -> UserInputLeaf {
    let digest =
        |text: &str| id(text).map(|bytes| BASE64.encode(IdDigest::of(&bytes, digest_bytes)));
    let leaf = match leaf {
        UserInputLeaf::Literal(literal) => match digest(&literal.phrase) {
            Some(phrase) => UserInputLeaf::Literal(UserInputLiteral { phrase, ..literal }),
            None => return matches_nothing(),
        },
        UserInputLeaf::Set { field, elements } => {
            let elements: Vec<String> = elements.iter().filter_map(|text| digest(text)).collect();
            if elements.is_empty() {
                return matches_nothing();
            }
            UserInputLeaf::Set { field, elements }
        }
        other => return other,
    };
    *relaxed = true;
    if includes { leaf } else { matches_nothing() }
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

/// `ast` with every body phrase relaxed for an index without body positions: a superset
/// of the phrase where it includes records, nothing where it excludes them. The flag is
/// true when a phrase was relaxed, so matches must be checked on their records.
pub(crate) fn for_body_without_positions(ast: UserInputAst) -> (UserInputAst, bool) {
    let mut relaxed = false;
    let ast = map_leaves(ast, true, &mut |leaf, includes| {
        relax_phrase_leaf(leaf, includes, &mut relaxed)
    });
    (ast, relaxed)
}

/// `ast` with each leaf replaced by `rewrite(leaf, includes)`. `includes` is false below an
/// odd number of exclusions, where a clause's matches are taken away from the answer: there a
/// relaxed form must match no more than the exact one.
fn map_leaves(
    ast: UserInputAst,
    includes: bool,
    rewrite: &mut dyn FnMut(UserInputLeaf, bool) -> UserInputAst,
) -> UserInputAst {
    match ast {
        UserInputAst::Clause(children) => UserInputAst::Clause(
            children
                .into_iter()
                .map(|(occur, child)| {
                    let child_includes = includes != (occur == Some(Occur::MustNot));
                    (occur, map_leaves(child, child_includes, rewrite))
                })
                .collect(),
        ),
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(map_leaves(*inner, includes, rewrite)), boost)
        }
        UserInputAst::Leaf(leaf) => rewrite(*leaf, includes),
    }
}

fn relax_phrase_leaf(leaf: UserInputLeaf, includes: bool, relaxed: &mut bool) -> UserInputAst {
    let UserInputLeaf::Literal(literal) = &leaf else {
        return UserInputAst::Leaf(Box::new(leaf));
    };
    if !matches!(literal.field_name.as_deref(), None | Some(BODY)) {
        return UserInputAst::Leaf(Box::new(leaf));
    }
    // Each token as written: tantivy's parser tokenizes each new literal again, and a token
    // already lowercased might split (a lowercased `İ` gains a combining mark).
    let tokens = body_token_spans(&literal.phrase);
    if tokens.len() < 2 {
        // One term needs no position; a prefix of one term is refused as before.
        return UserInputAst::Leaf(Box::new(leaf));
    }
    *relaxed = true;
    if !includes {
        return UserInputAst::Leaf(Box::new(matches_nothing()));
    }
    // A phrase prefix's last term is a prefix: the terms before it are required.
    let required = if literal.prefix {
        tokens.len() - 1
    } else {
        tokens.len()
    };
    UserInputAst::Clause(
        tokens
            .into_iter()
            .take(required)
            .map(|token| {
                let term = UserInputLiteral {
                    field_name: literal.field_name.clone(),
                    phrase: token.to_string(),
                    delimiter: Delimiter::DoubleQuotes,
                    slop: 0,
                    prefix: false,
                };
                (
                    Some(Occur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(term))),
                )
            })
            .collect(),
    )
}

/// A leaf no record matches: a trace id one byte longer than any.
fn matches_nothing() -> UserInputLeaf {
    UserInputLeaf::Literal(UserInputLiteral {
        field_name: Some(TRACE_ID.to_string()),
        phrase: BASE64.encode([0xFF; 17]),
        delimiter: Delimiter::DoubleQuotes,
        slop: 0,
        prefix: false,
    })
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
    let bytes = lowercase_hex_id(hex_text, length).unwrap_or_else(|| vec![0xFF; length + 1]);
    BASE64.encode(bytes)
}

/// The bytes of the id `hex_text` spells when it is `2 × length` lowercase hex digits (the
/// only spelling of an id that matches, as on text ids).
fn lowercase_hex_id(hex_text: &str, length: usize) -> Option<Vec<u8>> {
    let is_lowercase_hex = hex_text.len() == 2 * length
        && hex_text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    hex::decode(hex_text).ok().filter(|_| is_lowercase_hex)
}

/// `(leaf OR (correlation_key:key AND on_correlation_id))`.
fn or_correlation_source(
    leaf: UserInputLeaf,
    key: String,
    on_correlation_id: UserInputLeaf,
) -> UserInputAst {
    let key_leaf = UserInputLeaf::Literal(UserInputLiteral {
        field_name: Some(CORRELATION_KEY.to_string()),
        phrase: key,
        delimiter: Delimiter::DoubleQuotes,
        slop: 0,
        prefix: false,
    });
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
        let (ast, relaxed) = for_binary_ids(parse_query(text).unwrap(), None, |_| true);
        assert!(!relaxed, "{text}");
        format!("{ast:?}")
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

    fn relaxed(text: &str) -> (String, bool) {
        let (ast, relaxed) = for_body_without_positions(parse_query(text).unwrap());
        (format!("{ast:?}"), relaxed)
    }

    #[test]
    fn body_phrases_become_their_terms_where_they_include_and_nothing_where_they_exclude() {
        assert_eq!(
            relaxed("\"Connection reset\" by"),
            (r#"(*(+"Connection" +"reset") *by)"#.to_string(), true)
        );
        // A hyphenated word is a phrase of its tokens; a phrase prefix requires the terms
        // before its last.
        assert!(relaxed("user-42").1);
        assert_eq!(relaxed("\"by iss\"*").0, r#"(+"by")"#);
        // Under one exclusion a phrase matches nothing; under two it includes again.
        let no_id = BASE64.encode([0xFF; 17]);
        let excluded = relaxed("payment -\"card declined\"").0;
        assert!(excluded.contains(&no_id), "{excluded}");
        assert!(!excluded.contains("declined"), "{excluded}");
        let twice = relaxed("payment -(retry -\"card declined\")").0;
        assert!(twice.contains(r#"+"declined""#), "{twice}");
        // Each term is written as in the query, to be tokenized once, by the index's parser.
        let (turkish, _) = relaxed("\"İstanbul timeout\"");
        assert!(turkish.contains(r#"+"İstanbul""#), "{turkish}");
        // Single terms, other fields and phrases in attribute values are left as they are.
        for text in ["timeout", "service_name:cart", "attributes.user:\"a b\""] {
            assert_eq!(
                relaxed(text),
                (format!("{:?}", parse_query(text).unwrap()), false),
                "{text}"
            );
        }
    }

    /// `text` rewritten for format 8 (3-byte digests), where only `request.id` is a
    /// correlation key.
    fn with_digests(text: &str) -> (String, bool) {
        let is_correlation_key = |key: &str| key == "request.id";
        let ast = parse_query(text).unwrap();
        let (ast, relaxed) = for_binary_ids(ast, Some(3), is_correlation_key);
        (format!("{ast:?}"), relaxed)
    }

    #[test]
    fn ids_become_digests_where_they_include_and_nothing_where_they_exclude() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let trace_digest = BASE64.encode(IdDigest::of(&hex::decode(trace).unwrap(), 3));
        let request_digest = BASE64.encode(IdDigest::of(b"r-1", 3));
        let no_id = BASE64.encode([0xFF; 17]);
        let (included, relaxed) = with_digests(&format!("trace_id:{trace} payment"));
        assert!(included.contains(&trace_digest) && relaxed, "{included}");
        let (excluded, relaxed) = with_digests(&format!("payment -trace_id:{trace}"));
        assert!(
            excluded.contains(&no_id) && !excluded.contains(&trace_digest),
            "{excluded}"
        );
        assert!(relaxed);
        let (twice, _) = with_digests(&format!("payment -(retry -trace_id:{trace})"));
        assert!(twice.contains(&trace_digest), "{twice}");
        let (set, relaxed) = with_digests(&format!("trace_id: IN [{trace} zz]"));
        assert!(
            set.contains(&trace_digest) && !set.contains("zz") && relaxed,
            "{set}"
        );
        // What spells no id matches nothing, exactly.
        assert_eq!(
            with_digests("span_id:zz"),
            (
                format!(
                    "{:?}",
                    parse_query(&format!("trace_id:\"{no_id}\"")).unwrap()
                ),
                false
            )
        );
        let (correlation, relaxed) = with_digests("correlation_id:r-1");
        assert!(
            correlation.contains(&request_digest) && relaxed,
            "{correlation}"
        );
        // An attribute some record took its correlation id from also asks the digest; any
        // other attribute is answered by itself, exactly.
        let (source, relaxed) = with_digests("attributes.request.id:r-1");
        assert!(source.contains(&request_digest) && relaxed, "{source}");
        let (source_excluded, _) = with_digests("payment -attributes.request.id:r-1");
        assert!(
            !source_excluded.contains(&request_digest),
            "{source_excluded}"
        );
        let other = "attributes.http.method:GET -attributes.user:alice";
        assert_eq!(
            with_digests(other),
            (format!("{:?}", parse_query(other).unwrap()), false)
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
