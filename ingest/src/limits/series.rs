//! One tenant's active metric series: the series that received a point within the last
//! [`ACTIVE_SERIES_WINDOW`], as 64-bit identities with the minute each was last seen. A new
//! series is admitted while the tenant has fewer than its limit; its set never holds more
//! than the limit, and series idle for the window leave it (swept at most once a minute).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skewer_storage::model::TenantId;

use super::gate::LimitExceeded;

/// How long a series stays active after its last point.
pub const ACTIVE_SERIES_WINDOW: Duration = Duration::from_secs(3600);

/// The active series of one tenant, bounded by its limit.
#[derive(Debug)]
pub struct ActiveSeries {
    tenant: TenantId,
    limit: AtomicU64,
    epoch: Instant,
    set: Mutex<SeriesSet>,
    refused_points: AtomicU64,
}

#[derive(Debug, Default)]
struct SeriesSet {
    /// Series identity → the minute (since `epoch`) of its last point.
    last_seen: HashMap<u64, u32>,
    swept_minute: u32,
}

impl ActiveSeries {
    /// An empty set for `tenant`, at most `limit` series.
    pub fn new(tenant: TenantId, limit: u64, epoch: Instant) -> Self {
        Self {
            tenant,
            limit: AtomicU64::new(limit),
            epoch,
            set: Mutex::default(),
            refused_points: AtomicU64::new(0),
        }
    }

    /// Holds the set to `limit` from now on (series already active stay so); 0 lifts it.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// For each series of an export (in order), whether its points may be kept: the series is
    /// active, or a new one that fits under the limit (and is active from now on).
    pub fn admit(&self, series: &[u64], now: Instant) -> Vec<bool> {
        let minute = now.saturating_duration_since(self.epoch).as_secs() / 60;
        let minute = u32::try_from(minute).unwrap_or(u32::MAX);
        let window_minutes = (ACTIVE_SERIES_WINDOW.as_secs() / 60) as u32;
        let limit = self.limit();
        let mut set = self.set.lock().unwrap_or_else(|poison| poison.into_inner());
        if minute > set.swept_minute {
            set.last_seen
                .retain(|_, seen| minute.saturating_sub(*seen) < window_minutes);
            set.swept_minute = minute;
        }
        series
            .iter()
            .map(|id| {
                let room = limit == 0 || (set.last_seen.len() as u64) < limit;
                match set.last_seen.get_mut(id) {
                    Some(seen) => {
                        *seen = minute;
                        true
                    }
                    None if room => {
                        set.last_seen.insert(*id, minute);
                        true
                    }
                    None => false,
                }
            })
            .collect()
    }

    /// Series active now.
    pub fn len(&self) -> u64 {
        let set = self.set.lock().unwrap_or_else(|poison| poison.into_inner());
        set.last_seen.len() as u64
    }

    /// Whether no series is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The refusal of an export whose every point is of a new series past the limit.
    pub fn exceeded(&self) -> LimitExceeded {
        LimitExceeded {
            tenant: self.tenant.clone(),
            limit: "max_active_series",
            value: self.limit(),
            // Series make room only when others go idle.
            retry_after_seconds: 60,
        }
    }

    /// Points refused since the start.
    pub fn refused_points(&self) -> u64 {
        self.refused_points.load(Ordering::Relaxed)
    }

    /// Counts `refused` points and says why, for the export's partial success.
    pub fn refusal(&self, refused: u64) -> String {
        self.refused_points.fetch_add(refused, Ordering::Relaxed);
        format!(
            "tenant {} is at its limit max_active_series = {}: {refused} points of new series refused \
             (series idle for an hour make room)",
            self.tenant,
            self.limit()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_series_past_the_limit_are_refused_and_active_ones_go_on() {
        let epoch = Instant::now();
        let series = ActiveSeries::new("t".parse().unwrap(), 3, epoch);
        assert_eq!(
            series.admit(&[1, 2, 2, 3, 4], epoch),
            [true, true, true, true, false]
        );
        assert_eq!(series.len(), 3);
        assert_eq!(series.admit(&[5, 1, 3], epoch), [false, true, true]);
        assert!(series.refusal(1).contains("max_active_series = 3"));
    }

    #[test]
    fn series_idle_for_the_window_make_room() {
        let epoch = Instant::now();
        let series = ActiveSeries::new("t".parse().unwrap(), 2, epoch);
        series.admit(&[1, 2], epoch);
        let later = epoch + ACTIVE_SERIES_WINDOW - Duration::from_secs(60);
        // Series 2 stays active; 1 goes idle.
        assert_eq!(series.admit(&[2, 3], later), [true, false]);
        let after = epoch + ACTIVE_SERIES_WINDOW + Duration::from_secs(60);
        assert_eq!(series.admit(&[3], after), [true]);
        assert_eq!(series.len(), 2);
    }
}
