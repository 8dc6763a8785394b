//! The HMAC key of `hash` rules: read from the configured file, or made once (32 random bytes,
//! mode 0600) in the data directory, so hashes stay equal across restarts.

use std::io::Write;
use std::path::Path;

use super::RedactionError;

pub use skewer_storage::layout::REDACTION_KEY_FILE as HASH_KEY_FILE;

/// Shortest key accepted.
const MIN_KEY_BYTES: usize = 32;

/// Reads the key at `path`, making it first when `create` allows and it does not exist.
pub fn load_or_create_hash_key(path: &Path, create: bool) -> Result<Vec<u8>, RedactionError> {
    let io = |source| RedactionError::HashKey {
        path: path.to_path_buf(),
        reason: format!("{source}"),
    };
    match std::fs::read(path) {
        Ok(key) if key.len() >= MIN_KEY_BYTES => Ok(key),
        Ok(key) => Err(RedactionError::HashKey {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes; a hash key needs at least {MIN_KEY_BYTES}",
                key.len()
            ),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = vec![0_u8; MIN_KEY_BYTES];
            getrandom::fill(&mut key).map_err(|err| RedactionError::HashKey {
                path: path.to_path_buf(),
                reason: format!("no randomness: {err}"),
            })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(&key).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(err) => Err(io(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HASH_KEY_FILE);
        assert!(load_or_create_hash_key(&path, false).is_err());
        let made = load_or_create_hash_key(&path, true).unwrap();
        assert_eq!(made.len(), MIN_KEY_BYTES);
        assert_eq!(load_or_create_hash_key(&path, true).unwrap(), made);
        std::fs::write(&path, b"short").unwrap();
        let err = load_or_create_hash_key(&path, true).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }
}
