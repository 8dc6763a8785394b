//! The command line: `skewer serve` and its flags, each also readable from a `SKEWER_*` env var.

use std::net::SocketAddr;

use crate::config::units::{parse_addr, parse_size, parse_size_usize};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use skewer_storage::auth::{Scope, TenantGrant};
use skewer_storage::retention::parse_retention;

use crate::config::Overrides;

/// skewer: one backend for OpenTelemetry traces, logs and metrics.
#[derive(Debug, Parser)]
#[command(name = "skewer", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: OTLP ingest (gRPC 4317, HTTP 4318) and the query API (8080).
    Serve(Box<ServeArgs>),
    /// Send generated OTLP load (traces, logs, metrics) to skewer or any OTLP backend.
    Loadgen(Box<skewer_loadgen::LoadgenArgs>),
    /// Copy a data directory consistently while `serve` runs on it, or (--config) a shared
    /// deployment's bucket and catalog database while its nodes run.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory, or (--config) a deployment backup into an
    /// empty bucket and catalog database.
    Restore(RestoreArgs),
    /// Verify a data directory against its manifests (--repair fixes what can be fixed), or
    /// (--config) a shared deployment's bucket against its catalog, read-only.
    Check(CheckArgs),
    /// Create, list and revoke API keys (a running server picks changes up within seconds).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show and change the tenant limits a deployment shares in its catalog database
    /// (every node follows a change within one catalog refresh).
    #[command(subcommand)]
    Limits(LimitsCommand),
}

/// `skewer limits …`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Print the limits in force, as a `[limits]` table.
    Show(LimitsConfigArgs),
    /// Set limits of every tenant, or a tenant's own with --tenant: KEY=VALUE… (0: unlimited).
    Set(LimitsSetArgs),
    /// Lift limits of every tenant (back to 0), or drop a tenant's own (all without KEYs).
    Unset(LimitsUnsetArgs),
}

/// The config file naming the catalog database whose limits are meant.
#[derive(Debug, Args)]
pub struct LimitsConfigArgs {
    /// The server's config file (its `[catalog] url`; without one, its `[limits]`).
    /// Default: ./skewer.toml if it exists
    #[arg(long, env = "SKEWER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags of `limits set`.
#[derive(Debug, Args)]
pub struct LimitsSetArgs {
    /// The config file.
    #[command(flatten)]
    pub config: LimitsConfigArgs,
    /// Set this tenant's own limits instead of every tenant's
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<skewer_storage::model::TenantId>,
    /// KEY=VALUE, keys as in [limits] (ingest_records_per_second=5000 …)
    #[arg(value_name = "KEY=VALUE", required = true)]
    pub values: Vec<String>,
}

/// Flags of `limits unset`.
#[derive(Debug, Args)]
pub struct LimitsUnsetArgs {
    /// The config file.
    #[command(flatten)]
    pub config: LimitsConfigArgs,
    /// Drop this tenant's own limits instead of lifting every tenant's
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<skewer_storage::model::TenantId>,
    /// Keys as in [limits]; with --tenant and none, all of the tenant's own
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,
}

/// `skewer keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it once (the last line of output is the key and nothing else).
    Create(KeysCreateArgs),
    /// List every key: id, name, tenant, scopes, status, created, expires.
    List(KeysDirArgs),
    /// Revoke a key by its id; a running server refuses it within 5 seconds.
    Revoke(KeysRevokeArgs),
}

/// The data directory (or, with `[catalog] url` in the config, the catalog database) whose
/// keys are meant.
#[derive(Debug, Args)]
pub struct KeysDirArgs {
    /// The server's config file: keys live in its `[catalog] url` database when it names one.
    /// Default: ./skewer.toml if it exists
    #[arg(long, env = "SKEWER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory the server runs on
    #[arg(
        long,
        env = "SKEWER_DATA_DIR",
        value_name = "DIR",
        default_value = "skewer-data"
    )]
    pub data_dir: PathBuf,
}

/// Flags of `keys create`.
#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    #[command(flatten)]
    pub dir: KeysDirArgs,
    /// The tenant the key acts for, or '*' for every tenant (required for admin keys)
    #[arg(long, value_name = "TENANT")]
    pub tenant: TenantGrant,
    /// What the key may do: ingest, query, admin (comma-separated or repeated)
    #[arg(long, value_name = "SCOPES", value_delimiter = ',', required = true)]
    pub scope: Vec<Scope>,
    /// A label for people ("checkout exporter")
    #[arg(long, value_name = "NAME", default_value = "")]
    pub name: String,
    /// How long the key works ("90d", "12h"; default: until revoked)
    #[arg(long, value_name = "DURATION", value_parser = parse_expiry)]
    pub expires: Option<Duration>,
}

/// Flags of `keys revoke`.
#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    #[command(flatten)]
    pub dir: KeysDirArgs,
    /// The key's id, as `keys list` shows it (the part after `skw_`)
    #[arg(value_name = "ID")]
    pub id: String,
}

fn parse_expiry(text: &str) -> Result<Duration, String> {
    parse_retention(text)?
        .ok_or_else(|| format!("{text:?}: a key's lifetime must be longer than 0"))
}

/// Flags of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory to back up (a server may be running on it)
    #[arg(
        long,
        env = "SKEWER_DATA_DIR",
        value_name = "DIR",
        required_unless_present = "config"
    )]
    pub data_dir: Option<PathBuf>,
    /// A config naming a shared deployment ([storage] url, [catalog] url): back up its bucket
    /// and catalog database instead (its nodes may be running)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the backup goes: a new or empty directory (a deployment's backup also an empty
    /// s3://bucket/prefix, reached with the deployment's [storage] endpoint and credentials)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Flags of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `skewer backup` (or the s3://bucket/prefix of a deployment's)
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The data directory to create: new or empty (a data directory backup)
    #[arg(long, value_name = "DIR", required_unless_present = "config")]
    pub data_dir: Option<PathBuf>,
    /// A config naming the deployment to restore into, with an empty bucket and catalog (a
    /// deployment backup)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The data directory to verify
    #[arg(
        long,
        env = "SKEWER_DATA_DIR",
        value_name = "DIR",
        required_unless_present = "config"
    )]
    pub data_dir: Option<PathBuf>,
    /// A config naming a shared deployment ([storage] url, [catalog] url): verify its bucket
    /// against its catalog instead, read-only (its nodes may be running)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Fix what can be fixed: rebuild missing or damaged manifests from the files, drop entries
    /// whose files are gone, delete files no manifest lists (needs the server stopped)
    #[arg(long)]
    pub repair: bool,
}

/// Flags of `serve`. Precedence: defaults < config file < SKEWER_* env < flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML). Default: ./skewer.toml if it exists.
    #[arg(long, env = "SKEWER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Root of the WAL, data files and indexes [default: ./skewer-data]
    #[arg(long, env = "SKEWER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address, ip:port or host:port [default: 127.0.0.1:4317]
    #[arg(long, env = "SKEWER_OTLP_GRPC_ADDR", value_name = "ADDR", value_parser = parse_addr)]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318]
    #[arg(long, env = "SKEWER_OTLP_HTTP_ADDR", value_name = "ADDR", value_parser = parse_addr)]
    pub otlp_http_addr: Option<SocketAddr>,
    /// Query API listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "SKEWER_HTTP_ADDR", value_name = "ADDR", value_parser = parse_addr)]
    pub http_addr: Option<SocketAddr>,
    /// What this node does beside others on one bucket: all, ingest, query, compactor [default: all]
    #[arg(long, env = "SKEWER_ROLE", value_name = "ROLE")]
    pub role: Option<crate::role::Role>,
    /// Largest OTLP request, also after decompression (bytes, or with a unit: 16MiB) [default: 16 MiB]
    #[arg(long, env = "SKEWER_MAX_REQUEST_BYTES", value_name = "BYTES", value_parser = parse_size_usize)]
    pub max_request_bytes: Option<usize>,
    /// Memory budget for unflushed data (bytes or 512MiB); past it exports are told to retry [default: 512 MiB]
    #[arg(long, env = "SKEWER_MAX_BUFFERED_BYTES", value_name = "BYTES", value_parser = parse_size_usize)]
    pub max_buffered_bytes: Option<usize>,
    /// Write spans and metrics to Parquet at least this often [default: 30]
    #[arg(long, env = "SKEWER_FLUSH_INTERVAL_SECONDS", value_name = "SECONDS")]
    pub flush_interval_seconds: Option<u64>,
    /// Flush a signal early once its buffer holds this much (bytes or 48MiB) [default: 48 MiB]
    #[arg(long, env = "SKEWER_FLUSH_MAX_BYTES", value_name = "BYTES", value_parser = parse_size_usize)]
    pub flush_max_bytes: Option<usize>,
    /// Commit logs to the full-text index at least this often [default: 5]
    #[arg(
        long,
        env = "SKEWER_LOG_COMMIT_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub log_commit_interval_seconds: Option<u64>,
    /// Close a log partition's writer and merge its small segments (up to 1.5M records into
    /// one) once it has taken no records this long [default: 300]
    #[arg(long, env = "SKEWER_LOG_WRITER_IDLE_SECONDS", value_name = "SECONDS")]
    pub log_writer_idle_seconds: Option<u64>,
    /// Close a WAL segment past this size (bytes or 64MiB) [default: 64 MiB]
    #[arg(long, env = "SKEWER_WAL_SEGMENT_MAX_BYTES", value_name = "BYTES", value_parser = parse_size)]
    pub wal_segment_max_bytes: Option<u64>,
    /// Log attribute keys tried in order for the correlation id (comma-separated)
    #[arg(
        long,
        env = "SKEWER_CORRELATION_ID_ATTRIBUTES",
        value_name = "KEYS",
        value_delimiter = ','
    )]
    pub correlation_id_attributes: Option<Vec<String>>,
    /// How long spans are kept ("7d", "36h"; "0" keeps forever) [default: 7d]
    #[arg(long, env = "SKEWER_RETENTION_TRACES", value_name = "DURATION")]
    pub retention_traces: Option<String>,
    /// How long log records are kept [default: 7d]
    #[arg(long, env = "SKEWER_RETENTION_LOGS", value_name = "DURATION")]
    pub retention_logs: Option<String>,
    /// How long metric points are kept [default: 7d]
    #[arg(long, env = "SKEWER_RETENTION_METRICS", value_name = "DURATION")]
    pub retention_metrics: Option<String>,
    /// How often expired data is looked for [default: 60]
    #[arg(
        long,
        env = "SKEWER_RETENTION_CHECK_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub retention_check_interval_seconds: Option<u64>,
    /// Merge small files into large ones [default: true]
    #[arg(long, env = "SKEWER_COMPACTION_ENABLED", value_name = "BOOL")]
    pub compaction_enabled: Option<bool>,
    /// Largest file compaction writes (bytes or 2GiB) [default: 2 GiB]
    #[arg(
        long,
        env = "SKEWER_COMPACTION_TARGET_FILE_BYTES",
        value_name = "BYTES",
        value_parser = parse_size
    )]
    pub compaction_target_file_bytes: Option<u64>,
    /// Pause between compaction passes [default: 30]
    #[arg(
        long,
        env = "SKEWER_COMPACTION_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub compaction_interval_seconds: Option<u64>,
    /// A query running longer is answered 504 [default: 30]
    #[arg(long, env = "SKEWER_QUERY_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub query_timeout_seconds: Option<u64>,
    /// Queries served at once; more get 503 with Retry-After [default: 16]
    #[arg(long, env = "SKEWER_QUERY_MAX_CONCURRENT", value_name = "N")]
    pub query_max_concurrent: Option<usize>,
    /// Rows one query may read before it is answered 422 [default: 1000000]
    #[arg(long, env = "SKEWER_QUERY_MAX_ROWS", value_name = "N")]
    pub query_max_rows: Option<u64>,
    /// On SIGTERM, requests in flight get this long before they are cut [default: 20]
    #[arg(long, env = "SKEWER_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Listen on non-loopback addresses without API keys or TLS (only on a network you trust)
    #[arg(long, env = "SKEWER_INSECURE")]
    pub insecure: bool,
    /// PEM certificate chain: TLS on every listener (reloaded when the file changes)
    #[arg(long, env = "SKEWER_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file
    #[arg(long, env = "SKEWER_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate they signed (mTLS)
    #[arg(long, env = "SKEWER_TLS_CLIENT_CA_FILE", value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Alerting rule files or globs, comma-separated (Prometheus rule-file format)
    #[arg(
        long,
        env = "SKEWER_ALERTING_RULE_FILES",
        value_name = "FILES",
        value_delimiter = ','
    )]
    pub alerting_rule_files: Option<Vec<String>>,
}

impl ServeArgs {
    /// The flag/env layer of the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            otlp_grpc_addr: self.otlp_grpc_addr,
            otlp_http_addr: self.otlp_http_addr,
            http_addr: self.http_addr,
            role: self.role,
            max_request_bytes: self.max_request_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            flush_interval_seconds: self.flush_interval_seconds,
            flush_max_bytes: self.flush_max_bytes,
            log_commit_interval_seconds: self.log_commit_interval_seconds,
            log_writer_idle_seconds: self.log_writer_idle_seconds,
            wal_segment_max_bytes: self.wal_segment_max_bytes,
            correlation_id_attributes: self.correlation_id_attributes.clone(),
            retention_traces: self.retention_traces.clone(),
            retention_logs: self.retention_logs.clone(),
            retention_metrics: self.retention_metrics.clone(),
            retention_check_interval_seconds: self.retention_check_interval_seconds,
            compaction_enabled: self.compaction_enabled,
            compaction_target_file_bytes: self.compaction_target_file_bytes,
            compaction_interval_seconds: self.compaction_interval_seconds,
            query_timeout_seconds: self.query_timeout_seconds,
            query_max_concurrent: self.query_max_concurrent,
            query_max_rows: self.query_max_rows,
            shutdown_grace_seconds: self.shutdown_grace_seconds,
            insecure: self.insecure.then_some(true),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_client_ca_file: self.tls_client_ca_file.clone(),
            alerting_rule_files: self.alerting_rule_files.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_into_overrides() {
        let cli = Cli::parse_from([
            "skewer",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--http-addr",
            "127.0.0.1:9999",
            "--correlation-id-attributes",
            "a,b",
            "--max-request-bytes",
            "32MiB",
            "--wal-segment-max-bytes",
            "128 MiB",
            "--otlp-grpc-addr",
            "localhost:4317",
        ]);
        let Command::Serve(args) = cli.command else {
            panic!("serve expected")
        };
        let overrides = args.overrides();
        assert_eq!(overrides.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(overrides.http_addr, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(
            overrides.correlation_id_attributes,
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(overrides.max_request_bytes, Some(32 << 20));
        assert_eq!(overrides.wal_segment_max_bytes, Some(128 << 20));
        assert!(
            overrides
                .otlp_grpc_addr
                .is_some_and(|a| a.ip().is_loopback())
        );
        assert!(Cli::try_parse_from(["skewer", "serve", "--max-buffered-bytes", "lots"]).is_err());
    }

    #[test]
    fn keys_create_parses_scopes_tenant_and_expiry() {
        let cli = Cli::parse_from([
            "skewer",
            "keys",
            "create",
            "--data-dir",
            "/d",
            "--tenant",
            "shop",
            "--scope",
            "ingest,query",
            "--expires",
            "90d",
        ]);
        let Command::Keys(KeysCommand::Create(args)) = cli.command else {
            panic!("keys create expected")
        };
        assert_eq!(args.scope, vec![Scope::Ingest, Scope::Query]);
        assert_eq!(args.tenant.to_string(), "shop");
        assert_eq!(args.expires, Some(Duration::from_secs(90 * 86_400)));
        for bad in [
            vec!["--tenant", "shop", "--scope", "root"],
            vec!["--tenant", "../x", "--scope", "query"],
            vec!["--tenant", "shop"],
            vec!["--tenant", "shop", "--scope", "query", "--expires", "0"],
        ] {
            let args = ["skewer", "keys", "create"].into_iter().chain(bad.clone());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
        }
    }
}
