//! OTLP attributes, resources and scopes as Prometheus labels, after the OpenTelemetry
//! specification's "Prometheus and OpenMetrics compatibility" section: attribute keys
//! sanitised to `[a-zA-Z_][a-zA-Z0-9_]*` (a key starting with a digit gets `key_` in front,
//! keys that collide have their values joined with `;` in the order of the original keys),
//! `job` from `service.namespace/service.name`, `instance` from `service.instance.id`, the
//! scope as `otel_scope_name` / `otel_scope_version`, and the other resource attributes on a
//! `target_info` series.
//!
//! Pure: builds [`Labels`], reads no storage and names no metric (see [`super::naming`]).

use skewer_storage::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

use crate::promql::{Labels, METRIC_NAME_LABEL};

/// The label naming a series' target service.
pub const JOB_LABEL: &str = "job";
/// The label naming a series' target instance.
pub const INSTANCE_LABEL: &str = "instance";
/// The label of a histogram bucket's upper bound.
pub const LE_LABEL: &str = "le";
/// The label of a summary quantile.
pub const QUANTILE_LABEL: &str = "quantile";
/// The label holding the instrumentation scope's name.
pub const SCOPE_NAME_LABEL: &str = "otel_scope_name";
/// The label holding the instrumentation scope's version.
pub const SCOPE_VERSION_LABEL: &str = "otel_scope_version";
/// The metric whose labels are a target's resource attributes (value 1).
pub const TARGET_INFO: &str = "target_info";

/// The resource attribute that, with the namespace, makes `job`.
const SERVICE_NAME: &str = "service.name";
/// The resource attribute put in front of the service name in `job`.
const SERVICE_NAMESPACE: &str = "service.namespace";
/// The resource attribute that makes `instance`.
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// A Prometheus label name for an attribute key: characters outside `[a-zA-Z0-9]` become
/// `_`, runs of `_` collapse to one, a leading digit gets `key_` in front, and a reserved
/// `__name__`-style key keeps its double underscores. `None` when nothing but underscores
/// would be left (the attribute cannot be a label).
pub fn sanitize_label_name(key: &str) -> Option<String> {
    let reserved_inner = key
        .strip_prefix("__")
        .and_then(|rest| rest.strip_suffix("__"))
        .filter(|_| key.len() >= 4);
    let inner = reserved_inner.unwrap_or(key);
    let mut name = String::with_capacity(key.len() + 4);
    if reserved_inner.is_some() {
        name.push_str("__");
    }
    let mut previous_was_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
            previous_was_underscore = false;
        } else if !previous_was_underscore {
            name.push('_');
            previous_was_underscore = true;
        }
    }
    if reserved_inner.is_some() {
        name.push_str("__");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    }
    name.chars().any(|c| c != '_').then_some(name)
}

/// The `job` of a resource: `service.namespace/service.name`, or `service.name` alone when
/// there is no namespace; `None` without a service name.
pub fn job(resource: &Resource) -> Option<String> {
    let name = attribute_text(&resource.attributes, SERVICE_NAME).filter(|n| !n.is_empty())?;
    match attribute_text(&resource.attributes, SERVICE_NAMESPACE).filter(|n| !n.is_empty()) {
        Some(namespace) => Some(format!("{namespace}/{name}")),
        None => Some(name),
    }
}

/// The `instance` of a resource: its `service.instance.id`, if any.
pub fn instance(resource: &Resource) -> Option<String> {
    attribute_text(&resource.attributes, SERVICE_INSTANCE_ID).filter(|id| !id.is_empty())
}

/// The labels every Prometheus series of one OTLP series shares, without the metric name:
/// the point attributes, then the scope, then `job` and `instance` (later ones win a
/// clash).
pub fn series_labels(
    resource: &Resource,
    scope: &InstrumentationScope,
    attributes: &[Attribute],
) -> Labels {
    let mut pairs = attribute_labels(attributes);
    pairs.push((SCOPE_NAME_LABEL.to_owned(), scope.name.clone()));
    pairs.push((SCOPE_VERSION_LABEL.to_owned(), scope.version.clone()));
    pairs.extend(identity_labels(resource));
    Labels::from_pairs(pairs)
}

/// The `target_info` series labels of a resource: its attributes other than the three
/// that make `job` and `instance`, with `job`, `instance` and the metric name. `None` when
/// the resource has no other attribute or neither `job` nor `instance` (nothing to join on),
/// as Prometheus's OTLP receiver does.
pub fn target_info_labels(resource: &Resource) -> Option<Labels> {
    let others: Vec<Attribute> = resource
        .attributes
        .iter()
        .filter(|a| ![SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID].contains(&&*a.key))
        .cloned()
        .collect();
    let identity = identity_labels(resource);
    if others.is_empty() || identity.is_empty() {
        return None;
    }
    let mut pairs = attribute_labels(&others);
    pairs.extend(identity);
    pairs.push((METRIC_NAME_LABEL.to_owned(), TARGET_INFO.to_owned()));
    Some(Labels::from_pairs(pairs))
}

/// Whether resources with these attribute keys (gathered over many resources) may make a
/// `target_info` series: some key beyond the three that make `job` and `instance`, and one
/// of those that make them.
pub fn may_have_target_info(keys: &std::collections::BTreeSet<String>) -> bool {
    let identity = [SERVICE_NAME, SERVICE_INSTANCE_ID];
    keys.iter().any(|k| identity.contains(&k.as_str()))
        && keys
            .iter()
            .any(|k| ![SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID].contains(&k.as_str()))
}

/// `job` and `instance` of a resource, those it has.
fn identity_labels(resource: &Resource) -> Vec<(String, String)> {
    [
        (JOB_LABEL, job(resource)),
        (INSTANCE_LABEL, instance(resource)),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
    .collect()
}

/// Attributes as label pairs: sanitised names, values as text; values of keys that
/// sanitise to the same name are joined with `;`, ordered by original key.
pub(super) fn attribute_labels(attributes: &[Attribute]) -> Vec<(String, String)> {
    let mut named: Vec<(String, &str, String)> = attributes
        .iter()
        .filter_map(|a| {
            Some((
                sanitize_label_name(&a.key)?,
                a.key.as_str(),
                value_text(&a.value),
            ))
        })
        .filter(|(_, _, value)| !value.is_empty())
        .collect();
    named.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(named.len());
    for (name, _, value) in named {
        match pairs.last_mut() {
            Some((last_name, last_value)) if *last_name == name => {
                last_value.push(';');
                last_value.push_str(&value);
            }
            _ => pairs.push((name, value)),
        }
    }
    pairs
}

/// The text of an attribute's value: strings as they are, other types in their compact
/// text form (arrays and maps as JSON).
fn value_text(value: &AttributeValue) -> String {
    value.to_text()
}

/// The text of the attribute `key`, if present.
fn attribute_text(attributes: &[Attribute], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| value_text(&a.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(pairs: &[(&str, &str)]) -> Resource {
        Resource {
            attributes: pairs
                .iter()
                .map(|(k, v)| Attribute::string(*k, *v))
                .collect(),
            ..Resource::default()
        }
    }

    fn pairs(labels: &Labels) -> Vec<(&str, &str)> {
        labels.iter().collect()
    }

    #[test]
    fn label_names_are_sanitised() {
        let sanitize = |key| sanitize_label_name(key).unwrap();
        assert_eq!(sanitize("http.request.method"), "http_request_method");
        assert_eq!(sanitize("already_fine"), "already_fine");
        assert_eq!(sanitize("a..b--c"), "a_b_c");
        assert_eq!(sanitize("a__b"), "a_b", "runs of underscores collapse");
        assert_eq!(sanitize("_private"), "_private");
        assert_eq!(sanitize("__reserved__"), "__reserved__");
        assert_eq!(sanitize("__a.b__"), "__a_b__");
        assert_eq!(sanitize("ñame"), "_ame");
    }

    #[test]
    fn a_leading_digit_gets_key_in_front() {
        assert_eq!(sanitize_label_name("123invalid").unwrap(), "key_123invalid");
        assert_eq!(sanitize_label_name("1.x").unwrap(), "key_1_x");
    }

    #[test]
    fn keys_of_nothing_but_underscores_are_no_labels() {
        assert_eq!(sanitize_label_name(""), None);
        assert_eq!(sanitize_label_name("..."), None);
        assert_eq!(sanitize_label_name("___"), None);
    }

    #[test]
    fn job_joins_namespace_and_name() {
        let both = resource(&[("service.name", "api"), ("service.namespace", "shop")]);
        assert_eq!(job(&both).as_deref(), Some("shop/api"));
        assert_eq!(
            job(&resource(&[("service.name", "api")])).as_deref(),
            Some("api")
        );
        assert_eq!(job(&resource(&[("service.namespace", "shop")])), None);
        assert_eq!(
            instance(&resource(&[("service.instance.id", "i-1")])).as_deref(),
            Some("i-1")
        );
        assert_eq!(instance(&resource(&[])), None);
    }

    #[test]
    fn series_labels_hold_attributes_scope_job_and_instance() {
        let resource = resource(&[
            ("service.name", "api"),
            ("service.instance.id", "i-1"),
            ("host.name", "h1"),
        ]);
        let scope = InstrumentationScope {
            name: "io.lib".into(),
            version: "1.2".into(),
            ..InstrumentationScope::default()
        };
        let attributes = vec![
            Attribute::string("http.method", "GET"),
            Attribute {
                key: "http.status_code".into(),
                value: AttributeValue::Int(200),
            },
            Attribute::string("job", "from-point"),
            Attribute::string("empty", ""),
        ];
        let labels = series_labels(&resource, &scope, &attributes);
        assert_eq!(
            pairs(&labels),
            [
                ("http_method", "GET"),
                ("http_status_code", "200"),
                ("instance", "i-1"),
                ("job", "api"),
                ("otel_scope_name", "io.lib"),
                ("otel_scope_version", "1.2"),
            ],
            "resource attributes other than the identity stay off; the resource's job wins"
        );
    }

    #[test]
    fn colliding_keys_join_their_values_in_key_order() {
        let attributes = vec![
            Attribute::string("a_b", "2"),
            Attribute::string("a.b", "1"),
            Attribute::string("c", "3"),
        ];
        let labels = series_labels(
            &Resource::default(),
            &InstrumentationScope::default(),
            &attributes,
        );
        assert_eq!(pairs(&labels), [("a_b", "1;2"), ("c", "3")]);
    }

    #[test]
    fn target_info_holds_the_other_resource_attributes() {
        let full = resource(&[
            ("service.name", "api"),
            ("service.namespace", "shop"),
            ("service.instance.id", "i-1"),
            ("host.name", "h1"),
            ("k8s.pod.name", "pod-7"),
        ]);
        let labels = target_info_labels(&full).unwrap();
        assert_eq!(
            pairs(&labels),
            [
                ("__name__", "target_info"),
                ("host_name", "h1"),
                ("instance", "i-1"),
                ("job", "shop/api"),
                ("k8s_pod_name", "pod-7"),
            ]
        );
    }

    #[test]
    fn no_target_info_without_other_attributes_or_identity() {
        let identity_only = resource(&[("service.name", "api"), ("service.instance.id", "i")]);
        assert_eq!(target_info_labels(&identity_only), None);
        assert_eq!(target_info_labels(&resource(&[("host.name", "h1")])), None);
        assert!(
            target_info_labels(&resource(&[("service.name", "a"), ("host.name", "h")])).is_some()
        );
    }
}
