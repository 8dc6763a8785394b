//! The keys a running server accepts, and the one check every request passes: key → scope →
//! tenant. Reloaded from the key file when it changes, so creating or revoking a key takes
//! effect within one refresh interval; a damaged file keeps the previous keys (and is logged).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use super::AuthError;
use super::certificate::CertificateGrant;
use super::credential::token_from_authorization;
use super::key::{KeyHash, KeyId, key_id_of};
use super::scope::{Scope, Scopes, TenantGrant};
use super::store::{KeyRecord, KeyStamp, KeyStore, record_hash, unix_now};
use crate::model::TenantId;
use crate::model::tenant::tenant_from_header;

/// What a request was let in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The tenant it acts for.
    pub tenant: TenantId,
    /// The key it presented; `None` on a server without keys.
    pub key: Option<KeyId>,
    /// Whether the key may name any tenant (or no key is needed).
    pub all_tenants: bool,
}

#[derive(Debug)]
struct ActiveKey {
    hash: KeyHash,
    tenant: TenantGrant,
    scopes: Scopes,
    expires_unix_seconds: Option<u64>,
}

/// The accepted keys at one moment.
#[derive(Debug, Default)]
struct KeySet {
    /// Any record at all (revoked ones included): from then on every request needs a key.
    required: bool,
    active: HashMap<KeyId, ActiveKey>,
}

impl KeySet {
    fn from_records(path: &Path, records: &[KeyRecord]) -> Result<Self, AuthError> {
        let mut active = HashMap::new();
        for record in records {
            let (id, hash) = record_hash(path, record)?;
            if record.revoked_unix_seconds.is_some() {
                continue;
            }
            let tenant = record.tenant.parse().map_err(|_| AuthError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("bad tenant {:?} for key {}", record.tenant, record.id),
            })?;
            active.insert(
                id,
                ActiveKey {
                    hash,
                    tenant,
                    scopes: record.scopes.iter().copied().collect(),
                    expires_unix_seconds: record.expires_unix_seconds,
                },
            );
        }
        Ok(Self {
            required: !records.is_empty(),
            active,
        })
    }
}

/// The server's view of the key file.
#[derive(Debug)]
pub struct KeyRing {
    store: Option<KeyStore>,
    keys: RwLock<Arc<KeySet>>,
    stamp: Mutex<Option<KeyStamp>>,
}

impl KeyRing {
    /// The keys of `data_dir`, loaded now; an unreadable or damaged file is an error here (at
    /// start), and only logged on later refreshes.
    pub fn open(data_dir: &Path) -> Result<Self, AuthError> {
        Self::open_store(KeyStore::new(data_dir))
    }

    /// The keys of `store`, loaded now (blocks: call off the async workers).
    pub fn open_store(store: KeyStore) -> Result<Self, AuthError> {
        let ring = Self {
            store: Some(store),
            keys: RwLock::default(),
            stamp: Mutex::new(None),
        };
        ring.refresh()?;
        Ok(ring)
    }

    /// A ring with no keys and no file: every request is let in (tests, tools).
    pub fn open_access() -> Self {
        Self {
            store: None,
            keys: RwLock::default(),
            stamp: Mutex::new(None),
        }
    }

    /// The key file behind this ring (none for [`Self::open_access`]).
    pub fn store(&self) -> Option<&KeyStore> {
        self.store.as_ref()
    }

    /// Re-reads the key file if it changed since the last look; true when it was reloaded.
    pub fn refresh(&self) -> Result<bool, AuthError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let path = store.path();
        let stamp = Some(store.stamp()?);
        let mut seen = self
            .stamp
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if *seen == stamp {
            return Ok(false);
        }
        let set = KeySet::from_records(&path, &store.load()?)?;
        // Fail closed: a key file that vanished (or lists nothing) while keys were required
        // must not open the server; serving without keys takes a restart, which checks again
        // whether the listeners may be exposed.
        if self.current().required && !set.required {
            return Err(AuthError::Corrupt {
                path,
                reason: "it is gone or lists no key; the previous keys stay in force (restart to \
                         serve without keys)"
                    .to_owned(),
            });
        }
        *self
            .keys
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(set);
        *seen = stamp;
        Ok(true)
    }

    /// Whether requests need a key (the key file lists at least one, even revoked).
    pub fn keys_required(&self) -> bool {
        self.current().required
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// [`Self::authorize`] for a request on a connection whose client certificate is mapped
    /// to `certificate`: the request acts for the certificate's tenant only (a tenant header
    /// may only repeat it); without a key, the certificate's scopes decide; with one, the key
    /// must also be valid for that tenant and scope.
    pub fn authorize_with(
        &self,
        authorization: Option<&[u8]>,
        tenant_header: Option<&[u8]>,
        scope: Scope,
        certificate: Option<&CertificateGrant>,
    ) -> Result<Access, AuthError> {
        let Some(certificate) = certificate else {
            return self.authorize(authorization, tenant_header, scope);
        };
        if let Some(asked) = tenant_header
            .map(|value| tenant_from_header(Some(value)))
            .transpose()?
            && asked != certificate.tenant
        {
            return Err(AuthError::TenantDenied { asked });
        }
        if token_from_authorization(authorization)?.is_none() {
            if !certificate.scopes.contains(scope) {
                return Err(AuthError::ScopeDenied { needed: scope });
            }
            return Ok(Access {
                tenant: certificate.tenant.clone(),
                key: None,
                all_tenants: false,
            });
        }
        let access = self.authorize(
            authorization,
            Some(certificate.tenant.as_str().as_bytes()),
            scope,
        )?;
        Ok(Access {
            tenant: certificate.tenant.clone(),
            all_tenants: false,
            ..access
        })
    }

    /// Lets a request in for `scope`, or says why not. `authorization` and `tenant_header`
    /// are the raw `Authorization` and `X-Scope-OrgID` values. The tenant is the key's own;
    /// the header may only repeat it, unless the key acts for every tenant.
    pub fn authorize(
        &self,
        authorization: Option<&[u8]>,
        tenant_header: Option<&[u8]>,
        scope: Scope,
    ) -> Result<Access, AuthError> {
        let keys = self.current();
        if !keys.required {
            return Ok(Access {
                tenant: tenant_from_header(tenant_header)?,
                key: None,
                all_tenants: true,
            });
        }
        let presented = token_from_authorization(authorization)?.ok_or(AuthError::MissingKey)?;
        let id = key_id_of(&presented).ok_or(AuthError::InvalidKey)?;
        let key = keys.active.get(&id).ok_or(AuthError::InvalidKey)?;
        if !KeyHash::of(&presented).matches(&key.hash) {
            return Err(AuthError::InvalidKey);
        }
        if key.expires_unix_seconds.is_some_and(|at| at <= unix_now()) {
            return Err(AuthError::InvalidKey);
        }
        if !key.scopes.contains(scope) {
            return Err(AuthError::ScopeDenied { needed: scope });
        }
        let asked = tenant_header
            .map(|value| tenant_from_header(Some(value)))
            .transpose()?;
        let (tenant, all_tenants) = match (&key.tenant, asked) {
            (TenantGrant::All, asked) => (asked.unwrap_or_else(TenantId::default_tenant), true),
            (TenantGrant::One(own), None) => (own.clone(), false),
            (TenantGrant::One(own), Some(asked)) if asked == *own => (own.clone(), false),
            (TenantGrant::One(_), Some(asked)) => return Err(AuthError::TenantDenied { asked }),
        };
        Ok(Access {
            tenant,
            key: Some(id),
            all_tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::auth::store::NewKeyRequest;

    fn bearer(key: &str) -> Vec<u8> {
        format!("Bearer {key}").into_bytes()
    }

    fn create(store: &KeyStore, tenant: &str, scopes: &[Scope]) -> (KeyRecord, String) {
        store
            .create(NewKeyRequest {
                name: "t".into(),
                tenant: tenant.parse().unwrap(),
                scopes: scopes.iter().copied().collect(),
                expires_in: None,
            })
            .unwrap()
    }

    #[test]
    fn without_keys_everyone_is_let_in_as_the_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path()).unwrap();
        assert!(!ring.keys_required());
        let access = ring.authorize(None, Some(b"team"), Scope::Query).unwrap();
        assert_eq!(access.tenant.as_str(), "team");
        assert!(ring.authorize(None, Some(b"../x"), Scope::Query).is_err());
    }

    #[test]
    fn a_mapped_certificate_confines_its_connection_and_grants_its_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let (_, shop_query) = create(&store, "shop", &[Scope::Query]);
        let (_, other_query) = create(&store, "other", &[Scope::Query]);
        let (_, all_query) = create(&store, "*", &[Scope::Query]);
        let ring = KeyRing::open(dir.path()).unwrap();
        let certificate = CertificateGrant {
            common_name: "collector".into(),
            tenant: "shop".parse().unwrap(),
            scopes: [Scope::Ingest].into_iter().collect(),
        };
        let with = |key: Option<&str>, tenant: Option<&[u8]>, scope| {
            let key = key.map(bearer);
            ring.authorize_with(key.as_deref(), tenant, scope, Some(&certificate))
        };
        // No key needed for the certificate's scopes, confined to its tenant.
        let access = with(None, None, Scope::Ingest).unwrap();
        assert_eq!(
            (access.tenant.as_str(), access.all_tenants),
            ("shop", false)
        );
        assert!(with(None, Some(b"shop"), Scope::Ingest).is_ok());
        assert!(matches!(
            with(None, Some(b"other"), Scope::Ingest),
            Err(AuthError::TenantDenied { .. })
        ));
        assert!(matches!(
            with(None, None, Scope::Query),
            Err(AuthError::ScopeDenied { .. })
        ));
        // A key adds its scopes for the certificate's tenant only.
        assert_eq!(
            with(Some(&shop_query), None, Scope::Query)
                .unwrap()
                .tenant
                .as_str(),
            "shop"
        );
        assert!(matches!(
            with(Some(&other_query), None, Scope::Query),
            Err(AuthError::TenantDenied { .. })
        ));
        let access = with(Some(&all_query), None, Scope::Query).unwrap();
        assert_eq!(
            (access.tenant.as_str(), access.all_tenants),
            ("shop", false)
        );
        assert!(matches!(
            with(Some("skw_nope"), None, Scope::Ingest),
            Err(AuthError::InvalidKey)
        ));
    }

    #[test]
    fn keys_grant_their_scope_and_tenant_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let (_, ingest) = create(&store, "shop", &[Scope::Ingest]);
        let (_, reader) = create(&store, "*", &[Scope::Query]);
        let ring = KeyRing::open(dir.path()).unwrap();
        assert!(ring.keys_required());

        let err = |result: Result<Access, AuthError>| result.unwrap_err();
        assert!(matches!(
            err(ring.authorize(None, None, Scope::Ingest)),
            AuthError::MissingKey
        ));
        assert!(matches!(
            err(ring.authorize(Some(&bearer("skw_nope")), None, Scope::Ingest)),
            AuthError::InvalidKey
        ));
        let forged = format!("{}x", &ingest[..ingest.len() - 1]);
        assert!(matches!(
            err(ring.authorize(Some(&bearer(&forged)), None, Scope::Ingest)),
            AuthError::InvalidKey
        ));
        let access = ring
            .authorize(Some(&bearer(&ingest)), None, Scope::Ingest)
            .unwrap();
        assert_eq!(access.tenant.as_str(), "shop");
        assert!(!access.all_tenants);
        assert!(
            ring.authorize(Some(&bearer(&ingest)), Some(b"shop"), Scope::Ingest)
                .is_ok()
        );
        assert!(matches!(
            err(ring.authorize(Some(&bearer(&ingest)), Some(b"bank"), Scope::Ingest)),
            AuthError::TenantDenied { .. }
        ));
        assert!(matches!(
            err(ring.authorize(Some(&bearer(&ingest)), None, Scope::Query)),
            AuthError::ScopeDenied {
                needed: Scope::Query
            }
        ));
        let any = ring
            .authorize(Some(&bearer(&reader)), Some(b"bank"), Scope::Query)
            .unwrap();
        assert_eq!(any.tenant.as_str(), "bank");
        assert!(any.all_tenants);
    }

    #[test]
    fn revocation_and_new_keys_are_seen_on_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let ring = KeyRing::open(dir.path()).unwrap();
        let (record, key) = create(&store, "shop", &[Scope::Query]);
        assert!(ring.refresh().unwrap());
        assert!(
            ring.authorize(Some(&bearer(&key)), None, Scope::Query)
                .is_ok()
        );
        assert!(!ring.refresh().unwrap(), "unchanged file is not re-read");
        store.revoke(&record.id).unwrap();
        assert!(ring.refresh().unwrap());
        assert!(matches!(
            ring.authorize(Some(&bearer(&key)), None, Scope::Query),
            Err(AuthError::InvalidKey)
        ));
        assert!(
            ring.keys_required(),
            "revoking the last key keeps keys required"
        );
        std::fs::write(store.path(), b"not json").unwrap();
        assert!(ring.refresh().is_err());
        assert!(
            ring.keys_required(),
            "a damaged file keeps the previous keys"
        );
        std::fs::remove_file(store.path()).unwrap();
        assert!(ring.refresh().is_err(), "a vanished file is an error");
        assert!(
            ring.authorize(None, None, Scope::Query).is_err(),
            "a vanished file does not open the server"
        );
    }

    #[test]
    fn expired_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let (_, key) = store
            .create(NewKeyRequest {
                name: "short".into(),
                tenant: TenantGrant::All,
                scopes: [Scope::Query].into_iter().collect(),
                expires_in: Some(Duration::ZERO),
            })
            .unwrap();
        let ring = KeyRing::open(dir.path()).unwrap();
        assert!(matches!(
            ring.authorize(Some(&bearer(&key)), None, Scope::Query),
            Err(AuthError::InvalidKey)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// No header, however made, gets in without the key, and none panics.
        #[test]
        fn arbitrary_authorization_values_never_get_in(
            value in proptest::collection::vec(any::<u8>(), 0..200),
            prefix in prop_oneof![Just(&b""[..]), Just(&b"Bearer skw_"[..]), Just(&b"Basic "[..])],
        ) {
            static RING: std::sync::OnceLock<(tempfile::TempDir, KeyRing)> = std::sync::OnceLock::new();
            let (_, ring) = RING.get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                create(&KeyStore::new(dir.path()), "*", &Scope::ALL);
                let ring = KeyRing::open(dir.path()).unwrap();
                (dir, ring)
            });
            let mut header = prefix.to_vec();
            header.extend_from_slice(&value);
            let result = ring.authorize(Some(&header), None, Scope::Query);
            prop_assert!(result.is_err());
        }
    }
}
