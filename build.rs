//! Embeds the web UI: lists every file under `web/` into a table of (path, bytes) that
//! `src/api/web.rs` serves, so the binary needs no files beside it. Uses no system tools.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web_dir = manifest_dir.join("web");
    println!("cargo:rerun-if-changed=web");
    let mut files = Vec::new();
    collect(&web_dir, &mut files);
    files.sort();
    let mut table = String::from(
        "/// Every file of the web UI: its path under `web/` and its bytes.\n\
         pub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        let Ok(relative) = file.strip_prefix(&web_dir) else {
            continue;
        };
        let Some(relative) = relative.to_str() else {
            panic!("web asset path is not UTF-8: {}", file.display());
        };
        let relative = relative.replace('\\', "/");
        println!("cargo:rerun-if-changed=web/{relative}");
        // Relative to the crate being compiled, not to where this script ran: a target
        // directory shared between checkouts reuses this table without rerunning the script.
        let _ = writeln!(
            table,
            "    ({relative:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),",
            format!("/web/{relative}")
        );
    }
    table.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(err) = std::fs::write(out_dir.join("web_assets.rs"), table) {
        panic!("cannot write the web asset table: {err}");
    }
}

/// Files under `dir`, recursively; hidden files (editor swap files…) left out.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
