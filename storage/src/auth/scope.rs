//! What a key grants: scopes (a small set) and the tenant it is bound to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::TenantId;

/// One right a key can hold. Scopes do not imply each other: an `admin` key cannot ingest
/// unless it also holds `ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// OTLP export and Prometheus remote write.
    Ingest,
    /// Every read API and the UI.
    Query,
    /// Server-wide operations (rules, silences, keys, backup, self-metrics of every tenant).
    Admin,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Query, Scope::Admin];

    fn bit(self) -> u8 {
        match self {
            Self::Ingest => 1,
            Self::Query => 2,
            Self::Admin => 4,
        }
    }

    /// The name used in key files, flags and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text.trim())
            .ok_or_else(|| format!("unknown scope {text:?}: use ingest, query or admin"))
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in display order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Self {
        Self(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// The tenants a key may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantGrant {
    /// Exactly this tenant; `X-Scope-OrgID` may only repeat it.
    One(TenantId),
    /// Any tenant, named by `X-Scope-OrgID` (else `default`).
    All,
}

impl TenantGrant {
    /// How the key file and `skewer keys` spell "every tenant".
    pub const ALL_TEXT: &'static str = "*";
}

impl fmt::Display for TenantGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(tenant) => f.write_str(tenant.as_str()),
            Self::All => f.write_str(Self::ALL_TEXT),
        }
    }
}

impl FromStr for TenantGrant {
    type Err = crate::model::IdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == Self::ALL_TEXT {
            Ok(Self::All)
        } else {
            text.parse().map(Self::One)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_combine() {
        let scopes: Scopes = ["query", "admin"]
            .iter()
            .map(|s| s.parse::<Scope>().unwrap())
            .collect();
        assert!(scopes.contains(Scope::Query) && scopes.contains(Scope::Admin));
        assert!(!scopes.contains(Scope::Ingest));
        assert_eq!(scopes.to_string(), "query,admin");
        assert!("root".parse::<Scope>().is_err());
        assert!(Scopes::default().is_empty());
    }

    #[test]
    fn tenant_grants_parse() {
        assert_eq!("*".parse::<TenantGrant>().unwrap(), TenantGrant::All);
        assert_eq!("shop".parse::<TenantGrant>().unwrap().to_string(), "shop");
        assert!("../x".parse::<TenantGrant>().is_err());
    }
}
