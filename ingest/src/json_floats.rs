//! `"NaN"`, `"Infinity"` and `"-Infinity"` in OTLP/JSON. The protobuf JSON mapping writes
//! these doubles as strings; the generated deserializers take numbers only, so one such value
//! failed a whole export, or (inside a flattened oneof, a gauge's `asDouble`) silently became
//! a point without a value. A body that holds one (a SIMD substring search, so ordinary bodies
//! pay next to nothing) is decoded with each of them in a double field replaced by a marker
//! number no telemetry uses, and the markers are turned back into the values they stand for
//! once the export is decoded.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar, metric, number_data_point};
use serde_json::Value;

/// Double fields of the OTLP messages (lowerCamelCase), scalars or arrays of doubles.
const DOUBLE_FIELDS: [&str; 9] = [
    "asDouble",
    "doubleValue",
    "sum",
    "min",
    "max",
    "value",
    "quantile",
    "zeroThreshold",
    "explicitBounds",
];

/// Marker numbers for NaN, +∞ and −∞ (far beyond any measurement).
const MARKERS: [(f64, f64); 3] = [
    (7.0e305, f64::NAN),
    (8.0e305, f64::INFINITY),
    (-8.0e305, f64::NEG_INFINITY),
];

/// Whether the JSON text may hold a double written as a string.
pub fn may_hold_special_floats(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"NaN\"").is_some()
        || memchr::memmem::find(body, b"Infinity\"").is_some()
}

/// Replaces, in double fields, `"NaN"`, `"Infinity"` and `"-Infinity"` by their markers.
pub fn mark_special_floats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if DOUBLE_FIELDS.contains(&key.as_str()) {
                    match &mut *inner {
                        Value::Array(items) => items.iter_mut().for_each(mark),
                        other => mark(other),
                    }
                }
                mark_special_floats(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mark_special_floats),
        _ => {}
    }
}

fn mark(value: &mut Value) {
    let marker = match value.as_str() {
        Some("NaN") => MARKERS[0].0,
        Some("Infinity") => MARKERS[1].0,
        Some("-Infinity") => MARKERS[2].0,
        _ => return,
    };
    if let Some(number) = serde_json::Number::from_f64(marker) {
        *value = Value::Number(number);
    }
}

/// The value a marker stands for (a number near it, as parsing may round), else itself.
fn unmark(value: &mut f64) {
    for (marker, meant) in MARKERS {
        if (*value - marker).abs() <= marker.abs() * 1e-9 {
            *value = meant;
        }
    }
}

/// Turns markers back into NaN and infinities in a decoded export.
pub trait UnmarkFloats {
    /// Every double field of the message.
    fn unmark_floats(&mut self);
}

fn unmark_any(value: &mut AnyValue) {
    match &mut value.value {
        Some(any_value::Value::DoubleValue(double)) => unmark(double),
        Some(any_value::Value::ArrayValue(array)) => array.values.iter_mut().for_each(unmark_any),
        Some(any_value::Value::KvlistValue(list)) => unmark_attributes(&mut list.values),
        _ => {}
    }
}

fn unmark_attributes(attributes: &mut [KeyValue]) {
    for attribute in attributes {
        if let Some(value) = &mut attribute.value {
            unmark_any(value);
        }
    }
}

fn unmark_exemplars(exemplars: &mut [Exemplar]) {
    for exemplar in exemplars {
        if let Some(exemplar::Value::AsDouble(double)) = &mut exemplar.value {
            unmark(double);
        }
        unmark_attributes(&mut exemplar.filtered_attributes);
    }
}

impl UnmarkFloats for ExportTraceServiceRequest {
    fn unmark_floats(&mut self) {
        for resource in &mut self.resource_spans {
            if let Some(resource) = &mut resource.resource {
                unmark_attributes(&mut resource.attributes);
            }
            for scope in &mut resource.scope_spans {
                for span in &mut scope.spans {
                    unmark_attributes(&mut span.attributes);
                    for event in &mut span.events {
                        unmark_attributes(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        unmark_attributes(&mut link.attributes);
                    }
                }
            }
        }
    }
}

impl UnmarkFloats for ExportLogsServiceRequest {
    fn unmark_floats(&mut self) {
        for resource in &mut self.resource_logs {
            if let Some(resource) = &mut resource.resource {
                unmark_attributes(&mut resource.attributes);
            }
            for scope in &mut resource.scope_logs {
                for record in &mut scope.log_records {
                    unmark_attributes(&mut record.attributes);
                    if let Some(body) = &mut record.body {
                        unmark_any(body);
                    }
                }
            }
        }
    }
}

impl UnmarkFloats for ExportMetricsServiceRequest {
    fn unmark_floats(&mut self) {
        for resource in &mut self.resource_metrics {
            if let Some(resource) = &mut resource.resource {
                unmark_attributes(&mut resource.attributes);
            }
            for scope in &mut resource.scope_metrics {
                for metric in &mut scope.metrics {
                    unmark_metric(metric.data.as_mut());
                }
            }
        }
    }
}

/// What both histogram kinds share: sum, min and max, exemplars, attributes.
fn unmark_histogram(
    stats: [&mut Option<f64>; 3],
    exemplars: &mut [Exemplar],
    attributes: &mut [KeyValue],
) {
    stats.into_iter().flatten().for_each(unmark);
    unmark_exemplars(exemplars);
    unmark_attributes(attributes);
}

fn unmark_metric(data: Option<&mut metric::Data>) {
    match data {
        Some(metric::Data::Gauge(gauge)) => unmark_numbers(&mut gauge.data_points),
        Some(metric::Data::Sum(sum)) => unmark_numbers(&mut sum.data_points),
        Some(metric::Data::Histogram(histogram)) => {
            for point in &mut histogram.data_points {
                let stats = [&mut point.sum, &mut point.min, &mut point.max];
                unmark_histogram(stats, &mut point.exemplars, &mut point.attributes);
                point.explicit_bounds.iter_mut().for_each(unmark);
            }
        }
        Some(metric::Data::ExponentialHistogram(histogram)) => {
            for point in &mut histogram.data_points {
                let stats = [&mut point.sum, &mut point.min, &mut point.max];
                unmark_histogram(stats, &mut point.exemplars, &mut point.attributes);
                unmark(&mut point.zero_threshold);
            }
        }
        Some(metric::Data::Summary(summary)) => {
            for point in &mut summary.data_points {
                unmark(&mut point.sum);
                for quantile in &mut point.quantile_values {
                    unmark(&mut quantile.quantile);
                    unmark(&mut quantile.value);
                }
                unmark_attributes(&mut point.attributes);
            }
        }
        None => {}
    }
}

fn unmark_numbers(points: &mut [opentelemetry_proto::tonic::metrics::v1::NumberDataPoint]) {
    for point in points {
        if let Some(number_data_point::Value::AsDouble(double)) = &mut point.value {
            unmark(double);
        }
        unmark_exemplars(&mut point.exemplars);
        unmark_attributes(&mut point.attributes);
    }
}
