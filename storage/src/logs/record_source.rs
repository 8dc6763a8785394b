//! Loading the records a search found, one by one: from each document's stored record
//! (formats 1 to 5) or from the batch before it (format 6 and later, [`super::record_batch`]), each
//! checked against the exact query when the index could only find a superset.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;
use tantivy::columnar::Column;
use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentOrdinal, TERMINATED, TantivyDocument};

use super::query::LogMatcher;
use super::record_batch::{BatchVersion, RecordBatch};
use super::schema::{BatchFields, TIMESTAMP};
use super::{LogIndexError, stored_record};
use crate::model::LogRecord;

/// Parsed batches a [`RecordSource`] keeps: hits of one query sit mostly in a few batches
/// (records of one request arrive together; pages and scans go in time order).
const BATCHES_CACHED: usize = 16;

/// Where an index keeps its records.
pub(super) enum StoredRecords {
    /// Formats 1 to 5: each document stores its record in this field.
    PerDocument(Field),
    /// Format 6 and later: in batch documents ([`super::record_batch`]), with the batches and each
    /// segment's batch documents as read so far.
    Batched {
        fields: BatchFields,
        cache: Mutex<BatchCache>,
    },
}

impl StoredRecords {
    /// Records kept by the batch, nothing read yet.
    pub(super) fn batched(fields: BatchFields) -> Self {
        let capacity = NonZeroUsize::new(BATCHES_CACHED).unwrap_or(NonZeroUsize::MIN);
        Self::Batched {
            fields,
            cache: Mutex::new(BatchCache {
                segments: HashMap::new(),
                batches: LruCache::new(capacity),
            }),
        }
    }
}

/// What a batched [`RecordSource`] has read: each segment's [`SegmentBatches`], and the last
/// batches parsed, by the address of their document.
pub(super) struct BatchCache {
    segments: HashMap<SegmentOrdinal, Arc<SegmentBatches>>,
    batches: LruCache<DocAddress, Arc<RecordBatch>>,
}

/// What reading a segment's records by the batch needs of it, read once per search.
struct SegmentBatches {
    /// Its batch documents, in order.
    documents: Vec<DocId>,
    /// Its `timestamp` column, where its batches leave event times to it (version 3).
    times: Option<Column<u64>>,
}

/// Records of one searcher (the index as of a search), loaded one by one, each checked
/// against the exact query when the index could only find a superset.
pub struct RecordSource {
    pub(super) searcher: Searcher,
    pub(super) stored: StoredRecords,
    /// The exact query, when the index could only find a superset (a body phrase on an
    /// index without positions): a hit is a match only if its record passes.
    pub(super) check: Option<LogMatcher>,
}

impl RecordSource {
    /// Whether a hit must pass the exact query to be a match.
    pub(super) fn checks(&self) -> bool {
        self.check.is_some()
    }

    /// Loads and decodes the record at `address`; `None` when the record fails the query
    /// (a hit of a superset).
    pub fn record(&self, address: DocAddress) -> Result<Option<LogRecord>, LogIndexError> {
        let record = match &self.stored {
            StoredRecords::PerDocument(field) => {
                let document: TantivyDocument = self.searcher.doc(address)?;
                let bytes = document
                    .get_first(*field)
                    .and_then(|value| value.as_bytes())
                    .ok_or_else(|| LogIndexError::corrupt("the document has no record bytes"))?;
                stored_record::decode(bytes)?
            }
            StoredRecords::Batched { fields, cache } => {
                self.batched_record(address, *fields, cache)?
            }
        };
        Ok(match &self.check {
            Some(check) if !check.matches(&record) => None,
            _ => Some(record),
        })
    }

    /// The record at `address` of a format 6 or later index: its batch is the segment's last batch
    /// document before it, its position the documents between them.
    fn batched_record(
        &self,
        address: DocAddress,
        fields: BatchFields,
        cache: &Mutex<BatchCache>,
    ) -> Result<LogRecord, LogIndexError> {
        let cached = lock(cache).segments.get(&address.segment_ord).cloned();
        let segment = match cached {
            Some(segment) => segment,
            None => {
                let segment = Arc::new(self.segment_batches(address.segment_ord, fields)?);
                lock(cache)
                    .segments
                    .insert(address.segment_ord, Arc::clone(&segment));
                segment
            }
        };
        let before = segment
            .documents
            .partition_point(|&batch| batch < address.doc_id);
        let batch_doc = before
            .checked_sub(1)
            .map(|last| segment.documents[last])
            .ok_or_else(|| {
                LogIndexError::corrupt(format!("no batch before document {}", address.doc_id))
            })?;
        let row = (address.doc_id - batch_doc - 1) as usize;
        let batch_address = DocAddress::new(address.segment_ord, batch_doc);
        let cached = lock(cache).batches.get(&batch_address).cloned();
        let batch = match cached {
            Some(batch) => batch,
            None => {
                let StoredBytes(bytes) = self.searcher.doc(batch_address)?;
                let batch = Arc::new(RecordBatch::parse(bytes, fields.version)?);
                lock(cache).batches.put(batch_address, Arc::clone(&batch));
                batch
            }
        };
        // A version 3 batch's record's event time (or observed time, when it has none).
        let indexed_time = match &segment.times {
            Some(times) => Some(times.first(address.doc_id).ok_or_else(|| {
                LogIndexError::corrupt(format!("document {} has no timestamp", address.doc_id))
            })?),
            None => None,
        };
        batch.record(row, indexed_time)
    }

    /// What reading `segment`'s records by the batch needs of it.
    fn segment_batches(
        &self,
        segment: SegmentOrdinal,
        fields: BatchFields,
    ) -> Result<SegmentBatches, LogIndexError> {
        let times = match fields.version {
            BatchVersion::V3 => Some(
                self.searcher
                    .segment_reader(segment)
                    .fast_fields()
                    .u64(TIMESTAMP)?,
            ),
            BatchVersion::V1 | BatchVersion::V2 => None,
        };
        Ok(SegmentBatches {
            documents: self.batch_documents(segment, fields)?,
            times,
        })
    }

    /// The batch documents of a segment, in order: the postings of the batch marker.
    fn batch_documents(
        &self,
        segment: SegmentOrdinal,
        fields: BatchFields,
    ) -> Result<Vec<DocId>, LogIndexError> {
        let inverted = self
            .searcher
            .segment_reader(segment)
            .inverted_index(fields.marker)?;
        let mut documents = Vec::new();
        let postings = inverted
            .read_postings(&fields.marker_term(), IndexRecordOption::Basic)
            .map_err(tantivy::TantivyError::from)?;
        if let Some(mut postings) = postings {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                documents.push(doc);
                doc = postings.advance();
            }
        }
        Ok(documents)
    }
}

/// The stored bytes of a batch document (its only stored value), taken as they are read
/// from the document store rather than copied out of a document.
struct StoredBytes(Vec<u8>);

impl DocumentDeserialize for StoredBytes {
    fn deserialize<'de, D>(mut deserializer: D) -> Result<Self, DeserializeError>
    where
        D: DocumentDeserializer<'de>,
    {
        let value = deserializer.next_field::<Vec<u8>>()?;
        Ok(Self(value.map(|(_, bytes)| bytes).unwrap_or_default()))
    }
}

/// The cache, whatever a panicking reader left in it (only complete entries are inserted).
fn lock(cache: &Mutex<BatchCache>) -> MutexGuard<'_, BatchCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}
