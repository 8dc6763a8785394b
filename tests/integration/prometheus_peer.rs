//! A real Prometheus server (Debian's `prometheus` package, 2.x) on a loopback port with its
//! remote-write receiver on, for differential tests. `.ci/run` installs it; elsewhere a test
//! that needs it is skipped with a notice, unless `SKEWER_REQUIRE_PROMETHEUS=1` makes its
//! absence a failure (CI sets it).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_addr;

/// A running Prometheus; killed on drop.
pub struct Prometheus {
    child: Child,
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
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let prometheus = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let ready = client
                .get(format!("http://{addr}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return Some(prometheus);
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready in 30 s: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
