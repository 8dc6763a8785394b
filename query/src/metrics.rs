//! Metric points grouped into series: one per (name, resource, attributes), points in time
//! order; and the catalog of the metrics stored in a time range.

use std::collections::BTreeMap;

use skewer_storage::Storage;
use skewer_storage::catalog::{FileSummary, MetricCatalog};
use skewer_storage::model::{MetricPoint, TenantId};
use skewer_storage::parquet_codec::decode_metric_points;
use skewer_storage::scan::{ScanLimits, ScanRequest, TimeRange};

use crate::QueryError;

/// One series and its points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Stable id of the series.
    pub series_id: u64,
    /// Its points, oldest first, each time once.
    pub points: Vec<MetricPoint>,
}

/// The series of metric `name` with points in `[start, end)`, ordered by series id.
pub async fn metric_series(
    storage: &Storage,
    tenant: &TenantId,
    name: &str,
    start_unix_nano: u64,
    end_unix_nano: u64,
    limits: ScanLimits,
) -> Result<Vec<Series>, QueryError> {
    if name.is_empty() {
        return Err(QueryError::InvalidParameter {
            parameter: "name",
            reason: "a metric name is required".to_owned(),
        });
    }
    let range = time_range(start_unix_nano, end_unix_nano)?;
    let mut stream = storage.scan(ScanRequest::metric(tenant.clone(), name, range, limits))?;
    let mut points = Vec::new();
    while let Some(batch) = stream.next().await {
        points.extend(decode_metric_points(&batch?).map_err(skewer_storage::StorageError::from)?);
    }
    Ok(group_into_series(points))
}

/// Groups points by series, sorts each by time, drops repeated (time, start time) pairs.
pub fn group_into_series(points: Vec<MetricPoint>) -> Vec<Series> {
    let mut by_series: BTreeMap<u64, Vec<MetricPoint>> = BTreeMap::new();
    for point in points {
        by_series.entry(point.series_id()).or_default().push(point);
    }
    by_series
        .into_iter()
        .map(|(series_id, mut points)| {
            points.sort_by_key(|p| (p.time_unix_nano, p.start_time_unix_nano));
            points.dedup_by_key(|p| (p.time_unix_nano, p.start_time_unix_nano));
            Series { series_id, points }
        })
        .collect()
}

/// The metrics of a tenant with points in `[start, end)`, by OTLP name: from file summaries
/// and buffers when every file in the range has one, else by reading every point.
pub async fn metric_catalog(
    storage: &Storage,
    tenant: &TenantId,
    start_unix_nano: u64,
    end_unix_nano: u64,
    limits: ScanLimits,
) -> Result<MetricCatalog, QueryError> {
    let range = time_range(start_unix_nano, end_unix_nano)?;
    if let Some(catalog) = storage.metric_catalog(tenant, range).await {
        return Ok(catalog);
    }
    let mut summary = FileSummary::default();
    let mut stream = storage.scan(ScanRequest::metrics(tenant.clone(), None, range, limits))?;
    while let Some(batch) = stream.next().await {
        let points = decode_metric_points(&batch?).map_err(skewer_storage::StorageError::from)?;
        summary.add_metric_points(&points);
    }
    Ok(summary.metrics)
}

/// `[start, end)` as a scan range; an empty range is the caller's mistake.
fn time_range(start_unix_nano: u64, end_unix_nano: u64) -> Result<TimeRange, QueryError> {
    if start_unix_nano >= end_unix_nano {
        return Err(QueryError::InvalidParameter {
            parameter: "start",
            reason: format!("start {start_unix_nano} is not before end {end_unix_nano}"),
        });
    }
    Ok(TimeRange {
        start_unix_nano,
        end_unix_nano,
    })
}
