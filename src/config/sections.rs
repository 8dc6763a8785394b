//! The configuration's sections (`[retention]`, `[compaction]`, `[query]`, `[tls]`,
//! `[connections]`): their file shape, defaults
//! taken from storage's own, validation, and conversion into storage settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use skewer_storage::maintenance::CompactionConfig;
use skewer_storage::model::TenantId;
use skewer_storage::retention::{
    RetentionPolicy, SignalRetention, TenantRetention, parse_retention,
};

use super::{ConfigError, positive};

/// `[storage]`: where span and metric files live. Empty `url`: the data directory.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `s3://bucket` or `s3://bucket/prefix`; empty keeps files in the data directory.
    pub url: String,
    /// An S3-compatible server (`http://127.0.0.1:9000`); empty for AWS.
    pub endpoint: String,
    /// The bucket's region; empty for `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), as most compatible servers want.
    pub path_style: bool,
    /// How long one request to the store is retried, with backoff, before it fails (a
    /// failed flush is retried later; the WAL keeps the data meanwhile).
    pub retry_timeout_seconds: u64,
    /// Access key id; empty for `AWS_ACCESS_KEY_ID` (and the rest of the `AWS_*` variables).
    pub access_key_id: String,
    /// Its secret; empty for `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// Disk for other nodes' log partitions read from the bucket (least recently read
    /// evicted past it).
    #[serde(deserialize_with = "super::units::size_u64")]
    pub log_cache_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        let defaults = skewer_storage::remote::S3Config::new("");
        Self {
            url: String::new(),
            endpoint: String::new(),
            region: String::new(),
            path_style: defaults.path_style,
            retry_timeout_seconds: defaults.retry_timeout.as_secs(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            log_cache_bytes: skewer_storage::config::DEFAULT_LOG_CACHE_BYTES,
        }
    }
}

/// Never prints the secret.
impl std::fmt::Debug for StorageSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSection")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("retry_timeout_seconds", &self.retry_timeout_seconds)
            .field("access_key_id", &self.access_key_id)
            .field("log_cache_bytes", &self.log_cache_bytes)
            .field(
                "secret_access_key",
                &if self.secret_access_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

impl StorageSection {
    /// The bucket to use, if any, or which key is wrong.
    pub fn object_store(&self) -> Result<Option<skewer_storage::remote::S3Config>, ConfigError> {
        if self.url.is_empty() {
            return Ok(None);
        }
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let credentials = match (
            non_empty(&self.access_key_id),
            non_empty(&self.secret_access_key),
        ) {
            (Some(key_id), Some(secret)) => Some((key_id, secret)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "storage.access_key_id",
                    reason: "access_key_id and secret_access_key go together".to_owned(),
                });
            }
        };
        let config = skewer_storage::remote::S3Config {
            url: self.url.clone(),
            endpoint: non_empty(&self.endpoint),
            region: non_empty(&self.region),
            path_style: self.path_style,
            retry_timeout: Duration::from_secs(positive(
                "storage.retry_timeout_seconds",
                self.retry_timeout_seconds,
            )?),
            credentials,
        };
        config
            .bucket_and_prefix()
            .map_err(|err| ConfigError::Invalid {
                key: "storage.url",
                reason: err.to_string(),
            })?;
        Ok(Some(config))
    }
}

/// `[catalog]`: where manifests live. Empty `url`: beside the files (the embedded catalog).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSection {
    /// `postgres://user:password@host:port/database`; empty for the embedded catalog.
    pub url: String,
    /// How often a node sharing its tables reloads the manifests (what other nodes flushed,
    /// merged or removed becomes visible within this).
    pub refresh_interval_seconds: u64,
}

impl Default for CatalogSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            refresh_interval_seconds: 5,
        }
    }
}

/// Never prints a password in the URL.
impl std::fmt::Debug for CatalogSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match self.url.split_once('@') {
            Some((credentials, host)) if credentials.contains(':') => {
                let user = credentials
                    .rsplit_once(':')
                    .map_or(credentials, |(user, _)| user);
                format!("{user}:<redacted>@{host}")
            }
            _ => self.url.clone(),
        };
        f.debug_struct("CatalogSection")
            .field("url", &shown)
            .field("refresh_interval_seconds", &self.refresh_interval_seconds)
            .finish()
    }
}

impl CatalogSection {
    /// The database URL, if any, or why it is wrong.
    pub fn url(&self) -> Result<Option<String>, ConfigError> {
        if self.url.is_empty() {
            return Ok(None);
        }
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                key: "catalog.url",
                reason: format!("{:?} is not a postgres:// URL", self.url),
            });
        }
        Ok(Some(self.url.clone()))
    }
}

/// `[retention]`: how long each signal is kept (`"7d"`, `"36h"`, `"0"` keeps forever), and
/// `[retention.tenants.NAME]` overrides of single signals.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Spans.
    pub traces: String,
    /// Log records.
    pub logs: String,
    /// Metric points.
    pub metrics: String,
    /// How often expired data is looked for.
    pub check_interval_seconds: u64,
    /// Per-tenant overrides.
    pub tenants: BTreeMap<String, TenantRetentionSection>,
}

/// One tenant's overrides; absent keys inherit `[retention]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantRetentionSection {
    /// Spans.
    pub traces: Option<String>,
    /// Log records.
    pub logs: Option<String>,
    /// Metric points.
    pub metrics: Option<String>,
}

fn duration_text(duration: Option<Duration>) -> String {
    match duration {
        None => "0".to_owned(),
        Some(duration) => {
            let seconds = duration.as_secs();
            match seconds {
                s if s % 86_400 == 0 => format!("{}d", s / 86_400),
                s if s % 3_600 == 0 => format!("{}h", s / 3_600),
                s if s % 60 == 0 => format!("{}m", s / 60),
                s => format!("{s}s"),
            }
        }
    }
}

impl Default for RetentionSection {
    fn default() -> Self {
        let defaults = RetentionPolicy::default();
        Self {
            traces: duration_text(defaults.default.traces),
            logs: duration_text(defaults.default.logs),
            metrics: duration_text(defaults.default.metrics),
            check_interval_seconds: defaults.check_interval.as_secs(),
            tenants: BTreeMap::new(),
        }
    }
}

fn parse(key: &'static str, text: &str) -> Result<Option<Duration>, ConfigError> {
    parse_retention(text).map_err(|reason| ConfigError::Invalid { key, reason })
}

impl RetentionSection {
    /// The storage policy, or which key is wrong.
    pub fn policy(&self) -> Result<RetentionPolicy, ConfigError> {
        positive(
            "retention.check_interval_seconds",
            self.check_interval_seconds,
        )?;
        let mut tenants = std::collections::HashMap::new();
        for (name, section) in &self.tenants {
            let tenant: TenantId = name.parse().map_err(|err| ConfigError::Invalid {
                key: "retention.tenants",
                reason: format!("{err}"),
            })?;
            let optional = |key: &'static str, text: &Option<String>| {
                text.as_deref().map(|text| parse(key, text)).transpose()
            };
            tenants.insert(
                tenant,
                TenantRetention {
                    traces: optional("retention.tenants.*.traces", &section.traces)?,
                    logs: optional("retention.tenants.*.logs", &section.logs)?,
                    metrics: optional("retention.tenants.*.metrics", &section.metrics)?,
                },
            );
        }
        Ok(RetentionPolicy {
            default: SignalRetention {
                traces: parse("retention.traces", &self.traces)?,
                logs: parse("retention.logs", &self.logs)?,
                metrics: parse("retention.metrics", &self.metrics)?,
            },
            tenants,
            check_interval: Duration::from_secs(self.check_interval_seconds),
        })
    }
}

/// `[compaction]`: merging small files into large ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionSection {
    /// Whether compaction runs.
    pub enabled: bool,
    /// Largest file a merge writes, bytes.
    #[serde(deserialize_with = "super::units::size_u64")]
    pub target_file_bytes: u64,
    /// Pause between compaction passes.
    pub interval_seconds: u64,
    /// Minutes after an hour ends before it is merged down to large files.
    pub settle_minutes: u64,
}

impl Default for CompactionSection {
    fn default() -> Self {
        let defaults = CompactionConfig::default();
        Self {
            enabled: defaults.enabled,
            target_file_bytes: defaults.policy.target_file_bytes,
            interval_seconds: defaults.interval.as_secs(),
            settle_minutes: defaults.policy.settle.as_secs() / 60,
        }
    }
}

impl CompactionSection {
    /// The storage settings, or which key is wrong.
    pub fn config(&self) -> Result<CompactionConfig, ConfigError> {
        let defaults = CompactionConfig::default();
        Ok(CompactionConfig {
            enabled: self.enabled,
            policy: skewer_storage::table::compaction::CompactionPolicy {
                target_file_bytes: positive(
                    "compaction.target_file_bytes",
                    self.target_file_bytes,
                )?,
                settle: Duration::from_secs(self.settle_minutes * 60),
                ..defaults.policy
            },
            interval: Duration::from_secs(positive(
                "compaction.interval_seconds",
                self.interval_seconds,
            )?),
        })
    }
}

/// `[query]`: the bounds every query runs within.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySection {
    /// A query running longer is stopped and answered 504.
    pub timeout_seconds: u64,
    /// Queries served at once; more are answered 503 with Retry-After.
    pub max_concurrent: usize,
    /// Rows one query may read before it is answered 422.
    pub max_rows: u64,
    /// Bytes (decoded, in memory) one query may read before it is answered 422.
    #[serde(deserialize_with = "super::units::size_u64")]
    pub max_bytes: u64,
    /// The time range of a metric query that names none ends now and lasts this long.
    pub default_range_hours: u64,
    /// A trace view (by id, search results, a stitched request) shows at most this many
    /// spans; past it the view is cut and says so.
    pub trace_max_spans: u64,
    /// ... and at most this many bytes of spans (decoded, in memory), cut the same way.
    #[serde(deserialize_with = "super::units::size_u64")]
    pub trace_max_bytes: u64,
    /// What trace views do with a span whose host clock disagrees with its parent's: move it
    /// (`adjust`) or only say so (`warn`). `raw=true` on a request always only says so.
    pub clock_skew: ClockSkewMode,
    /// The largest clock-skew adjustment applied, ms; larger ones are reported only.
    pub max_clock_skew_adjustment_ms: u64,
}

/// `[query] clock_skew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockSkewMode {
    /// Move skewed spans (and their host's log records), saying why.
    #[default]
    Adjust,
    /// Leave times as stored, reporting what would move.
    Warn,
}

impl QuerySection {
    /// How trace views handle clock skew.
    pub fn skew_options(&self) -> skewer_query::skew::SkewOptions {
        skewer_query::skew::SkewOptions {
            adjust: self.clock_skew == ClockSkewMode::Adjust,
            max_adjust_nanos: self.max_clock_skew_adjustment_ms.saturating_mul(1_000_000),
        }
    }
}

impl Default for QuerySection {
    fn default() -> Self {
        let limits = skewer_storage::scan::ScanLimits::default();
        Self {
            timeout_seconds: 30,
            max_concurrent: 16,
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
            default_range_hours: 24,
            trace_max_spans: 50_000,
            trace_max_bytes: 128 << 20,
            clock_skew: ClockSkewMode::Adjust,
            max_clock_skew_adjustment_ms: 60_000,
        }
    }
}

impl QuerySection {
    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("query.timeout_seconds", self.timeout_seconds)?;
        positive("query.max_concurrent", self.max_concurrent as u64)?;
        positive("query.max_rows", self.max_rows)?;
        positive("query.max_bytes", self.max_bytes)?;
        positive("query.default_range_hours", self.default_range_hours)?;
        positive("query.trace_max_spans", self.trace_max_spans)?;
        positive("query.trace_max_bytes", self.trace_max_bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_convert_to_storage_defaults() {
        assert_eq!(
            RetentionSection::default().policy().unwrap(),
            RetentionPolicy::default()
        );
        assert_eq!(
            CompactionSection::default().config().unwrap(),
            CompactionConfig::default()
        );
        assert_eq!(duration_text(Some(Duration::from_secs(90))), "90s");
        assert_eq!(duration_text(Some(Duration::from_secs(7200))), "2h");
    }

    #[test]
    fn bad_values_name_their_key() {
        let section = RetentionSection {
            logs: "7 days".into(),
            ..RetentionSection::default()
        };
        let error = section.policy().unwrap_err().to_string();
        assert!(error.contains("retention.logs"), "{error}");
        let mut tenants = BTreeMap::new();
        tenants.insert("../x".to_owned(), TenantRetentionSection::default());
        let section = RetentionSection {
            tenants,
            ..RetentionSection::default()
        };
        assert!(section.policy().is_err());
    }
}

/// `[tls]`: one certificate for every listener (gRPC, OTLP/HTTP, query API), reloaded when its
/// files change; with `client_ca_file`, clients must present a certificate that CA signed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that sign client certificates (mTLS); none: no client certificate asked.
    pub client_ca_file: Option<PathBuf>,
    /// `[[tls.client_tenants]]`: client certificates bound to a tenant by subject common name.
    pub client_tenants: Vec<ClientTenantSection>,
}

/// One `[[tls.client_tenants]]`: a verified client certificate whose subject common name is
/// `common_name` acts for `tenant` with `scopes`, as a key bound to that tenant would.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTenantSection {
    /// The certificate subject's common name (CN), exactly.
    pub common_name: String,
    /// The tenant its requests act for, and the only one.
    pub tenant: String,
    /// `ingest`, `query` (not `admin`, which acts for every tenant).
    pub scopes: Vec<skewer_storage::auth::Scope>,
}

impl ClientTenantSection {
    fn grant(&self) -> Result<skewer_storage::auth::CertificateGrant, String> {
        use skewer_storage::auth::Scope;
        if self.common_name.is_empty() {
            return Err("common_name must not be empty".to_owned());
        }
        let tenant = self
            .tenant
            .parse()
            .map_err(|err| format!("{}: {err}", self.common_name))?;
        if self.scopes.is_empty() {
            return Err(format!("{}: give at least one scope", self.common_name));
        }
        if self.scopes.contains(&Scope::Admin) {
            return Err(format!(
                "{}: admin acts for every tenant; a certificate maps to one (use an admin key)",
                self.common_name
            ));
        }
        Ok(skewer_storage::auth::CertificateGrant {
            common_name: self.common_name.clone(),
            tenant,
            scopes: self.scopes.iter().copied().collect(),
        })
    }
}

impl TlsSection {
    /// The files TLS is built from, when it is on.
    pub fn files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert_file: self.cert_file.clone()?,
            key_file: self.key_file.clone()?,
            client_ca_file: self.client_ca_file.clone(),
            // Validated at load: every section maps.
            client_tenants: crate::tls::ClientTenants::new(
                self.client_tenants
                    .iter()
                    .filter_map(|section| section.grant().ok()),
            ),
        })
    }

    /// Rejects half a configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(invalid("tls.key_file", "tls.cert_file needs its key")),
            (None, Some(_)) => Err(invalid(
                "tls.cert_file",
                "tls.key_file needs its certificate",
            )),
            (None, None) if self.client_ca_file.is_some() => Err(invalid(
                "tls.client_ca_file",
                "client certificates need TLS: set tls.cert_file and tls.key_file",
            )),
            _ => Ok(()),
        }?;
        if !self.client_tenants.is_empty() && self.client_ca_file.is_none() {
            return Err(invalid(
                "tls.client_tenants",
                "mapping client certificates needs tls.client_ca_file (mTLS)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for section in &self.client_tenants {
            let _grant = section.grant().map_err(|reason| ConfigError::Invalid {
                key: "tls.client_tenants",
                reason,
            })?;
            if !names.insert(&section.common_name) {
                return Err(ConfigError::Invalid {
                    key: "tls.client_tenants",
                    reason: format!("{} is mapped twice", section.common_name),
                });
            }
        }
        Ok(())
    }
}

/// `[connections]`: the bounds every client connection and request body runs within, so a
/// slow or stalled client holds neither memory nor a connection for long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Open connections per listener; past it, new ones wait to be accepted.
    pub max_connections: usize,
    /// Open connections per listener from one client address (IPv6: one /64); past it, its new
    /// connections are closed at once. 0: no cap (behind a proxy that hides client addresses).
    pub max_connections_per_address: usize,
    /// An OTLP/gRPC connection is asked to go away (HTTP/2 GOAWAY; clients reconnect) after
    /// this long and closes once its calls in flight are answered: idle connections do not
    /// live forever.
    pub grpc_max_connection_age_seconds: u64,
    /// An HTTP/1 client must send its request headers within this.
    pub header_read_timeout_seconds: u64,
    /// A request body (an OTLP/gRPC message) must arrive whole within this.
    pub body_timeout_seconds: u64,
    /// Past its first five seconds, a body arriving slower than this on average is cut.
    pub min_body_bytes_per_second: u64,
}

impl Default for ConnectionsSection {
    fn default() -> Self {
        let body = skewer_ingest::body_guard::BodyLimits::default();
        Self {
            max_connections: 4096,
            max_connections_per_address: 256,
            grpc_max_connection_age_seconds: 900,
            header_read_timeout_seconds: 10,
            body_timeout_seconds: body.deadline.as_secs(),
            min_body_bytes_per_second: body.min_bytes_per_second,
        }
    }
}

impl ConnectionsSection {
    /// Rejects bounds that would refuse every client.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("connections.max_connections", self.max_connections as u64)?;
        positive(
            "connections.grpc_max_connection_age_seconds",
            self.grpc_max_connection_age_seconds,
        )?;
        positive(
            "connections.header_read_timeout_seconds",
            self.header_read_timeout_seconds,
        )?;
        positive(
            "connections.body_timeout_seconds",
            self.body_timeout_seconds,
        )?;
        Ok(())
    }

    /// The body bounds ingest applies.
    pub fn body_limits(&self) -> skewer_ingest::body_guard::BodyLimits {
        skewer_ingest::body_guard::BodyLimits {
            deadline: Duration::from_secs(self.body_timeout_seconds),
            min_bytes_per_second: self.min_body_bytes_per_second,
            ..skewer_ingest::body_guard::BodyLimits::default()
        }
    }
}
