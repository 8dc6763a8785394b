//! Test data for the codec (tests only): every attribute kind, shared resources and scopes,
//! a reader that turns encoded bytes back into record batches, and proptest strategies; the
//! span and metric fixtures live in the submodules.

mod metrics;
mod spans;

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;

use crate::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

pub(crate) use metrics::{any_point, points_of_every_kind, realistic_points};
pub(crate) use spans::{any_span, realistic_spans, tree_span};

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(crate) fn attribute(key: &str, value: AttributeValue) -> Attribute {
    Attribute {
        key: key.into(),
        value,
    }
}

/// One attribute of every kind, nested ones included.
pub(crate) fn every_attribute_kind() -> Vec<Attribute> {
    vec![
        attribute("empty", AttributeValue::Empty),
        attribute("string", AttributeValue::String("héllo".into())),
        attribute("empty_string", AttributeValue::String(String::new())),
        attribute("bool", AttributeValue::Bool(true)),
        attribute("int", AttributeValue::Int(i64::MIN)),
        attribute("double", AttributeValue::Double(-0.1 - 0.2)),
        attribute("bytes", AttributeValue::Bytes(vec![0, 1, 254, 255])),
        attribute("empty_bytes", AttributeValue::Bytes(vec![])),
        attribute(
            "array",
            AttributeValue::Array(vec![
                AttributeValue::Int(1),
                AttributeValue::Double(1.0e-300 / 3.0),
                AttributeValue::Empty,
                AttributeValue::Bytes(vec![7]),
                AttributeValue::Map(vec![attribute("inner", AttributeValue::Bool(false))]),
            ]),
        ),
        attribute(
            "map",
            AttributeValue::Map(vec![
                Attribute::string("s", "v"),
                attribute(
                    "a",
                    AttributeValue::Array(vec![AttributeValue::String("x".into())]),
                ),
                attribute("d", AttributeValue::Double(std::f64::consts::PI)),
            ]),
        ),
        attribute("empty_array", AttributeValue::Array(vec![])),
    ]
}

/// A resource like an SDK sends: service, host, process, with typed values.
pub(crate) fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            Attribute::string("service.name", service),
            Attribute::string("service.version", "1.4.2"),
            Attribute::string("deployment.environment.name", "production"),
            Attribute::string("host.name", format!("{service}-7d9f8b6c5-x2k4p")),
            Attribute::string("telemetry.sdk.language", "rust"),
            attribute("process.pid", AttributeValue::Int(4242)),
            attribute("sample.ratio", AttributeValue::Double(0.25)),
        ],
        dropped_attributes_count: 1,
        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
    })
}

/// An instrumentation scope with everything set.
pub(crate) fn scope(name: &str) -> Arc<InstrumentationScope> {
    Arc::new(InstrumentationScope {
        name: name.into(),
        version: "0.27.1".into(),
        attributes: vec![attribute("scope.int", AttributeValue::Int(3))],
        dropped_attributes_count: 2,
        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
    })
}

pub(crate) fn read_batches(bytes: &Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// The batches of a metric file with every column of the full schema: a format-2 file's
/// series identities restored from the index of `points` (what a flush writes beside it).
pub(crate) fn read_metric_batches(
    file: &super::EncodedFile,
    points: &[crate::model::MetricPoint],
) -> Vec<RecordBatch> {
    let batches = read_batches(&file.bytes);
    if file.format == super::METRICS_FORMAT_V1 {
        return batches;
    }
    let mut index = crate::metrics::SeriesIndexBuilder::default();
    index.add_points(points);
    let identities = super::SeriesIdentities::of(&index.finish()).unwrap();
    batches
        .iter()
        .map(|batch| identities.restore(batch, &super::metric_schema()).unwrap())
        .collect()
}

/// Any finite double (NaN never equals itself, so equality tests leave it out).
pub(crate) fn any_finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |value| value.is_finite())
}

/// Any attribute value, nested up to three levels deep.
pub(crate) fn any_attribute_value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        Just(AttributeValue::Empty),
        ".{0,12}".prop_map(AttributeValue::String),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<i64>().prop_map(AttributeValue::Int),
        any_finite_f64().prop_map(AttributeValue::Double),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::Bytes),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::Array),
            proptest::collection::vec((".{0,6}", inner), 0..4).prop_map(|entries| {
                AttributeValue::Map(
                    entries
                        .into_iter()
                        .map(|(key, value)| Attribute { key, value })
                        .collect(),
                )
            }),
        ]
    })
}

/// Any list of attributes, keys repeating or empty included.
pub(crate) fn any_attributes() -> impl Strategy<Value = Vec<Attribute>> {
    proptest::collection::vec((".{0,8}", any_attribute_value()), 0..5).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(key, value)| Attribute { key, value })
            .collect()
    })
}

/// Any resource.
pub(crate) fn any_resource() -> impl Strategy<Value = Arc<Resource>> {
    (any_attributes(), any::<u32>(), ".{0,8}").prop_map(|(attributes, dropped, schema_url)| {
        Arc::new(Resource {
            attributes,
            dropped_attributes_count: dropped,
            schema_url,
        })
    })
}
