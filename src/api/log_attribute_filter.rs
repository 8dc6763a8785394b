//! `/api/logs?attributes={"key":"value",…}`: exact attribute filters, turned into clauses of
//! the log query syntax (`attributes.<key>:"<value>"`), so the index and the buffer's matcher
//! read them with the one grammar they already share. Keys with dots are paths (as the index
//! stores them); numbers and booleans match as the query syntax matches them (`3` matches the
//! integer 3).

use serde_json::Value;

/// Characters tantivy's query grammar reserves in a field name; each is escaped.
const SPECIAL_IN_FIELD: &[char] = &[
    '+', '^', '`', ':', '{', '}', '"', '\'', '[', ']', '(', ')', '!', '\\', '*', ' ',
];

/// The text query of `text` (the `q` parameter) with every filter of `attributes` (a JSON
/// object of scalars) required beside it; `text` alone when there are none.
pub fn with_attribute_filters(
    text: Option<String>,
    attributes: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(attributes) = attributes.filter(|a| !a.trim().is_empty()) else {
        return Ok(text);
    };
    let map: serde_json::Map<String, Value> = serde_json::from_str(attributes)
        .map_err(|err| format!("not a JSON object of attribute values: {err}"))?;
    let mut clauses: Vec<String> = Vec::with_capacity(map.len() + 1);
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        clauses.push(format!("({text})"));
    }
    for (key, value) in &map {
        clauses.push(clause(key, value)?);
    }
    Ok((!clauses.is_empty()).then(|| clauses.join(" ")))
}

/// One `attributes.<key>:"<value>"` clause.
fn clause(key: &str, value: &Value) -> Result<String, String> {
    if key.is_empty() || key.starts_with('-') || key.chars().any(char::is_control) {
        return Err(format!(
            "{key:?} is not a usable attribute key (empty, control characters or a leading '-')"
        ));
    }
    let value = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => {
            return Err(format!(
                "the value of {key:?} is {other}: use a string, number or boolean"
            ));
        }
    };
    let mut field = String::with_capacity(key.len() + 12);
    field.push_str("attributes.");
    for c in key.chars() {
        if SPECIAL_IN_FIELD.contains(&c) {
            field.push('\\');
        }
        field.push(c);
    }
    let mut phrase = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if c == '"' || c == '\\' {
            phrase.push('\\');
        }
        phrase.push(c);
    }
    Ok(format!("{field}:\"{phrase}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_required_clauses_beside_the_text() {
        assert_eq!(
            with_attribute_filters(Some("timeout".into()), Some(r#"{"http.method":"GET","retries":3,"ok":true}"#)),
            Ok(Some(
                r#"(timeout) attributes.http.method:"GET" attributes.ok:"true" attributes.retries:"3""#.to_owned()
            ))
        );
        assert_eq!(
            with_attribute_filters(None, Some(r#"{"a":"x"}"#)),
            Ok(Some(r#"attributes.a:"x""#.to_owned()))
        );
        assert_eq!(
            with_attribute_filters(Some("q".into()), None),
            Ok(Some("q".into()))
        );
        assert_eq!(with_attribute_filters(None, Some("{}")), Ok(None));
    }

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(
            with_attribute_filters(None, Some(r#"{"we:ird key":"say \"hi\" \\o/"}"#)),
            Ok(Some(
                r#"attributes.we\:ird\ key:"say \"hi\" \\o/""#.to_owned()
            ))
        );
    }

    #[test]
    fn what_cannot_be_a_filter_is_refused_with_the_reason() {
        for (bad, why) in [
            ("[1]", "not a JSON object"),
            (r#"{"a":[1]}"#, "use a string, number or boolean"),
            (r#"{"a":null}"#, "use a string, number or boolean"),
            (r#"{"-a":"x"}"#, "leading '-'"),
            (r#"{"":"x"}"#, "not a usable attribute key"),
        ] {
            let error = with_attribute_filters(None, Some(bad)).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
