//! Metric fixtures: points of every kind, realistic periodic exports, and proptest strategies
//! for any point.

use std::sync::Arc;

use proptest::prelude::*;

use super::{
    Rng, any_attributes, any_finite_f64, any_resource, attribute, every_attribute_kind, resource,
    scope,
};
use crate::model::{
    Attribute, AttributeValue, Exemplar, ExponentialBuckets, MetricDescriptor, MetricKind,
    MetricPoint, MetricSeries, NumberValue, PointValue, Quantile, SpanId, Temporality, TraceId,
};

fn descriptor(
    name: &str,
    kind: MetricKind,
    temporality: Temporality,
    monotonic: bool,
) -> Arc<MetricDescriptor> {
    Arc::new(MetricDescriptor {
        name: name.into(),
        description: format!("{name} description"),
        unit: "s".into(),
        kind,
        temporality,
        is_monotonic: monotonic,
    })
}

fn point(metric: &Arc<MetricDescriptor>, time: u64, value: PointValue) -> MetricPoint {
    MetricPoint {
        series: Arc::new(MetricSeries::new(
            resource("checkout"),
            scope("meter"),
            Arc::clone(metric),
            vec![Attribute::string("http.route", "/api/cart")],
        )),
        start_time_unix_nano: 1_000,
        time_unix_nano: time,
        flags: 0,
        value,
        exemplars: vec![],
    }
}

/// Points of all five kinds, with int and double numbers, optional fields set and unset,
/// exemplars with and without trace context, and every attribute kind.
pub(crate) fn points_of_every_kind() -> Vec<MetricPoint> {
    let gauge = descriptor(
        "temperature",
        MetricKind::Gauge,
        Temporality::Unspecified,
        false,
    );
    let sum = descriptor("requests", MetricKind::Sum, Temporality::Cumulative, true);
    let histogram = descriptor("latency", MetricKind::Histogram, Temporality::Delta, false);
    let exponential = descriptor(
        "size",
        MetricKind::ExponentialHistogram,
        Temporality::Delta,
        false,
    );
    let summary = descriptor("gc", MetricKind::Summary, Temporality::Unspecified, false);
    let mut double_gauge = point(
        &gauge,
        30,
        PointValue::Number {
            value: NumberValue::Double(21.5),
        },
    );
    double_gauge.series = Arc::new(double_gauge.series.with_attributes(every_attribute_kind()));
    double_gauge.exemplars = vec![
        Exemplar {
            time_unix_nano: 29,
            value: NumberValue::Double(22.25),
            filtered_attributes: vec![Attribute::string("user", "ana")],
            trace_id: Some(TraceId([7; 16])),
            span_id: Some(SpanId([8; 8])),
        },
        Exemplar {
            time_unix_nano: 28,
            value: NumberValue::Int(-3),
            filtered_attributes: vec![],
            trace_id: None,
            span_id: None,
        },
    ];
    let mut no_value = point(
        &gauge,
        20,
        PointValue::Number {
            value: NumberValue::Double(f64::MAX),
        },
    );
    no_value.flags = 1;
    vec![
        double_gauge,
        no_value,
        point(
            &sum,
            10,
            PointValue::Number {
                value: NumberValue::Int(i64::MAX),
            },
        ),
        point(
            &sum,
            11,
            PointValue::Number {
                value: NumberValue::Double(5.0),
            },
        ),
        point(
            &histogram,
            40,
            PointValue::Histogram {
                count: 6,
                sum: Some(1.5),
                min: Some(0.01),
                max: Some(0.9),
                explicit_bounds: vec![0.1, 0.5, 1.0],
                bucket_counts: vec![2, 2, 1, 1],
            },
        ),
        point(
            &histogram,
            41,
            PointValue::Histogram {
                count: 0,
                sum: None,
                min: None,
                max: None,
                explicit_bounds: vec![],
                bucket_counts: vec![0],
            },
        ),
        point(
            &exponential,
            50,
            PointValue::ExponentialHistogram {
                count: 9,
                sum: None,
                min: Some(-4.0),
                max: None,
                scale: -3,
                zero_count: 1,
                zero_threshold: 1e-9,
                positive: ExponentialBuckets {
                    offset: -2,
                    bucket_counts: vec![1, 0, 3],
                },
                negative: ExponentialBuckets {
                    offset: 5,
                    bucket_counts: vec![4],
                },
            },
        ),
        point(
            &summary,
            60,
            PointValue::Summary {
                count: 100,
                sum: 12.5,
                quantiles: vec![
                    Quantile {
                        quantile: 0.5,
                        value: 0.1,
                    },
                    Quantile {
                        quantile: 0.99,
                        value: 0.75,
                    },
                ],
            },
        ),
        point(
            &summary,
            61,
            PointValue::Summary {
                count: 0,
                sum: 0.0,
                quantiles: vec![],
            },
        ),
    ]
}

/// Points shaped like an SDK export every 15 s (with jitter): counters, gauges and histograms over a few hundred
/// series for one service. Deterministic for `seed`.
pub(crate) fn realistic_points(num_points: usize, seed: u64) -> Vec<MetricPoint> {
    let mut rng = Rng::new(seed);
    let requests = descriptor(
        "http.server.requests",
        MetricKind::Sum,
        Temporality::Cumulative,
        true,
    );
    let memory = descriptor(
        "process.memory.usage",
        MetricKind::Gauge,
        Temporality::Unspecified,
        false,
    );
    let latency = descriptor(
        "http.server.request.duration",
        MetricKind::Histogram,
        Temporality::Cumulative,
        false,
    );
    let resource = resource("checkout");
    let scope = scope("meter");
    let routes = [
        "/api/orders/{id}",
        "/api/cart",
        "/api/checkout",
        "/health",
        "/api/items",
    ];
    let series: Vec<(Arc<MetricDescriptor>, Vec<Attribute>)> = (0..200)
        .map(|index| {
            let metric = [&requests, &memory, &latency][index % 3];
            let attributes = vec![
                Attribute::string("http.route", routes[index % routes.len()]),
                Attribute::string("http.request.method", ["GET", "POST"][index / 5 % 2]),
                attribute(
                    "http.response.status_code",
                    AttributeValue::Int([200, 404, 500][index / 10 % 3]),
                ),
                Attribute::string("pod", format!("checkout-{}", index / 30)),
            ];
            (Arc::clone(metric), attributes)
        })
        .collect();
    let mut counters = vec![0u64; series.len()];
    let mut points = Vec::with_capacity(num_points);
    let mut time = 1_750_000_000_000_000_000u64;
    'scrapes: loop {
        // An SDK stamps every point of one export with the same time.
        time += 15_000_000_000 + rng.below(50_000_000);
        for (index, (metric, attributes)) in series.iter().enumerate() {
            if points.len() == num_points {
                break 'scrapes;
            }
            counters[index] += rng.below(100);
            let value = match metric.kind {
                MetricKind::Sum => PointValue::Number {
                    value: NumberValue::Int(counters[index] as i64),
                },
                MetricKind::Gauge => PointValue::Number {
                    value: NumberValue::Double(1.0e8 + rng.below(1_000_000) as f64 * 1.5),
                },
                _ => {
                    let buckets: Vec<u64> = (0..12).map(|b| counters[index] / (b + 1)).collect();
                    PointValue::Histogram {
                        count: buckets.iter().sum(),
                        sum: Some(counters[index] as f64 * 0.137),
                        min: None,
                        max: None,
                        explicit_bounds: vec![
                            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                        ],
                        bucket_counts: buckets,
                    }
                }
            };
            points.push(MetricPoint {
                series: Arc::new(MetricSeries::new(
                    Arc::clone(&resource),
                    Arc::clone(&scope),
                    Arc::clone(metric),
                    attributes.clone(),
                )),
                start_time_unix_nano: 1_749_000_000_000_000_000,
                time_unix_nano: time,
                flags: 0,
                value,
                exemplars: vec![],
            });
        }
    }
    points
}

/// Reads every record batch of an encoded file, as a store would.
/// Any point value of any shape, with finite doubles.
fn any_point_value() -> impl Strategy<Value = PointValue> {
    let number = prop_oneof![
        any::<i64>().prop_map(NumberValue::Int),
        any_finite_f64().prop_map(NumberValue::Double),
    ];
    let optional = || proptest::option::of(any_finite_f64());
    let buckets = || {
        (any::<i32>(), proptest::collection::vec(any::<u64>(), 0..5)).prop_map(
            |(offset, bucket_counts)| ExponentialBuckets {
                offset,
                bucket_counts,
            },
        )
    };
    prop_oneof![
        number.prop_map(|value| PointValue::Number { value }),
        (
            any::<u64>(),
            (optional(), optional(), optional()),
            proptest::collection::vec(any_finite_f64(), 0..5),
            proptest::collection::vec(any::<u64>(), 0..6),
        )
            .prop_map(|(count, (sum, min, max), explicit_bounds, bucket_counts)| {
                PointValue::Histogram {
                    count,
                    sum,
                    min,
                    max,
                    explicit_bounds,
                    bucket_counts,
                }
            }),
        (
            any::<u64>(),
            (optional(), optional(), optional()),
            (any::<i32>(), any::<u64>(), any_finite_f64()),
            (buckets(), buckets()),
        )
            .prop_map(
                |(
                    count,
                    (sum, min, max),
                    (scale, zero_count, zero_threshold),
                    (positive, negative),
                )| {
                    PointValue::ExponentialHistogram {
                        count,
                        sum,
                        min,
                        max,
                        scale,
                        zero_count,
                        zero_threshold,
                        positive,
                        negative,
                    }
                },
            ),
        (
            any::<u64>(),
            any_finite_f64(),
            proptest::collection::vec((any_finite_f64(), any_finite_f64()), 0..4),
        )
            .prop_map(|(count, sum, quantiles)| PointValue::Summary {
                count,
                sum,
                quantiles: quantiles
                    .into_iter()
                    .map(|(quantile, value)| Quantile { quantile, value })
                    .collect(),
            }),
    ]
}

/// Any metric point: descriptor, attributes, value and exemplars drawn independently.
pub(crate) fn any_point() -> impl Strategy<Value = MetricPoint> {
    let descriptor = (".{0,10}", ".{0,6}", 0..5u8, 0..3i32, any::<bool>()).prop_map(
        |(name, unit, kind, temporality, is_monotonic)| {
            Arc::new(MetricDescriptor {
                description: format!("{name}?"),
                name,
                unit,
                kind: MetricKind::from_number(kind).expect("0..5 are kinds"),
                temporality: Temporality::from_number(temporality),
                is_monotonic,
            })
        },
    );
    let exemplar = (
        any::<u64>(),
        prop_oneof![
            any::<i64>().prop_map(NumberValue::Int),
            any_finite_f64().prop_map(NumberValue::Double),
        ],
        any_attributes(),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(any::<[u8; 8]>()),
    )
        .prop_map(
            |(time_unix_nano, value, filtered_attributes, trace_id, span_id)| Exemplar {
                time_unix_nano,
                value,
                filtered_attributes,
                trace_id: trace_id.map(TraceId),
                span_id: span_id.map(SpanId),
            },
        );
    (
        descriptor,
        any_resource(),
        any_attributes(),
        any::<(u64, u64, u32)>(),
        any_point_value(),
        proptest::collection::vec(exemplar, 0..3),
    )
        .prop_map(
            |(metric, resource, attributes, (start, time, flags), value, exemplars)| MetricPoint {
                series: Arc::new(MetricSeries::new(
                    resource,
                    scope("meter"),
                    metric,
                    attributes,
                )),
                start_time_unix_nano: start,
                time_unix_nano: time,
                flags,
                value,
                exemplars,
            },
        )
}
