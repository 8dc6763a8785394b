//! A shared deployment (a bucket and a PostgreSQL catalog) checked and backed up while its node
//! runs and restored into a new bucket and database: a query node on the restored deployment answers
//! the same spans and log lines, with the same API keys and tenant limits; a second restore
//! into the now full deployment is refused.

use std::time::Duration;

use crate::backup::skewer;
use crate::catalog_postgres::{Postgres, with_catalog};
use crate::fixtures::{hex, logs_request, t0, trace_id, trace_request};
use crate::harness::Server;
use crate::object_store::{Moto, config_file};

fn succeeded(output: std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn get_with_key(server: &Server, path: &str, key: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(server.api(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Spans of traces 1..=3 and log lines of the last hour, as `server` answers them.
async fn answers(server: &Server, key: &str) -> (Vec<usize>, usize) {
    let mut spans = Vec::new();
    for n in 1..=3 {
        let (status, body) =
            get_with_key(server, &format!("/api/traces/{}", hex(&trace_id(n))), key).await;
        spans.push(match status {
            200 => body["data"][0]["spans"].as_array().map_or(0, Vec::len),
            _ => 0,
        });
    }
    let query = form_urlencoded::byte_serialize(br#"{service_name=~".+"}"#).collect::<String>();
    let start = t0() - 3_600_000_000_000;
    let (status, body) = get_with_key(
        server,
        &format!("/loki/api/v1/query_range?query={query}&start={start}&limit=1000"),
        key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lines = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stream| stream["values"].as_array().unwrap().len())
        .sum();
    (spans, lines)
}

#[tokio::test]
async fn a_deployment_backup_restores_into_a_new_bucket_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let Some(postgres) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(moto) = Moto::start(dir.path()).await else {
        return;
    };
    moto.create_bucket("source").await;
    moto.create_bucket("target").await;
    moto.create_bucket("backups").await;
    postgres.query("CREATE DATABASE restored");
    let source = with_catalog(
        &config_file(dir.path(), &moto, "source"),
        &postgres,
        "refresh_interval_seconds = 1\n",
    );
    let target_dir = dir.path().join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let target = config_file(&target_dir, &moto, "target");
    let restored_url = format!(
        "{}restored",
        postgres.url().strip_suffix("postgres").unwrap()
    );
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(
        &target,
        format!("{text}\n[catalog]\nurl = \"{restored_url}\"\nrefresh_interval_seconds = 1\n"),
    )
    .unwrap();

    let node = Server::start(
        &dir.path().join("node"),
        &[
            "--config",
            &source,
            "--flush-interval-seconds",
            "1",
            "--log-commit-interval-seconds",
            "1",
        ],
    )
    .await;
    let mut traces = node.trace_client().await;
    let mut logs = node.logs_client().await;
    for n in 1..=3 {
        traces.export(trace_request(n, "checkout")).await.unwrap();
        logs.export(logs_request(n, "checkout", &format!("req-{n}")))
            .await
            .unwrap();
    }
    node.wait_for(
        "spans flushed and logs uploaded to the bucket",
        Duration::from_secs(60),
        || async {
            let keys = moto.keys("source", "team/").await;
            keys.iter().any(|key| key.ends_with(".parquet"))
                && keys.iter().any(|key| key.contains("log-replicas/"))
        },
    )
    .await;
    succeeded(
        skewer(&["limits", "set", "--config", &source, "max_tenants=7"]),
        "limits set",
    );
    let created = succeeded(
        skewer(&[
            "keys", "create", "--config", &source, "--tenant", "default", "--scope", "query",
            "--name", "reader",
        ]),
        "keys create",
    );
    let key = created.lines().last().unwrap().to_owned();
    let before = answers(&node, &key).await;
    assert!(
        before.0.iter().all(|spans| *spans > 0) && before.1 > 0,
        "{before:?}"
    );

    // Checked and backed up while the node runs, restored into the new bucket and database.
    let checked = succeeded(skewer(&["check", "--config", &source]), "check");
    assert!(
        checked.contains(": ok") && !checked.contains(" 0 tables"),
        "{checked}"
    );
    let backup = dir.path().join("backup");
    let backup = backup.to_str().unwrap();
    let taken = succeeded(
        skewer(&["backup", "--config", &source, "--to", backup]),
        "backup",
    );
    assert!(
        taken.contains("1 settings, 1 API keys")
            && !taken.contains(": 0 tables")
            && !taken.contains(", 0 log replicas"),
        "{taken}"
    );
    // The same into a bucket, and restored from there; a second backup into it is refused.
    let in_bucket = "s3://backups/snap";
    let taken_to_bucket = succeeded(
        skewer(&["backup", "--config", &source, "--to", in_bucket]),
        "backup to a bucket",
    );
    assert!(
        taken_to_bucket.contains("1 settings, 1 API keys"),
        "{taken_to_bucket}"
    );
    assert!(
        moto.keys("backups", "snap/")
            .await
            .iter()
            .any(|key| key.ends_with("deployment-backup.json"))
    );
    let twice = skewer(&["backup", "--config", &source, "--to", in_bucket]);
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    // Read-only tools leave a database's schema alone: the new one has none yet.
    let unmigrated = skewer(&["check", "--config", &target]);
    assert!(
        String::from_utf8_lossy(&unmigrated.stderr).contains("schema is at version 0"),
        "{}",
        String::from_utf8_lossy(&unmigrated.stderr)
    );
    succeeded(
        skewer(&["restore", "--from", in_bucket, "--config", &target]),
        "restore from the bucket",
    );
    let again = skewer(&["restore", "--from", backup, "--config", &target]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let into_a_dir = skewer(&["restore", "--from", backup, "--data-dir", "/nonexistent/x"]);
    assert!(
        String::from_utf8_lossy(&into_a_dir.stderr).contains("is a deployment backup"),
        "{}",
        String::from_utf8_lossy(&into_a_dir.stderr)
    );

    let restored = Server::start(
        &dir.path().join("restored-node"),
        &["--config", &target, "--role", "query"],
    )
    .await;
    restored
        .wait_for(
            "the restored deployment to answer",
            Duration::from_secs(30),
            || async { answers(&restored, &key).await == before },
        )
        .await;
    let checked = succeeded(skewer(&["check", "--config", &target]), "check restored");
    assert!(checked.contains(": ok"), "{checked}");
    let shown = succeeded(
        skewer(&["limits", "show", "--config", &target]),
        "limits show",
    );
    assert!(shown.contains("max_tenants = 7"), "{shown}");
}
