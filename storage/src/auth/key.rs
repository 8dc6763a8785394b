//! The key itself: `skw_<id>_<secret>`, where the id (8 random bytes, hex) finds the record
//! without revealing anything and the secret (32 random bytes, base64url) is what proves
//! possession. Only the SHA-256 of the whole key is stored; a key is random enough that a
//! fast hash is safe (unlike a password, it cannot be guessed from a dictionary).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

const PREFIX: &str = "skw_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const SECRET_CHARS: usize = 43;

/// The public part of a key, shown by `skewer keys list` and used to revoke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; ID_BYTES]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for KeyId {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, AuthError> {
        let mut bytes = [0; ID_BYTES];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| AuthError::UnknownKeyId(text.chars().take(40).collect()))?;
        Ok(Self(bytes))
    }
}

/// The SHA-256 of a key: what the key file keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of a presented key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Compares in constant time, so the answer's timing says nothing about the stored hash.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

impl FromStr for KeyHash {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|err| format!("bad key hash: {err}"))?;
        Ok(Self(bytes))
    }
}

/// A freshly made key: the text is shown once and never stored.
pub struct NewKey {
    /// Its id.
    pub id: KeyId,
    /// The whole key, to hand to the client.
    pub text: String,
    /// What is stored.
    pub hash: KeyHash,
}

impl NewKey {
    /// A key from the operating system's random source.
    pub fn generate() -> Result<Self, AuthError> {
        let mut id = [0; ID_BYTES];
        let mut secret = [0; SECRET_BYTES];
        getrandom::fill(&mut id).map_err(|err| AuthError::Random(err.to_string()))?;
        getrandom::fill(&mut secret).map_err(|err| AuthError::Random(err.to_string()))?;
        let text = format!(
            "{PREFIX}{}_{}",
            hex::encode(id),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let hash = KeyHash::of(&text);
        Ok(Self {
            id: KeyId(id),
            text,
            hash,
        })
    }
}

/// The id of a presented key, if it has the shape of one.
pub fn key_id_of(key: &str) -> Option<KeyId> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != SECRET_CHARS
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_their_shape_and_differ() {
        let first = NewKey::generate().unwrap();
        let second = NewKey::generate().unwrap();
        assert_ne!(first.text, second.text);
        assert_eq!(key_id_of(&first.text), Some(first.id));
        assert!(first.text.starts_with("skw_"));
        assert_eq!(first.text.len(), 4 + 16 + 1 + 43);
        assert!(KeyHash::of(&first.text).matches(&first.hash));
        assert!(!KeyHash::of(&second.text).matches(&first.hash));
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for text in [
            "",
            "skw_",
            "skw_zz_abc",
            "Bearer x",
            "skw_0011223344556677_short",
            "xyz_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(key_id_of(text), None, "{text}");
        }
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let key = NewKey::generate().unwrap();
        let text = key.hash.to_string();
        assert!(text.parse::<KeyHash>().unwrap().matches(&key.hash));
        assert!("00".parse::<KeyHash>().is_err());
    }
}
