//! Why a request was not let in, or why the key file could not be used; each maps to one
//! [`ErrorKind`]. Client texts never include the presented key.

use std::path::PathBuf;

use super::scope::Scope;
use crate::ErrorKind;
use crate::model::{IdError, TenantId};

/// An authentication, authorisation or key-file failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were sent to a server that has keys.
    #[error(
        "an API key is required: send `Authorization: Bearer <key>` (or Basic auth with the key as password)"
    )]
    MissingKey,
    /// The credentials are not a key this server knows, or the key was revoked or expired.
    #[error("invalid, expired or revoked API key")]
    InvalidKey,
    /// The `Authorization` value is not Bearer or Basic, or is not decodable.
    #[error(
        "unreadable Authorization header: use `Bearer <key>` or Basic with the key as password"
    )]
    MalformedAuthorization,
    /// The key is valid but lacks the scope the route needs.
    #[error("this API key does not grant the {needed} scope")]
    ScopeDenied {
        /// What the route needs.
        needed: Scope,
    },
    /// The key is valid but bound to another tenant than the one asked for.
    #[error("this API key is not valid for tenant {asked}")]
    TenantDenied {
        /// The tenant the request named.
        asked: TenantId,
    },
    /// The route serves every tenant at once and the key is bound to one.
    #[error("this route needs a key bound to all tenants")]
    AllTenantsRequired,
    /// The tenant header is not a valid tenant id.
    #[error(transparent)]
    BadTenant(#[from] IdError),
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file is not what `skewer keys` writes.
    #[error("key file {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No key has this id.
    #[error("no key with id {0}")]
    UnknownKeyId(String),
    /// A request to create a key that cannot be honoured.
    #[error("{0}")]
    BadKeyRequest(String),
    /// The catalog database holding the keys failed or cannot be reached.
    #[error("API keys in the catalog database: {0}")]
    Database(String),
    /// The operating system gave no randomness.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

impl AuthError {
    /// The kind that decides the status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::MalformedAuthorization => {
                ErrorKind::Unauthenticated
            }
            Self::ScopeDenied { .. } | Self::TenantDenied { .. } | Self::AllTenantsRequired => {
                ErrorKind::PermissionDenied
            }
            Self::BadTenant(_) | Self::BadKeyRequest(_) | Self::UnknownKeyId(_) => {
                ErrorKind::InvalidArgument
            }
            Self::Io { .. } | Self::Corrupt { .. } | Self::Random(_) | Self::Database(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
