//! The demo's metrics, kept as an instrumented service keeps them: every server span counted
//! into `http.server.request.duration` (a cumulative histogram per service, method, route and
//! status, its latest request as exemplar), checkouts into `shop.orders` by outcome, and per
//! service `process.cpu.utilization` and `process.memory.usage`, which describe the process
//! and carry no request attributes.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};

use super::request::{Served, ShopService};
use super::shop::{CHECKOUT, OrderOutcome};
use crate::common::{int, scope, string};
use crate::metrics::BOUNDS;
use crate::rng::Random;

/// One histogram series: counts per bucket, sum, count, min, max, latest exemplar.
#[derive(Debug, Clone, Default)]
struct Durations {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
    latest: Option<(u64, f64, [u8; 16], [u8; 8])>,
}

/// A histogram series' key: service, method, route, status.
type SeriesKey = (usize, &'static str, &'static str, u16);

/// The shop's instruments since the demo started.
pub struct ShopMetrics {
    start_unix_nano: u64,
    durations: BTreeMap<SeriesKey, Durations>,
    orders: BTreeMap<&'static str, i64>,
    served_since_export: Vec<u64>,
    memory_bytes: Vec<i64>,
}

impl ShopMetrics {
    /// Instruments for `services`, cumulative from `start_unix_nano`.
    pub fn new(services: usize, start_unix_nano: u64) -> Self {
        Self {
            start_unix_nano,
            durations: BTreeMap::new(),
            orders: BTreeMap::new(),
            served_since_export: vec![0; services],
            memory_bytes: (0..services)
                .map(|index| (96 + 24 * index as i64) << 20)
                .collect(),
        }
    }

    /// Counts one request's server spans and its order.
    pub fn record(&mut self, trace_id: [u8; 16], served: &[Served], order: Option<OrderOutcome>) {
        for call in served {
            let series = self
                .durations
                .entry((call.service, call.method, call.route, call.status))
                .or_insert_with(|| Durations {
                    buckets: vec![0; BOUNDS.len() + 1],
                    min: f64::INFINITY,
                    ..Durations::default()
                });
            let bucket = BOUNDS
                .iter()
                .position(|bound| call.seconds <= *bound)
                .unwrap_or(BOUNDS.len());
            series.buckets[bucket] += 1;
            series.sum += call.seconds;
            series.count += 1;
            series.min = series.min.min(call.seconds);
            series.max = series.max.max(call.seconds);
            series.latest = Some((call.end_unix_nano, call.seconds, trace_id, call.span_id));
            if let Some(count) = self.served_since_export.get_mut(call.service) {
                *count += 1;
            }
        }
        if let Some(outcome) = order {
            *self.orders.entry(outcome.name()).or_default() += 1;
        }
    }

    /// Every instrument's value at `time` (Unix ns), grouped by service.
    pub fn export(
        &mut self,
        rng: &mut Random,
        services: &[ShopService],
        time: u64,
    ) -> ExportMetricsServiceRequest {
        let mut by_service: Vec<Vec<Metric>> = vec![Vec::new(); services.len()];
        let mut histograms: Vec<Vec<HistogramDataPoint>> = vec![Vec::new(); services.len()];
        for ((service, method, route, status), series) in &self.durations {
            histograms[*service].push(HistogramDataPoint {
                attributes: vec![
                    string("http.request.method", method),
                    string("http.route", route),
                    int("http.response.status_code", i64::from(*status)),
                    string("url.scheme", "http"),
                ],
                start_time_unix_nano: self.start_unix_nano,
                time_unix_nano: time,
                count: series.count,
                sum: Some(series.sum),
                bucket_counts: series.buckets.clone(),
                explicit_bounds: BOUNDS.to_vec(),
                exemplars: series
                    .latest
                    .iter()
                    .map(|(at, seconds, trace_id, span_id)| Exemplar {
                        time_unix_nano: *at,
                        value: Some(exemplar::Value::AsDouble(*seconds)),
                        trace_id: trace_id.to_vec(),
                        span_id: span_id.to_vec(),
                        ..Exemplar::default()
                    })
                    .collect(),
                min: Some(series.min),
                max: Some(series.max),
                ..HistogramDataPoint::default()
            });
        }
        for (service, points) in histograms.into_iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            by_service[service].push(metric(
                "http.server.request.duration",
                "Duration of HTTP server requests.",
                "s",
                metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ));
        }
        if !self.orders.is_empty() {
            by_service[CHECKOUT].push(metric(
                "shop.orders",
                "Checkouts by outcome.",
                "{order}",
                metric::Data::Sum(Sum {
                    data_points: self
                        .orders
                        .iter()
                        .map(|(outcome, count)| NumberDataPoint {
                            attributes: vec![string("order.outcome", outcome)],
                            start_time_unix_nano: self.start_unix_nano,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsInt(*count)),
                            ..NumberDataPoint::default()
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ));
        }
        for (service, metrics) in by_service.iter_mut().enumerate() {
            let served = std::mem::take(&mut self.served_since_export[service]);
            let utilization = (0.04 + 0.01 * served as f64 + 0.02 * rng.unit()).min(1.0);
            let memory = &mut self.memory_bytes[service];
            *memory = (*memory + (rng.below(2 << 20) as i64 - (1 << 20))).max(32 << 20);
            metrics.push(metric(
                "process.cpu.utilization",
                "Share of one CPU the process used since the last collection.",
                "1",
                metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsDouble(
                            (utilization * 1000.0).round() / 1000.0,
                        )),
                        ..NumberDataPoint::default()
                    }],
                }),
            ));
            metrics.push(metric(
                "process.memory.usage",
                "Resident memory of the process.",
                "By",
                metric::Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        start_time_unix_nano: self.start_unix_nano,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(*memory)),
                        ..NumberDataPoint::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: false,
                }),
            ));
        }
        ExportMetricsServiceRequest {
            resource_metrics: by_service
                .into_iter()
                .zip(services)
                .map(|(metrics, service)| ResourceMetrics {
                    resource: Some(service.resource.clone()),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope()),
                        metrics,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }
}

fn metric(name: &str, description: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(data),
        ..Metric::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::shop::Shop;

    #[test]
    fn durations_count_every_server_span_and_process_metrics_carry_no_request_attributes() {
        let shop = Shop::new("payment", 250);
        let mut rng = Random::new(3);
        let mut metrics = ShopMetrics::new(shop.services.len(), 1_000);
        let mut server_spans = 0;
        let mut checkouts = 0;
        for index in 0..100 {
            let request = shop.next(&mut rng, index, 2_000 + index * 1_000_000_000);
            checkouts += u64::from(request.order.is_some());
            server_spans += request.built.served.len() as u64;
            metrics.record(request.built.trace_id, &request.built.served, request.order);
        }
        let export = metrics.export(&mut rng, &shop.services, 200_000_000_000);
        let mut counted = 0;
        let mut orders = 0;
        let mut process_metrics = 0;
        for resource in &export.resource_metrics {
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                match (metric.name.as_str(), &metric.data) {
                    ("http.server.request.duration", Some(metric::Data::Histogram(h))) => {
                        for point in &h.data_points {
                            assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
                            assert_eq!(point.exemplars.len(), 1);
                            counted += point.count;
                        }
                    }
                    ("shop.orders", Some(metric::Data::Sum(sum))) => {
                        for point in &sum.data_points {
                            if let Some(number_data_point::Value::AsInt(count)) = point.value {
                                orders += count as u64;
                            }
                        }
                    }
                    ("process.cpu.utilization", Some(metric::Data::Gauge(gauge))) => {
                        process_metrics += 1;
                        assert!(gauge.data_points.iter().all(|p| p.attributes.is_empty()));
                    }
                    ("process.memory.usage", Some(metric::Data::Sum(sum))) => {
                        process_metrics += 1;
                        assert!(!sum.is_monotonic);
                        assert!(sum.data_points.iter().all(|p| p.attributes.is_empty()));
                    }
                    (name, _) => panic!("unexpected metric {name}"),
                }
            }
        }
        assert_eq!(counted, server_spans);
        assert_eq!(orders, checkouts);
        assert_eq!(process_metrics, 2 * shop.services.len());
    }
}
