//! What a metric file (or buffer) holds, by OTLP metric name: each name's descriptors (kind,
//! unit, temporality, description) with their point counts and the services that sent them.
//! Kept at ingest and merged by addition like the rest of [`FileSummary`], so metric listings
//! and the Prometheus API's name lookups answer without reading points, and a scan for one
//! metric skips files that never held it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::FileSummary;
use crate::model::{MetricDescriptor, MetricKind, MetricPoint, MetricSeries, Temporality};

/// Metric names kept per file; past it the catalog says it is incomplete (names holding ids
/// must not grow summaries without bound).
pub const MAX_METRIC_NAMES: usize = 20_000;

/// Descriptors kept per name (the same name sent with other units or kinds).
pub const MAX_DESCRIPTORS_PER_NAME: usize = 16;

/// Services kept per descriptor; past it the list is incomplete.
pub const MAX_SERVICES_PER_METRIC: usize = 256;

/// The metrics of a file, by OTLP name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricCatalog {
    /// Each name's descriptors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, Vec<MetricFamily>>,
    /// Names (or descriptors of a name) were left out: a missing one proves nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The attribute keys of the points' resources (what `target_info` and resource label
    /// listings need).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub resource_keys: BTreeSet<String>,
    /// Some resource keys were left out ([`MAX_RESOURCE_KEYS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resource_keys_truncated: bool,
}

/// Resource attribute keys kept per file; past it the set is incomplete.
pub const MAX_RESOURCE_KEYS: usize = 512;

/// One descriptor of a metric name, and what was seen of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFamily {
    /// Point kind.
    pub kind: MetricKind,
    /// UCUM unit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Temporality of sums and histograms.
    #[serde(default, skip_serializing_if = "is_unspecified")]
    pub temporality: Temporality,
    /// Whether a sum only goes up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_monotonic: bool,
    /// Human description (the first seen).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Points.
    pub points: u64,
    /// The `service.name`s that sent it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub services: BTreeSet<String>,
    /// Some services were left out ([`MAX_SERVICES_PER_METRIC`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub services_truncated: bool,
}

fn is_unspecified(temporality: &Temporality) -> bool {
    *temporality == Temporality::Unspecified
}

impl MetricFamily {
    fn new(descriptor: &MetricDescriptor) -> Self {
        Self {
            kind: descriptor.kind,
            unit: descriptor.unit.clone(),
            temporality: descriptor.temporality,
            is_monotonic: descriptor.is_monotonic,
            description: descriptor.description.clone(),
            points: 0,
            services: BTreeSet::new(),
            services_truncated: false,
        }
    }

    /// Whether `descriptor` is this family's (the description aside).
    fn describes(&self, descriptor: &MetricDescriptor) -> bool {
        self.kind == descriptor.kind
            && self.unit == descriptor.unit
            && self.temporality == descriptor.temporality
            && self.is_monotonic == descriptor.is_monotonic
    }

    /// This family as a descriptor of metric `name`.
    pub fn descriptor(&self, name: &str) -> MetricDescriptor {
        MetricDescriptor {
            name: name.to_owned(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            kind: self.kind,
            temporality: self.temporality,
            is_monotonic: self.is_monotonic,
        }
    }

    fn add_service(&mut self, service: &str) {
        if self.services.contains(service) {
            return;
        }
        if self.services.len() < MAX_SERVICES_PER_METRIC {
            self.services.insert(service.to_owned());
        } else {
            self.services_truncated = true;
        }
    }

    fn add(&mut self, other: &MetricFamily) {
        self.points += other.points;
        self.services_truncated |= other.services_truncated;
        for service in &other.services {
            self.add_service(service);
        }
    }
}

impl MetricCatalog {
    /// Counts `points` points of `descriptor` from `service`. Allocates only for a name,
    /// descriptor or service not seen before.
    pub fn add(&mut self, descriptor: &MetricDescriptor, service: &str, points: u64) {
        let Some(family) = self.family_mut(descriptor) else {
            return;
        };
        family.points += points;
        family.add_service(service);
    }

    fn family_mut(&mut self, descriptor: &MetricDescriptor) -> Option<&mut MetricFamily> {
        if !self.names.contains_key(&descriptor.name) {
            if self.names.len() >= MAX_METRIC_NAMES {
                self.truncated = true;
                return None;
            }
            self.names.insert(descriptor.name.clone(), Vec::new());
        }
        let families = self.names.get_mut(&descriptor.name)?;
        let at = match families.iter().position(|f| f.describes(descriptor)) {
            Some(at) => at,
            None if families.len() < MAX_DESCRIPTORS_PER_NAME => {
                families.push(MetricFamily::new(descriptor));
                families.len() - 1
            }
            None => {
                self.truncated = true;
                return None;
            }
        };
        families.get_mut(at)
    }

    /// Notes the attribute keys of a resource.
    pub fn add_resource_keys<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            if self.resource_keys.contains(key) {
                continue;
            }
            if self.resource_keys.len() < MAX_RESOURCE_KEYS {
                self.resource_keys.insert(key.to_owned());
            } else {
                self.resource_keys_truncated = true;
            }
        }
    }

    /// Adds another catalog's counts to this one.
    pub fn merge(&mut self, other: &MetricCatalog) {
        self.truncated |= other.truncated;
        self.resource_keys_truncated |= other.resource_keys_truncated;
        self.add_resource_keys(other.resource_keys.iter().map(String::as_str));
        for (name, families) in &other.names {
            for family in families {
                if let Some(ours) = self.family_mut(&family.descriptor(name)) {
                    ours.add(family);
                }
            }
        }
    }

    /// Whether the summarised points may hold metric `name`: `false` only when they certainly
    /// do not.
    pub fn may_hold(&self, name: &str) -> bool {
        self.truncated || self.names.contains_key(name)
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.truncated && self.resource_keys.is_empty()
    }
}

impl FileSummary {
    /// Counts some metric points, a run of points of one family and service at a time: the
    /// points of a series follow each other in a flush, and the points of one metric in an
    /// export, so most points only extend the run before them.
    pub fn add_metric_points<'a>(&mut self, points: impl IntoIterator<Item = &'a MetricPoint>) {
        let mut run: Option<(&MetricSeries, u64)> = None;
        let mut keys_noted: Option<&MetricSeries> = None;
        for point in points {
            let series = &*point.series;
            if let Some((first, count)) = &mut run
                && same_family(first, series)
            {
                *count += 1;
                continue;
            }
            if let Some((first, count)) = run.take() {
                self.metrics
                    .add(&first.metric, first.resource.service_name(), count);
            }
            if keys_noted.is_none_or(|noted| !same_resource_keys(noted, series)) {
                let keys = series.resource.attributes.iter().map(|a| a.key.as_str());
                self.metrics.add_resource_keys(keys);
                keys_noted = Some(series);
            }
            run = Some((series, 1));
        }
        if let Some((first, count)) = run {
            self.metrics
                .add(&first.metric, first.resource.service_name(), count);
        }
    }
}

/// Whether two series count toward one catalog entry: one descriptor and one service.
fn same_family(a: &MetricSeries, b: &MetricSeries) -> bool {
    if std::ptr::eq(a, b) {
        return true;
    }
    let same_metric = Arc::ptr_eq(&a.metric, &b.metric) || *a.metric == *b.metric;
    let same_service = Arc::ptr_eq(&a.resource, &b.resource)
        || a.resource.service_name() == b.resource.service_name();
    same_metric && same_service
}

/// Whether two series' resources have the same attribute keys.
fn same_resource_keys(a: &MetricSeries, b: &MetricSeries) -> bool {
    Arc::ptr_eq(&a.resource, &b.resource)
        || a.resource.attributes.iter().map(|x| &x.key).eq(b
            .resource
            .attributes
            .iter()
            .map(|x| &x.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(name: &str, kind: MetricKind, unit: &str) -> MetricDescriptor {
        MetricDescriptor {
            name: name.to_owned(),
            description: format!("{name} help"),
            unit: unit.to_owned(),
            kind,
            temporality: Temporality::Cumulative,
            is_monotonic: kind == MetricKind::Sum,
        }
    }

    #[test]
    fn counts_points_and_services_per_name_and_descriptor() {
        let mut catalog = MetricCatalog::default();
        let requests = descriptor("http.requests", MetricKind::Sum, "1");
        catalog.add(&requests, "api", 3);
        catalog.add(&requests, "web", 2);
        catalog.add(
            &descriptor("http.requests", MetricKind::Gauge, "1"),
            "api",
            1,
        );
        let families = &catalog.names["http.requests"];
        assert_eq!(families.len(), 2, "one per descriptor");
        assert_eq!(families[0].points, 5);
        assert_eq!(
            families[0].services.iter().collect::<Vec<_>>(),
            ["api", "web"]
        );
        assert_eq!(families[0].descriptor("http.requests"), requests);
        assert!(catalog.may_hold("http.requests"));
        assert!(!catalog.may_hold("other"));
    }

    #[test]
    fn merging_equals_counting_everything_at_once() {
        let a_desc = descriptor("a", MetricKind::Gauge, "By");
        let b_desc = descriptor("b", MetricKind::Histogram, "s");
        let mut left = MetricCatalog::default();
        left.add(&a_desc, "api", 1);
        let mut right = MetricCatalog::default();
        right.add(&a_desc, "web", 2);
        right.add(&b_desc, "api", 4);
        left.merge(&right);
        let mut both = MetricCatalog::default();
        both.add(&a_desc, "api", 1);
        both.add(&a_desc, "web", 2);
        both.add(&b_desc, "api", 4);
        assert_eq!(left, both);
    }

    #[test]
    fn resource_keys_are_noted_and_merged() {
        let mut a = MetricCatalog::default();
        a.add_resource_keys(["service.name", "host.name"]);
        let mut b = MetricCatalog::default();
        b.add_resource_keys(["k8s.pod.name", "host.name"]);
        a.merge(&b);
        assert_eq!(
            a.resource_keys.iter().collect::<Vec<_>>(),
            ["host.name", "k8s.pod.name", "service.name"]
        );
        assert!(!a.resource_keys_truncated);
    }

    #[test]
    fn names_past_the_cap_make_the_catalog_incomplete() {
        let mut catalog = MetricCatalog::default();
        for i in 0..=MAX_METRIC_NAMES {
            catalog.add(
                &descriptor(&format!("m{i}"), MetricKind::Gauge, ""),
                "api",
                1,
            );
        }
        assert_eq!(catalog.names.len(), MAX_METRIC_NAMES);
        assert!(catalog.truncated);
        assert!(
            catalog.may_hold("never seen"),
            "an incomplete catalog proves nothing"
        );
    }

    #[test]
    fn services_past_the_cap_are_marked_left_out() {
        let mut catalog = MetricCatalog::default();
        let gauge = descriptor("g", MetricKind::Gauge, "");
        for i in 0..=MAX_SERVICES_PER_METRIC {
            catalog.add(&gauge, &format!("svc-{i}"), 1);
        }
        let family = &catalog.names["g"][0];
        assert_eq!(family.services.len(), MAX_SERVICES_PER_METRIC);
        assert!(family.services_truncated);
        assert_eq!(family.points, MAX_SERVICES_PER_METRIC as u64 + 1);
    }
}
