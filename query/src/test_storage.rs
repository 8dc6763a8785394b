//! A real [`Storage`] in a temporary directory for the crate's tests: no background flush,
//! compaction or retention, so each test decides what is buffered and what is in files.

use std::sync::Arc;
use std::time::Duration;

use skewer_storage::Storage;
use skewer_storage::config::StorageConfig;
use skewer_storage::model::{Signal, SignalBatch, TenantId};
use skewer_storage::retention::SignalRetention;
use skewer_storage::storage::WalDecoder;
use skewer_storage::wal::WalEntry;

/// Nothing is replayed: each test writes into a fresh directory.
struct NoReplay;

impl WalDecoder for NoReplay {
    fn decode(&self, _entry: &WalEntry) -> Result<SignalBatch, String> {
        Ok(SignalBatch::Metrics(Vec::new()))
    }
}

/// Storage over `dir`, flushing only when told.
pub async fn open(dir: &std::path::Path) -> Arc<Storage> {
    let mut config = StorageConfig::new(dir.to_path_buf());
    config.flush_interval = Duration::from_secs(3600);
    config.log_commit_interval = Duration::from_secs(3600);
    config.compaction.enabled = false;
    config.retention.default = SignalRetention {
        traces: None,
        logs: None,
        metrics: None,
    };
    Storage::open(config, Arc::new(NoReplay)).await.unwrap()
}

/// Writes a batch for the default tenant, as an accepted request does.
pub async fn write(storage: &Storage, signal: Signal, batch: SignalBatch) {
    let entry = WalEntry {
        signal,
        payload_format: 0,
        tenant: TenantId::default_tenant(),
        body: Default::default(),
    };
    let admission = storage.budget().try_reserve(1).unwrap();
    storage.write(entry, batch, admission).await.unwrap();
}
