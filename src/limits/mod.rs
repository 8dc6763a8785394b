//! The tenant limits of a deployment, kept in its catalog database (`[catalog] url`) so
//! every node enforces the same ones. The first node to start with an empty database writes
//! its config file's `[limits]` there; from then on the database's limits are in force,
//! changed with `skewer limits set|unset` or the admin API, and every node reloads them
//! within one catalog refresh. A node without a catalog database keeps its `[limits]`.

pub mod cli;
mod edit;

use std::sync::{Arc, Mutex};

use skewer_ingest::limits::{LimitsConfig, TenantGate};
use skewer_storage::catalog::{CatalogError, Setting, SettingsDatabase};
use tracing::{info, warn};

pub use edit::LimitsEdit;

/// The name of the limits document in the settings table.
const SETTING: &str = "limits";

/// Errors of the shared limits.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// The catalog database failed or cannot be reached.
    #[error(transparent)]
    Database(#[from] CatalogError),
    /// An edit names an unknown limit, a bad value or a bad tenant.
    #[error("{0}")]
    Invalid(String),
    /// The stored document does not read as `[limits]`.
    #[error("the limits stored in the catalog database cannot be read: {0}")]
    Corrupt(String),
}

/// The limits document of a catalog database.
pub struct SharedLimits {
    settings: SettingsDatabase,
}

/// The stored limits; keys this binary does not know (written by a newer one during a
/// rolling upgrade) are left out with a warning rather than stopping the node.
fn decode(setting: &Setting) -> Result<LimitsConfig, LimitsError> {
    decode_text(&setting.document)
}

fn decode_text(document: &str) -> Result<LimitsConfig, LimitsError> {
    let value: serde_json::Value =
        serde_json::from_str(document).map_err(|err| LimitsError::Corrupt(err.to_string()))?;
    let (known, unknown) = edit::known_part(value);
    if !unknown.is_empty() {
        warn!(
            keys = unknown.join(", "),
            "the stored limits name keys this binary does not know; they are not enforced here"
        );
    }
    serde_json::from_value(known).map_err(|err| LimitsError::Corrupt(err.to_string()))
}

fn encode(limits: &LimitsConfig) -> Result<String, LimitsError> {
    serde_json::to_string(limits).map_err(|err| LimitsError::Corrupt(err.to_string()))
}

impl SharedLimits {
    /// Connects to the catalog database at `url`.
    pub async fn connect(url: &str) -> Result<Self, LimitsError> {
        Ok(Self {
            settings: SettingsDatabase::connect(url).await?,
        })
    }

    /// The limits in force and their version, writing `from_file` first when the database
    /// holds none yet. Says so when `from_file` differs from what is in force.
    pub async fn seed(&self, from_file: &LimitsConfig) -> Result<(i64, LimitsConfig), LimitsError> {
        let setting = self
            .settings
            .insert_if_absent(SETTING, &encode(from_file)?)
            .await?;
        let limits = decode(&setting)?;
        if setting.version == 1 && limits == *from_file {
            info!("tenant limits from the catalog database (version 1)");
        } else if limits != *from_file {
            warn!(
                version = setting.version,
                "the config file's [limits] differ from the catalog database's; the database's are \
                 in force for every node (`skewer limits show` prints them, `skewer limits set` changes them)"
            );
        }
        Ok((setting.version, limits))
    }

    /// The limits stored and their version, `None` while none are.
    pub async fn load(&self) -> Result<Option<(i64, LimitsConfig)>, LimitsError> {
        match self.settings.load(SETTING).await? {
            Some(setting) => Ok(Some((setting.version, decode(&setting)?))),
            None => Ok(None),
        }
    }

    /// The version of the stored limits (a cheap poll).
    pub async fn version(&self) -> Result<Option<i64>, LimitsError> {
        Ok(self.settings.version(SETTING).await?)
    }

    /// Applies `edit` to the stored limits (the defaults when none are stored) in one
    /// transaction; the new limits and their version.
    pub async fn change(&self, edit: &LimitsEdit) -> Result<(i64, LimitsConfig), LimitsError> {
        let mut changed = None;
        let setting = self
            .settings
            .modify(SETTING, |stored| {
                let mut limits = match stored {
                    Some(text) => decode_text(text)?,
                    None => LimitsConfig::default(),
                };
                edit.apply(&mut limits)?;
                let text = encode(&limits)?;
                changed = Some(limits);
                Ok::<_, LimitsError>(text)
            })
            .await?;
        let limits = changed.ok_or_else(|| LimitsError::Corrupt("no limits written".to_owned()))?;
        Ok((setting.version, limits))
    }
}

/// How long one read or change of the stored limits may take.
const DATABASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, LimitsError>>,
) -> Result<T, LimitsError> {
    tokio::time::timeout(DATABASE_TIMEOUT, work)
        .await
        .map_err(|_| {
            LimitsError::Database(CatalogError::Database(format!(
                "no answer within {} s",
                DATABASE_TIMEOUT.as_secs()
            )))
        })?
}

/// A node's view of its deployment's limits: the stored ones, applied to its tenant gate (and
/// through it to the query API) whenever their version moves.
pub struct DeploymentLimits {
    shared: SharedLimits,
    gate: Arc<TenantGate>,
    /// The version in force here (held while applying, so one version is applied at a time).
    applied: Mutex<i64>,
}

impl DeploymentLimits {
    /// Follows `shared` into `gate`, which holds the limits of `version` now.
    pub fn new(shared: SharedLimits, gate: Arc<TenantGate>, version: i64) -> Self {
        Self {
            shared,
            gate,
            applied: Mutex::new(version),
        }
    }

    /// Loads and applies the stored limits when their version moved; whether it did.
    pub async fn refresh(&self) -> Result<bool, LimitsError> {
        bounded(self.refresh_now()).await
    }

    async fn refresh_now(&self) -> Result<bool, LimitsError> {
        let version = self.shared.version().await?;
        if version.is_none_or(|version| version == self.version()) {
            return Ok(false);
        }
        let Some((version, limits)) = self.shared.load().await? else {
            return Ok(false);
        };
        self.apply(version, limits);
        Ok(true)
    }

    /// Changes the stored limits and applies them here at once (other nodes follow within a
    /// refresh); the limits now in force.
    pub async fn change(&self, edit: &LimitsEdit) -> Result<(i64, LimitsConfig), LimitsError> {
        let (version, limits) = bounded(self.shared.change(edit)).await?;
        self.apply(version, limits.clone());
        Ok((version, limits))
    }

    fn apply(&self, version: i64, limits: LimitsConfig) {
        let mut applied = self
            .applied
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Any other version: the row may have been made anew (a restored database) with a
        // lower one. A refresh that read an older version just before a change lands here after
        // it is put right by the next refresh.
        if *applied == version {
            return;
        }
        *applied = version;
        self.gate.set_limits(limits);
        info!(version, "tenant limits reloaded from the catalog database");
    }

    /// The version in force here.
    pub fn version(&self) -> i64 {
        *self
            .applied
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Reloads the deployment's limits every `every` until `stop`; a failing database keeps the
/// limits in force and says so once per distinct error.
pub async fn follow(
    limits: Arc<DeploymentLimits>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match limits.refresh().await {
            Ok(_) => last_error = None,
            Err(err) => {
                let text = err.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, "tenant limits not reloaded; the previous ones stay in force");
                }
                last_error = Some(text);
            }
        }
    }
}
