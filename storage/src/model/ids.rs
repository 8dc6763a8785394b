//! Typed identifiers: trace, span and tenant ids with hex / validated text forms.
//!
//! Ids never travel as bare strings or byte vectors; parsing and validation happen here once.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why an id could not be built from bytes or text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The byte form had the wrong length (OTLP ids are 16 and 8 bytes).
    #[error("{kind} must be {expected} bytes, got {actual}")]
    WrongLength {
        kind: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The text form was not hex of the right length.
    #[error("{kind} must be {expected} hex characters: {text:?}")]
    BadHex {
        kind: &'static str,
        expected: usize,
        text: String,
    },
    /// An all-zero id is invalid per the W3C trace context and OTLP.
    #[error("{kind} must not be all zeros")]
    AllZero { kind: &'static str },
    /// A tenant id outside `[A-Za-z0-9_.-]{1,64}` (it becomes part of storage paths).
    #[error("invalid tenant id {0:?}: use 1 to 64 of [A-Za-z0-9_.-], not '.' or '..'")]
    BadTenant(String),
}

macro_rules! byte_id {
    ($name:ident, $len:expr, $kind:expr) => {
        #[doc = concat!("A ", $kind, ": ", stringify!($len), " bytes, shown as lowercase hex.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in the binary form.
            pub const LEN: usize = $len;

            /// Builds the id from its OTLP byte form; rejects wrong lengths and all zeros.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    kind: $kind,
                    expected: $len,
                    actual: bytes.len(),
                })?;
                if array == [0u8; $len] {
                    return Err(IdError::AllZero { kind: $kind });
                }
                Ok(Self(array))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; $len * 2];
                hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                let bad = || IdError::BadHex {
                    kind: $kind,
                    expected: $len * 2,
                    text: text.chars().take(80).collect(),
                };
                if text.len() != $len * 2 {
                    return Err(bad());
                }
                let mut array = [0u8; $len];
                hex::decode_to_slice(text, &mut array).map_err(|_| bad())?;
                Self::from_slice(&array)
            }
        }

        /// Hex text in human-readable formats (JSON), the raw bytes in binary ones.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    struct IdVisitor;
                    impl serde::de::Visitor<'_> for IdVisitor {
                        type Value = $name;
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            write!(f, "{} bytes", $len)
                        }
                        fn visit_bytes<E: serde::de::Error>(
                            self,
                            bytes: &[u8],
                        ) -> Result<$name, E> {
                            $name::from_slice(bytes).map_err(E::custom)
                        }
                    }
                    d.deserialize_bytes(IdVisitor)
                }
            }
        }
    };
}

byte_id!(TraceId, 16, "trace id");
byte_id!(SpanId, 8, "span id");

/// The tenant that owns a record. It is part of every storage path, so isolation needs no migration.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// The tenant used when a request names none.
    pub const DEFAULT: &'static str = "default";

    /// The `default` tenant.
    pub fn default_tenant() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }

    /// The validated text, safe to use as a path segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if text.is_empty() || text.len() > 64 || !valid_chars || text == "." || text == ".." {
            return Err(IdError::BadTenant(text.chars().take(80).collect()));
        }
        Ok(Self(Arc::from(text)))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_round_trips_through_hex() {
        let id: TraceId = "0102030405060708090a0b0c0d0e0f10".parse().unwrap();
        assert_eq!(id.0[0], 1);
        assert_eq!(id.to_string(), "0102030405060708090a0b0c0d0e0f10");
    }

    #[test]
    fn ids_reject_bad_input() {
        assert!(matches!(
            TraceId::from_slice(&[1; 15]),
            Err(IdError::WrongLength { actual: 15, .. })
        ));
        assert!(matches!(
            SpanId::from_slice(&[0; 8]),
            Err(IdError::AllZero { .. })
        ));
        assert!("xyz".parse::<SpanId>().is_err());
        assert!(
            "0102030405060708090a0b0c0d0e0f1g"
                .parse::<TraceId>()
                .is_err()
        );
    }

    #[test]
    fn tenant_ids_are_path_safe() {
        assert_eq!(
            "team-a.prod_1".parse::<TenantId>().unwrap().as_str(),
            "team-a.prod_1"
        );
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad:?}");
        }
    }
}
