//! Changes to a deployment's limits, as `skewer limits set|unset` and the admin API spell
//! them: `KEY=VALUE` for every tenant or one tenant's own, checked against `[limits]`'s keys.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use skewer_ingest::limits::{LimitsConfig, TenantLimitOverrides};
use skewer_storage::model::TenantId;

use super::LimitsError;

/// One change of the limits.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitsEdit {
    /// Sets limits of every tenant (`tenant` absent) or one tenant's own.
    Set {
        /// Whose: every tenant's when absent.
        tenant: Option<TenantId>,
        /// `(key, value)`, keys as in `[limits]`; 0 is unlimited.
        values: Vec<(String, u64)>,
    },
    /// Lifts limits of every tenant (back to 0, unlimited) or drops a tenant's own (back to
    /// every tenant's; all of its own when `keys` is empty).
    Unset {
        /// Whose: every tenant's when absent.
        tenant: Option<TenantId>,
        /// Keys as in `[limits]`.
        keys: Vec<String>,
    },
    /// Replaces one tenant's own limits whole (none: it follows every tenant's).
    ReplaceTenant {
        /// The tenant.
        tenant: TenantId,
        /// Its own limits.
        overrides: TenantLimitOverrides,
    },
}

/// Parses `KEY=VALUE` (a whole number, 0 meaning unlimited).
pub fn parse_assignment(text: &str) -> Result<(String, u64), LimitsError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| LimitsError::Invalid(format!("{text:?}: expected KEY=VALUE")))?;
    let value = value.trim().replace('_', "").parse().map_err(|_| {
        LimitsError::Invalid(format!(
            "{text:?}: the value must be a whole number (0: unlimited)"
        ))
    })?;
    Ok((key.trim().to_owned(), value))
}

fn to_object(value: &impl serde::Serialize) -> Result<Map<String, Value>, LimitsError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(LimitsError::Corrupt("limits are not a table".to_owned())),
        Err(err) => Err(LimitsError::Corrupt(err.to_string())),
    }
}

/// `object` read back as `T`; an unknown key is named with the known ones.
fn from_object<T: DeserializeOwned>(
    object: Map<String, Value>,
    whose: &str,
) -> Result<T, LimitsError> {
    serde_json::from_value(Value::Object(object))
        .map_err(|err| LimitsError::Invalid(format!("{whose}: {err}")))
}

/// Refuses `tenants` as a key of the defaults (it is the table of tenants' own limits).
fn check_default_key(key: &str) -> Result<(), LimitsError> {
    if key == "tenants" {
        return Err(LimitsError::Invalid(
            "`tenants` is not a limit: name a tenant (--tenant) to set its own".to_owned(),
        ));
    }
    let mut probe = Map::new();
    probe.insert(key.to_owned(), Value::from(0));
    from_object::<LimitsConfig>(probe, "limits of every tenant").map(drop)
}

fn check_tenant_key(key: &str, tenant: &TenantId) -> Result<(), LimitsError> {
    let mut probe = Map::new();
    probe.insert(key.to_owned(), Value::from(0));
    from_object::<TenantLimitOverrides>(probe, &format!("limits of tenant {tenant}")).map(drop)
}

/// `value` (stored limits) without the keys `[limits]` does not know, and those keys
/// (`tenants.NAME.KEY` for a tenant's own).
pub fn known_part(value: Value) -> (Value, Vec<String>) {
    let Value::Object(mut object) = value else {
        return (value, Vec::new());
    };
    let mut unknown = Vec::new();
    object.retain(|key, _| {
        let known = key == "tenants" || check_default_key(key).is_ok();
        if !known {
            unknown.push(key.clone());
        }
        known
    });
    if let Some(Value::Object(tenants)) = object.get_mut("tenants") {
        for (tenant, own) in tenants.iter_mut() {
            if let Value::Object(own) = own {
                own.retain(|key, _| {
                    let mut probe = Map::new();
                    probe.insert(key.clone(), Value::from(0));
                    let known = from_object::<TenantLimitOverrides>(probe, "").is_ok();
                    if !known {
                        unknown.push(format!("tenants.{tenant}.{key}"));
                    }
                    known
                });
            }
        }
    }
    (Value::Object(object), unknown)
}

impl LimitsEdit {
    /// Applies the change to `limits`; an error leaves them as they were.
    pub fn apply(&self, limits: &mut LimitsConfig) -> Result<(), LimitsError> {
        match self {
            Self::Set {
                tenant: None,
                values,
            } => edit_defaults(limits, |object| {
                for (key, value) in values {
                    check_default_key(key)?;
                    object.insert(key.clone(), Value::from(*value));
                }
                Ok(())
            })?,
            Self::Unset { tenant: None, keys } => edit_defaults(limits, |object| {
                for key in keys {
                    check_default_key(key)?;
                    object.insert(key.clone(), Value::from(0));
                }
                Ok(())
            })?,
            Self::Set {
                tenant: Some(tenant),
                values,
            } => edit_own(limits, tenant, |object| {
                for (key, value) in values {
                    check_tenant_key(key, tenant)?;
                    object.insert(key.clone(), Value::from(*value));
                }
                Ok(())
            })?,
            Self::Unset {
                tenant: Some(tenant),
                keys,
            } => edit_own(limits, tenant, |object| {
                for key in keys {
                    check_tenant_key(key, tenant)?;
                    object.remove(key);
                }
                if keys.is_empty() {
                    object.clear();
                }
                Ok(())
            })?,
            Self::ReplaceTenant { tenant, overrides } => set_own(limits, tenant, overrides.clone()),
        }
        Ok(())
    }
}

/// Changes every tenant's limits as a table of keys, read back checked.
fn edit_defaults(
    limits: &mut LimitsConfig,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), LimitsError>,
) -> Result<(), LimitsError> {
    let mut object = to_object(&*limits)?;
    change(&mut object)?;
    *limits = from_object(object, "limits of every tenant")?;
    Ok(())
}

/// Changes `tenant`'s own limits as a table of keys, read back checked.
fn edit_own(
    limits: &mut LimitsConfig,
    tenant: &TenantId,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), LimitsError>,
) -> Result<(), LimitsError> {
    let own = limits
        .tenants
        .get(tenant.as_str())
        .cloned()
        .unwrap_or_default();
    let mut object = to_object(&own)?;
    change(&mut object)?;
    let own = from_object(object, &format!("limits of tenant {tenant}"))?;
    set_own(limits, tenant, own);
    Ok(())
}

/// `tenant`'s own limits; none at all removes its entry.
fn set_own(limits: &mut LimitsConfig, tenant: &TenantId, own: TenantLimitOverrides) {
    if own == TenantLimitOverrides::default() {
        limits.tenants.remove(tenant.as_str());
    } else {
        limits.tenants.insert(tenant.as_str().to_owned(), own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Option<TenantId> {
        Some(name.parse().unwrap())
    }

    #[test]
    fn assignments_read_whole_numbers_only() {
        assert_eq!(
            parse_assignment("ingest_records_per_second = 10_000").unwrap(),
            ("ingest_records_per_second".to_owned(), 10_000)
        );
        for bad in [
            "max_tenants",
            "max_tenants=-1",
            "max_tenants=1.5",
            "max_tenants=lots",
        ] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_and_unset_change_the_defaults_and_a_tenants_own() {
        let mut limits = LimitsConfig::default();
        LimitsEdit::Set {
            tenant: None,
            values: vec![
                ("max_tenants".to_owned(), 5),
                ("query_max_rows".to_owned(), 9),
            ],
        }
        .apply(&mut limits)
        .unwrap();
        LimitsEdit::Set {
            tenant: tenant("acme"),
            values: vec![
                ("ingest_records_per_second".to_owned(), 100),
                ("query_max_concurrent".to_owned(), 2),
            ],
        }
        .apply(&mut limits)
        .unwrap();
        assert_eq!(limits.max_tenants, 5);
        assert_eq!(limits.query_max_rows_of("acme"), 9);
        assert_eq!(limits.rates_of("acme"), (100, 0));
        assert_eq!(limits.query_concurrency_of("acme"), 2);
        LimitsEdit::Unset {
            tenant: tenant("acme"),
            keys: vec!["query_max_concurrent".to_owned()],
        }
        .apply(&mut limits)
        .unwrap();
        assert_eq!(limits.query_concurrency_of("acme"), 0);
        assert_eq!(limits.rates_of("acme"), (100, 0));
        LimitsEdit::Unset {
            tenant: tenant("acme"),
            keys: vec![],
        }
        .apply(&mut limits)
        .unwrap();
        assert!(
            limits.tenants.is_empty(),
            "nothing of its own left: no entry"
        );
        LimitsEdit::Unset {
            tenant: None,
            keys: vec!["max_tenants".to_owned()],
        }
        .apply(&mut limits)
        .unwrap();
        assert_eq!(limits.max_tenants, 0);
        assert_eq!(limits.query_max_rows, 9);
    }

    #[test]
    fn stored_keys_of_a_newer_binary_are_left_out() {
        let stored = serde_json::json!({
            "max_tenants": 3,
            "future_limit": 9,
            "tenants": { "acme": { "query_max_rows": 5, "future_own": 1 } }
        });
        let (known, unknown) = known_part(stored);
        assert_eq!(unknown, ["future_limit", "tenants.acme.future_own"]);
        let limits: LimitsConfig = serde_json::from_value(known).unwrap();
        assert_eq!(
            (limits.max_tenants, limits.query_max_rows_of("acme")),
            (3, 5)
        );
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_known_ones_and_change_nothing() {
        let mut limits = LimitsConfig {
            max_tenants: 3,
            ..LimitsConfig::default()
        };
        let before = limits.clone();
        let err = LimitsEdit::Set {
            tenant: None,
            values: vec![
                ("max_tenants".to_owned(), 7),
                ("records_per_second".to_owned(), 1),
            ],
        }
        .apply(&mut limits)
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("records_per_second") && err.contains("ingest_records_per_second"),
            "{err}"
        );
        // max_tenants is every tenant's, not a tenant's own.
        let err = LimitsEdit::Set {
            tenant: tenant("acme"),
            values: vec![("max_tenants".to_owned(), 1)],
        }
        .apply(&mut limits)
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tenant acme") && err.contains("max_tenants"),
            "{err}"
        );
        assert!(
            LimitsEdit::Unset {
                tenant: None,
                keys: vec!["tenants".to_owned()],
            }
            .apply(&mut limits)
            .is_err()
        );
        assert_eq!(limits, before);
    }
}
