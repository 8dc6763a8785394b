//! What one node of a deployment does (`serve --role`). A single node (`all`, the default)
//! does everything. Several nodes sharing a bucket and a catalog database split the work:
//! ingest nodes take OTLP and write files, query nodes only answer, and one compactor merges
//! files, sweeps expired ones and evaluates the alerting rules.

use serde::Deserialize;

/// A node's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: ingest, queries, compaction, retention, alerting.
    #[default]
    All,
    /// OTLP and Prometheus remote write in: WAL, buffers, flushes to the shared tables.
    Ingest,
    /// Queries only, from the shared tables (no OTLP port, no background writes).
    Query,
    /// Compaction, retention of the shared tables, and the alerting rules.
    Compactor,
}

impl Role {
    /// The role's name, as `--role` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Ingest => "ingest",
            Self::Query => "query",
            Self::Compactor => "compactor",
        }
    }

    /// Whether the node listens for OTLP.
    pub fn ingests(self) -> bool {
        matches!(self, Self::All | Self::Ingest)
    }

    /// Whether the node compacts the span and metric tables and sweeps their expired files.
    pub fn maintains_tables(self) -> bool {
        matches!(self, Self::All | Self::Compactor)
    }

    /// Whether the node evaluates the alerting rules (one node of a deployment should).
    pub fn evaluates_rules(self) -> bool {
        matches!(self, Self::All | Self::Compactor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_work_has_exactly_one_specialised_role() {
        let roles = [Role::Ingest, Role::Query, Role::Compactor];
        let count = |work: fn(Role) -> bool| roles.iter().filter(|role| work(**role)).count();
        assert_eq!(count(Role::ingests), 1);
        assert_eq!(count(Role::maintains_tables), 1);
        assert_eq!(count(Role::evaluates_rules), 1);
        assert!(Role::All.ingests() && Role::All.maintains_tables() && Role::All.evaluates_rules());
        assert!(!Role::Query.ingests() && !Role::Query.maintains_tables());
    }
}
