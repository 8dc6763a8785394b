//! The limits in force, shared by ingest and the query API and replaced whole when they change
//! (a deployment's limits live in its catalog database and move while nodes run).

use std::sync::{Arc, RwLock};

use super::config::LimitsConfig;

/// A handle on the limits in force; clones see the same limits.
#[derive(Debug, Clone, Default)]
pub struct LiveLimits {
    current: Arc<RwLock<Arc<LimitsConfig>>>,
}

impl LiveLimits {
    /// `limits` in force from now on.
    pub fn new(limits: LimitsConfig) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(limits))),
        }
    }

    /// The limits in force now.
    pub fn current(&self) -> Arc<LimitsConfig> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Puts `limits` in force; whether they differ from the previous ones.
    pub fn replace(&self, limits: LimitsConfig) -> bool {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if **current == limits {
            return false;
        }
        *current = Arc::new(limits);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_a_replacement_and_an_equal_one_changes_nothing() {
        let live = LiveLimits::new(LimitsConfig::default());
        let other = live.clone();
        let tighter = LimitsConfig {
            max_tenants: 3,
            ..LimitsConfig::default()
        };
        assert!(live.replace(tighter.clone()));
        assert_eq!(other.current().max_tenants, 3);
        assert!(!other.replace(tighter));
    }
}
