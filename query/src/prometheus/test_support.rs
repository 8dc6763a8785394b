//! Points and expectations shared by the conversion tests.

use std::sync::Arc;

use skewer_storage::model::{
    Attribute, InstrumentationScope, MetricDescriptor, MetricKind, MetricPoint, MetricSeries,
    NumberValue, PointValue, Resource, Temporality,
};

use crate::promql::{Series, is_stale};

/// One second in nanoseconds.
pub(super) const SECOND_NS: u64 = 1_000_000_000;

/// A series as `(metric name, le or quantile value, [(ms, value)])`, stale markers as -1.
pub(super) type FlatSeries = (String, String, Vec<(i64, f64)>);

/// Points of one series named `m` of the `api` service, one per `(time, value)`.
pub(super) fn points(
    kind: MetricKind,
    temporality: Temporality,
    values: Vec<(u64, PointValue)>,
) -> Vec<MetricPoint> {
    let metric = Arc::new(MetricDescriptor {
        name: "m".into(),
        description: String::new(),
        unit: String::new(),
        kind,
        temporality,
        is_monotonic: true,
    });
    let resource = Arc::new(Resource {
        attributes: vec![Attribute::string("service.name", "api")],
        ..Resource::default()
    });
    values
        .into_iter()
        .map(|(time_unix_nano, value)| MetricPoint {
            series: Arc::new(MetricSeries::new(
                Arc::clone(&resource),
                Arc::new(InstrumentationScope::default()),
                Arc::clone(&metric),
                vec![Attribute::string("k", "v")],
            )),
            start_time_unix_nano: 0,
            time_unix_nano,
            flags: 0,
            value,
            exemplars: vec![],
        })
        .collect()
}

/// A gauge or sum value.
pub(super) fn number(value: f64) -> PointValue {
    PointValue::Number {
        value: NumberValue::Double(value),
    }
}

/// An explicit-bucket histogram value counting `counts` (one more than `bounds`).
pub(super) fn histogram(bounds: &[f64], counts: &[u64], sum: Option<f64>) -> PointValue {
    PointValue::Histogram {
        count: counts.iter().sum(),
        sum,
        min: None,
        max: None,
        explicit_bounds: bounds.to_vec(),
        bucket_counts: counts.to_vec(),
    }
}

/// Series as [`FlatSeries`], to compare whole conversions at a glance.
pub(super) fn flat(series: &[Series]) -> Vec<FlatSeries> {
    series
        .iter()
        .map(|s| {
            let extra = format!("{}{}", s.labels.get("le"), s.labels.get("quantile"));
            let samples = s
                .samples
                .iter()
                .map(|x| {
                    (
                        x.timestamp_ms,
                        if is_stale(x.value) { -1.0 } else { x.value },
                    )
                })
                .collect();
            (s.labels.metric_name().to_owned(), extra, samples)
        })
        .collect()
}

/// An expected [`FlatSeries`].
pub(super) fn series(name: &str, extra: &str, samples: &[(i64, f64)]) -> FlatSeries {
    (name.to_owned(), extra.to_owned(), samples.to_vec())
}
