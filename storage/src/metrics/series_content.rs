//! What the series table compares and hashes a series by: its full content, doubles by their
//! bits (so a NaN attribute equals itself and a series holding one is found again), with
//! hashing and equality that agree.

use std::hash::{Hash, Hasher};

use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, MetricDescriptor, MetricSeries, Resource,
};

/// A resource hashed by content.
pub(super) struct HashedResource<'a>(pub(super) &'a Resource);

impl Hash for HashedResource<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_attributes(state, &self.0.attributes);
        state.write(self.0.schema_url.as_bytes());
    }
}

/// A scope hashed by content.
pub(super) struct HashedScope<'a>(pub(super) &'a InstrumentationScope);

impl Hash for HashedScope<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.name.as_bytes());
        state.write(self.0.version.as_bytes());
        hash_attributes(state, &self.0.attributes);
    }
}

pub(super) fn hash_descriptor(state: &mut impl Hasher, metric: &MetricDescriptor) {
    state.write(metric.name.as_bytes());
    state.write(metric.description.as_bytes());
    state.write(metric.unit.as_bytes());
    state.write_u8(metric.kind as u8);
    state.write_u8(metric.temporality as u8);
    state.write_u8(u8::from(metric.is_monotonic));
}

pub(super) fn hash_attributes<H: Hasher + ?Sized>(state: &mut H, attributes: &[Attribute]) {
    state.write_usize(attributes.len());
    for attribute in attributes {
        state.write(attribute.key.as_bytes());
        hash_value(state, &attribute.value);
    }
}

fn hash_value<H: Hasher + ?Sized>(state: &mut H, value: &AttributeValue) {
    match value {
        AttributeValue::Empty => state.write_u8(0),
        AttributeValue::String(text) => {
            state.write_u8(1);
            state.write(text.as_bytes());
        }
        AttributeValue::Bool(flag) => state.write_u16(0x200 | u16::from(*flag)),
        AttributeValue::Int(number) => {
            state.write_u8(3);
            state.write_i64(*number);
        }
        AttributeValue::Double(number) => {
            state.write_u8(4);
            state.write_u64(number.to_bits());
        }
        AttributeValue::Bytes(bytes) => {
            state.write_u8(5);
            state.write(bytes);
        }
        AttributeValue::Array(values) => {
            state.write_u8(6);
            state.write_usize(values.len());
            values.iter().for_each(|value| hash_value(state, value));
        }
        AttributeValue::Map(entries) => {
            state.write_u8(7);
            hash_attributes(state, entries);
        }
    }
}

/// Whether two resources are the same by content (doubles by bits).
pub(super) fn same_resource(a: &Resource, b: &Resource) -> bool {
    std::ptr::eq(a, b)
        || (a.schema_url == b.schema_url
            && a.dropped_attributes_count == b.dropped_attributes_count
            && same_attributes(&a.attributes, &b.attributes))
}

/// Whether two scopes are the same by content (doubles by bits).
pub(super) fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    std::ptr::eq(a, b)
        || (a.name == b.name
            && a.version == b.version
            && a.schema_url == b.schema_url
            && a.dropped_attributes_count == b.dropped_attributes_count
            && same_attributes(&a.attributes, &b.attributes))
}

/// Whether two series are the same by content (doubles by bits).
pub(crate) fn same_series(a: &MetricSeries, b: &MetricSeries) -> bool {
    std::ptr::eq(a, b)
        || (a.id() == b.id()
            && same_descriptor(&a.metric, &b.metric)
            && same_attributes(&a.attributes, &b.attributes)
            && same_resource(&a.resource, &b.resource)
            && same_scope(&a.scope, &b.scope))
}

/// Whether two descriptors are the same (they hold no doubles).
pub(super) fn same_descriptor(a: &MetricDescriptor, b: &MetricDescriptor) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// Whether two attribute lists are the same, in the same order (doubles by bits).
pub(super) fn same_attributes(a: &[Attribute], b: &[Attribute]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.key == b.key && same_value(&a.value, &b.value))
}

fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::Double(a), AttributeValue::Double(b)) => a.to_bits() == b.to_bits(),
        (AttributeValue::Array(a), AttributeValue::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (AttributeValue::Map(a), AttributeValue::Map(b)) => same_attributes(a, b),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn double(value: f64) -> Vec<Attribute> {
        vec![Attribute {
            key: "ratio".into(),
            value: AttributeValue::Array(vec![AttributeValue::Double(value)]),
        }]
    }

    #[test]
    fn equal_content_hashes_equal_and_nan_equals_itself() {
        let hasher = foldhash::fast::RandomState::default();
        let hash = |attributes: &[Attribute]| {
            let mut state = hasher.build_hasher();
            hash_attributes(&mut state, attributes);
            state.finish()
        };
        assert!(same_attributes(&double(f64::NAN), &double(f64::NAN)));
        assert_eq!(hash(&double(f64::NAN)), hash(&double(f64::NAN)));
        // Different bits are different series, as they hash apart.
        assert!(!same_attributes(&double(0.0), &double(-0.0)));
        assert!(!same_attributes(&double(1.0), &double(2.0)));
        let resource = |attributes| Resource {
            attributes,
            ..Resource::default()
        };
        assert!(same_resource(
            &resource(double(f64::NAN)),
            &resource(double(f64::NAN))
        ));
        assert_eq!(
            hasher.hash_one(HashedResource(&resource(double(f64::NAN)))),
            hasher.hash_one(HashedResource(&resource(double(f64::NAN))))
        );
    }
}
