//! An alert's label set and its fingerprint, computed as Prometheus and Alertmanager compute
//! them (FNV-1a 64 over sorted names and values, each followed by the byte 0xff), so the
//! `fingerprint` of a webhook matches what the same alert would carry through Alertmanager.

use std::collections::BTreeMap;
use std::fmt;

/// Labels sorted by name.
pub type LabelSet = BTreeMap<String, String>;

const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
const SEPARATOR: u8 = 0xff;

/// The 64-bit fingerprint of `labels` (Prometheus `model.LabelSet.Fingerprint`).
pub fn fingerprint(labels: &LabelSet) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut add = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    hash
}

/// `fingerprint` as Alertmanager prints it: 16 hex digits.
pub fn fingerprint_text(labels: &LabelSet) -> String {
    format!("{:016x}", fingerprint(labels))
}

/// A label set printed as Prometheus prints one: `{a="1", b="2"}`.
pub struct Display<'a>(pub &'a LabelSet);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprints_match_prometheus() {
        // The values of prometheus/common's model/signature_test.go.
        assert_eq!(fingerprint(&LabelSet::new()), 14_695_981_039_346_656_037);
        assert_eq!(
            fingerprint(&labels(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            5_799_056_148_416_392_346
        );
    }

    #[test]
    fn prints_like_prometheus() {
        let set = labels(&[("b", "2"), ("a", "x\"y")]);
        assert_eq!(Display(&set).to_string(), r#"{a="x\"y", b="2"}"#);
        assert_eq!(fingerprint_text(&LabelSet::new()), "cbf29ce484222325");
    }
}
