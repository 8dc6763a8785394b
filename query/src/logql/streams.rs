//! The streams of a time range: the stream label sets of the records in it, optionally only
//! those a selector matches (what Loki's `labels`, `label/{name}/values` and `series` list).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use skewer_storage::Storage;
use skewer_storage::log_store::{LogVisitor, ScanDirection};
use skewer_storage::logs::LogQuery;
use skewer_storage::model::{LogRecord, TenantId};

use super::ast::Matcher;
use super::labels::{Labels, resource_labels};
use crate::QueryError;

/// Collects distinct stream label sets.
struct StreamSets {
    selectors: Vec<Vec<Matcher>>,
    found: BTreeSet<Labels>,
}

impl LogVisitor for StreamSets {
    fn visit(&mut self, record: &LogRecord) -> ControlFlow<()> {
        let (stream, _) = resource_labels(&record.resource);
        if !self.found.contains(&stream) && self.admits(&stream) {
            self.found.insert(stream);
        }
        ControlFlow::Continue(())
    }
}

impl StreamSets {
    /// Whether any selector matches (no selector: all streams).
    fn admits(&self, stream: &Labels) -> bool {
        self.selectors.is_empty()
            || self.selectors.iter().any(|selector| {
                selector
                    .iter()
                    .all(|matcher| matcher.matches(stream.get(&matcher.name).unwrap_or("")))
            })
    }
}

/// The distinct streams with records in `[start, end)` that any of `selectors` matches (all
/// when there is none), sorted.
pub async fn list_streams(
    storage: &Storage,
    tenant: &TenantId,
    selectors: Vec<Vec<Matcher>>,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<Vec<Labels>, QueryError> {
    let query = LogQuery {
        start_unix_nano: Some(start_unix_nano),
        end_unix_nano: Some(end_unix_nano),
        ..LogQuery::default()
    };
    let visitor = StreamSets {
        selectors,
        found: BTreeSet::new(),
    };
    let visitor = storage
        .scan_logs(tenant, query, ScanDirection::Forward, visitor)
        .await?;
    Ok(visitor.found.into_iter().collect())
}
