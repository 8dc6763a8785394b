//! Log streams: the label set a record's resource gives it (Loki's mapping for OpenTelemetry
//! logs), the line a record reads as, and the per-partition stream catalog that interns each
//! stream under a small id, kept at ingest.
//!
//! The catalog is what lets readers avoid loading records: a document carries its stream id
//! and line length as fast fields, so counting lines per stream label reads two columns, and
//! label listings read the catalog alone. It is written (atomically, `streams.json` in the
//! partition directory) before the index commit that first uses its ids, so every committed id
//! is in it; a crash in between leaves streams and time bounds that no committed record has,
//! which a replay of the WAL then fills in (interning and bounds are idempotent).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::model::{AttributeValue, Resource};

/// Resource attributes that become stream labels (Loki's default index labels for OTLP).
pub const STREAM_LABEL_ATTRIBUTES: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Whether `name` (sanitised) can be a stream label.
pub fn is_stream_label(name: &str) -> bool {
    name == "service_name"
        || STREAM_LABEL_ATTRIBUTES
            .iter()
            .any(|key| sanitized_equals(key, name))
}

fn sanitized_equals(key: &str, name: &str) -> bool {
    key.len() == name.len()
        && key
            .chars()
            .zip(name.chars())
            .all(|(k, n)| if k == '.' { n == '_' } else { k == n })
}

/// Stream labels, sorted by name.
pub type StreamLabels = Vec<(String, String)>;

/// A label name from an attribute key: characters other than ASCII letters, digits and `_`
/// become `_`, and a leading digit gets a `_` before it.
pub fn sanitize_label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A label value for an attribute value; none for empty values.
pub fn label_value(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::Empty => None,
        other => Some(other.to_text()),
    }
}

/// The stream labels of a resource: its stream-label attributes, sanitised, and
/// `service_name` always (`unknown_service` when unset).
pub fn stream_labels(resource: &Resource) -> StreamLabels {
    let mut labels: StreamLabels = resource
        .attributes
        .iter()
        .filter(|attribute| STREAM_LABEL_ATTRIBUTES.contains(&attribute.key.as_str()))
        .filter(|attribute| attribute.key != Resource::SERVICE_NAME)
        .filter_map(|attribute| {
            label_value(&attribute.value).map(|value| (sanitize_label_name(&attribute.key), value))
        })
        .collect();
    labels.push((
        "service_name".to_owned(),
        resource.service_name().to_owned(),
    ));
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    labels
}

/// The line of a body: a string as it is, anything else as compact JSON.
pub fn line_of(body: &AttributeValue) -> String {
    match body {
        AttributeValue::String(text) => text.clone(),
        AttributeValue::Empty => String::new(),
        other => other.to_plain_json().to_string(),
    }
}

/// The length in bytes of [`line_of`], without building it for string bodies.
pub fn line_bytes(body: &AttributeValue) -> u64 {
    match body {
        AttributeValue::String(text) => text.len() as u64,
        AttributeValue::Empty => 0,
        other => other.to_plain_json().to_string().len() as u64,
    }
}

/// The levels Grafana colours lines by, by code: what `detected_level` holds.
pub const LEVELS: [&str; 7] = [
    "unknown", "trace", "debug", "info", "warn", "error", "fatal",
];

/// The label holding a record's level.
pub const LEVEL_LABEL: &str = "detected_level";

/// The level code ([`LEVELS`]) of a record: from its severity number, else its text.
pub fn level_code(severity_number: i32, severity_text: &str) -> u8 {
    match severity_number {
        1..=4 => 1,
        5..=8 => 2,
        9..=12 => 3,
        13..=16 => 4,
        17..=20 => 5,
        21..=24 => 6,
        _ => match severity_text.to_ascii_lowercase().as_str() {
            "trace" => 1,
            "debug" => 2,
            "info" | "information" | "informational" | "notice" => 3,
            "warn" | "warning" => 4,
            "error" | "err" => 5,
            "fatal" | "critical" | "crit" | "panic" | "emergency" | "alert" => 6,
            _ => 0,
        },
    }
}

/// The level name of a code (`unknown` for codes out of range).
pub fn level_name(code: u64) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|code| LEVELS.get(code))
        .copied()
        .unwrap_or(LEVELS[0])
}

/// A record's `detected_level` name: [`level_name`] of [`level_code`].
pub fn detected_level(severity_number: i32, severity_text: &str) -> &'static str {
    level_name(u64::from(level_code(severity_number, severity_text)))
}

/// One stream of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Its labels, sorted by name.
    pub labels: StreamLabels,
    /// Its earliest record time, Unix ns.
    pub first_unix_nano: u64,
    /// Its latest record time, Unix ns.
    pub last_unix_nano: u64,
}

/// The streams of one partition; a stream's id is its position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamCatalog {
    /// Whether every record of the partition was interned (false for a partition that
    /// existed before catalogs did: its older records have no stream id).
    pub complete: bool,
    /// The streams, by id.
    pub streams: Vec<StreamInfo>,
    #[serde(skip)]
    by_labels: HashMap<StreamLabels, u32>,
    #[serde(skip)]
    dirty: bool,
}

/// The catalog's file in a partition directory.
pub const CATALOG_FILE: &str = "streams.json";

impl StreamCatalog {
    /// An empty catalog; `complete` when its partition is new.
    pub fn new(complete: bool) -> Self {
        Self {
            complete,
            ..Self::default()
        }
    }

    /// The catalog saved in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(CATALOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StorageError::io(&path, err)),
        };
        let mut catalog: Self = serde_json::from_slice(&bytes).map_err(|err| {
            StorageError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, err),
            )
        })?;
        catalog.by_labels = catalog
            .streams
            .iter()
            .enumerate()
            .map(|(id, stream)| (stream.labels.clone(), id as u32))
            .collect();
        Ok(Some(catalog))
    }

    /// Saves the catalog in `dir` if it changed since the last save: a temporary file
    /// written and synced, then renamed over the old one, then the directory synced.
    pub fn save_if_changed(&mut self, dir: &Path) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(self).map_err(|err| {
            StorageError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::InvalidData, err),
            )
        })?;
        let temp = dir.join(format!("{CATALOG_FILE}.tmp"));
        let path = dir.join(CATALOG_FILE);
        std::fs::write(&temp, &bytes).map_err(|err| StorageError::io(&temp, err))?;
        crate::objects::sync_path(&temp)?;
        std::fs::rename(&temp, &path).map_err(|err| StorageError::io(&path, err))?;
        crate::objects::sync_path(dir)?;
        self.dirty = false;
        Ok(())
    }

    /// The id of the stream `labels`, added if new, its time bounds widened to `time`.
    pub fn intern(&mut self, labels: &StreamLabels, time_unix_nano: u64) -> u32 {
        if let Some(&id) = self.by_labels.get(labels) {
            self.widen(id, time_unix_nano, time_unix_nano);
            return id;
        }
        let id = self.streams.len() as u32;
        self.streams.push(StreamInfo {
            labels: labels.clone(),
            first_unix_nano: time_unix_nano,
            last_unix_nano: time_unix_nano,
        });
        self.by_labels.insert(labels.clone(), id);
        self.dirty = true;
        id
    }

    /// Widens the time bounds of stream `id` to hold `[first, last]`.
    pub fn widen(&mut self, id: u32, first_unix_nano: u64, last_unix_nano: u64) {
        let Some(stream) = self.streams.get_mut(id as usize) else {
            return;
        };
        if first_unix_nano < stream.first_unix_nano {
            stream.first_unix_nano = first_unix_nano;
            self.dirty = true;
        }
        if last_unix_nano > stream.last_unix_nano {
            stream.last_unix_nano = last_unix_nano;
            self.dirty = true;
        }
    }

    /// The stream of `id`.
    pub fn get(&self, id: u64) -> Option<&StreamInfo> {
        usize::try_from(id).ok().and_then(|id| self.streams.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;

    #[test]
    fn stream_labels_take_the_index_attributes_sanitised() {
        let resource = Resource {
            attributes: vec![
                Attribute::string("service.name", "cart"),
                Attribute::string("k8s.pod.name", "cart-1"),
                Attribute::string("host.name", "h1"),
            ],
            ..Resource::default()
        };
        assert_eq!(
            stream_labels(&resource),
            [
                ("k8s_pod_name".to_owned(), "cart-1".to_owned()),
                ("service_name".to_owned(), "cart".to_owned()),
            ]
        );
        assert_eq!(
            stream_labels(&Resource::default()),
            [("service_name".to_owned(), "unknown_service".to_owned())]
        );
        assert!(is_stream_label("k8s_pod_name") && is_stream_label("service_name"));
        assert!(!is_stream_label("host_name") && !is_stream_label("k8s.pod.name"));
        assert_eq!(sanitize_label_name("3d.model-x"), "_3d_model_x");
        assert_eq!(detected_level(17, ""), "error");
        assert_eq!(detected_level(0, "WARNING"), "warn");
        assert_eq!(detected_level(0, "chatty"), "unknown");
        assert_eq!(level_name(99), "unknown");
    }

    #[test]
    fn catalogs_intern_widen_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = StreamCatalog::new(true);
        let a = vec![("service_name".to_owned(), "a".to_owned())];
        let b = vec![("service_name".to_owned(), "b".to_owned())];
        assert_eq!(catalog.intern(&a, 20), 0);
        assert_eq!(catalog.intern(&b, 5), 1);
        assert_eq!(catalog.intern(&a, 10), 0);
        assert_eq!(catalog.intern(&a, 30), 0);
        catalog.save_if_changed(dir.path()).unwrap();
        let mut loaded = StreamCatalog::load(dir.path()).unwrap().unwrap();
        assert!(loaded.complete);
        assert_eq!(
            loaded.get(0).map(|s| (s.first_unix_nano, s.last_unix_nano)),
            Some((10, 30))
        );
        assert_eq!(loaded.intern(&b, 6), 1);
        assert!(
            StreamCatalog::load(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
