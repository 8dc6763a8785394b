//! Metric generation: counters, gauges, histograms and exponential histograms over a set
//! number of series; one export is one collection interval of every series.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};

use super::common::{int, scope, string};
use super::rng::Random;
use super::traces::Service;
use super::vocabulary::{METHODS, ROUTES};

/// Histogram bucket bounds, seconds (the OpenTelemetry HTTP defaults).
pub const BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// How metric values move from one interval to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricValues {
    /// Every value moves every interval: counters grow by 1–20, gauges random-walk with two
    /// decimals, histograms get 1–10 observations (the worst case for compression).
    #[default]
    Random,
    /// Slow-moving, as most production series are: a counter grows by one in a quarter of the
    /// intervals, a gauge moves by a step in one interval of twenty, a histogram gets one
    /// observation in a quarter of the intervals.
    Steady,
}

/// Generates successive collection intervals of a fixed set of series.
pub struct MetricSeriesGenerator {
    services: Vec<Service>,
    num_series: usize,
    interval_nanos: u64,
    start_unix_nano: u64,
    counters: Vec<f64>,
    gauges: Vec<f64>,
    histogram_counts: Vec<Vec<u64>>,
    step: u64,
    values: MetricValues,
}

impl MetricSeriesGenerator {
    /// `num_series` series spread over `services`, collected every `interval_nanos`.
    pub fn new(
        services: Vec<Service>,
        num_series: usize,
        interval_nanos: u64,
        start_unix_nano: u64,
    ) -> Self {
        let num_series = num_series.max(1);
        Self {
            services,
            num_series,
            interval_nanos,
            start_unix_nano,
            counters: vec![0.0; num_series],
            gauges: vec![50.0; num_series],
            histogram_counts: vec![vec![0; BOUNDS.len() + 1]; num_series],
            step: 0,
            values: MetricValues::Random,
        }
    }

    /// The same generator with values moving as `values` says.
    pub fn with_values(mut self, values: MetricValues) -> Self {
        self.values = values;
        self
    }

    /// Points per export.
    pub fn points_per_export(&self) -> usize {
        self.num_series
    }

    /// The next interval: one point per series.
    pub fn next_request(&mut self, rng: &mut Random) -> ExportMetricsServiceRequest {
        self.step += 1;
        let time = self.start_unix_nano + self.step * self.interval_nanos;
        let num_services = self.services.len().max(1);
        let mut by_service: Vec<Vec<Metric>> = vec![Vec::new(); num_services];
        for series in 0..self.num_series {
            let service = series % num_services;
            let variant = series / num_services;
            let route = ROUTES[variant % ROUTES.len()];
            let method = METHODS[(variant / ROUTES.len()) % METHODS.len()];
            let attributes = vec![
                string("http.route", route),
                string("http.request.method", method),
                int(
                    "http.response.status_code",
                    if variant % 11 == 10 { 500 } else { 200 },
                ),
                int("shard", (variant / (ROUTES.len() * METHODS.len())) as i64),
            ];
            let data = match series % 10 {
                0..=3 => {
                    self.counters[series] += match self.values {
                        MetricValues::Random => (rng.below(20) + 1) as f64,
                        MetricValues::Steady => f64::from(u8::from(rng.below(4) == 0)),
                    };
                    metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            attributes,
                            start_time_unix_nano: self.start_unix_nano,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsInt(
                                self.counters[series] as i64,
                            )),
                            ..NumberDataPoint::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })
                }
                4..=6 => {
                    let step = match self.values {
                        MetricValues::Random => rng.unit() - 0.5,
                        MetricValues::Steady if rng.below(20) == 0 => 0.5,
                        MetricValues::Steady => 0.0,
                    };
                    self.gauges[series] = (self.gauges[series] + step).clamp(0.0, 100.0);
                    metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsDouble(
                                (self.gauges[series] * 100.0).round() / 100.0,
                            )),
                            ..NumberDataPoint::default()
                        }],
                    })
                }
                7..=8 => {
                    let counts = &mut self.histogram_counts[series];
                    let observations = match self.values {
                        MetricValues::Random => rng.below(10) + 1,
                        MetricValues::Steady => usize::from(rng.below(4) == 0),
                    };
                    for _ in 0..observations {
                        let bucket = rng.below(6) + rng.below(4);
                        counts[bucket] += 1;
                    }
                    let count: u64 = counts.iter().sum();
                    metric::Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            attributes,
                            start_time_unix_nano: self.start_unix_nano,
                            time_unix_nano: time,
                            count,
                            sum: Some(count as f64 * 0.042),
                            bucket_counts: counts.clone(),
                            explicit_bounds: BOUNDS.to_vec(),
                            min: Some(0.001),
                            max: Some(2.0),
                            ..HistogramDataPoint::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })
                }
                _ => {
                    let count = match self.values {
                        MetricValues::Random => self.step * 4 + rng.below(4) as u64,
                        MetricValues::Steady => self.step / 4,
                    };
                    metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![ExponentialHistogramDataPoint {
                            attributes,
                            start_time_unix_nano: self.start_unix_nano,
                            time_unix_nano: time,
                            count,
                            sum: Some(count as f64 * 1.5),
                            scale: 3,
                            zero_count: 0,
                            positive: Some(Buckets {
                                offset: 2,
                                bucket_counts: vec![
                                    count / 4,
                                    count / 2,
                                    count - count / 4 - count / 2,
                                ],
                            }),
                            negative: None,
                            min: Some(0.5),
                            max: Some(4.0),
                            ..ExponentialHistogramDataPoint::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })
                }
            };
            let (name, unit) = match series % 10 {
                0..=3 => ("http.server.request.count", "{request}"),
                4..=6 => ("system.cpu.utilization", "1"),
                7..=8 => ("http.server.request.duration", "s"),
                _ => ("http.server.response.body.size", "By"),
            };
            by_service[service].push(Metric {
                name: name.into(),
                description: String::new(),
                unit: unit.into(),
                data: Some(data),
                ..Metric::default()
            });
        }
        let resource_metrics = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|(index, metrics)| ResourceMetrics {
                resource: self.services.get(index).map(|s| s.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_gets_one_point_per_interval_and_counters_grow() {
        let mut rng = Random::new(5);
        let services = vec![
            Service::new("a", 0, &mut rng),
            Service::new("b", 1, &mut rng),
        ];
        let mut generator = MetricSeriesGenerator::new(services, 40, 15_000_000_000, 1_000);
        let first = generator.next_request(&mut rng);
        let second = generator.next_request(&mut rng);
        let count = |r: &ExportMetricsServiceRequest| -> usize {
            r.resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum()
        };
        assert_eq!(count(&first), 40);
        assert_eq!(count(&second), 40);
        let value = |r: &ExportMetricsServiceRequest| match &r.resource_metrics[0].scope_metrics[0]
            .metrics[0]
            .data
        {
            Some(metric::Data::Sum(sum)) => match sum.data_points[0].value {
                Some(number_data_point::Value::AsInt(v)) => v,
                _ => panic!("int"),
            },
            other => panic!("counter expected: {other:?}"),
        };
        assert!(value(&second) > value(&first));
    }

    #[test]
    fn steady_values_mostly_stay_put() {
        let mut rng = Random::new(5);
        let services = vec![Service::new("a", 0, &mut rng)];
        let mut generator = MetricSeriesGenerator::new(services, 40, 15_000_000_000, 1_000)
            .with_values(MetricValues::Steady);
        let gauge_values = |r: &ExportMetricsServiceRequest| -> Vec<f64> {
            r.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .filter_map(|m| match &m.data {
                    Some(metric::Data::Gauge(gauge)) => match gauge.data_points[0].value {
                        Some(number_data_point::Value::AsDouble(v)) => Some(v),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        };
        let mut unchanged = 0;
        let mut previous = gauge_values(&generator.next_request(&mut rng));
        for _ in 0..20 {
            let next = gauge_values(&generator.next_request(&mut rng));
            unchanged += previous.iter().zip(&next).filter(|(a, b)| a == b).count();
            previous = next;
        }
        // 12 gauges × 20 intervals, each moving with probability 1/20: ~228 unchanged.
        assert!((200..240).contains(&unchanged), "{unchanged}");
    }
}
