//! Several nodes on one set of tables (one object store, one catalog), each with its own WAL:
//! commits made again on top of each other's, positions per node, refreshes that see what
//! the others did and leave their removed files to them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::budget::Reservation;
use crate::model::{Span, TenantId};
use crate::node::WalOwner;
use crate::parquet_codec::test_fixtures::realistic_spans;
use crate::spans::{SpanStore, find_trace};
use crate::table::FooterCache;

async fn node(dir: &std::path::Path, id: &str) -> SpanStore {
    let objects = crate::objects::Objects::local(dir).unwrap();
    let catalog = Arc::new(crate::catalog::ObjectCatalog::new(objects.clone()));
    SpanStore::open(objects, catalog, Arc::new(FooterCache::new(64 << 20)))
        .await
        .unwrap()
        .with_wal_owner(WalOwner::node(id, false))
}

fn tenant() -> TenantId {
    "acme".parse().unwrap()
}

async fn found(store: &SpanStore, spans: &[Span]) -> usize {
    let mut total = 0;
    let ids: std::collections::BTreeSet<_> = spans.iter().map(|span| span.trace_id).collect();
    for id in ids {
        total += find_trace(store, &tenant(), id).await.unwrap().len();
    }
    total
}

#[tokio::test]
async fn two_writers_commit_on_top_of_each_other_with_their_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "a").await, node(dir.path(), "b").await);
    let (spans_a, spans_b) = (realistic_spans(300, 1), realistic_spans(300, 2));
    a.apply(900, tenant(), spans_a.clone(), 1, Reservation::default());
    b.apply(40, tenant(), spans_b.clone(), 1, Reservation::default());
    a.flush().await.unwrap();
    // b's view is a version behind: its commit conflicts, is made again on a's, and lands.
    b.flush().await.unwrap();
    assert_eq!(b.table_files(&tenant()).unwrap().files.len(), 2);
    assert_eq!(b.flushed_lsn(&tenant()), 40);
    a.refresh().await.unwrap();
    assert_eq!(a.flushed_lsn(&tenant()), 900, "b never moved a's position");
    assert_eq!(found(&a, &spans_b).await, spans_b.len(), "a sees b's file");

    // A node started later (a query node) reads both; a refresh shows it what comes next.
    let reader = node(dir.path(), "q").await;
    assert_eq!(found(&reader, &spans_a).await, spans_a.len());
    assert_eq!(reader.flushed_lsn(&tenant()), 0);
    let more = realistic_spans(100, 3);
    b.apply(41, tenant(), more.clone(), 1, Reservation::default());
    b.flush().await.unwrap();
    assert_eq!(found(&reader, &more).await, 0, "not refreshed yet");
    assert_eq!(reader.refresh().await.unwrap(), 1);
    assert_eq!(found(&reader, &more).await, more.len());
    assert_eq!(reader.refresh().await.unwrap(), 0, "nothing newer");
}

#[tokio::test]
async fn files_another_node_merged_away_are_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "a").await, node(dir.path(), "b").await);
    let spans = realistic_spans(300, 4);
    for (n, chunk) in spans.chunks(100).enumerate() {
        a.apply(
            n as u64 + 1,
            tenant(),
            chunk.to_vec(),
            1,
            Reservation::default(),
        );
        a.flush().await.unwrap();
    }
    b.refresh().await.unwrap();
    let inputs = a.table_files(&tenant()).unwrap().files.to_vec();
    assert_eq!(inputs.len(), 3);
    let cancel = CancellationToken::new();
    a.merge(
        &tenant(),
        &inputs,
        64 << 20,
        Duration::from_secs(3600),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(
        a.pending_deletes(),
        3,
        "the merging node deletes its inputs after the grace"
    );
    b.refresh().await.unwrap();
    assert_eq!(b.table_files(&tenant()).unwrap().files.len(), 1);
    assert_eq!(b.pending_deletes(), 0, "b only stops listing them");
    assert_eq!(found(&b, &spans).await, spans.len());
}
