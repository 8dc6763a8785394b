//! What a selector covers in a time range: streams, lines and bytes (Loki's `index/stats`,
//! which Grafana asks for to show a query's size), from the store's stream-level scan.

use std::collections::HashMap;
use std::sync::Arc;

use skewer_storage::Storage;
use skewer_storage::log_store::StreamSampleVisitor;
use skewer_storage::logs::streams::StreamLabels;
use skewer_storage::model::TenantId;

use super::ast::{LogExpr, Matcher};
use super::labels::Labels;
use super::pushdown::store_query;
use crate::QueryError;

/// The size of what a selector selects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Distinct streams with lines.
    pub streams: u64,
    /// Lines.
    pub entries: u64,
    /// Bytes of the lines.
    pub bytes: u64,
}

struct StatsVisitor {
    selector: Vec<Matcher>,
    /// Per stream seen (its shared labels kept alive, so the address stays unique): whether
    /// the selector admits it.
    admitted: HashMap<usize, (Arc<StreamLabels>, bool)>,
    distinct: std::collections::HashSet<StreamLabels>,
    stats: IndexStats,
}

impl StreamSampleVisitor for StatsVisitor {
    fn visit(
        &mut self,
        stream: &Arc<StreamLabels>,
        _time: u64,
        line_bytes: u64,
        _level: &'static str,
    ) {
        let key = Arc::as_ptr(stream) as usize;
        let admitted = match self.admitted.get(&key) {
            Some((_, admitted)) => *admitted,
            None => {
                let labels = Labels::from_sorted(stream.as_ref().clone());
                let admitted = self
                    .selector
                    .iter()
                    .all(|matcher| matcher.matches(labels.get(&matcher.name).unwrap_or("")));
                if admitted {
                    self.distinct.insert(stream.as_ref().clone());
                }
                self.admitted.insert(key, (Arc::clone(stream), admitted));
                admitted
            }
        };
        if admitted {
            self.stats.entries += 1;
            self.stats.bytes += line_bytes;
        }
    }
}

/// Streams, lines and bytes the selector of `log` covers in `[start, end)` (its pipeline is
/// not applied, as in Loki).
pub async fn index_stats(
    storage: &Storage,
    tenant: &TenantId,
    log: &LogExpr,
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<IndexStats, QueryError> {
    let selector_only = LogExpr {
        selector: log.selector.clone(),
        pipeline: Vec::new(),
    };
    let query = store_query(&selector_only, start_unix_nano, end_unix_nano);
    let visitor = StatsVisitor {
        selector: log.selector.clone(),
        admitted: HashMap::new(),
        distinct: std::collections::HashSet::new(),
        stats: IndexStats::default(),
    };
    let visitor = storage
        .scan_log_stream_samples(tenant, query, visitor)
        .await?;
    Ok(IndexStats {
        streams: visitor.distinct.len() as u64,
        ..visitor.stats
    })
}
