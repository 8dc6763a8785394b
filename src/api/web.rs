//! The web UI on the query port: `/` is the page, `/ui/*` its scripts and styles, embedded
//! into the binary at build time (see `build.rs`). Serves files only; every figure the UI
//! shows comes from the read APIs beside it.
//!
//! `SKEWER_UI_DIR=web` serves the files from that directory instead, read at each request,
//! so the UI can be edited and reloaded without rebuilding.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The page's scripts and styles come only from this server, and it sends requests only
/// here: nothing the UI loads or asks leaves the host. Styles set from scripts (widths of
/// waterfall bars) need `'unsafe-inline'` for styles, never for scripts.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Environment variable naming a directory to serve the UI from instead of the embedded copy.
pub const UI_DIR_ENV: &str = "SKEWER_UI_DIR";

/// The UI's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(UrlPath(path): UrlPath<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    if let Some(dir) = ui_dir() {
        return serve_from_disk(dir, path);
    }
    let Some(asset) = embedded_asset(path) else {
        return not_found(path);
    };
    let etag = asset.etag.as_str();
    let unchanged = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.bytes).into_response()
    };
    let response_headers = response.headers_mut();
    set_common_headers(response_headers, asset.content_type);
    if let Ok(value) = HeaderValue::from_str(etag) {
        response_headers.insert(ETAG, value);
    }
    response
}

/// Headers every UI response carries. `no-cache` revalidates with the ETag, so a new binary's
/// UI is picked up at the next load while unchanged files cost a 304.
fn set_common_headers(headers: &mut HeaderMap, content_type: &'static str) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("no such file in skewer's UI: {path}\n"),
    )
        .into_response()
}

/// One embedded file with its validator.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    etag: String,
}

fn embedded_asset(path: &str) -> Option<&'static Asset> {
    static TABLE: OnceLock<Vec<(&'static str, Asset)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        embedded::ASSETS
            .iter()
            .map(|&(path, bytes)| {
                let etag = format!("\"{:016x}\"", fnv1a(bytes));
                (
                    path,
                    Asset {
                        content_type: content_type(path),
                        bytes,
                        etag,
                    },
                )
            })
            .collect()
    });
    table
        .iter()
        .find(|(asset_path, _)| *asset_path == path)
        .map(|(_, asset)| asset)
}

/// The content type of a UI file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn ui_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(UI_DIR_ENV).map(PathBuf::from))
        .as_deref()
}

/// A file under `dir` (development only); paths leaving the directory are refused.
fn serve_from_disk(dir: &Path, path: &str) -> Response {
    let relative = Path::new(path);
    if !relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return not_found(path);
    }
    match std::fs::read(dir.join(relative)) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            set_common_headers(response.headers_mut(), content_type(path));
            response
        }
        Err(_) => not_found(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_module_the_shell_imports_is_embedded() {
        let index = embedded_asset("index.html").unwrap();
        assert!(index.content_type.starts_with("text/html"));
        let app = embedded_asset("app.mjs").unwrap();
        assert_eq!(app.content_type, "text/javascript; charset=utf-8");
        let source = std::str::from_utf8(app.bytes).unwrap();
        for line in source.lines().filter(|line| line.starts_with("import ")) {
            let module = line.rsplit('"').nth(1).unwrap().trim_start_matches("./");
            assert!(
                embedded_asset(module).is_some(),
                "{module} is imported by app.mjs but not embedded"
            );
        }
    }

    #[test]
    fn unknown_files_are_not_found_and_etags_differ_by_content() {
        assert!(embedded_asset("nope.js").is_none());
        assert!(embedded_asset("../Cargo.toml").is_none());
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
