//! Per-tenant limits through the binary: a tenant over its record rate gets `429` naming the
//! limit (with `Retry-After`) while another tenant sending at the same time gets every export
//! in; a new tenant past the cap is refused over HTTP and gRPC alike, existing ones are not;
//! `/metrics` counts each tenant's records and refusals.

use std::time::{Duration, Instant};

use prost::Message;
use tonic::metadata::MetadataValue;

use crate::fixtures::trace_request;
use crate::harness::Server;

const LIMITS: &str = r#"
[limits]
max_tenants = 3

[limits.tenants.noisy]
ingest_records_per_second = 20
"#;

async fn export(server: &Server, tenant: &str, n: u64) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", tenant)
        .body(trace_request(n, "svc").encode_to_vec())
        .send()
        .await
        .expect("OTLP/HTTP reachable")
}

#[tokio::test]
async fn a_tenant_at_its_limits_does_not_hold_back_another() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, LIMITS).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;

    // Both tenants send as fast as they can for two seconds, side by side: 2 spans an export.
    let started = Instant::now();
    let send = |tenant: &'static str| {
        let server = &server;
        async move {
            let (mut accepted, mut limited, mut other) = (0_u32, 0_u32, Vec::new());
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(2) {
                n += 1;
                let response = export(server, tenant, n).await;
                match response.status().as_u16() {
                    200 => accepted += 1,
                    429 => {
                        assert!(response.headers().contains_key("retry-after"));
                        let body =
                            String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
                        assert!(body.contains("ingest_records_per_second = 20;"), "{body}");
                        limited += 1;
                    }
                    status => other.push(status),
                }
            }
            (accepted, limited, other)
        }
    };
    let (noisy, quiet) = tokio::join!(send("noisy"), send("quiet"));
    assert!(noisy.1 > 0, "the noisy tenant was never limited: {noisy:?}");
    // 200 records a second, a second's burst: at most ~3 s worth of 2-span exports get in.
    assert!(
        noisy.0 <= 320,
        "the limit let {} exports of 2 spans through in 2 s",
        noisy.0
    );
    assert_eq!(quiet.1, 0, "the quiet tenant was limited");
    assert!(
        quiet.2.is_empty() && noisy.2.is_empty(),
        "{quiet:?} {noisy:?}"
    );
    assert!(
        quiet.0 > noisy.0,
        "the quiet tenant got fewer exports in than the limited one: {quiet:?} {noisy:?}"
    );

    // The cap: noisy and quiet exist; a third tenant fits, a fourth does not, on any transport.
    assert_eq!(export(&server, "third", 1).await.status(), 200);
    let refused = export(&server, "fourth", 1).await;
    assert_eq!(refused.status(), 429);
    let body = String::from_utf8_lossy(&refused.bytes().await.unwrap()).into_owned();
    assert!(body.contains("max_tenants = 3"), "{body}");
    let mut request = tonic::Request::new(trace_request(2, "svc"));
    request
        .metadata_mut()
        .insert("x-scope-orgid", MetadataValue::from_static("fifth"));
    let status = server
        .trace_client()
        .await
        .export(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("max_tenants"), "{status:?}");
    assert_eq!(
        export(&server, "quiet", 99).await.status(),
        200,
        "existing tenants keep working"
    );

    let limited = server
        .metric(r#"skewer_tenant_limited_requests_total{tenant="noisy",limit="ingest_records_per_second"}"#)
        .await;
    assert_eq!(limited, f64::from(noisy.1));
    let quiet_records = server
        .metric(r#"skewer_tenant_ingest_records_total{tenant="quiet"}"#)
        .await;
    assert_eq!(quiet_records, f64::from(quiet.0 + 1) * 2.0);
}
