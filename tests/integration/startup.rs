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
