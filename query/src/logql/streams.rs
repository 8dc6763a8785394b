//! The streams of a time range: the stream label sets of the records in it, optionally only
//! those a selector matches (what Loki's `labels`, `label/{name}/values` and `series` list),
//! read from the partitions' stream catalogs.

use skewer_storage::Storage;
use skewer_storage::model::TenantId;

use super::ast::Matcher;
use super::labels::Labels;
use crate::QueryError;

/// Whether any selector matches `stream` (no selector: every stream does).
pub fn any_selector_matches(selectors: &[Vec<Matcher>], stream: &Labels) -> bool {
    selectors.is_empty()
        || selectors.iter().any(|selector| {
            selector
                .iter()
                .all(|matcher| matcher.matches(stream.get(&matcher.name).unwrap_or("")))
        })
}

/// The distinct streams with records in `[start, end)` that any of `selectors` matches (all
/// when there is none), sorted.
pub async fn list_streams(
    storage: &Storage,
    tenant: &TenantId,
    selectors: &[Vec<Matcher>],
    start_unix_nano: u64,
    end_unix_nano: u64,
) -> Result<Vec<Labels>, QueryError> {
    Ok(storage
        .log_streams(tenant, start_unix_nano, end_unix_nano)
        .await?
        .into_iter()
        .map(Labels::from_sorted)
        .filter(|stream| any_selector_matches(selectors, stream))
        .collect())
}
