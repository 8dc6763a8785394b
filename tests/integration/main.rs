//! Integration tests: the real `skewer` binary on loopback ports, driven over real protocols
//! (a tonic OTLP client, OTLP/HTTP with reqwest), killed and restarted for durability.
//! One test binary, one module per area.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerting;
mod auth;
mod backup;
mod catalog_postgres;
mod deployment_backup;
mod disk_full;
mod durability;
mod fixtures;
mod harness;
mod hostile;
mod http_ingest;
mod jaeger_api;
mod lifecycle;
mod loadgen;
mod log_search;
mod loki_api;
mod multi_node;
mod object_store;
mod overload;
mod prometheus_api;
mod prometheus_peer;
mod promql_differential;
mod query_api;
mod redaction;
mod remote_write;
mod round_trip;
mod s3s_fs;
mod startup;
mod stitch;
mod tenancy;
mod tls;
