//! Several nodes on one bucket (moto) and one catalog database (Debian's PostgreSQL): two
//! ingest nodes, a query node and a compactor. The query node answers for what either ingest
//! node flushed, the compactor alone merges (claimed in the database), an ingest node killed
//! under load loses nothing it acknowledged, and each node's WAL position is its own. Skipped
//! like the PostgreSQL and moto tests where those cannot run.

use std::process::Command;
use std::time::Duration;

use crate::catalog_postgres::{Postgres, with_catalog};
use crate::fixtures::{self, trace_request};
use crate::harness::{Server, free_addr};
use crate::object_store::{Moto, config_file, log_lines, spans_of};

const TRACES: &str = "{signal=\"traces\"}";

async fn merges(server: &Server) -> f64 {
    server
        .metric(&format!("skewer_compaction_merges_total{TRACES}"))
        .await
}

/// Waits until `server` answers every trace of `traces` with its two spans.
async fn wait_for_traces(server: &Server, traces: std::ops::RangeInclusive<u64>, what: &str) {
    server
        .wait_for(what, Duration::from_secs(60), || {
            let traces = traces.clone();
            async move {
                for n in traces {
                    if spans_of(server, n).await != 2 {
                        return false;
                    }
                }
                true
            }
        })
        .await;
}

#[tokio::test]
async fn ingest_query_and_compactor_nodes_share_one_bucket_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("shared").await;
    let config = with_catalog(
        &config_file(dir.path(), &moto, "shared"),
        &postgres,
        "refresh_interval_seconds = 1\n",
    );
    let node = |name: &'static str, role: &'static str| {
        let config = config.clone();
        let dir = dir.path().join(name);
        async move {
            let args = [
                "--config",
                &config,
                "--role",
                role,
                "--flush-interval-seconds",
                "1",
                "--compaction-interval-seconds",
                "1",
            ];
            Server::start(&dir, &args).await
        }
    };
    let ingest_a = node("ingest-a", "ingest").await;
    let mut ingest_b = node("ingest-b", "ingest").await;
    let query = node("query", "query").await;
    // Another compactor holds the claim of the data's hour, until it expires below.
    let hour = fixtures::t0() / 3_600_000_000_000;
    postgres.query(&format!(
        "INSERT INTO skewer_claims VALUES \
         ('compaction/default/traces/{hour}', 'other-node', now() + interval '1 hour')"
    ));
    let compactor = node("compactor", "compactor").await;
    assert!(
        tokio::net::TcpStream::connect(query.grpc).await.is_err(),
        "a query node opens no OTLP port"
    );

    let mut to_a = ingest_a.trace_client().await;
    let mut to_b = ingest_b.trace_client().await;
    for n in 1..=4 {
        to_a.export(trace_request(n, "checkout")).await.unwrap();
        to_b.export(trace_request(n + 4, "payments")).await.unwrap();
    }
    wait_for_traces(
        &query,
        1..=8,
        "the query node to see both ingest nodes' files",
    )
    .await;
    wait_for_traces(&compactor, 1..=8, "the compactor to see the files").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        merges(&compactor).await,
        0.0,
        "the hour is claimed by another compactor"
    );
    postgres.query("UPDATE skewer_claims SET expires_at = now() - interval '1 second'");
    compactor
        .wait_for(
            "a merge once the other claim expired",
            Duration::from_secs(60),
            || async { merges(&compactor).await >= 1.0 },
        )
        .await;
    for server in [&ingest_a, &ingest_b, &query] {
        assert_eq!(merges(server).await, 0.0, "only the compactor merges");
    }
    wait_for_traces(&query, 1..=8, "the query node to read the merged files").await;
    assert_eq!(
        postgres.query("SELECT count(*) FROM skewer_claims WHERE expires_at > now()"),
        "0",
        "the compactor released its claims"
    );

    // Killed right after acknowledging: the restarted node replays its own WAL, and only its
    // own position in the shared manifest decides what it skips.
    for n in 9..=12 {
        to_b.export(trace_request(n, "payments")).await.unwrap();
    }
    ingest_b.kill9();
    ingest_b.restart().await;
    wait_for_traces(
        &query,
        1..=12,
        "the query node to see what the killed node acked",
    )
    .await;
    let manifest = postgres.query(
        "SELECT manifest FROM skewer_manifests WHERE signal = 'traces' AND tenant = 'default'",
    );
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let positions = manifest["node_flushed_lsns"].as_object().unwrap();
    assert_eq!(
        positions.len(),
        2,
        "one WAL position per ingest node: {manifest}"
    );
    assert_eq!(manifest["flushed_lsn"], 0, "{manifest}");

    // A node started later, on an empty directory, answers for everything.
    let late = node("late-query", "query").await;
    wait_for_traces(&late, 1..=12, "a late query node").await;
}

#[test]
fn a_role_other_than_all_needs_a_shared_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["serve", "--role", "query", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http-addr", &free_addr().to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid setting role") && stderr.contains("[storage] url"),
        "{stderr}"
    );
}

/// `skewer COMMAND SUBCOMMAND --config CONFIG ARGS…` (keys, limits: the catalog database
/// `config` names); its standard output.
fn with_config(command: &str, config: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .arg(command)
        .arg(args[0])
        .args(["--config", config])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skewer {command} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `skewer keys …` against the catalog database `config` names; its standard output.
fn keys(config: &str, args: &[&str]) -> String {
    with_config("keys", config, args)
}

fn create_key(config: &str, tenant: &str, scope: &str) -> String {
    let output = keys(config, &["create", "--tenant", tenant, "--scope", scope]);
    output.lines().last().unwrap().to_owned()
}

/// The status of a trace read on `server` with `key` for `tenant`.
async fn trace_status(server: &Server, key: Option<&str>, tenant: &str) -> u16 {
    let path = format!("/api/traces/{}", fixtures::hex(&fixtures::trace_id(1)));
    let mut request = reqwest::Client::new()
        .get(server.api(&path))
        .header("x-scope-orgid", tenant);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn api_keys_in_the_catalog_database_hold_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("keys").await;
    let config = with_catalog(
        &config_file(dir.path(), &moto, "keys"),
        &postgres,
        "refresh_interval_seconds = 1\n",
    );
    let start = |name: &'static str, role: &'static str| {
        let config = config.clone();
        let dir = dir.path().join(name);
        async move {
            let args = ["--config", &config, "--role", role];
            Server::start(
                &dir,
                &[&args[..], &["--flush-interval-seconds", "1"]].concat(),
            )
            .await
        }
    };
    let ingest = start("ingest", "ingest").await;
    let query = start("query", "query").await;
    let ingest_acme = create_key(&config, "acme", "ingest");
    let query_acme = create_key(&config, "acme", "query");
    let query_other = create_key(&config, "other", "query");
    for server in [&ingest, &query] {
        server
            .wait_for(
                "keys required on every node",
                Duration::from_secs(10),
                || async { trace_status(server, None, "acme").await == 401 },
            )
            .await;
    }
    let export = reqwest::Client::new()
        .post(ingest.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", "acme")
        .bearer_auth(&ingest_acme)
        .body(prost::Message::encode_to_vec(&trace_request(1, "checkout")))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    query
        .wait_for(
            "acme's trace on the query node",
            Duration::from_secs(30),
            || async { trace_status(&query, Some(&query_acme), "acme").await == 200 },
        )
        .await;
    assert_eq!(trace_status(&query, Some(&query_other), "acme").await, 403);
    assert_eq!(trace_status(&query, Some(&query_acme), "other").await, 403);
    assert_eq!(
        trace_status(&query, Some(&query_other), "other").await,
        404,
        "another tenant sees nothing of acme's"
    );
    assert_eq!(trace_status(&query, Some(&ingest_acme), "acme").await, 403);

    keys(&config, &["revoke", &query_acme[4..20]]);
    for server in [&ingest, &query] {
        server
            .wait_for(
                "the revocation on every node",
                Duration::from_secs(5),
                || async { trace_status(server, Some(&query_acme), "acme").await == 401 },
            )
            .await;
    }
    let listed = keys(&config, &["list"]);
    assert_eq!(
        listed
            .lines()
            .filter(|line| line.contains("revoked"))
            .count(),
        1,
        "{listed}"
    );
}

#[tokio::test]
async fn retention_run_by_the_compactor_is_seen_by_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("retention").await;
    let config = with_catalog(
        &config_file(dir.path(), &moto, "retention"),
        &postgres,
        "refresh_interval_seconds = 1\n",
    );
    let start = |name: &'static str, extra: &'static [&'static str]| {
        let config = config.clone();
        let dir = dir.path().join(name);
        async move { Server::start(&dir, &[&["--config", config.as_str()][..], extra].concat()).await }
    };
    let ingest = start(
        "ingest",
        &["--role", "ingest", "--flush-interval-seconds", "1"],
    )
    .await;
    let query = start("query", &["--role", "query"]).await;
    let mut traces = ingest.trace_client().await;
    traces.export(trace_request(1, "checkout")).await.unwrap();
    wait_for_traces(&query, 1..=1, "the query node to see the trace").await;

    // The span is two hours old: past the compactor's one-hour retention.
    let compactor = start(
        "compactor",
        &[
            "--role",
            "compactor",
            "--retention-traces",
            "1h",
            "--retention-check-interval-seconds",
            "1",
        ],
    )
    .await;
    for server in [&query, &ingest, &compactor] {
        server
            .wait_for(
                "the expired file gone everywhere",
                Duration::from_secs(30),
                || async { spans_of(server, 1).await == 0 },
            )
            .await;
    }
    let manifest = postgres.query(
        "SELECT manifest FROM skewer_manifests WHERE signal = 'traces' AND tenant = 'default'",
    );
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["files"], serde_json::json!([]), "{manifest}");
    assert_eq!(
        postgres.query("SELECT count(*) FROM skewer_claims WHERE expires_at > now()"),
        "0",
        "the sweep's claim was released"
    );
}

async fn wait_for_log_lines(server: &Server, lines: usize, what: &str) {
    server
        .wait_for(what, Duration::from_secs(60), || async {
            log_lines(server).await == lines
        })
        .await;
}

#[tokio::test]
async fn logs_taken_by_either_ingest_node_are_answered_by_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("logs").await;
    let config = config_file(dir.path(), &moto, "logs");
    let config = with_lines(&config, "[catalog]\nrefresh_interval_seconds = 1\n");
    let node = |name: &'static str, role: &'static str, config: String| {
        let dir = dir.path().join(name);
        async move {
            let args = [
                "--config",
                &config,
                "--role",
                role,
                "--log-commit-interval-seconds",
                "1",
            ];
            Server::start(&dir, &args).await
        }
    };
    let ingest_a = node("ingest-a", "ingest", config.clone()).await;
    let mut ingest_b = node("ingest-b", "ingest", config.clone()).await;
    let query = node("query", "query", config.clone()).await;
    let mut to_a = ingest_a.logs_client().await;
    let mut to_b = ingest_b.logs_client().await;
    for n in 1..=3 {
        to_a.export(fixtures::logs_request(n, "checkout", &format!("req-{n}")))
            .await
            .unwrap();
        to_b.export(fixtures::logs_request(
            n + 3,
            "payments",
            &format!("req-{}", n + 3),
        ))
        .await
        .unwrap();
    }
    // Two records a request.
    wait_for_log_lines(&query, 12, "the query node to read both ingest nodes' logs").await;
    wait_for_log_lines(&ingest_a, 12, "an ingest node to read the other's logs too").await;

    // Killed right after acknowledging: the WAL replays into the node's index, which is
    // uploaded again.
    let mut to_b = ingest_b.logs_client().await;
    to_b.export(fixtures::logs_request(7, "payments", "req-7"))
        .await
        .unwrap();
    ingest_b.kill9();
    ingest_b.restart().await;
    wait_for_log_lines(
        &query,
        14,
        "the query node to read what the killed node acked",
    )
    .await;

    // A node started later, with room in its cache for one partition at a time, answers
    // for everything, and evicts what it read once it reads something else.
    let small_cache = with_lines(&config, "[storage]\nlog_cache_bytes = 1\n");
    let late = node("late-query", "query", small_cache).await;
    wait_for_log_lines(&late, 14, "a late query node").await;
    assert!(late.metric("skewer_log_cache_downloaded_bytes_total").await > 0.0);
    assert_eq!(query.metric("skewer_log_cache_evictions_total").await, 0.0);
    let correlated =
        form_urlencoded::byte_serialize(br#"{service_name="checkout"} |= "order 2 by""#)
            .collect::<String>();
    let (status, body) = late
        .get_json(&format!(
            "/loki/api/v1/query_range?query={correlated}&start={}&limit=100",
            fixtures::t0() - 3_600_000_000_000
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{body}"
    );
}

/// A copy of the configuration file `config` with `lines` added to its section.
fn with_lines(config: &str, lines: &str) -> String {
    let (section, keys) = lines.split_once('\n').unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    let text = if text.contains(section) {
        text.replace(section, &format!("{section}\n{}", keys.trim_end()))
    } else {
        format!("{text}{lines}")
    };
    let path = format!("{config}.{}.toml", text.len());
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_tenant_cap_counts_tenants_any_node_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("capped").await;
    let config = config_file(dir.path(), &moto, "capped");
    let config = with_lines(&config, "[catalog]\nrefresh_interval_seconds = 1\n");
    let config = with_lines(
        &config,
        "[limits]\nmax_tenants = 2\ningest_records_per_second = 10\n",
    );
    let node = |name: &'static str| {
        let config = config.clone();
        let dir = dir.path().join(name);
        async move {
            let args = [
                "--config",
                &config,
                "--role",
                "ingest",
                "--flush-interval-seconds",
                "1",
                "--log-commit-interval-seconds",
                "1",
            ];
            Server::start(&dir, &args).await
        }
    };
    let a = node("ingest-a").await;
    let b = node("ingest-b").await;
    let export = |server: &Server, tenant: &str, body: Vec<u8>, path: &str| {
        reqwest::Client::new()
            .post(server.otlp_url(path))
            .header("content-type", "application/x-protobuf")
            .header("x-scope-orgid", tenant)
            .body(body)
            .send()
    };
    let spans = prost::Message::encode_to_vec(&trace_request(1, "checkout"));
    let logs = prost::Message::encode_to_vec(&fixtures::logs_request(1, "checkout", "req-1"));
    // One tenant's spans on node a, another's logs only on node b.
    assert_eq!(
        export(&a, "first", spans.clone(), "/v1/traces")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        export(&b, "second", logs, "/v1/logs")
            .await
            .unwrap()
            .status(),
        200
    );
    // Once each node has seen the other's tenant, the cap of two is full on both.
    for (server, other) in [(&a, "second"), (&b, "first")] {
        let counted = format!("skewer_tenant_ingest_records_total{{tenant=\"{other}\"}} ");
        server
            .wait_for(
                "the other node's tenant to count toward the cap",
                Duration::from_secs(60),
                || async { server.self_metrics().await.contains(&counted) },
            )
            .await;
        let refused = export(server, "third", spans.clone(), "/v1/traces")
            .await
            .unwrap();
        assert_eq!(refused.status(), 429, "{counted}");
    }

    // Two ingest nodes share each tenant's rate: 5 records a second each. Eight records
    // pass (a request pays its whole cost) and leave the next request waiting, where a node
    // alone would have had 10.
    for server in [&a, &b] {
        server
            .wait_for(
                "both ingest nodes counted",
                Duration::from_secs(60),
                || async { server.metric("skewer_ingest_nodes").await == 2.0 },
            )
            .await;
    }
    let mut eight = trace_request(2, "checkout");
    for n in 3..=5 {
        eight
            .resource_spans
            .extend(trace_request(n, "checkout").resource_spans);
    }
    let eight = prost::Message::encode_to_vec(&eight);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = export(&a, "first", eight.clone(), "/v1/traces")
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = export(&a, "first", eight, "/v1/traces").await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(
        second
            .text()
            .await
            .unwrap()
            .contains("ingest_records_per_second"),
        "refused by the rate"
    );
}

/// `skewer limits …` against the catalog database `config` names: its standard output.
fn limits(config: &str, args: &[&str]) -> String {
    with_config("limits", config, args)
}

#[tokio::test]
async fn limits_in_the_catalog_database_hold_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("limits").await;
    let config = with_catalog(
        &config_file(dir.path(), &moto, "limits"),
        &postgres,
        "refresh_interval_seconds = 1\n",
    );
    // The first config's [limits] go to the empty database; the second node's file says
    // otherwise and is overruled.
    let first_config = with_lines(&config, "[limits]\ningest_records_per_second = 1000000\n");
    let other_config = with_lines(&config, "[limits]\ningest_records_per_second = 1\n");
    let start = |name: &'static str, role: &'static str, config: String| {
        let dir = dir.path().join(name);
        async move {
            let args = ["--config", &config, "--role", role];
            Server::start(&dir, &args).await
        }
    };
    // Changed before any node started: the first config's limits are the base.
    let early = limits(
        &first_config,
        &["set", "--tenant", "acme", "query_max_rows=1000000"],
    );
    assert!(
        early.contains("version 2") && early.contains("ingest_records_per_second = 1000000"),
        "{early}"
    );
    let ingest = start("ingest", "ingest", first_config.clone()).await;
    let query = start("query", "query", other_config.clone()).await;
    let shown = limits(&other_config, &["show"]);
    assert!(
        shown.contains("version 2") && shown.contains("ingest_records_per_second = 1000000"),
        "{shown}"
    );
    let export = |tenant: &'static str| {
        reqwest::Client::new()
            .post(ingest.otlp_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .header("x-scope-orgid", tenant)
            .body(prost::Message::encode_to_vec(&trace_request(1, "checkout")))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(export("acme").await.unwrap().status(), 200);
    }

    // A tenant's own rate set with the command line reaches the ingest node within a refresh.
    let changed = limits(
        &config,
        &["set", "--tenant", "acme", "ingest_records_per_second=2"],
    );
    assert!(
        changed.contains("version 3") && changed.contains("[limits.tenants.acme]"),
        "{changed}"
    );
    ingest
        .wait_for(
            "acme's own rate on the ingest node",
            Duration::from_secs(10),
            || async { export("acme").await.unwrap().status() == 429 },
        )
        .await;
    assert_eq!(
        export("other").await.unwrap().status(),
        200,
        "other tenants go on"
    );

    // Over the admin API of the query node: the query range of every tenant, and acme's own
    // rate dropped (back to every tenant's).
    let admin = reqwest::Client::new();
    let patched = admin
        .patch(query.api("/api/admin/limits"))
        .json(&serde_json::json!({ "query_max_range_hours": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: serde_json::Value = patched.json().await.unwrap();
    assert_eq!(patched["version"], 4, "{patched}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let day = format!("/api/logs?start={}&end={now}", now - 86_400 * 1_000_000_000);
    let refused = admin
        .get(query.api(&day))
        .header("x-scope-orgid", "acme")
        .send()
        .await
        .unwrap();
    assert!(
        refused.status().is_client_error()
            && refused
                .text()
                .await
                .unwrap()
                .contains("query_max_range_hours"),
        "the query node holds the new range at once"
    );
    let typo = admin
        .patch(query.api("/api/admin/limits"))
        .json(&serde_json::json!({ "records_per_second": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), 400);
    assert!(
        typo.text()
            .await
            .unwrap()
            .contains("ingest_records_per_second")
    );
    let dropped = admin
        .delete(query.api("/api/admin/limits/tenants/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 200);
    ingest
        .wait_for(
            "acme back at every tenant's rate",
            Duration::from_secs(10),
            || async { export("acme").await.unwrap().status() == 200 },
        )
        .await;
    let (status, seen) = ingest.get_json("/api/admin/limits").await;
    assert_eq!(status, 200);
    assert_eq!(seen["source"], "catalog database");
    assert_eq!(seen["version"], 5, "{seen}");
    assert_eq!(seen["limits"]["query_max_range_hours"], 1);
    assert_eq!(seen["limits"]["tenants"], serde_json::json!({}));
}
