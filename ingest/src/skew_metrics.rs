//! The clock-skew estimates (storage's per host pair offsets, learnt from client → server
//! span pairs) as a gauge in the metric store, so PromQL, charts and alert rules read them:
//! `skewer.clock.skew` in seconds (`skewer_clock_skew_seconds` to Prometheus, `job="skewer"`)
//! with `client_service`, `client_host`, `server_service`, `server_host`, and
//! `skewer.clock.skew.exchanges` (the exchanges an estimate is taken from).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use skewer_storage::skew::SkewEstimate;

use crate::span_metrics::string;

/// The offset gauge.
pub const SKEW_METRIC: &str = "skewer.clock.skew";
/// The exchanges gauge.
pub const EXCHANGES_METRIC: &str = "skewer.clock.skew.exchanges";

/// Pairs whose last exchange is older than this are no longer written (the hosts are gone).
pub const FRESH_NANOS: u64 = 10 * 60 * 1_000_000_000;

/// One tenant's estimates with an exchange in the last [`FRESH_NANOS`] as an export at
/// `now_unix_nano`; `None` when there is none.
pub fn clock_skew_export(
    estimates: &[SkewEstimate],
    now_unix_nano: u64,
) -> Option<ExportMetricsServiceRequest> {
    let estimates: Vec<&SkewEstimate> = estimates
        .iter()
        .filter(|e| now_unix_nano.saturating_sub(e.last_seen_unix_nano) <= FRESH_NANOS)
        .collect();
    if estimates.is_empty() {
        return None;
    }
    let points = |value: &dyn Fn(&SkewEstimate) -> number_data_point::Value| {
        estimates
            .iter()
            .map(|estimate| NumberDataPoint {
                attributes: vec![
                    string("client_service", &estimate.pair.client_service),
                    string("client_host", &estimate.pair.client_host),
                    string("server_service", &estimate.pair.server_service),
                    string("server_host", &estimate.pair.server_host),
                ],
                time_unix_nano: now_unix_nano,
                value: Some(value(estimate)),
                ..NumberDataPoint::default()
            })
            .collect()
    };
    let gauge = |name: &str, description: &str, unit: &str, data_points| Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Metric::default()
    };
    Some(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string("service.name", "skewer")],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "skewer.clock_skew".to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics: vec![
                    gauge(
                        SKEW_METRIC,
                        "How far the server host's clock is ahead of the client host's.",
                        "s",
                        points(&|e| {
                            number_data_point::Value::AsDouble(e.offset_nanos as f64 / 1e9)
                        }),
                    ),
                    gauge(
                        EXCHANGES_METRIC,
                        "Client/server exchanges the estimate is taken from.",
                        "{exchange}",
                        points(&|e| {
                            number_data_point::Value::AsInt(
                                i64::try_from(e.samples).unwrap_or(i64::MAX),
                            )
                        }),
                    ),
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    })
}

#[cfg(test)]
mod tests {
    use skewer_storage::skew::HostPair;

    use super::*;

    #[test]
    fn estimates_become_gauges_in_seconds() {
        assert!(clock_skew_export(&[], 1).is_none());
        let estimate = SkewEstimate {
            pair: HostPair {
                client_service: "checkout".into(),
                client_host: "a".into(),
                server_service: "payment".into(),
                server_host: "b".into(),
            },
            offset_nanos: 250_000_000,
            spread_nanos: 1_000,
            samples: 12,
            last_seen_unix_nano: 5,
        };
        assert!(
            clock_skew_export(std::slice::from_ref(&estimate), 5 + FRESH_NANOS + 1).is_none(),
            "a pair not seen for long is not written"
        );
        let request = clock_skew_export(&[estimate], 9).expect("one pair");
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Gauge(gauge)) = &metrics[0].data else {
            panic!("a gauge")
        };
        assert_eq!(
            gauge.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.25))
        );
        assert_eq!(gauge.data_points[0].attributes.len(), 4);
        assert_eq!(gauge.data_points[0].time_unix_nano, 9);
        let Some(metric::Data::Gauge(exchanges)) = &metrics[1].data else {
            panic!("a gauge")
        };
        assert_eq!(
            exchanges.data_points[0].value,
            Some(number_data_point::Value::AsInt(12))
        );
    }
}
