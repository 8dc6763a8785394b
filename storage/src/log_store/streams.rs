//! Stream-level reads of the log store: the stream, time and line length of every record a
//! query matches (what counting lines per stream label needs), and the streams of a time
//! range (what label listings need). Partitions of format 2 answer from their index columns
//! and stream catalog; older ones, and the buffers, from the records themselves.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::LogStore;
use crate::StorageError;
use crate::logs::LogQuery;
use crate::logs::StreamHit;
use crate::logs::streams::{StreamLabels, detected_level, level_name, line_bytes, stream_labels};
use crate::model::{LogRecord, TenantId};

/// Stream labels of buffered records, computed once per shared resource. Keyed by the
/// resource's address: only for records that outlive the cache (an address is unique while
/// its resource lives).
#[derive(Default)]
struct BufferedStreams(HashMap<usize, Arc<StreamLabels>>);

impl BufferedStreams {
    fn of(&mut self, record: &LogRecord) -> Arc<StreamLabels> {
        Arc::clone(
            self.0
                .entry(Arc::as_ptr(&record.resource) as usize)
                .or_insert_with(|| Arc::new(stream_labels(&record.resource))),
        )
    }
}

/// Stream labels of records decoded one at a time (each with its own resource, dropped after
/// it), shared by content.
#[derive(Default)]
struct DecodedStreams(HashMap<StreamLabels, Arc<StreamLabels>>);

impl DecodedStreams {
    fn of(&mut self, record: &LogRecord) -> Arc<StreamLabels> {
        let labels = stream_labels(&record.resource);
        match self.0.get(&labels) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(labels.clone());
                self.0.insert(labels, Arc::clone(&shared));
                shared
            }
        }
    }
}

/// What a stream-level scan hands each record's stream, time and line length to.
pub trait StreamSampleVisitor: Send + 'static {
    /// Takes one record.
    /// `stream` is shared: records of one stream in one partition pass the same `Arc`;
    /// `level` is the record's `detected_level`.
    fn visit(
        &mut self,
        stream: &Arc<StreamLabels>,
        time_unix_nano: u64,
        line_bytes: u64,
        level: &'static str,
    );
}

/// A closure taking (stream, time, line bytes, level) of each record.
pub type StreamSampleFn<'a> = dyn FnMut(&Arc<StreamLabels>, u64, u64, &'static str) + 'a;

fn level_of(record: &LogRecord) -> &'static str {
    detected_level(record.severity_number, &record.severity_text)
}

impl LogStore {
    /// Calls `visit(stream, time, line_bytes)` for every record of `tenant` that `query`
    /// matches (its limit ignored), in no particular order. Blocking.
    pub fn scan_stream_samples_blocking(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        visit: &mut StreamSampleFn<'_>,
    ) -> Result<(), StorageError> {
        let matcher = query.matcher()?;
        let range = (
            query.start_unix_nano.unwrap_or(0),
            query.end_unix_nano.unwrap_or(u64::MAX),
        );
        let partitions = self.tenant_partitions(tenant);
        let mut take = |records: &mut dyn Iterator<Item = &LogRecord>| {
            records
                .filter(|record| matcher.matches(record))
                .cloned()
                .collect()
        };
        let Some(snapshot) = self.snapshot(tenant, &partitions, range, &mut take) else {
            return self.scan_stream_samples_blocking(tenant, query, visit);
        };
        for (partition, index) in &snapshot.partitions {
            let (complete, streams) = {
                let catalog = partition.streams();
                let streams: Vec<Arc<StreamLabels>> = catalog
                    .streams
                    .iter()
                    .map(|stream| Arc::new(stream.labels.clone()))
                    .collect();
                (catalog.complete, streams)
            };
            // Columns and catalog answer when the catalog assigned every id of the index (a
            // format 2 index that lost its catalog is read like format 1).
            let hits = if complete {
                index.stream_hits(query)?
            } else {
                None
            };
            let known = |hits: &Vec<StreamHit>| {
                hits.iter()
                    .all(|&(_, id, _, _)| usize::try_from(id).is_ok_and(|id| id < streams.len()))
            };
            match hits {
                Some(hits) if known(&hits) => {
                    for (time, stream_id, bytes, level) in hits {
                        visit(&streams[stream_id as usize], time, bytes, level_name(level));
                    }
                }
                _ => {
                    let matches = index.timed_matches(query)?;
                    let mut labels = DecodedStreams::default();
                    for &(time, address) in &matches.hits {
                        let Some(record) = matches.record(address)? else {
                            continue;
                        };
                        visit(
                            &labels.of(&record),
                            time,
                            line_bytes(&record.body),
                            level_of(&record),
                        );
                    }
                }
            }
        }
        let mut labels = BufferedStreams::default();
        for record in &snapshot.buffered {
            visit(
                &labels.of(record),
                record.effective_time_unix_nano(),
                line_bytes(&record.body),
                level_of(record),
            );
        }
        Ok(())
    }

    /// The distinct streams of `tenant` with records in `[start, end)`, sorted. Partitions
    /// with a complete catalog answer from it (by each stream's first and last record time);
    /// others are read. Blocking.
    pub fn streams_blocking(
        &self,
        tenant: &TenantId,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> Result<Vec<StreamLabels>, StorageError> {
        let partitions = self.tenant_partitions(tenant);
        // One buffered record per resource is enough to know its stream.
        let mut take = |records: &mut dyn Iterator<Item = &LogRecord>| {
            let mut seen = std::collections::HashSet::new();
            records
                .filter(|record| {
                    let time = record.effective_time_unix_nano();
                    time >= start_unix_nano
                        && time < end_unix_nano
                        && seen.insert(Arc::as_ptr(&record.resource) as usize)
                })
                .cloned()
                .collect()
        };
        let range = (start_unix_nano, end_unix_nano);
        let Some(snapshot) = self.snapshot(tenant, &partitions, range, &mut take) else {
            return self.streams_blocking(tenant, start_unix_nano, end_unix_nano);
        };
        let mut found: BTreeSet<StreamLabels> = BTreeSet::new();
        for (partition, index) in &snapshot.partitions {
            let catalog = partition.streams();
            if catalog.complete {
                found.extend(
                    catalog
                        .streams
                        .iter()
                        .filter(|s| s.first_unix_nano < end_unix_nano)
                        .filter(|s| s.last_unix_nano >= start_unix_nano)
                        .map(|s| s.labels.clone()),
                );
                continue;
            }
            drop(catalog);
            let query = LogQuery {
                start_unix_nano: Some(start_unix_nano),
                end_unix_nano: Some(end_unix_nano),
                ..LogQuery::default()
            };
            let matches = index.timed_matches(&query)?;
            for &(_, address) in &matches.hits {
                if let Some(record) = matches.record(address)? {
                    found.insert(stream_labels(&record.resource));
                }
            }
        }
        for record in &snapshot.buffered {
            found.insert(stream_labels(&record.resource));
        }
        Ok(found.into_iter().collect())
    }
}
