//! Typed configuration, layered: defaults < file (`skewer.toml`) < `SKEWER_*` env < flags.
//!
//! Every key has a default, so `skewer serve` runs with no file at all; unknown keys in a
//! file are errors, not silent typos. Storage defaults come from storage itself, so they are
//! stated once.

pub mod alerting;
mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use skewer_storage::config::StorageConfig;

pub mod units;

pub use sections::{
    CatalogSection, CompactionSection, ConnectionsSection, QuerySection, RetentionSection,
    StorageSection, TlsSection,
};

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of the WAL, data files and indexes.
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    #[serde(deserialize_with = "units::addr")]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    #[serde(deserialize_with = "units::addr")]
    pub otlp_http_addr: SocketAddr,
    /// Query API (and UI) listen address.
    #[serde(deserialize_with = "units::addr")]
    pub http_addr: SocketAddr,
    /// What this node does in a deployment of several (`all` alone).
    pub role: crate::role::Role,
    /// Largest OTLP request: gRPC message or HTTP body, before and after decompression.
    #[serde(deserialize_with = "units::size_usize")]
    pub max_request_bytes: usize,
    /// Memory budget for data in flight and in buffers; past it exports get a retryable answer.
    #[serde(deserialize_with = "units::size_usize")]
    pub max_buffered_bytes: usize,
    /// Spans and metrics are written to Parquet at least this often.
    pub flush_interval_seconds: u64,
    /// A signal's buffer is flushed early past this size.
    #[serde(deserialize_with = "units::size_usize")]
    pub flush_max_bytes: usize,
    /// Logs are committed to the full-text index at least this often.
    pub log_commit_interval_seconds: u64,
    /// A log partition that takes no records this long has its writer closed and its
    /// small segments merged (`log_store::quiet_merge`).
    pub log_writer_idle_seconds: u64,
    /// A WAL segment is closed past this size.
    #[serde(deserialize_with = "units::size_u64")]
    pub wal_segment_max_bytes: u64,
    /// Log attribute keys tried in order for a record's correlation id.
    pub correlation_id_attributes: Vec<String>,
    /// `[storage]`: the data directory, or an S3-compatible bucket for span and metric files.
    pub storage: StorageSection,
    /// `[catalog]`: the embedded catalog, or PostgreSQL for manifests.
    pub catalog: CatalogSection,
    /// `[retention]`.
    pub retention: RetentionSection,
    /// `[compaction]`.
    pub compaction: CompactionSection,
    /// `[query]`.
    pub query: QuerySection,
    /// `[tls]`.
    pub tls: TlsSection,
    /// `[limits]`: the tenant cap and per-tenant ingest rates.
    pub limits: skewer_ingest::limits::LimitsConfig,
    /// `[redaction]`: rules applied to every export before it is written.
    pub redaction: skewer_ingest::redact::RedactionConfig,
    /// `[record_limits]`: what one span, log record or data point may carry.
    pub record_limits: skewer_ingest::record_limits::RecordLimits,
    /// `[connections]`: bounds on client connections and request bodies.
    pub connections: ConnectionsSection,
    /// `[span_metrics]`: calls and durations per operation, kept at ingest.
    pub span_metrics: skewer_ingest::span_metrics::SpanMetricsConfig,
    /// `[alerting]`: rule files, timing and webhook receivers.
    pub alerting: alerting::AlertingSection,
    /// On SIGTERM, requests in flight get this long to finish before they are cut.
    pub shutdown_grace_seconds: u64,
    /// Then the final flush gets this long; what it has not written by then stays in the WAL
    /// for the next start.
    pub shutdown_flush_timeout_seconds: u64,
    /// Serve on non-loopback addresses without API keys or TLS (the operator says the network
    /// is trusted).
    pub insecure: bool,
}

impl Default for Config {
    fn default() -> Self {
        let storage = StorageConfig::new(PathBuf::from("./skewer-data"));
        Self {
            data_dir: storage.data_dir,
            otlp_grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            role: crate::role::Role::All,
            max_request_bytes: 16 * 1024 * 1024,
            max_buffered_bytes: storage.max_buffered_bytes,
            flush_interval_seconds: storage.flush_interval.as_secs(),
            flush_max_bytes: storage.flush_max_bytes,
            log_commit_interval_seconds: storage.log_commit_interval.as_secs(),
            log_writer_idle_seconds: storage.log_writer_idle.as_secs(),
            wal_segment_max_bytes: storage.wal_segment_max_bytes,
            storage: StorageSection::default(),
            catalog: CatalogSection::default(),
            retention: RetentionSection::default(),
            compaction: CompactionSection::default(),
            query: QuerySection::default(),
            tls: TlsSection::default(),
            redaction: skewer_ingest::redact::RedactionConfig::default(),
            limits: skewer_ingest::limits::LimitsConfig::default(),
            record_limits: skewer_ingest::record_limits::RecordLimits::default(),
            connections: ConnectionsSection::default(),
            alerting: alerting::AlertingSection::default(),
            span_metrics: skewer_ingest::span_metrics::SpanMetricsConfig::default(),
            shutdown_grace_seconds: 20,
            shutdown_flush_timeout_seconds: 8,
            insecure: false,
            correlation_id_attributes: [
                "correlation_id",
                "correlation.id",
                "request_id",
                "request.id",
                "x-request-id",
                "http.request.header.x-request-id",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// `value` if it is above zero, else which key is wrong.
fn positive(key: &'static str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        Err(ConfigError::Invalid {
            key,
            reason: "must be greater than 0".to_owned(),
        })
    } else {
        Ok(value)
    }
}

/// Values given as flags or `SKEWER_*` env vars; `None` keeps the lower layer's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir` / `SKEWER_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--otlp-grpc-addr` / `SKEWER_OTLP_GRPC_ADDR`.
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// `--otlp-http-addr` / `SKEWER_OTLP_HTTP_ADDR`.
    pub otlp_http_addr: Option<SocketAddr>,
    /// `--http-addr` / `SKEWER_HTTP_ADDR`.
    pub http_addr: Option<SocketAddr>,
    /// `role`.
    pub role: Option<crate::role::Role>,
    /// `--max-request-bytes`.
    pub max_request_bytes: Option<usize>,
    /// `--max-buffered-bytes`.
    pub max_buffered_bytes: Option<usize>,
    /// `--flush-interval-seconds`.
    pub flush_interval_seconds: Option<u64>,
    /// `--flush-max-bytes`.
    pub flush_max_bytes: Option<usize>,
    /// `--log-commit-interval-seconds`.
    pub log_commit_interval_seconds: Option<u64>,
    /// `--log-writer-idle-seconds`.
    pub log_writer_idle_seconds: Option<u64>,
    /// `--wal-segment-max-bytes`.
    pub wal_segment_max_bytes: Option<u64>,
    /// `--correlation-id-attributes`.
    pub correlation_id_attributes: Option<Vec<String>>,
    /// `--retention-traces` / `SKEWER_RETENTION_TRACES`.
    pub retention_traces: Option<String>,
    /// `--retention-logs` / `SKEWER_RETENTION_LOGS`.
    pub retention_logs: Option<String>,
    /// `--retention-metrics` / `SKEWER_RETENTION_METRICS`.
    pub retention_metrics: Option<String>,
    /// `--retention-check-interval-seconds`.
    pub retention_check_interval_seconds: Option<u64>,
    /// `--compaction-enabled`.
    pub compaction_enabled: Option<bool>,
    /// `--compaction-target-file-bytes`.
    pub compaction_target_file_bytes: Option<u64>,
    /// `--compaction-interval-seconds`.
    pub compaction_interval_seconds: Option<u64>,
    /// `--query-timeout-seconds`.
    pub query_timeout_seconds: Option<u64>,
    /// `--query-max-concurrent`.
    pub query_max_concurrent: Option<usize>,
    /// `--query-max-rows`.
    pub query_max_rows: Option<u64>,
    /// `--shutdown-grace-seconds`.
    pub shutdown_grace_seconds: Option<u64>,
    /// `--insecure`.
    pub insecure: Option<bool>,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
    /// `--tls-client-ca-file`.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `--alerting-rule-files` / `SKEWER_ALERTING_RULE_FILES`.
    pub alerting_rule_files: Option<Vec<String>>,
}

impl Config {
    /// The largest `max_request_bytes`: a request must fit one WAL record.
    pub const MAX_REQUEST_BYTES_LIMIT: usize = 256 * 1024 * 1024;

    /// The file read when `--config` is not given, if it exists in the working directory.
    pub const DEFAULT_FILE: &'static str = "skewer.toml";

    /// Parses TOML text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Defaults, then the file (the named one, else `./skewer.toml` if present), then overrides.
    pub fn load(
        file: Option<&Path>,
        overrides: Overrides,
    ) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let (mut config, used_file) = match file {
            Some(path) => (Self::read_file(path)?, Some(path.to_path_buf())),
            None => {
                let default = Path::new(Self::DEFAULT_FILE);
                if default.is_file() {
                    (Self::read_file(default)?, Some(default.to_path_buf()))
                } else {
                    (Self::default(), None)
                }
            }
        };
        config.apply(overrides);
        config.validate()?;
        Ok((config, used_file))
    }

    fn read_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, path)?;
        // Rule files are named relative to the config file, as Prometheus names them.
        let dir = path.parent().unwrap_or(Path::new("."));
        config.alerting.resolve_paths(dir);
        Ok(config)
    }

    fn apply(&mut self, o: Overrides) {
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(value) = o.$field { self.$field = value; } )* };
        }
        take!(
            data_dir,
            otlp_grpc_addr,
            otlp_http_addr,
            http_addr,
            role,
            max_request_bytes,
            max_buffered_bytes,
            flush_interval_seconds,
            flush_max_bytes,
            log_commit_interval_seconds,
            log_writer_idle_seconds,
            wal_segment_max_bytes,
            correlation_id_attributes,
            shutdown_grace_seconds,
            insecure
        );
        macro_rules! take_into {
            ($($field:ident => $section:ident . $key:ident),*) => {
                $( if let Some(value) = o.$field { self.$section.$key = value; } )*
            };
        }
        take_into!(
            retention_traces => retention.traces,
            retention_logs => retention.logs,
            retention_metrics => retention.metrics,
            retention_check_interval_seconds => retention.check_interval_seconds,
            compaction_enabled => compaction.enabled,
            compaction_target_file_bytes => compaction.target_file_bytes,
            compaction_interval_seconds => compaction.interval_seconds,
            query_timeout_seconds => query.timeout_seconds,
            query_max_concurrent => query.max_concurrent,
            query_max_rows => query.max_rows,
            alerting_rule_files => alerting.rule_files
        );
        macro_rules! take_some_into {
            ($($field:ident => $section:ident . $key:ident),*) => {
                $( if let Some(value) = o.$field { self.$section.$key = Some(value); } )*
            };
        }
        take_some_into!(
            tls_cert_file => tls.cert_file,
            tls_key_file => tls.key_file,
            tls_client_ca_file => tls.client_ca_file
        );
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("max_request_bytes", self.max_request_bytes as u64)?;
        if self.max_request_bytes > Self::MAX_REQUEST_BYTES_LIMIT {
            return Err(ConfigError::Invalid {
                key: "max_request_bytes",
                reason: format!(
                    "must be at most {} (one WAL record)",
                    Self::MAX_REQUEST_BYTES_LIMIT
                ),
            });
        }
        positive("max_buffered_bytes", self.max_buffered_bytes as u64)?;
        positive("flush_interval_seconds", self.flush_interval_seconds)?;
        positive(
            "log_commit_interval_seconds",
            self.log_commit_interval_seconds,
        )?;
        positive("log_writer_idle_seconds", self.log_writer_idle_seconds)?;
        positive("flush_max_bytes", self.flush_max_bytes as u64)?;
        positive("wal_segment_max_bytes", self.wal_segment_max_bytes)?;
        let bucket = self.storage.object_store()?;
        if self.role != crate::role::Role::All && bucket.is_none() {
            return Err(ConfigError::Invalid {
                key: "role",
                reason: format!(
                    "{:?} needs the tables in a bucket the nodes share ([storage] url = \"s3://…\"); \
                     on a local data directory one node does everything (role \"all\")",
                    self.role.name()
                ),
            });
        }
        positive("storage.log_cache_bytes", self.storage.log_cache_bytes)?;
        self.catalog.url()?;
        positive(
            "catalog.refresh_interval_seconds",
            self.catalog.refresh_interval_seconds,
        )?;
        self.retention.policy()?;
        self.compaction.config()?;
        self.query.validate()?;
        self.tls.validate()?;
        self.connections.validate()?;
        self.alerting.settings("")?;
        positive(
            "span_metrics.interval_seconds",
            self.span_metrics.interval_seconds,
        )?;
        Ok(())
    }

    /// The storage settings this configuration asks for.
    pub fn storage_config(&self) -> Result<StorageConfig, ConfigError> {
        Ok(StorageConfig {
            max_buffered_bytes: self.max_buffered_bytes,
            flush_interval: self.flush_interval(),
            flush_max_bytes: self.flush_max_bytes,
            log_commit_interval: self.log_commit_interval(),
            log_writer_idle: Duration::from_secs(self.log_writer_idle_seconds),
            wal_segment_max_bytes: self.wal_segment_max_bytes,
            retention: self.retention.policy()?,
            compaction: self.compaction.config()?,
            object_store: self.storage.object_store()?,
            catalog_url: self.catalog.url()?,
            catalog_refresh_interval: Duration::from_secs(self.catalog.refresh_interval_seconds),
            table_maintenance: self.role.maintains_tables(),
            log_cache_bytes: self.storage.log_cache_bytes,
            ingests: self.role.ingests(),
            ..StorageConfig::new(self.data_dir.clone())
        })
    }

    /// Flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.flush_interval_seconds)
    }

    /// Log commit interval as a duration.
    pub fn log_commit_interval(&self) -> Duration {
        Duration::from_secs(self.log_commit_interval_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let text = include_str!("../../skewer.example.toml");
        let parsed = Config::from_toml(text, Path::new("skewer.example.toml")).unwrap();
        assert_eq!(parsed, Config::default());
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table.len(), 28, "every key of Config is in the example");
        assert_eq!(table["storage"].as_table().unwrap().len(), 8);
        assert_eq!(table["alerting"].as_table().unwrap().len(), 7);
        assert_eq!(table["query"].as_table().unwrap().len(), 9);
        let retention = table["retention"].as_table().unwrap();
        assert_eq!(
            retention.len(),
            5,
            "every [retention] key and the tenants table"
        );
        assert_eq!(table["compaction"].as_table().unwrap().len(), 4);
    }

    #[test]
    fn a_bucket_is_configured_under_storage_and_bad_ones_are_named() {
        let text = "[storage]\nurl = \"s3://b/team\"\nendpoint = \"http://127.0.0.1:9000\"\n\
                    path_style = true\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3cr3t\"\n";
        let config = Config::from_toml(text, Path::new("t.toml")).unwrap();
        let bucket = config.storage_config().unwrap().object_store.unwrap();
        assert_eq!(bucket.url, "s3://b/team");
        assert_eq!(bucket.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(bucket.path_style && bucket.region.is_none());
        assert_eq!(bucket.credentials, Some(("AKID".into(), "s3cr3t".into())));
        assert!(!format!("{config:?}").contains("s3cr3t"));
        assert!(
            Config::default()
                .storage_config()
                .unwrap()
                .object_store
                .is_none()
        );
        let catalog = Config::from_toml(
            "[catalog]\nurl = \"postgres://skewer:pa55@db:5432/skewer\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            catalog.storage_config().unwrap().catalog_url.as_deref(),
            Some("postgres://skewer:pa55@db:5432/skewer")
        );
        assert!(!format!("{catalog:?}").contains("pa55"));
        let bad = Config::from_toml("[catalog]\nurl = \"mysql://db\"\n", Path::new("t.toml"));
        assert!(
            bad.unwrap()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("catalog.url")
        );
        for (bad, key) in [
            ("url = \"b/team\"", "storage.url"),
            (
                "url = \"s3://b\"\naccess_key_id = \"AKID\"",
                "storage.access_key_id",
            ),
            (
                "url = \"s3://b\"\nretry_timeout_seconds = 0",
                "storage.retry_timeout_seconds",
            ),
        ] {
            let config = Config::from_toml(&format!("[storage]\n{bad}\n"), Path::new("t.toml"));
            let err = config.unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn clock_skew_handling_is_configured_under_query() {
        let default = Config::from_toml("", Path::new("t.toml")).unwrap();
        assert!(default.query.skew_options().adjust);
        assert_eq!(
            default.query.skew_options().max_adjust_nanos,
            60_000_000_000
        );
        let warn = Config::from_toml(
            "[query]\nclock_skew = \"warn\"\nmax_clock_skew_adjustment_ms = 500\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(!warn.query.skew_options().adjust);
        assert_eq!(warn.query.skew_options().max_adjust_nanos, 500_000_000);
        let err =
            Config::from_toml("[query]\nclock_skew = \"fix\"\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("fix"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_toml("data_dri = \"x\"", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("data_dri"));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skewer.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nflush_interval_seconds = 7\n",
        )
        .unwrap();
        let overrides = Overrides {
            flush_interval_seconds: Some(9),
            ..Overrides::default()
        };
        let (config, used) = Config::load(Some(&path), overrides).unwrap();
        assert_eq!(used.as_deref(), Some(path.as_path()));
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.flush_interval_seconds, 9);
        assert_eq!(config.http_addr, Config::default().http_addr);
    }

    #[test]
    fn sections_layer_like_top_level_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skewer.toml");
        std::fs::write(
            &path,
            "[retention]\ntraces = \"30d\"\nlogs = \"2d\"\n[retention.tenants.acme]\nmetrics = \"0\"\n[compaction]\nenabled = false\n",
        )
        .unwrap();
        let overrides = Overrides {
            retention_logs: Some("12h".into()),
            ..Overrides::default()
        };
        let (config, _) = Config::load(Some(&path), overrides).unwrap();
        let policy = config.retention.policy().unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(policy.default.traces, Some(30 * day));
        assert_eq!(policy.default.logs, Some(Duration::from_secs(12 * 3600)));
        let acme = "acme".parse().unwrap();
        assert_eq!(
            policy.retention(&acme, skewer_storage::model::Signal::Metrics),
            None
        );
        assert!(!config.storage_config().unwrap().compaction.enabled);
        let bad = Overrides {
            retention_traces: Some("forever".into()),
            ..Overrides::default()
        };
        let error = Config::load(Some(&path), bad).unwrap_err().to_string();
        assert!(error.contains("retention.traces"), "{error}");
    }

    #[test]
    fn zero_values_are_refused() {
        let overrides = Overrides {
            max_buffered_bytes: Some(0),
            ..Overrides::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.toml");
        std::fs::write(&path, "").unwrap();
        assert!(Config::load(Some(&path), overrides).is_err());
    }

    #[test]
    fn tls_needs_both_files_and_flags_fill_them_in() {
        let half = "[tls]\ncert_file = \"a.crt\"\n";
        let parsed = Config::from_toml(half, Path::new("x.toml")).unwrap();
        let err = parsed.validate().unwrap_err().to_string();
        assert!(err.contains("tls.key_file"), "{err}");
        let ca_only =
            Config::from_toml("[tls]\nclient_ca_file = \"ca.crt\"\n", Path::new("x.toml")).unwrap();
        assert!(ca_only.validate().is_err());

        let mut config = Config::default();
        config.apply(Overrides {
            tls_cert_file: Some(PathBuf::from("a.crt")),
            tls_key_file: Some(PathBuf::from("a.key")),
            insecure: Some(true),
            ..Overrides::default()
        });
        config.validate().unwrap();
        let files = config.tls.files().unwrap();
        assert_eq!(files.cert_file, PathBuf::from("a.crt"));
        assert_eq!(files.client_ca_file, None);
        assert!(config.insecure);
        assert!(Config::default().tls.files().is_none());
    }

    #[test]
    fn client_certificates_map_to_one_tenant_each_and_need_mtls() {
        let tls = "[tls]\ncert_file = \"a.crt\"\nkey_file = \"a.key\"\n";
        let mapping = |common_name: &str, tenant: &str, scopes: &str| {
            format!(
                "[[tls.client_tenants]]\ncommon_name = \"{common_name}\"\ntenant = \"{tenant}\"\nscopes = {scopes}\n"
            )
        };
        let error = |text: String| {
            Config::from_toml(&text, Path::new("x.toml"))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let no_ca = error(format!("{tls}{}", mapping("c", "shop", "[\"ingest\"]")));
        assert!(no_ca.contains("client_ca_file"), "{no_ca}");
        let with_ca = format!("{tls}client_ca_file = \"ca.crt\"\n");
        for (bad, why) in [
            (mapping("c", "shop", "[\"admin\"]"), "admin"),
            (mapping("c", "shop", "[]"), "scope"),
            (mapping("c", "../x", "[\"query\"]"), "tenant"),
            (mapping("", "shop", "[\"query\"]"), "common_name"),
            (
                format!(
                    "{}{}",
                    mapping("c", "a", "[\"query\"]"),
                    mapping("c", "b", "[\"query\"]")
                ),
                "twice",
            ),
        ] {
            let message = error(format!("{with_ca}{bad}"));
            assert!(message.contains(why), "{why}: {message}");
        }
        let good = Config::from_toml(
            &format!(
                "{with_ca}{}",
                mapping("collector", "shop", "[\"ingest\", \"query\"]")
            ),
            Path::new("x.toml"),
        )
        .unwrap();
        good.validate().unwrap();
        assert!(good.tls.files().is_some());
    }
}
