//! Startup and shutdown: clear errors and a non-zero exit for a taken port or an unusable
//! data dir; SIGTERM drains, flushes and exits 0.

use std::process::Command;

use crate::harness::free_addr;

fn serve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skewer"))
        .arg("serve")
        .args(args)
        .output()
        .expect("run skewer")
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let output = serve(&[
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--otlp-grpc-addr",
        &taken_addr,
        "--otlp-http-addr",
        &free_addr().to_string(),
        "--http-addr",
        &free_addr().to_string(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {taken_addr}")),
        "{stderr}"
    );
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let output = serve(&["--data-dir", file.join("sub").to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("data dir"), "{stderr}");
}

#[test]
fn help_lists_every_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data-dir",
        "--otlp-grpc-addr",
        "--otlp-http-addr",
        "--http-addr",
        "--config",
        "--max-buffered-bytes",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "data_dri = \"x\"\n").unwrap();
    let output = serve(&["--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("data_dri"));
}

#[test]
fn errors_say_their_cause_once_and_logs_are_plain_or_json_off_a_terminal() {
    let missing = serve(&["--config", "/nonexistent/skewer.toml"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (data_dir, taken_addr) = (
        dir.path().join("d"),
        taken.local_addr().unwrap().to_string(),
    );
    // An empty config file: the server logs that it loaded it, then fails on the port.
    let config = dir.path().join("skewer.toml");
    std::fs::write(&config, "").unwrap();
    let args = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--otlp-grpc-addr",
        &taken_addr,
    ];
    let run = |format: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skewer"));
        command.args(args).env("SKEWER_LOG", "info");
        if let Some(format) = format {
            command.env("SKEWER_LOG_FORMAT", format);
        }
        String::from_utf8_lossy(&command.output().expect("run skewer").stderr).into_owned()
    };
    let plain = run(None);
    assert!(plain.contains(" INFO "), "some log lines: {plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "no colour codes off a terminal: {plain:?}"
    );
    let json = run(Some("json"));
    let log_lines: Vec<&str> = json
        .lines()
        .filter(|line| !line.starts_with("skewer: error:"))
        .collect();
    assert!(!log_lines.is_empty(), "{json}");
    for line in log_lines {
        let parsed: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(parsed["level"].is_string(), "{line}");
    }
}

#[test]
fn a_non_loopback_listener_without_keys_and_tls_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("d");
    let port = free_addr().port();
    let exposed = format!("0.0.0.0:{port}");
    let output = serve(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--http-addr",
        &exposed,
        "--otlp-grpc-addr",
        &free_addr().to_string(),
        "--otlp-http-addr",
        &free_addr().to_string(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "refusing to listen on {exposed} (http_addr) without API keys and TLS"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--insecure"), "{stderr}");
}

/// A log consumer that goes away (`skewer serve | head`, a shipper that died) must not take the
/// server with it: log lines to a closed stderr are dropped, SIGTERM still shuts down cleanly.
#[tokio::test]
async fn a_closed_stderr_neither_crashes_the_server_nor_stops_its_shutdown() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--otlp-grpc-addr", &free_addr().to_string()])
        .args(["--otlp-http-addr", &free_addr().to_string()])
        .args(["--http-addr", &http.to_string()])
        .env("SKEWER_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("skewer ready") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "skewer exited before it was ready"
        );
    }
    drop(stderr);
    // Requests log (each with its request id); the server keeps answering.
    for _ in 0..3 {
        let response = reqwest::get(format!("http://{http}/api/services"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("no shutdown within 30 s of SIGTERM with stderr closed");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
}
