//! `{data_dir}/keys.json`: one record per key ever made (revoked ones stay, marked, so the
//! file says who had access when). Changes are made under `keys.lock`, written to a temporary
//! file, synced and renamed into place, so a reader never sees half a file and two
//! `skewer keys` commands never lose each other's change. The file is readable by its owner only.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::key::{KeyHash, KeyId, NewKey};
use super::key_database::KeyDatabase;
use super::scope::{Scope, Scopes, TenantGrant};
use crate::file_stamp::FileStamp;

/// The key file's name in the data directory.
pub const KEYS_FILE: &str = "keys.json";
const LOCK_FILE: &str = "keys.lock";
const FORMAT_VERSION: u32 = 1;

/// One key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key's public id (hex).
    pub id: String,
    /// What the operator called it.
    pub name: String,
    /// A tenant, or `*` for every tenant.
    pub tenant: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the key (hex).
    pub sha256: String,
    /// When it was made (Unix seconds).
    pub created_unix_seconds: u64,
    /// When it stops working, if ever (Unix seconds).
    pub expires_unix_seconds: Option<u64>,
    /// When it was revoked, if it was (Unix seconds).
    pub revoked_unix_seconds: Option<u64>,
}

impl KeyRecord {
    /// The scopes as `skewer keys` spells them: `ingest,query`.
    pub fn scopes_text(&self) -> String {
        self.scopes.iter().copied().collect::<Scopes>().to_string()
    }

    /// `active`, `revoked` or `expired` at `now` (Unix seconds).
    pub fn status(&self, now: u64) -> &'static str {
        if self.revoked_unix_seconds.is_some() {
            "revoked"
        } else if self.expires_unix_seconds.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

/// What `skewer keys create` asks for.
#[derive(Debug, Clone)]
pub struct NewKeyRequest {
    /// A label for people.
    pub name: String,
    /// The tenant it acts for.
    pub tenant: TenantGrant,
    /// What it may do.
    pub scopes: Scopes,
    /// How long it works.
    pub expires_in: Option<Duration>,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Where the keys are kept: the key file of one data directory, or the catalog database that
/// every node of a deployment shares ([`super::KeyDatabase`]). Its methods block: call them
/// off the async workers (`spawn_blocking`, or a command-line tool).
#[derive(Clone)]
pub struct KeyStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    File {
        dir: PathBuf,
    },
    Database {
        keys: Arc<KeyDatabase>,
        runtime: tokio::runtime::Handle,
    },
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("at", &self.path())
            .finish()
    }
}

/// Identity of one version of the stored keys: a reload is needed when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStamp {
    /// The key file's stamp (`None`: no file).
    File(Option<FileStamp>),
    /// The database's change counter.
    Database(i64),
}

impl KeyStore {
    /// The key file under `data_dir` (which need not exist yet).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            backend: Backend::File {
                dir: data_dir.to_path_buf(),
            },
        }
    }

    /// The keys of a catalog database, its calls run on `runtime` (whose workers drive the
    /// connection).
    pub fn in_database(keys: Arc<KeyDatabase>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            backend: Backend::Database { keys, runtime },
        }
    }

    /// The file's path (the table's name for keys in a database), for messages.
    pub fn path(&self) -> PathBuf {
        match &self.backend {
            Backend::File { dir } => dir.join(KEYS_FILE),
            Backend::Database { .. } => PathBuf::from("skewer_api_keys (catalog database)"),
        }
    }

    /// What identifies the keys' current version, without reading them.
    pub fn stamp(&self) -> Result<KeyStamp, AuthError> {
        match &self.backend {
            Backend::File { .. } => Ok(KeyStamp::File(FileStamp::of(&self.path()))),
            Backend::Database { keys, runtime } => {
                runtime.block_on(keys.version()).map(KeyStamp::Database)
            }
        }
    }

    /// Every record; none when the file does not exist.
    pub fn load(&self) -> Result<Vec<KeyRecord>, AuthError> {
        if let Backend::Database { keys, runtime } = &self.backend {
            return runtime.block_on(keys.load());
        }
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(AuthError::io(&path, err)),
        };
        parse(&path, &bytes)
    }

    /// Makes a key, records its hash, and returns the record with the key text (shown once).
    pub fn create(&self, request: NewKeyRequest) -> Result<(KeyRecord, String), AuthError> {
        if request.scopes.is_empty() {
            return Err(AuthError::BadKeyRequest(
                "a key needs at least one scope".to_owned(),
            ));
        }
        if request.scopes.contains(Scope::Admin) && request.tenant != TenantGrant::All {
            return Err(AuthError::BadKeyRequest(
                "admin keys act for every tenant: use --tenant '*'".to_owned(),
            ));
        }
        let key = NewKey::generate()?;
        let now = unix_now();
        let record = KeyRecord {
            id: key.id.to_string(),
            name: request.name,
            tenant: request.tenant.to_string(),
            scopes: request.scopes.iter().collect(),
            sha256: key.hash.to_string(),
            created_unix_seconds: now,
            expires_unix_seconds: request
                .expires_in
                .map(|duration| now.saturating_add(duration.as_secs())),
            revoked_unix_seconds: None,
        };
        self.modify(|records| {
            records.push(record.clone());
            Ok(())
        })?;
        Ok((record, key.text))
    }

    /// Marks the key `id` revoked; a running server stops accepting it at its next refresh.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, AuthError> {
        let wanted: KeyId = id.parse()?;
        let wanted = wanted.to_string();
        let mut revoked = None;
        self.modify(|records| {
            let record = records
                .iter_mut()
                .find(|record| record.id == wanted)
                .ok_or_else(|| AuthError::UnknownKeyId(wanted.clone()))?;
            record.revoked_unix_seconds.get_or_insert_with(unix_now);
            revoked = Some(record.clone());
            Ok(())
        })?;
        revoked.ok_or(AuthError::UnknownKeyId(wanted))
    }

    /// Reads, changes and atomically rewrites the file under the key lock (the rows in one
    /// transaction, in a database).
    fn modify(
        &self,
        change: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        let dir = match &self.backend {
            Backend::File { dir } => dir,
            Backend::Database { keys, runtime } => return runtime.block_on(keys.modify(change)),
        };
        std::fs::create_dir_all(dir).map_err(|err| AuthError::io(dir, err))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|err| AuthError::io(&lock_path, err))?;
        lock.lock().map_err(|err| AuthError::io(&lock_path, err))?;
        let mut records = self.load()?;
        change(&mut records)?;
        let file = KeyFile {
            version: FORMAT_VERSION,
            keys: records,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|err| AuthError::Corrupt {
            path: self.path(),
            reason: err.to_string(),
        })?;
        let temporary = dir.join(format!("{KEYS_FILE}.tmp"));
        write_private(&temporary, &bytes)?;
        let path = self.path();
        std::fs::rename(&temporary, &path).map_err(|err| AuthError::io(&path, err))?;
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| AuthError::io(dir, err))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<KeyRecord>, AuthError> {
    let corrupt = |reason: String| AuthError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not {FORMAT_VERSION}",
            file.version
        )));
    }
    Ok(file.keys)
}

/// Writes `bytes` to a new file only its owner can read, and syncs it. A leftover file of a
/// crashed run is removed first, so the new one is created (never opened through a link, never
/// with looser permissions).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(AuthError::io(path, err)),
    }
    let mut options = File::options();
    options.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|err| AuthError::io(path, err))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| AuthError::io(path, err))
}

/// The stored hash of a record, checked when the file is loaded.
pub(crate) fn record_hash(path: &Path, record: &KeyRecord) -> Result<(KeyId, KeyHash), AuthError> {
    let corrupt = |reason: String| AuthError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let id: KeyId = record
        .id
        .parse()
        .map_err(|_| corrupt(format!("bad key id {:?}", record.id)))?;
    let hash = record.sha256.parse().map_err(corrupt)?;
    Ok((id, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tenant: &str, scopes: &[Scope]) -> NewKeyRequest {
        NewKeyRequest {
            name: "test".into(),
            tenant: tenant.parse().unwrap(),
            scopes: scopes.iter().copied().collect(),
            expires_in: None,
        }
    }

    #[test]
    fn keys_are_created_listed_and_revoked_with_only_hashes_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let (record, text) = store.create(request("shop", &[Scope::Ingest])).unwrap();
        let (_, other) = store.create(request("*", &[Scope::Query])).unwrap();
        let stored = std::fs::read_to_string(store.path()).unwrap();
        assert!(!stored.contains(&text) && !stored.contains(&other));
        assert!(stored.contains(&record.sha256));
        let records = store.load().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].status(unix_now()), "active");
        let revoked = store.revoke(&record.id).unwrap();
        assert!(revoked.revoked_unix_seconds.is_some());
        assert_eq!(store.load().unwrap()[0].status(unix_now()), "revoked");
        assert!(matches!(
            store.revoke("0011223344556677"),
            Err(AuthError::UnknownKeyId(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn impossible_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        assert!(store.create(request("shop", &[])).is_err());
        assert!(store.create(request("shop", &[Scope::Admin])).is_err());
        assert!(store.create(request("*", &[Scope::Admin])).is_ok());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        std::fs::write(store.path(), b"{\"version\":1,\"keys\":[{}]}").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("keys.json"), "{err}");
        std::fs::write(store.path(), b"{\"version\":9,\"keys\":[]}").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("version"));
    }
}
