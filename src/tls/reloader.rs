//! The current TLS configuration, rebuilt when one of its files changes: a renewed certificate
//! is served to new connections without a restart; a broken renewal keeps the old one (logged).

use std::sync::{Arc, Mutex, RwLock};

use skewer_storage::file_stamp::FileStamp;
use tokio_rustls::rustls::ServerConfig;

use super::{TlsError, TlsFiles};

/// The server's TLS configuration as of the last look at its files.
#[derive(Debug)]
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Option<FileStamp>>>,
}

impl TlsReloader {
    /// Loads `files` now; an unusable file is an error here, at start.
    pub fn open(files: TlsFiles) -> Result<Self, TlsError> {
        let stamps = Self::stamps_of(&files);
        let config = files.server_config()?;
        Ok(Self {
            files,
            current: RwLock::new(config),
            stamps: Mutex::new(stamps),
        })
    }

    fn stamps_of(files: &TlsFiles) -> Vec<Option<FileStamp>> {
        files.paths().into_iter().map(FileStamp::of).collect()
    }

    /// The tenants client certificates map to.
    pub fn client_tenants(&self) -> &super::ClientTenants {
        &self.files.client_tenants
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Rebuilds the configuration if a file changed; true when it did. On an error the previous
    /// configuration stays, and the change is tried again at the next look.
    pub fn refresh(&self) -> Result<bool, TlsError> {
        let stamps = Self::stamps_of(&self.files);
        let mut seen = self
            .stamps
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if *seen == stamps {
            return Ok(false);
        }
        let config = self.files.server_config()?;
        *self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = config;
        *seen = stamps;
        Ok(true)
    }
}
