//! What is failing right now in the background, for `/readyz`: flushes, compaction, retention
//! sweeps (the WAL reports its own state). Each component reports itself; a success clears it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::Signal;

/// A part of storage that can fail on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// One signal's flushes.
    Flush(Signal),
    /// Compaction.
    Compaction,
    /// Retention sweeps.
    Retention,
    /// Reloading the manifests other nodes commit to.
    CatalogRefresh,
    /// Uploading this node's log partitions to the shared bucket.
    LogUpload,
}

/// Current failures by component.
#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<BTreeMap<Component, String>>,
}

impl Health {
    /// Records that `component` fails with `reason`, or (`None`) that it works again.
    pub fn set(&self, component: Component, reason: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match reason {
            Some(reason) => failing.insert(component, reason),
            None => failing.remove(&component),
        };
    }

    /// Every current failure.
    pub fn reasons(&self) -> Vec<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_listed_until_cleared() {
        let health = Health::default();
        assert!(health.reasons().is_empty());
        health.set(Component::Compaction, Some("compaction failing".into()));
        health.set(
            Component::Flush(Signal::Logs),
            Some("logs flush failing".into()),
        );
        health.set(Component::Retention, Some("retention failing".into()));
        assert_eq!(
            health.reasons(),
            [
                "logs flush failing",
                "compaction failing",
                "retention failing"
            ]
        );
        health.set(Component::Flush(Signal::Logs), None);
        health.set(Component::Retention, None);
        assert_eq!(health.reasons(), ["compaction failing"]);
    }
}
