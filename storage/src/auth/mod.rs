//! Who may do what: API keys bound to a tenant (or to all tenants) with scopes (`ingest`,
//! `query`, `admin`), stored in the data directory only as SHA-256 hashes, and the check every
//! request goes through before its body is read.
//!
//! Keys live in `{data_dir}/keys.json` ([`KeyStore`]): the `skewer keys` subcommands write it
//! (atomically, under a lock), a running server re-reads it when it changes ([`KeyRing::refresh`]),
//! so a new or revoked key takes effect without a restart. While the file lists no key at all,
//! requests need none (the loopback quick start); once one key exists, every request does.
//!
//! With mTLS, a client certificate mapped to a tenant ([`CertificateGrant`]) is a credential
//! too: it confines its connection to that tenant, and grants its scopes without a key.
//!
//! This module knows credentials and tenants, not protocols: HTTP and gRPC adapters hand it
//! the raw `Authorization` and `X-Scope-OrgID` values and map its errors to their statuses.

mod certificate;
mod credential;
mod error;
mod key;
mod key_database;
mod keyring;
mod scope;
mod store;

pub use certificate::{CertificateGrant, ConnectionIdentity};
pub use credential::{
    AUTHORIZATION_HEADER, BASIC_CHALLENGE, BEARER_CHALLENGE, token_from_authorization,
};
pub use error::AuthError;
pub use key::{KeyHash, KeyId, NewKey};
pub use key_database::KeyDatabase;
pub use keyring::{Access, KeyRing};
pub use scope::{Scope, Scopes, TenantGrant};
pub use store::{KEYS_FILE, KeyRecord, KeyStamp, KeyStore, NewKeyRequest};
