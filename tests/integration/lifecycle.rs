//! The storage lifecycle through the binary: compaction merges the small files of many flushes
//! and keeps every span; a quiet log day's segments are merged; retention removes expired files
//! (from the manifest and the disk) and keeps the rest.

use std::time::Duration;

use crate::fixtures::{
    hex, logs_request, logs_request_at, metrics_request_at, t0, trace_id, trace_request,
    trace_request_at,
};
use crate::harness::Server;

const TRACES_FILES: &str = "skewer_storage_files{signal=\"traces\"}";
const TRACES_FLUSHES: &str = "skewer_flushes_total{signal=\"traces\"}";
const DAY: u64 = 86_400_000_000_000;

async fn spans_of(server: &Server, n: u64) -> Option<usize> {
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", hex(&trace_id(n))))
        .await;
    (status == 200).then(|| body["data"][0]["spans"].as_array().map_or(0, Vec::len))
}

/// The files under `dir` (at any depth) whose names end in `.extension`.
fn files_under(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path, extension)
            } else if path.extension().is_some_and(|e| e == extension) {
                vec![path]
            } else {
                Vec::new()
            }
        })
        .collect()
}

#[tokio::test]
async fn compaction_merges_the_files_of_many_flushes_and_keeps_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--flush-interval-seconds",
        "1",
        "--compaction-interval-seconds",
        "1",
    ];
    let mut server = Server::start(&data, &args).await;
    let mut traces = server.trace_client().await;
    const EXPORTS: u64 = 12;
    for n in 0..EXPORTS {
        let flushed = server.metric(TRACES_FLUSHES).await;
        traces.export(trace_request(n, "compact")).await.unwrap();
        server
            .wait_for("a flush", Duration::from_secs(20), || async {
                server.metric(TRACES_FLUSHES).await > flushed
            })
            .await;
    }
    server
        .wait_for("a merge", Duration::from_secs(30), || async {
            server
                .metric("skewer_compaction_merges_total{signal=\"traces\"}")
                .await
                >= 1.0
        })
        .await;
    let files = server.metric(TRACES_FILES).await;
    assert!(files <= 3.0, "{files} files after compaction of {EXPORTS}");
    for n in 0..EXPORTS {
        assert_eq!(spans_of(&server, n).await, Some(2), "trace {n}");
    }
    // The replaced files leave the disk after the grace period; after a restart the manifest
    // is read back with the merged file and nothing is lost.
    assert_eq!(server.terminate().await.code(), Some(0));
    server.restart().await;
    assert!(server.metric(TRACES_FILES).await <= files);
    for n in 0..EXPORTS {
        assert_eq!(
            spans_of(&server, n).await,
            Some(2),
            "trace {n} after restart"
        );
    }
    let on_disk = files_under(&data.join("objects/tenants/default/traces"), "parquet");
    assert!(
        on_disk.len() <= EXPORTS as usize,
        "at most the merged file and the inputs in their grace period: {on_disk:?}"
    );
}

#[tokio::test]
async fn retention_removes_expired_files_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--flush-interval-seconds",
        "1",
        "--retention-check-interval-seconds",
        "1",
        "--retention-traces",
        "2d",
        "--retention-metrics",
        "2d",
        "--retention-logs",
        "2d",
        "--log-commit-interval-seconds",
        "1",
    ];
    let server = Server::start(&data, &args).await;
    let old = t0() - 5 * DAY;
    let mut traces = server.trace_client().await;
    traces
        .export(trace_request_at(1, "old", old))
        .await
        .unwrap();
    traces.export(trace_request(2, "new")).await.unwrap();
    let mut metrics = server.metrics_client().await;
    metrics
        .export(metrics_request_at("old.", old, old))
        .await
        .unwrap();
    metrics
        .export(metrics_request_at("new.", t0(), t0()))
        .await
        .unwrap();
    let mut logs = server.logs_client().await;
    logs.export(logs_request_at(1, "old", "old-request", old))
        .await
        .unwrap();
    logs.export(logs_request(2, "new", "new-request"))
        .await
        .unwrap();
    server
        .wait_for(
            "retention of traces and metrics",
            Duration::from_secs(30),
            || async {
                server
                    .metric("skewer_retention_removed_files_total{signal=\"traces\"}")
                    .await
                    >= 1.0
                    && server
                        .metric("skewer_retention_removed_files_total{signal=\"metrics\"}")
                        .await
                        >= 1.0
            },
        )
        .await;
    assert_eq!(
        spans_of(&server, 1).await,
        None,
        "the expired trace is gone"
    );
    assert_eq!(
        spans_of(&server, 2).await,
        Some(2),
        "the recent trace stays"
    );
    let (_, old_points) = server
        .get_json(&format!(
            "/api/metrics/points?name=old.gauge&start={}&end={}",
            old - DAY,
            old + DAY
        ))
        .await;
    assert_eq!(old_points["series"].as_array().map(Vec::len), Some(0));
    let (_, new_points) = server
        .get_json(&format!(
            "/api/metrics/points?name=new.gauge&start={}&end={}",
            t0(),
            t0() + DAY
        ))
        .await;
    assert_eq!(new_points["series"].as_array().map(Vec::len), Some(1));
    let traces_on_disk = files_under(&data.join("objects/tenants/default/traces"), "parquet");
    assert_eq!(
        traces_on_disk.len(),
        1,
        "only the recent file: {traces_on_disk:?}"
    );
    assert!(server.metric(TRACES_FILES).await == 1.0);
}

/// Rows the newest manifest of a table lists, summed.
fn manifest_rows(data: &std::path::Path, signal: &str) -> u64 {
    let dir = data.join(format!("objects/tenants/default/{signal}/_manifest"));
    let mut versions: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    versions.sort();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(versions.last().unwrap()).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["num_rows"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn kill_9_during_compaction_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Many small files first, with compaction off.
    let filling = [
        "--flush-interval-seconds",
        "1",
        "--compaction-enabled",
        "false",
    ];
    let mut server = Server::start(&data, &filling).await;
    let mut traces = server.trace_client().await;
    const EXPORTS: u64 = 30;
    for n in 0..EXPORTS {
        traces.export(trace_request(n, "crash")).await.unwrap();
        if n % 3 == 2 {
            let flushed = server.metric(TRACES_FLUSHES).await;
            server
                .wait_for("a flush", Duration::from_secs(20), || async {
                    server.metric(TRACES_FLUSHES).await > flushed
                })
                .await;
        }
    }
    drop(traces);
    assert_eq!(server.terminate().await.code(), Some(0));
    drop(server);
    // Then compaction, killed at different moments of its work.
    let compacting = ["--compaction-interval-seconds", "1"];
    for delay_ms in [900u64, 1_100, 1_300, 1_500, 2_000] {
        let mut server = Server::start(&data, &compacting).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill9();
    }
    let server = Server::start(&data, &compacting).await;
    server
        .wait_for("compaction to finish", Duration::from_secs(30), || async {
            server.metric(TRACES_FILES).await <= 2.0
        })
        .await;
    for n in 0..EXPORTS {
        assert_eq!(spans_of(&server, n).await, Some(2), "trace {n}");
    }
    assert_eq!(
        manifest_rows(&data, "traces"),
        2 * EXPORTS,
        "every span in exactly one live file"
    );
}

/// The `.store` files (one per segment) of every log partition under `data`.
fn log_segments_under(data: &std::path::Path) -> usize {
    files_under(&data.join("logs").join("default"), "store").len()
}

async fn log_records_of(server: &Server, correlation_id: &str) -> usize {
    let (status, body) = server
        .get_json(&format!("/api/logs?correlation_id={correlation_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_quiet_log_day_is_merged_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--log-commit-interval-seconds",
        "1",
        "--log-writer-idle-seconds",
        "3",
        "--retention-check-interval-seconds",
        "1",
    ];
    let mut server = Server::start(&data, &args).await;
    let mut logs = server.logs_client().await;
    // One commit per export: a segment each.
    const EXPORTS: u64 = 4;
    for n in 0..EXPORTS {
        logs.export(logs_request(n, "quiet", &format!("quiet-{n}")))
            .await
            .unwrap();
        server.wait_logs_committed().await;
    }
    let before = log_segments_under(&data);
    assert!(before >= 2, "{before} segments before the merge");
    server
        .wait_for("a quiet merge", Duration::from_secs(60), || async {
            server
                .metric("skewer_compaction_merges_total{signal=\"logs\"}")
                .await
                >= 1.0
        })
        .await;
    server
        .wait_for(
            "merged segments removed",
            Duration::from_secs(30),
            || async { log_segments_under(&data) == 1 },
        )
        .await;
    let (status, body) = server.get_json("/api/logs?limit=100").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        2 * EXPORTS as usize
    );
    for n in 0..EXPORTS {
        assert_eq!(log_records_of(&server, &format!("quiet-{n}")).await, 1);
    }
    // Merged once, it stays so after a restart, with every record.
    assert_eq!(server.terminate().await.code(), Some(0));
    server.restart().await;
    assert_eq!(log_segments_under(&data), 1);
    let (_, body) = server.get_json("/api/logs?limit=100").await;
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        2 * EXPORTS as usize
    );
}
