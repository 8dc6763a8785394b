//! What a log search matches, counted without loading a record: per service and level, and
//! over time, from the store's stream-level scan (index columns where partitions keep them).
//! Serves the service and severity listing and the counts beside a search's page of records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use skewer_storage::Storage;
use skewer_storage::log_store::StreamSampleVisitor;
use skewer_storage::logs::LogQuery;
use skewer_storage::logs::streams::{LEVELS, StreamLabels};
use skewer_storage::model::TenantId;

use crate::QueryError;

/// Counts per level, indexed like [`LEVELS`].
pub type LevelCounts = [u64; LEVELS.len()];

/// One service's matching records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacet {
    /// `service.name` (`unknown_service` when unset).
    pub name: String,
    /// Records.
    pub records: u64,
    /// Bytes of their lines.
    pub bytes: u64,
    /// Records per level.
    pub levels: LevelCounts,
}

/// One bucket of the histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramBucket {
    /// The bucket's start, Unix ns (a multiple of the step).
    pub start_unix_nano: u64,
    /// Records per level.
    pub levels: LevelCounts,
}

/// The counts of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFacets {
    /// Matching records.
    pub total: u64,
    /// Matching records per level.
    pub levels: LevelCounts,
    /// Per service, by name.
    pub services: Vec<ServiceFacet>,
    /// Per step-wide bucket, in time order; empty buckets left out.
    pub histogram: Vec<HistogramBucket>,
}

/// The index of a level name in [`LEVELS`].
fn level_index(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

struct FacetVisitor {
    step_nanos: u64,
    /// Per stream seen (its labels kept alive, so the address stays unique): its service.
    services_of: HashMap<usize, (Arc<StreamLabels>, usize)>,
    services: Vec<ServiceFacet>,
    service_positions: HashMap<String, usize>,
    histogram: BTreeMap<u64, LevelCounts>,
}

impl StreamSampleVisitor for FacetVisitor {
    fn visit(
        &mut self,
        stream: &Arc<StreamLabels>,
        time: u64,
        line_bytes: u64,
        level: &'static str,
    ) {
        let key = Arc::as_ptr(stream) as usize;
        let position = match self.services_of.get(&key) {
            Some((_, position)) => *position,
            None => {
                let name = stream
                    .iter()
                    .find(|(label, _)| label == "service_name")
                    .map_or("unknown_service", |(_, value)| value.as_str());
                let position = match self.service_positions.get(name) {
                    Some(&position) => position,
                    None => {
                        self.services.push(ServiceFacet {
                            name: name.to_owned(),
                            records: 0,
                            bytes: 0,
                            levels: LevelCounts::default(),
                        });
                        self.service_positions
                            .insert(name.to_owned(), self.services.len() - 1);
                        self.services.len() - 1
                    }
                };
                self.services_of.insert(key, (Arc::clone(stream), position));
                position
            }
        };
        let level = level_index(level);
        let service = &mut self.services[position];
        service.records += 1;
        service.bytes += line_bytes;
        service.levels[level] += 1;
        if self.step_nanos > 0 {
            let bucket = time - time % self.step_nanos;
            self.histogram.entry(bucket).or_default()[level] += 1;
        }
    }
}

/// Counts what `query` matches (its limit ignored) per service and level, and, with a
/// non-zero `step_nanos`, per step-wide time bucket.
pub async fn log_facets(
    storage: &Storage,
    tenant: &TenantId,
    query: LogQuery,
    step_nanos: u64,
) -> Result<LogFacets, QueryError> {
    let visitor = FacetVisitor {
        step_nanos,
        services_of: HashMap::new(),
        services: Vec::new(),
        service_positions: HashMap::new(),
        histogram: BTreeMap::new(),
    };
    let visitor = storage
        .scan_log_stream_samples(tenant, query, visitor)
        .await?;
    let mut services = visitor.services;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let mut facets = LogFacets {
        histogram: visitor
            .histogram
            .into_iter()
            .map(|(start_unix_nano, levels)| HistogramBucket {
                start_unix_nano,
                levels,
            })
            .collect(),
        ..LogFacets::default()
    };
    for service in &services {
        facets.total += service.records;
        for (total, count) in facets.levels.iter_mut().zip(service.levels) {
            *total += count;
        }
    }
    facets.services = services;
    Ok(facets)
}
