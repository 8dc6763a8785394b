//! OTLP/JSON field names. The protobuf JSON mapping writes fields in lowerCamelCase
//! (`resourceSpans`, `traceId`) and tells parsers to accept the proto field names
//! (`resource_spans`, `trace_id`) too; the generated deserializers know only the first, and
//! would drop such an export without a word. A body that decodes to an empty export and uses
//! proto names is rewritten to lowerCamelCase and decoded again; ordinary bodies pay nothing.
//!
//! Every object key of an OTLP export is a field name (attribute keys are values of `key`
//! fields), so every key is rewritten.

use serde_json::{Map, Value};

/// Whether some object key of the JSON text `body` holds an underscore (a proto field name):
/// a quoted string followed by `:` outside another string. May say yes for a key-like run
/// inside a string value (then the slower path only rewrites what needs it).
pub fn has_snake_case_key(body: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    let mut underscore = false;
    let mut after_string = false;
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    after_string = true;
                }
                b'_' => underscore = true,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                underscore = false;
                after_string = false;
            }
            b':' if after_string && underscore => return true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => after_string = false,
        }
    }
    false
}

/// Rewrites every object key of `value` from a proto field name to lowerCamelCase
/// (`time_unix_nano` → `timeUnixNano`); keys without underscores are kept.
pub fn camel_case_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let renamed: Map<String, Value> = std::mem::take(map)
                .into_iter()
                .map(|(key, mut inner)| {
                    camel_case_keys(&mut inner);
                    (lower_camel_case(&key), inner)
                })
                .collect();
            *map = renamed;
        }
        Value::Array(items) => items.iter_mut().for_each(camel_case_keys),
        _ => {}
    }
}

fn lower_camel_case(key: &str) -> String {
    if !key.contains('_') {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len());
    let mut upper_next = false;
    for ch in key.chars() {
        if ch == '_' {
            upper_next = !out.is_empty();
        } else if upper_next {
            out.extend(ch.to_uppercase());
            upper_next = false;
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_names_are_found_only_as_keys() {
        assert!(has_snake_case_key(br#"{"resource_spans":[]}"#));
        assert!(has_snake_case_key(br#"{"a":{"trace_id" : "x"}}"#));
        assert!(!has_snake_case_key(
            br#"{"resourceSpans":[{"key":"http.status_code"}]}"#
        ));
        assert!(!has_snake_case_key(br#"{"body":{"stringValue":"a_b: c"}}"#));
        assert!(!has_snake_case_key(
            br#"{"body":{"stringValue":"say \"a_b\": c"}}"#
        ));
    }

    #[test]
    fn keys_become_lower_camel_case() {
        let mut value: Value = serde_json::from_str(
            r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"ab","start_time_unix_nano":"1","attributes":[{"key":"user_id","value":{"string_value":"x_y"}}]}]}]}]}"#,
        )
        .unwrap();
        camel_case_keys(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"ab","startTimeUnixNano":"1","attributes":[{"key":"user_id","value":{"stringValue":"x_y"}}]}]}]}]})
        );
    }
}
