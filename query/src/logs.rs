//! Log search: validated parameters, newest first, duplicates removed.

use skewer_storage::Storage;
use skewer_storage::logs::LogQuery;
use skewer_storage::model::{LogRecord, TenantId};

use crate::QueryError;

/// Records returned when the caller names no limit.
pub const DEFAULT_LOG_LIMIT: usize = 100;
/// The most records one search returns.
pub const MAX_LOG_LIMIT: usize = 5_000;

/// Runs a search. `limit` is clamped to [`MAX_LOG_LIMIT`]; a record stored twice (crash
/// between commit and checkpoint) is returned once.
pub async fn search_logs(
    storage: &Storage,
    tenant: &TenantId,
    mut query: LogQuery,
) -> Result<Vec<LogRecord>, QueryError> {
    if let (Some(start), Some(end)) = (query.start_unix_nano, query.end_unix_nano)
        && start >= end
    {
        return Err(QueryError::InvalidParameter {
            parameter: "start",
            reason: format!("start {start} is not before end {end}"),
        });
    }
    if query.limit == 0 {
        query.limit = DEFAULT_LOG_LIMIT;
    }
    query.limit = query.limit.min(MAX_LOG_LIMIT);
    let limit = query.limit;
    // Ask for a few more, so removing duplicates cannot shorten a full page.
    query.limit = (limit * 2).min(MAX_LOG_LIMIT * 2);
    let mut records = storage.search_logs(tenant, query).await?;
    dedup_sorted(&mut records);
    records.truncate(limit);
    Ok(records)
}

/// Removes exact repeats from records already sorted newest first.
fn dedup_sorted(records: &mut Vec<LogRecord>) {
    let mut kept: Vec<LogRecord> = Vec::with_capacity(records.len());
    for record in records.drain(..) {
        let time = record.effective_time_unix_nano();
        let repeated = kept
            .iter()
            .rev()
            .take_while(|k| k.effective_time_unix_nano() == time)
            .any(|k| *k == record);
        if !repeated {
            kept.push(record);
        }
    }
    *records = kept;
}
