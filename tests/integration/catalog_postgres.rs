//! The catalog in a real PostgreSQL (Debian's, started here on a loopback port as the
//! `postgres` user): manifests are rows, the schema is migrated at start, a node on an empty
//! data directory with the same bucket and database answers for everything, a database
//! restarted under load loses nothing acknowledged, and an unreachable one fails the start
//! clearly. Needs root (to run PostgreSQL as `postgres`); elsewhere skipped with a notice
//! unless `SKEWER_REQUIRE_POSTGRES=1` (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixtures::trace_request;
use crate::harness::{Server, free_addr};
use crate::object_store::{Moto, config_file, spans_of};

/// A PostgreSQL cluster in a test's directory; stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(mut command: Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Postgres {
    pub fn start(dir: &Path) -> Option<Self> {
        let required = std::env::var("SKEWER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .max();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0"));
        let Some(bin) = bin.filter(|_| root) else {
            assert!(
                !required,
                "SKEWER_REQUIRE_POSTGRES=1 but PostgreSQL cannot run here (needs root and /usr/lib/postgresql/*/bin)"
            );
            eprintln!("SKIPPED: PostgreSQL cannot run here (needs root and Debian's postgresql)");
            return None;
        };
        // The postgres user must reach its directory inside the test's private one.
        run(
            {
                let mut chmod = Command::new("chmod");
                chmod.arg("755").arg(dir);
                chmod
            },
            "chmod",
        );
        let data = dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        run(
            {
                let mut chown = Command::new("chown");
                chown.arg("postgres:postgres").arg(&data);
                chown
            },
            "chown",
        );
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(initdb, "initdb");
        let postgres = Self {
            bin,
            data,
            port: free_addr().port(),
        };
        postgres.start_server();
        Some(postgres)
    }

    /// Starts the server on its port. A restart can find the port briefly held by another
    /// test probing for a free one (bound, then let go): it is tried again a few times.
    pub fn start_server(&self) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let mut start = as_postgres(&self.bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-t", "30", "-l"])
                .arg(self.data.join("server.log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    self.port,
                    self.data.display()
                ))
                .arg("start");
            let output = start.output().expect("run pg_ctl start");
            if output.status.success() {
                return;
            }
            let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
            assert!(
                attempt < ATTEMPTS,
                "pg_ctl start failed {ATTEMPTS} times: {}{}\nserver.log:\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            eprintln!("pg_ctl start failed (attempt {attempt}); trying again in a second");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub fn stop_server(&self) {
        let mut stop = as_postgres(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn query(&self, sql: &str) -> String {
        let mut psql = as_postgres(&self.bin.join("psql"));
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-tAc",
            sql,
        ]);
        run(psql, sql)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_postgres(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

pub fn with_catalog(config: &str, postgres: &Postgres, extra: &str) -> String {
    let path = format!("{config}.catalog.toml");
    let text = std::fs::read_to_string(config).unwrap_or_default();
    std::fs::write(
        &path,
        format!("{text}\n[catalog]\nurl = \"{}\"\n{extra}", postgres.url()),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn manifests_live_in_postgresql_and_a_second_node_answers_from_the_bucket_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("shared").await;
    let config = with_catalog(&config_file(dir.path(), &moto, "shared"), &postgres, "");
    let mut first = Server::start(&dir.path().join("first"), &["--config", &config]).await;
    let mut traces = first.trace_client().await;
    for n in 1..=3 {
        traces.export(trace_request(n, "checkout")).await.unwrap();
    }
    assert!(first.terminate().await.success(), "{}", first.log());
    assert_eq!(
        postgres.query(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM skewer_schema_migrations"
        ),
        "1,2,3,4",
        "each migration applied once"
    );
    assert_eq!(
        postgres.query("SELECT tenant || '/' || signal FROM skewer_manifests WHERE version > 0"),
        "default/traces"
    );
    let keys = moto.keys("shared", "team/").await;
    assert!(keys.iter().any(|key| key.ends_with(".parquet")), "{keys:?}");
    assert!(
        !keys.iter().any(|key| key.contains("_manifest")),
        "manifests are in the database, not the bucket: {keys:?}"
    );
    let second = Server::start(&dir.path().join("second"), &["--config", &config]).await;
    for n in 1..=3 {
        assert_eq!(spans_of(&second, n).await, 2, "trace {n}");
    }
}

#[tokio::test]
async fn a_database_restarted_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let config = with_catalog(
        &dir.path().join("none").display().to_string(),
        &postgres,
        "",
    );
    let args = ["--config", &config, "--flush-interval-seconds", "1"];
    let mut server = Server::start(&dir.path().join("data"), &args).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "checkout")).await.unwrap();
    let flushed = || async {
        server
            .metric("skewer_buffered_records{signal=\"traces\"}")
            .await
            == 0.0
    };
    server
        .wait_for("the first flush", Duration::from_secs(30), flushed)
        .await;
    let version = |postgres: &Postgres| -> u64 {
        postgres
            .query("SELECT version FROM skewer_manifests")
            .parse()
            .unwrap()
    };
    let before = version(&postgres);
    postgres.stop_server();
    traces.export(trace_request(2, "checkout")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server
            .metric("skewer_buffered_records{signal=\"traces\"}")
            .await,
        2.0,
        "the flush waits for the database"
    );
    assert_eq!(
        spans_of(&server, 2).await,
        2,
        "served from the buffer meanwhile"
    );
    postgres.start_server();
    server
        .wait_for(
            "the flush after the database is back",
            Duration::from_secs(60),
            flushed,
        )
        .await;
    assert!(server.terminate().await.success(), "{}", server.log());
    assert!(version(&postgres) > before, "the second flush committed");
    server.restart().await;
    for n in 1..=2 {
        assert_eq!(spans_of(&server, n).await, 2, "trace {n}");
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_the_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    let port = free_addr().port();
    std::fs::write(
        &config,
        format!("[catalog]\nurl = \"postgres://postgres@127.0.0.1:{port}/postgres\"\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--otlp-grpc-addr", &free_addr().to_string()])
        .args(["--otlp-http-addr", &free_addr().to_string()])
        .args(["--http-addr", &free_addr().to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("catalog database: error connecting to server")
            && stderr.contains("refused"),
        "{stderr}"
    );
}
