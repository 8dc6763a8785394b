//! What a selector covers in a time range: streams, lines and bytes (Loki's `index/stats`,
//! which Grafana asks for to show a query's size) and bytes per stream (Loki's
//! `index/volume`), from the store's stream-level scan.

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
    /// Per stream seen (its shared labels kept alive, so the address stays unique): where
    /// its bytes are counted in `bytes`, if the selector admits it.
    admitted: HashMap<usize, (Arc<StreamLabels>, Option<usize>)>,
    /// Bytes per admitted stream, by its position in `admitted`'s values (one stream's
    /// labels may be shared apart by several partitions).
    bytes: Vec<(Arc<StreamLabels>, u64)>,
    stats: IndexStats,
}

impl StatsVisitor {
    fn new(selector: Vec<Matcher>) -> Self {
        Self {
            selector,
            admitted: HashMap::new(),
            bytes: Vec::new(),
            stats: IndexStats::default(),
        }
    }

    /// Bytes per distinct stream admitted.
    fn bytes_by_stream(&self) -> HashMap<&StreamLabels, u64> {
        let mut by_stream: HashMap<&StreamLabels, u64> = HashMap::new();
        for (labels, bytes) in &self.bytes {
            *by_stream.entry(labels.as_ref()).or_default() += bytes;
        }
        by_stream
    }
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
        let slot = match self.admitted.get(&key) {
            Some((_, slot)) => *slot,
            None => {
                let labels = Labels::from_sorted(stream.as_ref().clone());
                let admitted = self
                    .selector
                    .iter()
                    .all(|matcher| matcher.matches(labels.get(&matcher.name).unwrap_or("")));
                let slot = admitted.then(|| {
                    self.bytes.push((Arc::clone(stream), 0));
                    self.bytes.len() - 1
                });
                self.admitted.insert(key, (Arc::clone(stream), slot));
                slot
            }
        };
        if let Some(slot) = slot {
            self.stats.entries += 1;
            self.stats.bytes += line_bytes;
            self.bytes[slot].1 += line_bytes;
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
    let visitor = scan_selector(storage, tenant, log, (start_unix_nano, end_unix_nano)).await?;
    Ok(IndexStats {
        streams: visitor.bytes_by_stream().len() as u64,
        ..visitor.stats
    })
}

/// The bytes of the lines `log`'s selector covers in `[start, end)` per series of the labels
/// `target_labels` names (by default those its matchers name), the largest first (equal ones
/// by labels), at most `limit`: Loki's `index/volume` aggregated by series. As in Loki, a
/// target label is required (as by `=~".+"`): a stream without one is left out.
pub async fn index_volume(
    storage: &Storage,
    tenant: &TenantId,
    log: &LogExpr,
    (start_unix_nano, end_unix_nano): (u64, u64),
    target_labels: &[String],
    limit: usize,
) -> Result<Vec<(Labels, u64)>, QueryError> {
    let visitor = scan_selector(storage, tenant, log, (start_unix_nano, end_unix_nano)).await?;
    let names: Vec<&str> = if target_labels.is_empty() {
        log.selector.iter().map(|m| m.name.as_str()).collect()
    } else {
        target_labels.iter().map(String::as_str).collect()
    };
    let mut by_series: HashMap<StreamLabels, u64> = HashMap::new();
    for (stream, bytes) in visitor.bytes_by_stream() {
        let has = |target: &String| stream.iter().any(|(name, _)| name == target);
        if !target_labels.iter().all(has) {
            continue;
        }
        let series: StreamLabels = stream
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .cloned()
            .collect();
        *by_series.entry(series).or_default() += bytes;
    }
    let mut volumes: Vec<(StreamLabels, u64)> = by_series.into_iter().collect();
    volumes.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    volumes.truncate(limit);
    Ok(volumes
        .into_iter()
        .map(|(series, bytes)| (Labels::from_sorted(series), bytes))
        .collect())
}

/// Scans the streams `log`'s selector covers in `range` (its pipeline not applied, as in
/// Loki), counting lines and bytes per stream.
async fn scan_selector(
    storage: &Storage,
    tenant: &TenantId,
    log: &LogExpr,
    (start_unix_nano, end_unix_nano): (u64, u64),
) -> Result<StatsVisitor, QueryError> {
    let selector_only = LogExpr {
        selector: log.selector.clone(),
        pipeline: Vec::new(),
    };
    let query = store_query(&selector_only, start_unix_nano, end_unix_nano);
    let visitor = StatsVisitor::new(log.selector.clone());
    Ok(storage
        .scan_log_stream_samples(tenant, query, visitor)
        .await?)
}
