//! The native log search through the binary: pages after a cursor in either direction, the
//! counts of every match per level, service and time bucket, and the services listing, over
//! committed and buffered records alike.

use serde_json::{Value, json};

use crate::fixtures::{logs_request, logs_request_at, t0};
use crate::harness::Server;

/// Ten exports (an ERROR and an INFO record each), alternately from `checkout` and `cart`;
/// committed to the index, or held in the buffer.
async fn started(committed: bool) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let interval = if committed { "1" } else { "3600" };
    let server = Server::start(dir.path(), &["--log-commit-interval-seconds", interval]).await;
    let mut logs = server.logs_client().await;
    for n in 0..10 {
        let service = if n % 2 == 0 { "checkout" } else { "cart" };
        logs.export(logs_request(n, service, &format!("corr-{n}")))
            .await
            .expect("logs accepted");
    }
    if committed {
        server.wait_logs_committed().await;
    }
    (dir, server)
}

/// Every page of `path` (which has no cursor yet), following `next_cursor`: the record times
/// in answer order.
async fn all_pages(server: &Server, path: &str) -> Vec<u64> {
    let mut times = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let page = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let (status, body) = server.get_json(&page).await;
        assert_eq!(status, 200, "{page}: {body}");
        times.extend(body["records"].as_array().unwrap().iter().map(|r| {
            r["time_unix_nano"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return times,
        }
    }
    panic!("more than 20 pages for {path}");
}

#[tokio::test]
async fn pages_follow_cursors_in_both_directions_without_repeats_or_gaps() {
    for committed in [true, false] {
        let (_dir, server) = started(committed).await;
        let mut expected: Vec<u64> = (0..10u64)
            .flat_map(|n| {
                [
                    t0() + n * 1_000_000 + 30_000_000,
                    t0() + n * 1_000_000 + 40_000_000,
                ]
            })
            .collect();
        expected.sort_unstable();
        let forward = all_pages(&server, "/api/logs?direction=forward&limit=7").await;
        assert_eq!(forward, expected, "committed: {committed}");
        expected.reverse();
        let backward = all_pages(&server, "/api/logs?limit=6").await;
        assert_eq!(backward, expected, "committed: {committed}");
        // A page that holds everything has no cursor.
        let (_, body) = server.get_json("/api/logs?limit=20").await;
        assert!(body.get("next_cursor").is_none(), "{body}");
    }
}

#[tokio::test]
async fn facets_count_every_match_per_level_service_and_bucket() {
    for committed in [true, false] {
        let (_dir, server) = started(committed).await;
        let (status, body) = server
            .get_json("/api/logs?facets=true&step=1s&limit=1")
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["count"], 1);
        let facets = &body["facets"];
        assert_eq!(facets["total"], 20, "{body}");
        assert_eq!(facets["levels"], json!({ "error": 10, "info": 10 }));
        assert_eq!(facets["services"][0]["name"], "cart");
        assert_eq!(facets["services"][0]["records"], 10);
        assert_eq!(
            facets["services"][0]["levels"],
            json!({ "error": 5, "info": 5 })
        );
        assert_eq!(facets["services"][1]["name"], "checkout");
        // Every record falls in the second after t0 (an hour boundary).
        assert_eq!(
            facets["histogram"],
            json!([{
                "start": chrono_like(t0()),
                "start_unix_nano": t0().to_string(),
                "levels": { "error": 10, "info": 10 },
            }])
        );
        // Filters narrow the counts as they narrow the records.
        let (_, body) = server
            .get_json("/api/logs?service=cart&min_severity=ERROR&facets=true")
            .await;
        assert_eq!(body["facets"]["total"], 5, "{body}");
        assert_eq!(body["count"], 5);
        let (_, body) = server.get_json("/api/logs?q=inventory&facets=true").await;
        assert_eq!(body["facets"]["levels"], json!({ "info": 10 }), "{body}");
    }
}

/// RFC 3339 with nanoseconds, as the API writes times.
fn chrono_like(unix_nano: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_nano as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[tokio::test]
async fn services_are_listed_with_their_levels_and_bad_paging_is_refused() {
    let (_dir, server) = started(true).await;
    let range = format!("start={}&end={}", t0(), t0() + 60_000_000_000);
    let (status, body) = server
        .get_json(&format!("/api/logs/services?{range}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "total": 20,
            "levels": { "error": 10, "info": 10 },
            "services": [
                { "name": "cart", "records": 10, "bytes": body["services"][0]["bytes"], "levels": { "error": 5, "info": 5 } },
                { "name": "checkout", "records": 10, "bytes": body["services"][1]["bytes"], "levels": { "error": 5, "info": 5 } },
            ],
        })
    );
    assert!(body["services"][0]["bytes"].as_u64().unwrap() > 0);
    let (_, before) = server
        .get_json(&format!("/api/logs/services?start=1&end={}", t0()))
        .await;
    assert_eq!(before["services"], json!([]));
    for (path, parameter) in [
        ("/api/logs?cursor=yesterday", "cursor"),
        ("/api/logs?direction=sideways", "direction"),
        ("/api/logs?facets=true&step=0s", "step"),
        (
            "/api/logs?q=timeout%20(retry",
            "syntax error at character 15: expected ')'",
        ),
    ] {
        let (status, body): (u16, Value) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(parameter),
            "{body}"
        );
    }
}

/// The records of `path`: their bodies.
async fn bodies(server: &Server, path: &str) -> Vec<String> {
    let (status, body) = server.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn attribute_filters_are_exact_and_hold_beside_the_text() {
    let encoded = |json: &str| form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>();
    for committed in [true, false] {
        let (_dir, server) = started(committed).await;
        let search = |attributes: &str, q: &str| {
            format!("/api/logs?limit=1000&attributes={}{q}", encoded(attributes))
        };
        // A string and an integer, both exact.
        assert_eq!(
            bodies(
                &server,
                &search(r#"{"order.id":"order-4","retry.count":3}"#, "")
            )
            .await,
            ["payment declined for order 4 by upstream gateway"],
            "committed: {committed}"
        );
        assert_eq!(
            bodies(&server, &search(r#"{"retry.count":"3"}"#, ""))
                .await
                .len(),
            10,
            "committed: {committed}"
        );
        assert!(
            bodies(&server, &search(r#"{"order.id":"order"}"#, ""))
                .await
                .is_empty(),
            "exact, not a word of the value"
        );
        // Beside the text, both must hold.
        assert_eq!(
            bodies(
                &server,
                &search(r#"{"request.id":"corr-3"}"#, "&q=inventory")
            )
            .await,
            ["inventory reserved"]
        );
        assert!(
            bodies(
                &server,
                &search(r#"{"request.id":"corr-3"}"#, "&q=declined")
            )
            .await
            .is_empty()
        );
        // A text of exclusions only is refused as without filters, not turned into nothing.
        let (status, body) = server
            .get_json(&search(r#"{"retry.count":3}"#, "&q=-declined"))
            .await;
        assert_eq!(status, 400, "{body}");
        // Text that would close a group opened around it is the text's own error.
        let (status, body) = server
            .get_json(&search(r#"{"retry.count":3}"#, "&q=a%29%20OR%20%28b"))
            .await;
        assert_eq!(status, 400, "{body}");
        // Reserved characters in keys and values are taken literally.
        assert!(
            bodies(
                &server,
                &search(r#"{"we:ird (key)":"say \"hi\" \\o/"}"#, "")
            )
            .await
            .is_empty()
        );
        // Filters that cannot be are refused, naming the parameter.
        for bad in ["[1]", r#"{"a":{"b":1}}"#, r#"{"":"x"}"#] {
            let (status, body) = server.get_json(&search(bad, "")).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body.to_string().contains("attributes"), "{body}");
        }
    }
}

/// The record times of an answer, in answer order.
fn times_of(body: &Value) -> Vec<u64> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["time_unix_nano"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .collect()
}

const HOUR: u64 = 3_600_000_000_000;

#[tokio::test]
async fn a_cursor_holds_its_place_while_records_arrive() {
    for committed in [true, false] {
        let (_dir, server) = started(committed).await;
        let (status, first) = server.get_json("/api/logs?limit=6").await;
        assert_eq!(status, 200, "{first}");
        let mut times = times_of(&first);
        let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
        // Between pages, records arrive: two newer than any, two older than any.
        let mut logs = server.logs_client().await;
        for (n, base) in [(50, t0() + HOUR), (60, t0() - HOUR)] {
            logs.export(logs_request_at(n, "late", &format!("late-{n}"), base))
                .await
                .unwrap();
        }
        if committed {
            server.wait_logs_committed().await;
        }
        for _ in 0..10 {
            let page = format!("/api/logs?limit=6&cursor={cursor}");
            let (status, body) = server.get_json(&page).await;
            assert_eq!(status, 200, "{body}");
            times.extend(times_of(&body));
            match body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        // Every record stored before the first page, once, in order; then the older
        // arrivals, which lie past the cursor; the newer ones lie before it.
        let mut expected: Vec<u64> = (0..10u64)
            .flat_map(|n| {
                [
                    t0() + n * 1_000_000 + 30_000_000,
                    t0() + n * 1_000_000 + 40_000_000,
                ]
            })
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let old = t0() - HOUR + 60 * 1_000_000;
        expected.extend([old + 40_000_000, old + 30_000_000]);
        assert_eq!(times, expected, "committed: {committed}");
        // A new search starts from the newest.
        let (_, fresh) = server.get_json("/api/logs?limit=2").await;
        let new = t0() + HOUR + 50 * 1_000_000;
        assert_eq!(times_of(&fresh), [new + 40_000_000, new + 30_000_000]);
    }
}

#[tokio::test]
async fn a_correlation_id_is_found_across_services_and_days() {
    const DAY: u64 = 24 * HOUR;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--log-commit-interval-seconds", "1"]).await;
    let mut logs = server.logs_client().await;
    // One request's records in two services, a day apart (two day partitions), and another
    // request's in between.
    for (n, service, id, base) in [
        (1, "checkout", "corr-days", t0() - DAY),
        (2, "cart", "corr-other", t0() - HOUR),
        (3, "cart", "corr-days", t0()),
    ] {
        logs.export(logs_request_at(n, service, id, base))
            .await
            .unwrap();
    }
    server.wait_logs_committed().await;
    let (status, body) = server.get_json("/api/logs?correlation_id=corr-days").await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    let found: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["service_name"].as_str().unwrap().to_owned(),
                r["time_unix_nano"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("cart".to_owned(), t0() + 3_000_000 + 40_000_000),
            ("checkout".to_owned(), t0() - DAY + 1_000_000 + 40_000_000),
        ],
        "{body}"
    );
}
