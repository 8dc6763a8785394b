//! Alerting: rules from Prometheus-format rule files evaluated on schedule over the tenant's
//! metrics (PromQL) and logs (LogQL metric queries), alerts moved through pending → firing →
//! resolved ([`alert_state`]), grouped and deduplicated as Alertmanager does ([`dispatch`]),
//! muted by [`silences`], and delivered to webhooks in Alertmanager's JSON ([`payload`]) by a
//! task per receiver ([`delivery`]). Alert states, what each group last told its receiver,
//! silences and undelivered notifications are on disk under `<data_dir>/alerting/`, so a
//! restart neither forgets a firing alert nor repeats or loses a notification.
//!
//! [`engine`] holds it together: one loop starts due group evaluations (each its own task,
//! never two of one group at once), flushes due groups to the receivers' outboxes, then
//! persists the state.

pub mod alert_state;
pub mod delivery;
pub mod dispatch;
pub mod engine;
pub mod go_format;
pub mod labels;
pub mod payload;
pub mod rule;
pub mod rule_file;
pub mod shared_reads;
pub mod silences;
pub mod template;
pub mod yaml;

use std::time::Duration;

pub use delivery::ReceiverSettings;
pub use dispatch::GroupingSettings;
pub use engine::{Alerting, RECORDED_QUEUE, RecordedSeries};

/// Alerting as configured.
#[derive(Debug, Clone)]
pub struct AlertingSettings {
    /// Rule files and globs.
    pub rule_files: Vec<String>,
    /// Evaluation interval of groups without their own.
    pub evaluation_interval: Duration,
    /// Where alerts link back to.
    pub external_url: String,
    /// Grouping and notification timing.
    pub grouping: GroupingSettings,
    /// Webhooks.
    pub receivers: Vec<ReceiverSettings>,
}
