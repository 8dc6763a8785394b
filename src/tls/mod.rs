//! TLS on every listener, with rustls (ring): one certificate for the gRPC, OTLP/HTTP and query
//! ports, reloaded when its files change ([`TlsReloader`]); optional client certificates checked
//! against a CA (mTLS), optionally mapped to tenants by subject ([`ClientTenants`]). Connections are accepted and their handshakes run off the accept loop,
//! each within a deadline, so a client that stalls its handshake holds one task and no port
//! ([`TlsListener`]); the listener serves axum directly and tonic as a stream.

mod client_tenants;
mod error;
mod listener;
mod reloader;
mod server_config;

pub use client_tenants::ClientTenants;
pub use error::TlsError;
pub use listener::TlsListener;
pub use reloader::TlsReloader;
pub use server_config::TlsFiles;
