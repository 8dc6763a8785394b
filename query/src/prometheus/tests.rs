//! Metric points written into a real [`Storage`] in a temporary directory (some flushed to
//! Parquet files, some still buffered) and read back through [`StoreSource`].

use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};
use skewer_storage::Storage;
use skewer_storage::model::{
    Attribute, InstrumentationScope, MetricDescriptor, MetricKind, MetricPoint, MetricSeries,
    NumberValue, PointValue, Resource, Signal, SignalBatch, Temporality, TenantId,
};
use skewer_storage::scan::ScanLimits;

use super::{MetricMetadata, PrometheusType, StoreSource};
use crate::promql::{Labels, Selection, Series, SeriesSource};

/// 2023-11-14T22:13:20Z, in milliseconds.
const BASE_MS: i64 = 1_700_000_000_000;

use crate::test_storage::open;

async fn write(storage: &Storage, points: Vec<MetricPoint>) {
    crate::test_storage::write(storage, Signal::Metrics, SignalBatch::Metrics(points)).await;
}

fn descriptor(name: &str, unit: &str, kind: MetricKind) -> Arc<MetricDescriptor> {
    Arc::new(MetricDescriptor {
        name: name.into(),
        description: format!("about {name}"),
        unit: unit.into(),
        kind,
        temporality: Temporality::Cumulative,
        is_monotonic: kind == MetricKind::Sum,
    })
}

/// A point of the `api` service at `BASE_MS + offset_seconds`.
fn point(metric: &Arc<MetricDescriptor>, offset_seconds: i64, value: PointValue) -> MetricPoint {
    let resource = Resource {
        attributes: vec![
            Attribute::string("service.name", "api"),
            Attribute::string("service.namespace", "shop"),
            Attribute::string("service.instance.id", "i-1"),
            Attribute::string("host.name", "h1"),
        ],
        ..Resource::default()
    };
    let time_ms = BASE_MS + offset_seconds * 1000;
    MetricPoint {
        series: Arc::new(MetricSeries::new(
            Arc::new(resource),
            Arc::new(InstrumentationScope {
                name: "io.test".into(),
                version: "1.0".into(),
                ..InstrumentationScope::default()
            }),
            Arc::clone(metric),
            vec![Attribute::string("http.request.method", "GET")],
        )),
        start_time_unix_nano: 1,
        time_unix_nano: u64::try_from(time_ms).unwrap() * 1_000_000,
        flags: 0,
        value,
        exemplars: vec![],
    }
}

fn number(value: f64) -> PointValue {
    PointValue::Number {
        value: NumberValue::Double(value),
    }
}

fn histogram(counts: [u64; 3], sum: f64) -> PointValue {
    PointValue::Histogram {
        count: counts.iter().sum(),
        sum: Some(sum),
        min: None,
        max: None,
        explicit_bounds: vec![0.1, 1.0],
        bucket_counts: counts.to_vec(),
    }
}

fn name_is(name: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, "__name__", name)
}

fn selection(matchers: Vec<Matcher>, from_seconds: i64, to_seconds: i64) -> Selection {
    Selection {
        matchers,
        start_ms: BASE_MS + from_seconds * 1000,
        end_ms: BASE_MS + to_seconds * 1000,
    }
}

fn values(series: &Series) -> Vec<(i64, f64)> {
    series
        .samples
        .iter()
        .map(|s| ((s.timestamp_ms - BASE_MS) / 1000, s.value))
        .collect()
}

/// A storage holding a counter, a histogram and a gauge of one service: the first two
/// points of each in files, the third in the buffer.
async fn storage_with_points(dir: &std::path::Path) -> Arc<Storage> {
    let storage = open(dir).await;
    let requests = descriptor("http.server.requests", "{request}", MetricKind::Sum);
    let duration = descriptor("http.server.request.duration", "s", MetricKind::Histogram);
    let memory = descriptor("process.memory.usage", "By", MetricKind::Gauge);
    let at = |offset| {
        vec![
            point(&requests, offset, number(offset as f64)),
            point(&duration, offset, histogram([1, 2, offset as u64], 1.5)),
            point(&memory, offset, number(1024.0)),
        ]
    };
    write(&storage, [at(0), at(10)].concat()).await;
    storage.flush_all().await.unwrap();
    write(&storage, at(20)).await;
    storage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_source_selects_converted_series_from_files_and_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_points(dir.path()).await;
    let source = StoreSource::new(&storage, TenantId::default_tenant(), ScanLimits::default());

    let counter = source
        .select(&selection(
            vec![name_is("http_server_requests_total")],
            0,
            20,
        ))
        .await
        .unwrap();
    assert_eq!(counter.len(), 1, "{counter:?}");
    assert_eq!(
        counter[0].labels,
        Labels::from_pairs([
            ("__name__", "http_server_requests_total"),
            ("http_request_method", "GET"),
            ("instance", "i-1"),
            ("job", "shop/api"),
            ("otel_scope_name", "io.test"),
            ("otel_scope_version", "1.0"),
        ])
    );
    assert_eq!(values(&counter[0]), [(0, 0.0), (10, 10.0), (20, 20.0)]);

    let inf_bucket = source
        .select(&selection(
            vec![
                name_is("http_server_request_duration_seconds_bucket"),
                Matcher::new(MatchOp::Equal, "le", "+Inf"),
            ],
            0,
            20,
        ))
        .await
        .unwrap();
    assert_eq!(inf_bucket.len(), 1, "{inf_bucket:?}");
    assert_eq!(values(&inf_bucket[0]), [(0, 3.0), (10, 13.0), (20, 23.0)]);

    let middle_only = source
        .select(&selection(
            vec![name_is("process_memory_usage_bytes")],
            5,
            15,
        ))
        .await
        .unwrap();
    assert_eq!(
        values(&middle_only[0]),
        [(10, 1024.0)],
        "samples outside the range are cut"
    );

    let target = source
        .select(&selection(vec![name_is("target_info")], 0, 20))
        .await
        .unwrap();
    assert_eq!(target.len(), 1, "{target:?}");
    assert_eq!(target[0].labels.get("host_name"), "h1");
    assert_eq!(target[0].labels.get("job"), "shop/api");
    assert_eq!(values(&target[0]), [(0, 1.0), (10, 1.0), (20, 1.0)]);

    let matchers =
        crate::promql::parse_selector(r#"{__name__=~"http_.*_count|process_.*", job="shop/api"}"#)
            .unwrap();
    let by_regex = source.select(&selection(matchers, 0, 20)).await.unwrap();
    let names: Vec<&str> = by_regex.iter().map(|s| s.labels.metric_name()).collect();
    assert_eq!(
        names,
        [
            "http_server_request_duration_seconds_count",
            "process_memory_usage_bytes"
        ]
    );

    let no_match = source
        .select(&selection(vec![name_is("http_server_requests")], 0, 20))
        .await
        .unwrap();
    assert!(
        no_match.is_empty(),
        "the OTLP name is not a Prometheus name"
    );
    storage.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_source_lists_series_labels_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_points(dir.path()).await;
    let source = StoreSource::new(&storage, TenantId::default_tenant(), ScanLimits::default());
    let (start, end) = (BASE_MS, BASE_MS + 20_000);

    let all = source.series_labels(&[], start, end).await.unwrap();
    // Counter 1, histogram 3 buckets + sum + count, gauge 1, target_info 1.
    assert_eq!(all.len(), 8, "{all:?}");
    let counters = source
        .series_labels(&[vec![name_is("http_server_requests_total")]], start, end)
        .await
        .unwrap();
    assert_eq!(counters.len(), 1);

    let names = source
        .label_values("__name__", &[], start, end)
        .await
        .unwrap();
    assert_eq!(
        names,
        [
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_sum",
            "http_server_requests_total",
            "process_memory_usage_bytes",
            "target_info",
        ]
    );
    let label_names = source
        .label_names(&[vec![name_is("target_info")]], start, end)
        .await
        .unwrap();
    assert_eq!(label_names, ["__name__", "host_name", "instance", "job"]);
    let before = source
        .label_names(&[], BASE_MS - 60_000, BASE_MS - 1)
        .await
        .unwrap();
    assert!(before.is_empty(), "{before:?}");

    let metadata = source.metadata(start, end).await.unwrap();
    let entry = |family: &str, metric_type, unit: &str, help: &str| MetricMetadata {
        family: family.into(),
        metric_type,
        help: help.into(),
        unit: unit.into(),
    };
    assert_eq!(
        metadata,
        [
            entry(
                "http_server_request_duration_seconds",
                PrometheusType::Histogram,
                "seconds",
                "about http.server.request.duration"
            ),
            entry(
                "http_server_requests_total",
                PrometheusType::Counter,
                "",
                "about http.server.requests"
            ),
            entry(
                "process_memory_usage_bytes",
                PrometheusType::Gauge,
                "bytes",
                "about process.memory.usage"
            ),
            entry("target_info", PrometheusType::Gauge, "", "Target metadata"),
        ]
    );
    storage.shutdown().await.unwrap();
}

/// Every `*.summary.json` sidecar under `dir`, recursively.
fn summary_sidecars(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(summary_sidecars(&path));
        } else if path.to_string_lossy().ends_with(".summary.json") {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_without_a_readable_summary_are_read_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_points(dir.path()).await;
    storage.shutdown().await.unwrap();
    drop(storage);
    let sidecars = summary_sidecars(dir.path());
    assert!(!sidecars.is_empty(), "flushed metric files have summaries");
    for sidecar in sidecars {
        std::fs::remove_file(sidecar).unwrap();
    }
    let storage = open(dir.path()).await;
    let range = skewer_storage::scan::TimeRange::ALL;
    assert!(
        storage
            .metric_catalog(&TenantId::default_tenant(), range)
            .await
            .is_none(),
        "without summaries the catalog is unknown, not empty"
    );
    let source = StoreSource::new(&storage, TenantId::default_tenant(), ScanLimits::default());
    let counter = source
        .select(&selection(
            vec![name_is("http_server_requests_total")],
            0,
            20,
        ))
        .await
        .unwrap();
    assert_eq!(counter.len(), 1, "{counter:?}");
    assert_eq!(values(&counter[0]), [(0, 0.0), (10, 10.0), (20, 20.0)]);
    let families: Vec<String> = source
        .metadata(BASE_MS, BASE_MS + 20_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.family)
        .collect();
    assert!(
        families.contains(&"process_memory_usage_bytes".to_owned()),
        "{families:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_indexes_list_what_the_points_would() {
    use skewer_storage::model::{ExponentialBuckets, Quantile};

    use super::store_source::NameFilter;
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_with_points(dir.path()).await;
    let summary = descriptor("rpc.latency", "ms", MetricKind::Summary);
    let mut delta = (*descriptor("jobs.done", "", MetricKind::Sum)).clone();
    delta.temporality = Temporality::Delta;
    let delta = Arc::new(delta);
    let exponential = descriptor("payload.size", "By", MetricKind::ExponentialHistogram);
    let quantiles = |value: f64| PointValue::Summary {
        count: 2,
        sum: value,
        quantiles: vec![
            Quantile {
                quantile: 0.5,
                value,
            },
            Quantile {
                quantile: 0.99,
                value,
            },
        ],
    };
    let mut colliding = point(&delta, 30, number(2.0));
    colliding.series = Arc::new(colliding.series.with_attributes(vec![
        Attribute::string("a.b", "1"),
        Attribute::string("a_b", "2"),
        Attribute::string("9lives", "x"),
    ]));
    let mut ended = point(&summary, 40, quantiles(0.0));
    ended.flags = 1;
    write(
        &storage,
        vec![
            point(&summary, 30, quantiles(3.0)),
            point(&delta, 30, number(1.0)),
            colliding,
            ended,
        ],
    )
    .await;
    storage.flush_all().await.unwrap();
    let exponential_point = point(
        &exponential,
        50,
        PointValue::ExponentialHistogram {
            count: 3,
            sum: Some(10.0),
            min: None,
            max: None,
            scale: 1,
            zero_count: 1,
            zero_threshold: 0.0,
            positive: ExponentialBuckets {
                offset: 2,
                bucket_counts: vec![1, 1],
            },
            negative: ExponentialBuckets::default(),
        },
    );
    write(&storage, vec![exponential_point]).await;
    storage.flush_all().await.unwrap();

    let source = StoreSource::new(&storage, TenantId::default_tenant(), ScanLimits::default());
    let parse = |selector: &str| crate::promql::parse_selector(selector).unwrap();
    let matcher_sets = [
        vec![],
        vec![parse(r#"{__name__=~"http_.*|rpc_.*|jobs.*"}"#)],
        vec![parse(r#"{job="shop/api"}"#)],
        vec![parse("target_info")],
        vec![parse(r#"{le="+Inf"}"#), parse(r#"{quantile="0.99"}"#)],
        vec![parse(r#"{a_b="1;2"}"#)],
        vec![parse(r#"payload_size_bytes_bucket"#)],
    ];
    let ranges = [
        (BASE_MS, BASE_MS + 60_000),
        (BASE_MS + 5_000, BASE_MS + 15_000),
        (BASE_MS + 30_000, BASE_MS + 30_000),
        (0, BASE_MS - 1),
    ];
    let mut answered_by_indexes = 0;
    for sets in &matcher_sets {
        let filter = NameFilter::any_of(sets);
        for (start, end) in ranges {
            let by_points = source
                .point_series_labels(&filter, sets, start, end)
                .await
                .unwrap();
            let by_indexes = source
                .indexed_series_labels(&filter, sets, start, end)
                .await
                .unwrap();
            let accepts_exponential = filter.accepts("payload_size_bytes_bucket");
            let meets_exponential = end >= BASE_MS + 50_000;
            match by_indexes {
                Some(listed) => {
                    assert_eq!(listed, by_points, "{sets:?} in {start}..={end}");
                    answered_by_indexes += 1;
                }
                None => assert!(
                    accepts_exponential && meets_exponential,
                    "only an exponential histogram needs points: {sets:?} in {start}..={end}"
                ),
            }
            assert_eq!(
                source.series_labels(sets, start, end).await.unwrap(),
                by_points
            );
        }
    }
    assert!(answered_by_indexes >= 20, "{answered_by_indexes}");
    storage.shutdown().await.unwrap();
}
