//! A real Prometheus server (Debian's `prometheus` package, 2.x) on a loopback port with its
//! remote-write receiver on, for differential tests. `.ci/run` installs it; elsewhere a test
//! that needs it is skipped with a notice, unless `SKEWER_REQUIRE_PROMETHEUS=1` makes its
//! absence a failure (CI sets it).

use std::path::Path;
use std::process::Command;

use crate::harness::{Peer, free_addr};

/// A running Prometheus; killed on drop.
pub struct Prometheus {
    _process: Peer,
    /// Its HTTP address.
    pub addr: std::net::SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with its data in `dir`; `None` when the binary is missing and not
    /// required.
    pub async fn start(dir: &Path) -> Option<Self> {
        let binary = std::env::var("SKEWER_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let required = std::env::var("SKEWER_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
        if Command::new(&binary).arg("--version").output().is_err() {
            assert!(
                !required,
                "SKEWER_REQUIRE_PROMETHEUS=1 but {binary:?} cannot run (apt-get install prometheus)"
            );
            eprintln!("SKIPPED: no {binary:?} on this machine (apt-get install prometheus)");
            return None;
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
        let addr = free_addr();
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver");
        let process = Peer::start(
            command,
            &dir.join("prometheus.log"),
            &format!("http://{addr}/-/ready"),
        )
        .await;
        Some(Self {
            _process: process,
            addr,
        })
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
