//! Log search: validated parameters, newest first (or a page in either direction after a
//! cursor), duplicates removed.

use std::ops::ControlFlow;

use skewer_storage::Storage;
use skewer_storage::log_store::{LogVisitor, ScanDirection};
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

/// Where the next page of a search starts: after `skip` records of time `time_unix_nano` in
/// the search's direction (and everything before them). Written `"<ns>.<skip>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    /// The time of the last record returned, Unix ns.
    pub time_unix_nano: u64,
    /// How many records of exactly that time were returned so far.
    pub skip: usize,
}

impl LogCursor {
    /// The cursor after a page (records in the search's order) that began after `previous`.
    pub fn after_page(records: &[LogRecord], previous: Option<LogCursor>) -> Option<Self> {
        let time = records.last()?.effective_time_unix_nano();
        let at_time = records
            .iter()
            .rev()
            .take_while(|r| r.effective_time_unix_nano() == time)
            .count();
        // Records of that time on earlier pages were skipped on this one.
        let earlier = previous
            .filter(|c| c.time_unix_nano == time)
            .map_or(0, |c| c.skip);
        Some(Self {
            time_unix_nano: time,
            skip: earlier + at_time,
        })
    }
}

impl std::fmt::Display for LogCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.time_unix_nano, self.skip)
    }
}

impl std::str::FromStr for LogCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (time, skip) = text
            .split_once('.')
            .ok_or_else(|| format!("{text:?} is not a cursor this API returned"))?;
        Ok(Self {
            time_unix_nano: time
                .parse()
                .map_err(|_| format!("{text:?} is not a cursor this API returned"))?,
            skip: skip
                .parse()
                .map_err(|_| format!("{text:?} is not a cursor this API returned"))?,
        })
    }
}

/// A page of a search and where the next one starts (none when this one is the last).
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    /// The records, in the search's direction.
    pub records: Vec<LogRecord>,
    /// The next page's cursor, when the page is full.
    pub next: Option<LogCursor>,
}

/// Collects a page in scan order, after the cursor.
struct PageCollector {
    limit: usize,
    after: Option<LogCursor>,
    skipped: usize,
    records: Vec<LogRecord>,
}

impl LogVisitor for PageCollector {
    fn visit(&mut self, record: &LogRecord) -> ControlFlow<()> {
        let time = record.effective_time_unix_nano();
        if let Some(cursor) = self.after
            && time == cursor.time_unix_nano
            && self.skipped < cursor.skip
        {
            self.skipped += 1;
            return ControlFlow::Continue(());
        }
        self.records.push(record.clone());
        if self.records.len() > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// A page of a search in either direction, starting after `cursor`: the store's ordered scan
/// (records of one nanosecond keep their arrival order; an index merge between two pages may
/// reorder such a tie). `query.limit` is clamped to [`MAX_LOG_LIMIT`], 0 meaning the default.
pub async fn search_logs_page(
    storage: &Storage,
    tenant: &TenantId,
    mut query: LogQuery,
    direction: ScanDirection,
    cursor: Option<LogCursor>,
) -> Result<LogPage, QueryError> {
    let limit = match query.limit {
        0 => DEFAULT_LOG_LIMIT,
        limit => limit.min(MAX_LOG_LIMIT),
    };
    if let Some(cursor) = cursor {
        // The cursor's time is still in range: some of its records may follow.
        match direction {
            ScanDirection::Backward => {
                let end = cursor.time_unix_nano.saturating_add(1);
                query.end_unix_nano = Some(query.end_unix_nano.map_or(end, |e| e.min(end)));
            }
            ScanDirection::Forward => {
                let start = cursor.time_unix_nano;
                query.start_unix_nano = Some(query.start_unix_nano.map_or(start, |s| s.max(start)));
            }
        }
    }
    if let (Some(start), Some(end)) = (query.start_unix_nano, query.end_unix_nano)
        && start >= end
    {
        return Ok(LogPage {
            records: Vec::new(),
            next: None,
        });
    }
    let collector = PageCollector {
        limit,
        after: cursor,
        skipped: 0,
        records: Vec::new(),
    };
    let mut records = storage
        .scan_logs(tenant, query, direction, collector)
        .await?
        .records;
    // One record past the limit says whether another page exists.
    let full = records.len() > limit;
    records.truncate(limit);
    let next = if full {
        LogCursor::after_page(&records, cursor)
    } else {
        None
    };
    Ok(LogPage { records, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_count_ties_across_pages() {
        let cursor: LogCursor = "1700000000000000000.3".parse().unwrap();
        assert_eq!(cursor.to_string(), "1700000000000000000.3");
        assert!("yesterday".parse::<LogCursor>().is_err());
        assert!("1.x".parse::<LogCursor>().is_err());
        let at = |time: u64| LogRecord {
            resource: Default::default(),
            scope: Default::default(),
            time_unix_nano: time,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: String::new(),
            body: skewer_storage::model::AttributeValue::Empty,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            correlation_id: None,
        };
        // A page ending with two records of one time after a page that ended with one.
        let page = [at(9), at(7), at(7)];
        let previous = LogCursor {
            time_unix_nano: 7,
            skip: 1,
        };
        assert_eq!(
            LogCursor::after_page(&page, Some(previous)),
            Some(LogCursor {
                time_unix_nano: 7,
                skip: 3
            })
        );
        assert_eq!(
            LogCursor::after_page(&page[..1], Some(previous)),
            Some(LogCursor {
                time_unix_nano: 9,
                skip: 1
            })
        );
        assert_eq!(LogCursor::after_page(&[], None), None);
    }
}
