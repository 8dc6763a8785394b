//! The per-tenant state: known tenants (for the cap), their buckets and their figures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use skewer_storage::model::TenantId;

use super::bucket::Bucket;
use super::config::LimitsConfig;
use super::live::LiveLimits;
use super::series::ActiveSeries;

/// A request refused by a tenant limit: which limit, its value, when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant} is over its limit {limit} = {value}; retry in {retry_after_seconds} s")]
pub struct LimitExceeded {
    /// The tenant.
    pub tenant: TenantId,
    /// The limit's config key (`max_tenants`, `ingest_records_per_second`…).
    pub limit: &'static str,
    /// Its configured value.
    pub value: u64,
    /// Seconds until a retry may pass.
    pub retry_after_seconds: u64,
}

/// What one tenant sent and how often it was held back, for `/metrics`.
#[derive(Debug, Default)]
pub struct TenantFigures {
    /// Records accepted.
    pub records: AtomicU64,
    /// Request bytes accepted (after decompression).
    pub bytes: AtomicU64,
    /// Requests refused by `ingest_records_per_second`.
    pub limited_records: AtomicU64,
    /// Requests refused by `ingest_bytes_per_second`.
    pub limited_bytes: AtomicU64,
}

#[derive(Debug)]
struct TenantState {
    records: Option<(u64, Mutex<Bucket>)>,
    bytes: Option<(u64, Mutex<Bucket>)>,
    figures: Arc<TenantFigures>,
}

impl TenantState {
    fn new(config: &LimitsConfig, tenant: &TenantId, now: Instant) -> Self {
        Self::keeping(config, tenant, now, Arc::default())
    }

    /// Full buckets at `tenant`'s rates in `config`, counting into `figures`.
    fn keeping(
        config: &LimitsConfig,
        tenant: &TenantId,
        now: Instant,
        figures: Arc<TenantFigures>,
    ) -> Self {
        let (records, bytes) = config.rates_of(tenant.as_str());
        let bucket = |rate: u64| (rate > 0).then(|| (rate, Mutex::new(Bucket::new(rate, now))));
        Self {
            records: bucket(records),
            bytes: bucket(bytes),
            figures,
        }
    }
}

impl TenantState {
    /// The (records, bytes) per second it enforces; 0 is unlimited.
    fn rates(&self) -> (u64, u64) {
        let rate = |bucket: &Option<(u64, Mutex<Bucket>)>| bucket.as_ref().map_or(0, |(r, _)| *r);
        (rate(&self.records), rate(&self.bytes))
    }
}

/// The tenants ingest has seen and their limits.
#[derive(Debug)]
pub struct TenantGate {
    limits: LiveLimits,
    /// Read-locked on every export; write-locked only when a tenant is first charged.
    tenants: RwLock<HashMap<TenantId, Arc<TenantState>>>,
    /// The active series of tenants with a series limit (none without one).
    series: Mutex<HashMap<TenantId, Arc<ActiveSeries>>>,
    epoch: Instant,
    /// Ingest nodes of the deployment sharing each tenant's rates (1 on a single node).
    ingest_nodes: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl TenantGate {
    /// Limits as configured; `existing` tenants (found on disk) count toward the cap.
    pub fn new(config: LimitsConfig, existing: impl IntoIterator<Item = TenantId>) -> Self {
        Self::following(LiveLimits::new(config), existing)
    }

    /// The limits `limits` holds, however they change (through [`Self::set_limits`]);
    /// `existing` tenants count toward the cap.
    pub fn following(limits: LiveLimits, existing: impl IntoIterator<Item = TenantId>) -> Self {
        let config = limits.current();
        let now = Instant::now();
        let tenants = existing
            .into_iter()
            .map(|tenant| {
                let state = Arc::new(TenantState::new(&config, &tenant, now));
                (tenant, state)
            })
            .collect();
        Self {
            limits,
            tenants: RwLock::new(tenants),
            series: Mutex::default(),
            epoch: now,
            ingest_nodes: AtomicU64::new(1),
        }
    }

    /// The limits in force (shared with whoever else holds them, such as the query API).
    pub fn limits(&self) -> &LiveLimits {
        &self.limits
    }

    /// Puts `config` in force: the cap and series limits at once; a tenant whose rates
    /// changed starts on full buckets at its new rates (its figures go on), the others keep
    /// theirs, debt included. Whether anything changed.
    pub fn set_limits(&self, config: LimitsConfig) -> bool {
        if !self.limits.replace(config) {
            return false;
        }
        let config = self.limits.current();
        let now = Instant::now();
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for (tenant, state) in tenants.iter_mut() {
            if state.rates() != config.rates_of(tenant.as_str()) {
                let figures = Arc::clone(&state.figures);
                *state = Arc::new(TenantState::keeping(&config, tenant, now, figures));
            }
        }
        drop(tenants);
        // A tenant whose series limit was lifted is no longer tracked.
        lock(&self.series).retain(|tenant, series| {
            let limit = config.max_active_series_of(tenant.as_str());
            series.set_limit(limit);
            limit > 0
        });
        true
    }

    /// How many ingest nodes share the load: each enforces its share of a tenant's rates.
    pub fn set_ingest_nodes(&self, nodes: usize) {
        self.ingest_nodes
            .store(nodes.max(1) as u64, Ordering::Relaxed);
    }

    /// This node's share of `rate`.
    fn share_of(&self, rate: u64) -> f64 {
        rate as f64 / self.ingest_nodes.load(Ordering::Relaxed).max(1) as f64
    }

    /// Counts `existing` tenants toward the cap too (those storage found once open: a
    /// bucket's tenants are not on local disk).
    pub fn add_existing(&self, existing: impl IntoIterator<Item = TenantId>) {
        let now = Instant::now();
        let config = self.limits.current();
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for tenant in existing {
            if let std::collections::hash_map::Entry::Vacant(entry) = tenants.entry(tenant) {
                let state = Arc::new(TenantState::new(&config, entry.key(), now));
                entry.insert(state);
            }
        }
    }

    /// The active series of `tenant` when it has a series limit.
    pub fn active_series(&self, tenant: &TenantId) -> Option<Arc<ActiveSeries>> {
        let limit = self.limits.current().max_active_series_of(tenant.as_str());
        if limit == 0 {
            return None;
        }
        let mut series = lock(&self.series);
        let tracked = series
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(ActiveSeries::new(tenant.clone(), limit, self.epoch)));
        tracked.set_limit(limit);
        Some(Arc::clone(tracked))
    }

    /// Active series of each tenant with a series limit, sorted by tenant.
    pub fn series_figures(&self) -> Vec<(TenantId, Arc<ActiveSeries>)> {
        let mut figures: Vec<_> = lock(&self.series)
            .iter()
            .map(|(tenant, series)| (tenant.clone(), Arc::clone(series)))
            .collect();
        figures.sort_by(|a, b| a.0.cmp(&b.0));
        figures
    }

    /// No limits at all (tools and tests).
    pub fn unlimited() -> Self {
        Self::new(LimitsConfig::default(), [])
    }

    /// A known tenant's state; for a new one, whether the cap leaves room (it is registered
    /// only when its first export is charged, so refused or malformed requests take no slot).
    fn known(&self, tenant: &TenantId) -> Result<Option<Arc<TenantState>>, LimitExceeded> {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(state) = tenants.get(tenant) {
            return Ok(Some(Arc::clone(state)));
        }
        let cap = self.limits.current().max_tenants;
        if cap > 0 && tenants.len() >= cap {
            return Err(LimitExceeded {
                tenant: tenant.clone(),
                limit: "max_tenants",
                value: cap as u64,
                // A tenant slot frees only when an operator acts: ask for patience.
                retry_after_seconds: 60,
            });
        }
        Ok(None)
    }

    /// Whether `tenant` may send now: it exists or fits under the cap, and its buckets are not
    /// in debt. Cheap; called before a body is read.
    pub fn admit(&self, tenant: &TenantId) -> Result<(), LimitExceeded> {
        let Some(state) = self.known(tenant)? else {
            return Ok(());
        };
        let now = Instant::now();
        for (limit, bucket, refused) in [
            (
                "ingest_records_per_second",
                &state.records,
                &state.figures.limited_records,
            ),
            (
                "ingest_bytes_per_second",
                &state.bytes,
                &state.figures.limited_bytes,
            ),
        ] {
            let Some((value, bucket)) = bucket else {
                continue;
            };
            let mut bucket = lock(bucket);
            bucket.set_rate(self.share_of(*value), now);
            let wait = bucket.wait_seconds(now);
            if wait > 0.0 {
                refused.fetch_add(1, Ordering::Relaxed);
                return Err(LimitExceeded {
                    tenant: tenant.clone(),
                    limit,
                    value: *value,
                    retry_after_seconds: wait.ceil().max(1.0) as u64,
                });
            }
        }
        Ok(())
    }

    /// Charges an accepted export to `tenant`, registering it on its first.
    pub fn charge(&self, tenant: &TenantId, records: u64, bytes: u64) {
        let state = match self.known(tenant) {
            Ok(Some(state)) => state,
            // Admitted while there was room: its data is written, so it is a tenant now.
            Ok(None) | Err(_) => {
                let mut tenants = self
                    .tenants
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner());
                let state = tenants.entry(tenant.clone()).or_insert_with(|| {
                    Arc::new(TenantState::new(
                        &self.limits.current(),
                        tenant,
                        Instant::now(),
                    ))
                });
                Arc::clone(state)
            }
        };
        let now = Instant::now();
        for (limit, cost) in [(&state.records, records), (&state.bytes, bytes)] {
            if let Some((rate, bucket)) = limit {
                let mut bucket = lock(bucket);
                bucket.set_rate(self.share_of(*rate), now);
                bucket.take(cost, now);
            }
        }
        state.figures.records.fetch_add(records, Ordering::Relaxed);
        state.figures.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Every known tenant's figures, sorted by tenant.
    pub fn figures(&self) -> Vec<(TenantId, Arc<TenantFigures>)> {
        let mut figures: Vec<_> = self
            .tenants
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(tenant, state)| (tenant.clone(), Arc::clone(&state.figures)))
            .collect();
        figures.sort_by(|a, b| a.0.cmp(&b.0));
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::TenantLimitOverrides;

    fn tenant(name: &str) -> TenantId {
        name.parse().unwrap()
    }

    #[test]
    fn the_cap_counts_existing_tenants_and_refuses_new_ones_only() {
        let config = LimitsConfig {
            max_tenants: 2,
            ..LimitsConfig::default()
        };
        let gate = TenantGate::new(config, [tenant("a")]);
        gate.admit(&tenant("b")).unwrap();
        gate.admit(&tenant("c")).unwrap();
        gate.charge(&tenant("b"), 1, 1);
        let refused = gate.admit(&tenant("c")).unwrap_err();
        assert_eq!(refused.limit, "max_tenants");
        assert_eq!(refused.value, 2);
        gate.admit(&tenant("a")).unwrap();
        gate.admit(&tenant("b")).unwrap();
        // Tenants storage finds once open (a bucket's) count the same way, each once.
        let late = TenantGate::new(
            LimitsConfig {
                max_tenants: 2,
                ..LimitsConfig::default()
            },
            [tenant("a")],
        );
        late.add_existing([tenant("a"), tenant("z")]);
        late.add_existing([tenant("z")]);
        assert_eq!(late.admit(&tenant("c")).unwrap_err().limit, "max_tenants");
        late.admit(&tenant("z")).unwrap();
    }

    #[test]
    fn a_tenant_over_its_rate_waits_and_others_do_not() {
        let mut tenants = std::collections::BTreeMap::new();
        tenants.insert(
            "big".to_owned(),
            TenantLimitOverrides {
                ingest_records_per_second: Some(1_000_000),
                ..TenantLimitOverrides::default()
            },
        );
        let config = LimitsConfig {
            ingest_records_per_second: 100,
            tenants,
            ..LimitsConfig::default()
        };
        let gate = TenantGate::new(config, []);
        let (small, big) = (tenant("small"), tenant("big"));
        gate.admit(&small).unwrap();
        gate.charge(&small, 250, 10);
        assert_eq!(gate.figures().len(), 1, "registered on its first charge");
        let refused = gate.admit(&small).unwrap_err();
        assert_eq!(refused.limit, "ingest_records_per_second");
        assert_eq!(refused.retry_after_seconds, 2);
        for _ in 0..10 {
            gate.admit(&big).unwrap();
            gate.charge(&big, 1000, 10);
        }
        let figures = gate.figures();
        assert_eq!(figures[0].0, big);
        assert_eq!(figures[0].1.records.load(Ordering::Relaxed), 10_000);
        assert_eq!(figures[1].1.limited_records.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn new_limits_hold_at_once_and_keep_each_tenants_figures() {
        let gate = TenantGate::new(LimitsConfig::default(), [tenant("a")]);
        let query_side = gate.limits().clone();
        gate.charge(&tenant("a"), 500, 10);
        let mut own = std::collections::BTreeMap::new();
        own.insert(
            "a".to_owned(),
            TenantLimitOverrides {
                ingest_records_per_second: Some(100),
                max_active_series: Some(1),
                ..TenantLimitOverrides::default()
            },
        );
        let tighter = LimitsConfig {
            max_tenants: 1,
            tenants: own,
            ..LimitsConfig::default()
        };
        // Another tenant's debt survives a change that leaves its rates alone.
        gate.set_limits(LimitsConfig {
            ingest_records_per_second: 10,
            ..LimitsConfig::default()
        });
        gate.charge(&tenant("a"), 100, 1);
        gate.set_limits(LimitsConfig {
            ingest_records_per_second: 10,
            query_max_rows: 5,
            ..LimitsConfig::default()
        });
        assert_eq!(
            gate.admit(&tenant("a")).unwrap_err().limit,
            "ingest_records_per_second"
        );
        assert!(gate.set_limits(tighter.clone()));
        assert!(
            !gate.set_limits(tighter),
            "the same limits again change nothing"
        );
        assert_eq!(query_side.current().max_tenants, 1);
        assert_eq!(gate.admit(&tenant("b")).unwrap_err().limit, "max_tenants");
        gate.admit(&tenant("a")).unwrap();
        gate.charge(&tenant("a"), 250, 10);
        assert_eq!(
            gate.admit(&tenant("a")).unwrap_err().limit,
            "ingest_records_per_second"
        );
        assert_eq!(gate.figures()[0].1.records.load(Ordering::Relaxed), 850);
        let series = gate.active_series(&tenant("a")).unwrap();
        assert_eq!(series.admit(&[1, 2], Instant::now()), [true, false]);
        // Lifted again: the series set grows and the cap is gone.
        gate.set_limits(LimitsConfig {
            max_active_series: 5,
            ..LimitsConfig::default()
        });
        let series = gate.active_series(&tenant("a")).unwrap();
        assert_eq!(series.admit(&[1, 2], Instant::now()), [true, true]);
        gate.admit(&tenant("b")).unwrap();
        gate.admit(&tenant("a")).unwrap();
    }
}
