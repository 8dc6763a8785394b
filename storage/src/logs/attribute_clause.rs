//! One exact attribute filter (`key` = `value`) as a clause of the log query syntax,
//! `attributes.<key>:"<value>"`, so the index and the buffer's matcher read it with the one
//! grammar (tantivy's) they already share. Keys with dots are paths (as the index stores
//! them); numbers and booleans match as the query syntax matches them (`3` matches the
//! integer 3 and the text "3").

/// Characters tantivy's query grammar reserves in a field name; each is escaped.
const SPECIAL_IN_FIELD: &[char] = &[
    '+', '^', '`', ':', '{', '}', '"', '\'', '[', ']', '(', ')', '!', '\\', '*', ' ',
];

/// The clause requiring attribute `key` to equal `value`; `Err` says why a key cannot be one.
pub fn attribute_clause(key: &str, value: &str) -> Result<String, String> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(format!(
            "{key:?} is not a usable attribute key (empty, or control characters)"
        ));
    }
    let mut clause = String::with_capacity(key.len() + value.len() + 16);
    clause.push_str("attributes.");
    for c in key.chars() {
        if SPECIAL_IN_FIELD.contains(&c) {
            clause.push('\\');
        }
        clause.push(c);
    }
    clause.push_str(":\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            clause.push('\\');
        }
        clause.push(c);
    }
    clause.push('"');
    Ok(clause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(
            attribute_clause("http.method", "GET").unwrap(),
            r#"attributes.http.method:"GET""#
        );
        assert_eq!(
            attribute_clause("we:ird (key)", r#"say "hi" \o/"#).unwrap(),
            r#"attributes.we\:ird\ \(key\):"say \"hi\" \\o/""#
        );
        assert_eq!(
            attribute_clause("-leading", "x").unwrap(),
            r#"attributes.-leading:"x""#
        );
        assert!(attribute_clause("", "x").is_err());
        assert!(attribute_clause("a\nb", "x").is_err());
    }
}
