//! The Jaeger query API through the binary, called the way Grafana's Jaeger data source and
//! the Jaeger UI call it: services, operations (v1 and api_v3), trace search with every
//! parameter, multi-get, trace by id, and the error envelope. Each answer is checked while
//! the spans are buffered and again once they are in files.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::{hex, t0, trace_id, trace_request};
use crate::harness::Server;

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap().to_owned())
        .collect()
}

fn trace_hex(n: u64) -> String {
    hex(&trace_id(n))
}

async fn search(server: &Server, query: &str) -> Vec<String> {
    let (status, body) = server.get_json(&format!("/api/traces?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["errors"], Value::Null, "{query}: {body}");
    ids(&body)
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

/// Every listing and search over traces 1 and 2 of `frontend` and 3 of `billing` (each a
/// `GET /checkout` server root of 250 ms with an error status and a `SELECT orders` client
/// child of 50 ms with `db.system=postgresql`, trace n starting n ms after t0).
async fn check_answers(server: &Server) {
    let (status, body) = server.get_json("/api/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": ["billing", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = server.get_json("/api/services/frontend/operations").await;
    assert_eq!(body["data"], json!(["GET /checkout", "SELECT orders"]));
    assert_eq!(body["total"], 2);
    let (_, body) = server
        .get_json("/api/operations?service=frontend&spanKind=server")
        .await;
    assert_eq!(
        body["data"],
        json!([{"name": "GET /checkout", "spanKind": "server"}])
    );
    let (_, body) = server.get_json("/api/operations?service=billing").await;
    assert_eq!(
        body["data"],
        json!([{"name": "GET /checkout", "spanKind": "server"}, {"name": "SELECT orders", "spanKind": "client"}])
    );
    let (_, body) = server.get_json("/api/v3/services").await;
    assert_eq!(body, json!({"services": ["billing", "frontend"]}));
    let (_, body) = server
        .get_json("/api/v3/operations?service=frontend&spanKind=client")
        .await;
    assert_eq!(
        body,
        json!({"operations": [{"name": "SELECT orders", "spanKind": "client"}]})
    );
    let (_, body) = server.get_json("/api/services/nobody/operations").await;
    assert_eq!(
        body["data"],
        json!([]),
        "an unknown service has no operations, not null"
    );

    let (start, end) = (micros(t0()), micros(t0() + 3_600_000_000_000));
    let range = format!("start={start}&end={end}");
    // Newest first: trace 2 starts after trace 1.
    assert_eq!(
        search(server, &format!("service=frontend&{range}")).await,
        [trace_hex(2), trace_hex(1)]
    );
    assert_eq!(
        search(server, &format!("service=frontend&{range}&limit=1")).await,
        [trace_hex(2)]
    );
    assert_eq!(
        search(server, &format!("service=billing&{range}")).await,
        [trace_hex(3)]
    );
    // Tags: span attributes, derived fields, resource attributes; all on one span.
    for tags in [
        "tag=db.system:postgresql",
        "tag=span.kind:client&tag=db.system:postgresql",
        "tags=%7B%22http.response.status_code%22%3A%22503%22%7D",
        "tag=error:true&tag=http.request.method:GET",
        "tag=host.name:host-1",
        "tag=attempt:2",
    ] {
        assert_eq!(
            search(server, &format!("service=frontend&{range}&{tags}")).await,
            [trace_hex(2), trace_hex(1)],
            "{tags}"
        );
    }
    for tags in [
        "tag=db.system:mysql",
        "tag=error:true&tag=db.system:postgresql",
    ] {
        assert!(
            search(server, &format!("service=frontend&{range}&{tags}"))
                .await
                .is_empty(),
            "{tags}"
        );
    }
    // Operation and duration bounds (the root lasts 250 ms, the child 50 ms).
    let op = "operation=SELECT%20orders";
    assert_eq!(
        search(
            server,
            &format!("service=frontend&{range}&{op}&maxDuration=50ms")
        )
        .await,
        [trace_hex(2), trace_hex(1)]
    );
    assert!(
        search(
            server,
            &format!("service=frontend&{range}&{op}&minDuration=51ms")
        )
        .await
        .is_empty()
    );
    assert_eq!(
        search(
            server,
            &format!("service=frontend&{range}&minDuration=0.2s")
        )
        .await,
        [trace_hex(2), trace_hex(1)]
    );
    assert!(
        search(
            server,
            &format!("service=frontend&{range}&minDuration=251ms")
        )
        .await
        .is_empty()
    );
    // Time bounds: only trace 1's root starts in [t0, t0 + 1.5 ms].
    let early = format!("start={start}&end={}", micros(t0() + 1_500_000));
    assert_eq!(
        search(server, &format!("service=frontend&{early}")).await,
        [trace_hex(1)]
    );

    // A multi-get answers found traces and names the missing one.
    let (status, body) = server
        .get_json(&format!(
            "/api/traces?traceID={}&traceID={}&traceID={}",
            trace_hex(3),
            trace_hex(1),
            trace_hex(99)
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), [trace_hex(3), trace_hex(1)]);
    assert_eq!(
        body["errors"],
        json!([{"code": 404, "msg": "trace not found", "traceID": trace_hex(99)}])
    );
    // Search, multi-get and trace by id return the same trace.
    let (_, by_id) = server
        .get_json(&format!("/api/traces/{}", trace_hex(1)))
        .await;
    assert_eq!(by_id["data"][0], body["data"][1]);
    let found = server
        .get_json(&format!("/api/traces?service=frontend&{early}"))
        .await
        .1;
    assert_eq!(found["data"][0], by_id["data"][0]);
    let trace = &by_id["data"][0];
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);
    assert_eq!(trace["processes"]["p1"]["serviceName"], "frontend");
    assert_eq!(trace["warnings"], Value::Null);
}

#[tokio::test]
async fn jaeger_listings_and_search_answer_from_buffers_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--flush-interval-seconds", "1"]).await;
    let mut traces = server.trace_client().await;
    traces.export(trace_request(1, "frontend")).await.unwrap();
    traces.export(trace_request(2, "frontend")).await.unwrap();
    traces.export(trace_request(3, "billing")).await.unwrap();
    check_answers(&server).await;
    server
        .wait_for("span files", Duration::from_secs(30), || async {
            server
                .metric("skewer_storage_files{signal=\"traces\"}")
                .await
                > 0.0
                && server
                    .metric("skewer_buffered_records{signal=\"traces\"}")
                    .await
                    == 0.0
        })
        .await;
    check_answers(&server).await;
    // Another tenant sees nothing.
    let (status, body) = server.get_json_as("/api/services", Some("other")).await;
    assert_eq!((status, &body["data"]), (200, &json!([])));
}

#[tokio::test]
async fn bad_jaeger_parameters_get_400_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    for path in [
        "/api/traces",
        "/api/traces?service=a&minDuration=fast",
        "/api/traces?service=a&limit=-1",
        "/api/traces?service=a&tag=novalue",
        "/api/traces?traceID=xyz",
        "/api/traces/not-hex",
        "/api/operations",
        "/api/operations?service=a&spanKind=sideways",
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["data"], Value::Null, "{path}");
        assert_eq!(body["errors"][0]["code"], 400, "{path}: {body}");
        assert!(
            body["errors"][0]["msg"]
                .as_str()
                .unwrap()
                .contains("invalid")
        );
    }
    let (status, body) = server
        .get_json("/api/v3/operations?service=a&spanKind=sideways")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["httpCode"], 400, "{body}");
    let (status, body) = server
        .get_json(&format!("/api/traces/{}", trace_hex(5)))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], 404);
}
