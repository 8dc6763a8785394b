//! Which nodes of a shared deployment take data: each ingest node (roles `all` and `ingest`)
//! writes a heartbeat object `nodes/{node}.json` at every catalog refresh, and every node
//! counts the heartbeats written lately. Each ingest node then enforces its share of a
//! tenant's rate limits (the limit over the count), as Loki's global rate strategy does.
//! Heartbeats of nodes gone for a day are deleted by whoever lists them.

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use crate::StorageError;
use crate::objects::Objects;

/// A heartbeat older than this is of a node that is gone; it is deleted.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(86_400);

/// Prefix of the heartbeats.
pub fn heartbeats_prefix() -> ObjectPath {
    ObjectPath::from("nodes")
}

/// One node's heartbeat and the count of the live ones.
pub struct Membership {
    objects: Objects,
    node: String,
    ingests: bool,
    live_for: Duration,
}

impl Membership {
    /// `node`'s membership; it writes heartbeats when it `ingests`, and a heartbeat counts
    /// for `live_for` after it was written.
    pub fn new(
        objects: Objects,
        node: impl Into<String>,
        ingests: bool,
        live_for: Duration,
    ) -> Self {
        Self {
            objects,
            node: node.into(),
            ingests,
            live_for,
        }
    }

    /// Writes this node's heartbeat (when it ingests) and counts the ingest nodes whose
    /// heartbeat is live, this one included; deletes forgotten heartbeats.
    pub async fn beat_and_count(&self) -> Result<usize, StorageError> {
        if self.ingests {
            let path = ObjectPath::from(format!("{}/{}.json", heartbeats_prefix(), self.node));
            let body = serde_json::json!({ "node": self.node, "role": "ingest" }).to_string();
            self.objects.put(&path, Bytes::from(body)).await?;
        }
        let now = chrono::Utc::now();
        let age = |object: &object_store::ObjectMeta| {
            (now - object.last_modified)
                .to_std()
                .unwrap_or(Duration::ZERO)
        };
        let mut live = 0;
        for object in self.objects.list(&heartbeats_prefix()).await? {
            let age = age(&object);
            if age <= self.live_for {
                live += 1;
            } else if age >= FORGOTTEN_AFTER {
                self.objects.delete(&object.location).await?;
            }
        }
        Ok(live.max(usize::from(self.ingests)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    #[tokio::test]
    async fn ingest_nodes_count_themselves_and_each_other_but_not_query_nodes() {
        let objects = Objects::remote(Arc::new(InMemory::new()));
        let live = Duration::from_secs(30);
        let a = Membership::new(objects.clone(), "node-a", true, live);
        let b = Membership::new(objects.clone(), "node-b", true, live);
        let query = Membership::new(objects.clone(), "node-q", false, live);
        assert_eq!(query.beat_and_count().await.unwrap(), 0);
        assert_eq!(a.beat_and_count().await.unwrap(), 1);
        assert_eq!(b.beat_and_count().await.unwrap(), 2);
        assert_eq!(a.beat_and_count().await.unwrap(), 2);
        assert_eq!(query.beat_and_count().await.unwrap(), 2);
        // A heartbeat past its life no longer counts.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stale = Membership::new(objects.clone(), "node-a", true, Duration::from_millis(10));
        assert_eq!(stale.beat_and_count().await.unwrap(), 1, "itself at least");
    }
}
