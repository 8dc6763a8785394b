//! Table store tests: manifests written by flushes and read at open, files from before
//! manifests, orphans, failed flushes, deferred deletion and trace lookup through filters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use crate::budget::Reservation;
use crate::catalog::{Catalog, CatalogError, Manifest, ManifestChange, ObjectCatalog, TableKey};
use crate::layout;
use crate::model::{Span, TenantId, TraceId};
use crate::objects::Objects;
use crate::parquet_codec::test_fixtures::realistic_spans;
use crate::spans::{SpanStore, SpanTable, find_trace};
use crate::table::{FooterCache, TableSignal};

const HOUR: u64 = 3_600_000_000_000;

/// Fails the next commit of one tenant, then behaves.
struct FailingCatalog {
    inner: ObjectCatalog,
    fail_next_of: Mutex<Option<TenantId>>,
}

#[async_trait]
impl Catalog for FailingCatalog {
    async fn list_tables(&self) -> Result<Vec<TableKey>, CatalogError> {
        self.inner.list_tables().await
    }
    async fn load(&self, table: &TableKey) -> Result<Option<Manifest>, CatalogError> {
        self.inner.load(table).await
    }
    async fn table_versions(&self) -> Result<Vec<(TableKey, u64)>, CatalogError> {
        self.inner.table_versions().await
    }
    async fn commit(
        &self,
        table: &TableKey,
        base: &Manifest,
        change: &ManifestChange,
    ) -> Result<Manifest, CatalogError> {
        let fail = {
            let mut fail = self.fail_next_of.lock().unwrap();
            (fail.as_ref() == Some(&table.tenant)).then(|| fail.take())
        };
        if fail.is_some() {
            return Err(CatalogError::Conflict {
                table: table.to_string(),
                version: base.version,
                reason: "injected".into(),
            });
        }
        self.inner.commit(table, base, change).await
    }
    async fn overwrite(&self, table: &TableKey, manifest: &Manifest) -> Result<(), CatalogError> {
        self.inner.overwrite(table, manifest).await
    }
}

/// Stores every commit, then reports it failed: the outcome a client sees when the write
/// landed but the acknowledgement was lost.
struct LandedButFailingCatalog {
    inner: ObjectCatalog,
}

#[async_trait]
impl Catalog for LandedButFailingCatalog {
    async fn list_tables(&self) -> Result<Vec<TableKey>, CatalogError> {
        self.inner.list_tables().await
    }
    async fn load(&self, table: &TableKey) -> Result<Option<Manifest>, CatalogError> {
        self.inner.load(table).await
    }
    async fn table_versions(&self) -> Result<Vec<(TableKey, u64)>, CatalogError> {
        self.inner.table_versions().await
    }
    async fn commit(
        &self,
        table: &TableKey,
        base: &Manifest,
        change: &ManifestChange,
    ) -> Result<Manifest, CatalogError> {
        self.inner.commit(table, base, change).await?;
        Err(CatalogError::Conflict {
            table: table.to_string(),
            version: base.version,
            reason: "acknowledgement lost".into(),
        })
    }
    async fn overwrite(&self, table: &TableKey, manifest: &Manifest) -> Result<(), CatalogError> {
        self.inner.overwrite(table, manifest).await
    }
}

#[tokio::test]
async fn a_commit_that_landed_despite_an_error_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::local(dir.path()).unwrap();
    let catalog = Arc::new(LandedButFailingCatalog {
        inner: ObjectCatalog::new(objects.clone()),
    });
    let store = SpanStore::open(objects, catalog, footers()).await.unwrap();
    let a = spans(8);
    apply(&store, 1, "a", a.clone());
    assert_eq!(
        store.flush().await.unwrap(),
        1,
        "the commits landed: the flush succeeded"
    );
    assert_eq!(store.files().0, 2);
    let id = a[0].trace_id;
    assert_eq!(spans_of(&store, "a", id).await, expected(&a, id));
    // The next flush starts from the version that landed, not a stale one.
    apply(&store, 2, "a", spans(9));
    store.flush().await.unwrap();
    assert_eq!(store.files().0, 4);
}

fn footers() -> Arc<FooterCache> {
    Arc::new(FooterCache::new(64 << 20))
}

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

/// Spans of a few traces, half of them an hour later than the rest.
fn spans(seed: u64) -> Vec<Span> {
    let mut spans = realistic_spans(400, seed);
    for (n, span) in spans.iter_mut().enumerate() {
        if n % 2 == 0 {
            span.start_time_unix_nano += HOUR;
            span.end_time_unix_nano += HOUR;
        }
    }
    spans
}

async fn open(dir: &std::path::Path) -> SpanStore {
    SpanStore::open_local(dir).await
}

fn apply(store: &SpanStore, lsn: u64, tenant_name: &str, spans: Vec<Span>) {
    store.apply(lsn, tenant(tenant_name), spans, 1, Reservation::default());
}

async fn spans_of(store: &SpanStore, tenant_name: &str, trace_id: TraceId) -> usize {
    find_trace(store, &tenant(tenant_name), trace_id)
        .await
        .unwrap()
        .len()
}

fn expected(spans: &[Span], trace_id: TraceId) -> usize {
    spans.iter().filter(|s| s.trace_id == trace_id).count()
}

#[tokio::test]
async fn flushes_commit_manifests_that_a_reopened_store_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (a, b) = (spans(1), spans(2));
    apply(&store, 5, "a", a.clone());
    apply(&store, 6, "b", b.clone());
    assert_eq!(store.flush().await.unwrap(), 6);
    assert_eq!(store.files().0, 4, "one file per tenant and hour");
    assert_eq!(store.flushed_lsn(&tenant("a")), 6);
    let manifest = store.table_files(&tenant("a")).unwrap().manifest;
    assert_eq!(
        manifest.version, 2,
        "an empty first version, then the flush"
    );
    assert!(
        manifest.files.iter().all(|f| f.trace_id_filter.is_some()),
        "span files carry a trace-id filter"
    );
    drop(store);

    let reopened = open(dir.path()).await;
    assert_eq!(reopened.files().0, 4);
    assert_eq!(
        reopened.footer_cache().bytes(),
        0,
        "open reads manifests, not footers"
    );
    assert_eq!(reopened.flushed_lsn(&tenant("b")), 6);
    for span in a.iter().take(20) {
        assert_eq!(
            spans_of(&reopened, "a", span.trace_id).await,
            expected(&a, span.trace_id)
        );
    }
    assert_eq!(
        spans_of(&reopened, "b", a[0].trace_id).await,
        0,
        "tenants stay apart"
    );
}

/// The trace-id filters of a tenant's live files.
fn filters_of(store: &SpanStore, tenant_name: &str) -> Vec<crate::catalog::IdFilterMeta> {
    store
        .table_files(&tenant(tenant_name))
        .unwrap()
        .files
        .iter()
        .map(|file| file.meta.trace_id_filter.clone().unwrap())
        .collect()
}

fn filter_bytes(filters: &[crate::catalog::IdFilterMeta]) -> usize {
    filters
        .iter()
        .map(|filter| filter.num_blocks as usize * super::id_filter::BLOCK_BYTES)
        .sum()
}

#[tokio::test]
async fn a_missing_trace_is_ruled_out_by_filters_without_reading_a_footer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = spans(3);
    apply(&store, 1, "a", a.clone());
    store.flush().await.unwrap();
    assert_eq!(spans_of(&store, "a", TraceId([0xee; 16])).await, 0);
    assert_eq!(store.footer_cache().bytes(), 0);
    // The filter was read whole once and is kept: the next lookups read it from memory.
    let filters = filters_of(&store, "a");
    assert_eq!(store.id_filter_cache_bytes(), filter_bytes(&filters));
    for filter in &filters {
        std::fs::remove_file(dir.path().join(&filter.path)).unwrap();
    }
    let present = a[0].trace_id;
    assert_eq!(spans_of(&store, "a", present).await, expected(&a, present));
    assert_eq!(spans_of(&store, "a", TraceId([0xee; 16])).await, 0);
    assert!(store.footer_cache().bytes() > 0);
}

#[tokio::test]
async fn filters_past_the_cache_are_read_a_block_per_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await.with_id_filter_cache_bytes(0);
    let a = spans(4);
    apply(&store, 1, "a", a.clone());
    store.flush().await.unwrap();
    assert_eq!(spans_of(&store, "a", TraceId([0xee; 16])).await, 0);
    assert_eq!(
        store.footer_cache().bytes(),
        0,
        "the missing trace was ruled out by filters alone"
    );
    let present = a[0].trace_id;
    assert_eq!(spans_of(&store, "a", present).await, expected(&a, present));
    assert_eq!(store.id_filter_cache_bytes(), 0, "nothing kept");
}

#[tokio::test]
async fn files_without_a_manifest_get_one_and_orphans_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::local(dir.path()).unwrap();
    // A data directory from before manifests: a file per hour, no manifest, no filter.
    let legacy = spans(4);
    let mut refs: Vec<&Span> = legacy.iter().collect();
    let file = SpanTable::encode(&mut refs).unwrap().unwrap();
    let legacy_path = layout::data_file_path(&tenant("old"), SpanTable::SIGNAL, 1, 1);
    objects.put(&legacy_path, file.bytes).await.unwrap();
    let store = open(dir.path()).await;
    assert_eq!(store.files().0, 1);
    let manifest = store.table_files(&tenant("old")).unwrap().manifest;
    assert_eq!(manifest.files[0].num_rows, legacy.len() as u64);
    assert_eq!(manifest.files[0].trace_id_filter, None);
    let id = legacy[7].trace_id;
    assert_eq!(spans_of(&store, "old", id).await, expected(&legacy, id));
    drop(store);

    // Leftovers of a flush cut short: a data file and a temp file nobody lists.
    let orphan = layout::data_file_path(&tenant("old"), SpanTable::SIGNAL, 2, 2);
    objects
        .put(&orphan, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let temp = ObjectPath::from("tenants/old/traces/.x.parquet.1-1.tmp");
    objects.put(&temp, Bytes::from_static(b"x")).await.unwrap();
    let store = open(dir.path()).await;
    let listed: Vec<String> = objects
        .list(&layout::signal_prefix(&tenant("old"), SpanTable::SIGNAL))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .filter(|p| !p.contains("_manifest"))
        .collect();
    assert_eq!(listed, [legacy_path.to_string()]);
    assert_eq!(spans_of(&store, "old", id).await, expected(&legacy, id));
}

#[tokio::test]
async fn a_flush_failing_for_one_tenant_is_retried_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::local(dir.path()).unwrap();
    let catalog = Arc::new(FailingCatalog {
        inner: ObjectCatalog::new(objects.clone()),
        fail_next_of: Mutex::new(Some(tenant("b"))),
    });
    let store = SpanStore::open(objects.clone(), catalog, footers())
        .await
        .unwrap();
    let (a, b) = (spans(5), spans(6));
    apply(&store, 1, "a", a.clone());
    apply(&store, 2, "b", b.clone());
    assert!(store.flush().await.is_err());
    // a is in its files and hidden from the frozen buffer; b is still buffered, and the
    // files written for its failed commit are gone.
    assert_eq!(store.files().0, 2);
    assert!(store.table_files(&tenant("b")).is_none());
    assert!(
        objects
            .list(&layout::signal_prefix(&tenant("b"), SpanTable::SIGNAL))
            .await
            .unwrap()
            .is_empty()
    );
    for (name, spans) in [("a", &a), ("b", &b)] {
        let id = spans[3].trace_id;
        assert_eq!(
            spans_of(&store, name, id).await,
            expected(spans, id),
            "{name}"
        );
    }
    assert!(
        store.is_due(usize::MAX, Duration::from_secs(3600)),
        "retry pending"
    );
    assert_eq!(store.flush().await.unwrap(), 2);
    assert_eq!(store.files().0, 4);
    assert_eq!(store.table_files(&tenant("a")).unwrap().manifest.version, 2);
    for (name, spans) in [("a", &a), ("b", &b)] {
        let id = spans[3].trace_id;
        assert_eq!(
            spans_of(&store, name, id).await,
            expected(spans, id),
            "{name}"
        );
    }
}

#[tokio::test]
async fn removed_files_are_deleted_only_once_readers_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    apply(&store, 1, "a", spans(7));
    store.flush().await.unwrap();
    let files = store.table_files(&tenant("a")).unwrap().files;
    let victim = Arc::clone(&files[0]);
    let local = store.objects().local_path(&victim.path).unwrap();
    let present = spans(7)[0].trace_id;
    assert!(spans_of(&store, "a", present).await > 0);
    let reader = store.snapshot(&tenant("a"));
    let change = ManifestChange {
        remove: vec![victim.meta.path.clone()],
        ..ManifestChange::default()
    };
    store
        .commit(&tenant("a"), change, Duration::ZERO, |_| {})
        .await
        .unwrap();
    assert_eq!(store.files().0, 1);
    drop((files, victim));
    assert_eq!(store.delete_unreferenced().await, 0, "a reader holds it");
    assert!(local.exists());
    drop(reader);
    assert!(
        store.id_filter_cache_bytes() > 0,
        "read by the lookup above"
    );
    assert_eq!(store.delete_unreferenced().await, 1);
    assert!(!local.exists());
    assert_eq!(
        store.id_filter_cache_bytes(),
        filter_bytes(&filters_of(&store, "a")),
        "a deleted file's filter is forgotten"
    );
    assert_eq!(store.pending_deletes(), 0);
}

#[tokio::test]
async fn summaries_list_buffered_and_flushed_spans_and_reopen_from_sidecars() {
    use crate::catalog::FileSummary;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = spans(1);
    let mut expected = FileSummary::default();
    expected.add_spans(&a);
    assert!(!expected.is_empty());
    apply(&store, 1, "a", a.clone());
    assert_eq!(
        store.summary(&tenant("a")).await.services,
        expected.services,
        "buffered spans are listed at once"
    );
    assert!(store.summary(&tenant("b")).await.is_empty());
    store.flush().await.unwrap();
    let manifest = store.table_files(&tenant("a")).unwrap().manifest;
    assert!(manifest.files.iter().all(|f| f.summary_path.is_some()));
    assert_eq!(
        store.summary(&tenant("a")).await.services,
        expected.services,
        "flushed spans are listed from their files' summaries"
    );
    let b = spans(2);
    expected.add_spans(&b);
    apply(&store, 2, "a", b);
    assert_eq!(
        store.summary(&tenant("a")).await.services,
        expected.services
    );
    store.flush().await.unwrap();
    drop(store);
    let reopened = open(dir.path()).await;
    let reopened_summary = reopened.summary(&tenant("a")).await;
    assert_eq!(reopened_summary.services, expected.services);
    assert!(
        !reopened_summary.dependencies.is_empty(),
        "flushed files count calls between services"
    );
}

#[tokio::test]
async fn a_scan_for_a_service_skips_files_whose_summary_lacks_it() {
    use crate::parquet_codec::SERVICE_NAME_COLUMN;
    use crate::scan::{Predicate, ScanLimits, ScanRequest, TimeRange, Value, scan_to_vec};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = spans(3);
    apply(&store, 1, "a", a.clone());
    store.flush().await.unwrap();
    let request = |service: &str| ScanRequest {
        tenant: tenant("a"),
        signal: crate::model::Signal::Traces,
        time_range: TimeRange::ALL,
        columns: None,
        predicate: Predicate::eq(SERVICE_NAME_COLUMN, Value::Text(service.to_owned())),
        limits: ScanLimits::default(),
        order: crate::scan::ScanOrder::Any,
    };
    let batches = scan_to_vec(&store, &request("no-such-service"))
        .await
        .unwrap();
    assert!(batches.is_empty());
    assert_eq!(
        store.footer_cache().len(),
        0,
        "no file was opened: every summary ruled it out"
    );
    let service = a[0].resource.service_name().to_owned();
    let batches = scan_to_vec(&store, &request(&service)).await.unwrap();
    let found: usize = batches.iter().map(|b| b.num_rows()).sum();
    let wanted = a
        .iter()
        .filter(|s| s.resource.service_name() == service)
        .count();
    assert_eq!(found, wanted);
    assert!(!store.footer_cache().is_empty());
}

#[tokio::test]
async fn one_scan_finds_several_traces_in_buffers_and_files() {
    use crate::scan::{ScanLimits, ScanRequest, scan_to_vec};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let flushed = spans(4);
    apply(&store, 1, "a", flushed.clone());
    store.flush().await.unwrap();
    let buffered = spans(5);
    apply(&store, 2, "a", buffered.clone());
    let wanted = [
        flushed[0].trace_id,
        buffered[0].trace_id,
        TraceId([0xee; 16]),
    ];
    let request = ScanRequest::traces(tenant("a"), &wanted, ScanLimits::default());
    let mut found = Vec::new();
    for batch in scan_to_vec(&store, &request).await.unwrap() {
        found.extend(SpanTable::decode(&batch).unwrap());
    }
    let expected: usize = flushed
        .iter()
        .chain(&buffered)
        .filter(|s| wanted.contains(&s.trace_id))
        .count();
    assert!(expected > 2);
    assert_eq!(found.len(), expected);
    assert!(found.iter().all(|s| wanted.contains(&s.trace_id)));
}
