//! `/api/logs?attributes={"key":"value",…}`: exact attribute filters as a JSON object of
//! scalars, read into (key, value) pairs for [`skewer_storage::logs::LogQuery::attributes`]
//! (which says how they match: dotted keys are paths, `3` matches the integer 3 and the text
//! "3").

use serde_json::Value;

/// The filters of `attributes` (absent or blank: none).
pub fn attribute_filters(attributes: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let Some(attributes) = attributes.filter(|a| !a.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let map: serde_json::Map<String, Value> = serde_json::from_str(attributes)
        .map_err(|err| format!("not a JSON object of attribute values: {err}"))?;
    map.into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    return Err(format!(
                        "the value of {key:?} is {other}: use a string, number or boolean"
                    ));
                }
            };
            skewer_storage::logs::attribute_clause(&key, &value)?;
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_of_scalars_becomes_pairs() {
        assert_eq!(
            attribute_filters(Some(r#"{"http.method":"GET","retries":3,"ok":true}"#)),
            Ok(vec![
                ("http.method".to_owned(), "GET".to_owned()),
                ("ok".to_owned(), "true".to_owned()),
                ("retries".to_owned(), "3".to_owned()),
            ])
        );
        assert_eq!(attribute_filters(None), Ok(vec![]));
        assert_eq!(attribute_filters(Some(" ")), Ok(vec![]));
        assert_eq!(attribute_filters(Some("{}")), Ok(vec![]));
    }

    #[test]
    fn what_cannot_be_a_filter_is_refused_with_the_reason() {
        for (bad, why) in [
            ("[1]", "not a JSON object"),
            (r#"{"a":[1]}"#, "use a string, number or boolean"),
            (r#"{"a":null}"#, "use a string, number or boolean"),
            (r#"{"":"x"}"#, "not a usable attribute key"),
        ] {
            let error = attribute_filters(Some(bad)).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
