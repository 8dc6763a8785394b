//! Starts and stops the real binary on free loopback ports with a temporary data dir.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::transport::Channel;

/// A free loopback port (bound then released; the race is negligible on loopback).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// A running `skewer serve`.
pub struct Server {
    child: Option<Child>,
    /// OTLP/gRPC address.
    pub grpc: SocketAddr,
    /// OTLP/HTTP address.
    pub otlp_http: SocketAddr,
    /// Query API address.
    pub http: SocketAddr,
    /// The data dir (kept across restarts).
    pub data_dir: PathBuf,
    log_path: PathBuf,
    extra_args: Vec<String>,
    /// `http`, or `https` for a server with TLS.
    scheme: &'static str,
    /// The client readiness, `/metrics` and `get_json` use (one trusting the test CA for TLS).
    client: reqwest::Client,
}

impl Server {
    /// Starts a server on `data_dir` and waits until `/readyz` answers 200.
    pub async fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_client(data_dir, extra_args, "http", client()).await
    }

    /// [`Server::start`] for a server spoken to as `scheme` with `client` (TLS: `https` and a
    /// client that trusts the server's certificate, with a client certificate for mTLS).
    pub async fn start_with_client(
        data_dir: &Path,
        extra_args: &[&str],
        scheme: &'static str,
        client: reqwest::Client,
    ) -> Self {
        let mut server = Self {
            child: None,
            grpc: free_addr(),
            otlp_http: free_addr(),
            http: free_addr(),
            data_dir: data_dir.to_path_buf(),
            log_path: PathBuf::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            scheme,
            client,
        };
        // A port picked by `free_addr` can be taken again (by another test's client) before
        // the server binds it: then start over on fresh ports.
        for _ in 0..3 {
            server.spawn();
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(log) if log.contains("cannot listen on") => {
                    server.grpc = free_addr();
                    server.otlp_http = free_addr();
                    server.http = free_addr();
                }
                Err(log) => panic!("skewer exited early:\n{log}"),
            }
        }
        panic!("skewer found no free ports in 3 tries:\n{}", server.log());
    }

    fn spawn(&mut self) {
        let logs_dir = self.data_dir.with_extension("logs");
        std::fs::create_dir_all(&logs_dir).expect("logs dir");
        let count = std::fs::read_dir(&logs_dir).map(|d| d.count()).unwrap_or(0);
        self.log_path = logs_dir.join(format!("server-{count}.log"));
        let log = std::fs::File::create(&self.log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_skewer"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--otlp-grpc-addr")
            .arg(self.grpc.to_string())
            .arg("--otlp-http-addr")
            .arg(self.otlp_http.to_string())
            .arg("--http-addr")
            .arg(self.http.to_string())
            .args(&self.extra_args)
            .env("SKEWER_LOG", "info")
            .current_dir(self.data_dir.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn skewer");
        self.child = Some(child);
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits for `/readyz`; `Err(log)` if the process exited first.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let url = self.api("/readyz");
        let start = Instant::now();
        loop {
            if let Ok(response) = self.client.get(&url).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exit status {status}\n{}", self.log()));
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "skewer not ready in 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory_bytes(&self) -> (u64, u64) {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .expect("memory field")
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Sends `signal` (`HUP`…) to the running server.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("send a signal");
        assert!(status.success());
    }

    /// SIGTERM and wait for exit, letting this test's runtime run meanwhile (its clients must
    /// be able to answer the server's goodbye).
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!(
                    "skewer did not stop within 60 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary again on the same data dir and ports.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn();
        if let Err(log) = self.wait_ready().await {
            panic!("skewer exited early on restart:\n{log}");
        }
    }

    /// Base URL of the query API.
    pub fn api(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.http, path)
    }

    /// URL of an OTLP/HTTP endpoint.
    pub fn otlp_url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.otlp_http, path)
    }

    /// Address of the OTLP/HTTP listener, for raw-socket clients.
    pub fn otlp_http_addr(&self) -> SocketAddr {
        self.otlp_http
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("connect gRPC")
    }

    /// A tonic trace client.
    pub async fn trace_client(&self) -> TraceServiceClient<Channel> {
        TraceServiceClient::new(self.channel().await)
    }

    /// A tonic logs client.
    pub async fn logs_client(&self) -> LogsServiceClient<Channel> {
        LogsServiceClient::new(self.channel().await)
    }

    /// A tonic metrics client.
    pub async fn metrics_client(&self) -> MetricsServiceClient<Channel> {
        MetricsServiceClient::new(self.channel().await)
    }

    /// The server's `/metrics` text.
    pub async fn self_metrics(&self) -> String {
        self.client
            .get(self.api("/metrics"))
            .send()
            .await
            .expect("query API reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// One sample of `/metrics`, named with its labels (`skewer_storage_files{signal="traces"}`).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.self_metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
    }

    /// Polls `condition` every 100 ms until it holds; panics with `what` after `timeout`.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !condition().await {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no log record waits in memory: every one is in the index.
    pub async fn wait_logs_committed(&self) {
        self.wait_for("logs committed", Duration::from_secs(30), || async {
            self.metric(r#"skewer_buffered_records{signal="logs"}"#)
                .await
                == 0.0
        })
        .await;
    }

    /// GETs a query API path as JSON, returning the status and body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_json_as(path, None).await
    }

    /// GETs a query API path as JSON for a tenant.
    pub async fn get_json_as(&self, path: &str, tenant: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(self.api(path));
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        let response = request.send().await.expect("query API reachable");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw connection to `addr` from the loopback address `from` (every 127/8 address reaches
/// the server's 127.0.0.1, each counted as its own client).
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The HTTP client tests talk to a server with. Idle pooled connections are dropped before
/// the server's `header_read_timeout_seconds` (10 s) closes them: a request sent on one the
/// server is closing at that moment gets a reset, as with any HTTP/1.1 server.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// A third-party server a test talks to (Prometheus, an S3-compatible store); killed on drop.
pub struct Peer {
    child: Child,
}

impl Peer {
    /// Runs `command` with its output in `log` and waits (30 s at most) until `ready_url`
    /// answers 200.
    pub async fn start(command: Command, log: &Path, ready_url: &str) -> Self {
        let peer = Self::spawn(command, log);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let ready = client
                .get(ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return peer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{ready_url} not ready in 30 s: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Peer {
    /// Runs `command` with its output in `log` and waits (30 s at most) until it accepts
    /// connections on `addr` (servers that answer nothing without credentials).
    pub async fn start_listening(command: Command, log: &Path, addr: std::net::SocketAddr) -> Self {
        let peer = Self::spawn(command, log);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{addr} not listening in 30 s: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peer
    }
}

impl Peer {
    fn spawn(mut command: Command, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).expect("peer log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn a peer");
        Self { child }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
