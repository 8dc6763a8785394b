//! Safe by default: a listener other than loopback is reachable by others, so `serve` refuses
//! one unless API keys exist and TLS is on, or `--insecure` says the network is trusted.

use std::net::SocketAddr;

/// Why the server will not start as configured.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {addresses} without {missing}: anyone who can reach it could write \
     and read every tenant's data. Create a key (`skewer keys create --tenant '*' --scope \
     admin`), configure [tls] cert_file and key_file, or pass --insecure (SKEWER_INSECURE=true) \
     if the network is trusted"
)]
pub struct ExposureError {
    /// The non-loopback listen addresses.
    addresses: String,
    /// `API keys`, `TLS`, or both.
    missing: &'static str,
}

/// Checks the listen addresses against what protects them.
pub fn check_exposure(
    listeners: &[(&'static str, SocketAddr)],
    keys_required: bool,
    tls: bool,
    insecure: bool,
) -> Result<(), ExposureError> {
    let exposed: Vec<String> = listeners
        .iter()
        .filter(|(_, addr)| !addr.ip().is_loopback())
        .map(|(key, addr)| format!("{addr} ({key})"))
        .collect();
    if exposed.is_empty() || insecure {
        return Ok(());
    }
    let missing = match (keys_required, tls) {
        (true, true) => return Ok(()),
        (false, false) => "API keys and TLS",
        (false, true) => "API keys",
        (true, false) => "TLS",
    };
    Err(ExposureError {
        addresses: exposed.join(", "),
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_needs_nothing_and_exposure_needs_keys_and_tls() {
        let local = [
            ("http_addr", addr("127.0.0.1:8080")),
            ("x", addr("[::1]:1")),
        ];
        assert!(check_exposure(&local, false, false, false).is_ok());
        let exposed = [
            ("http_addr", addr("127.0.0.1:8080")),
            ("otlp_grpc_addr", addr("0.0.0.0:4317")),
        ];
        let err = check_exposure(&exposed, false, false, false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("0.0.0.0:4317 (otlp_grpc_addr)"), "{text}");
        assert!(text.contains("API keys and TLS"), "{text}");
        assert!(!text.contains("8080"), "{text}");
        assert!(
            check_exposure(&exposed, true, false, false)
                .unwrap_err()
                .to_string()
                .contains("without TLS")
        );
        assert!(
            check_exposure(&exposed, false, true, false)
                .unwrap_err()
                .to_string()
                .contains("without API keys")
        );
        assert!(check_exposure(&exposed, true, true, false).is_ok());
        assert!(check_exposure(&exposed, false, false, true).is_ok());
    }
}
