//! A shared deployment's bucket and catalog opened by a tool (backup, restore, check) from a
//! node's storage config, without opening a node.

use std::sync::Arc;

use crate::StorageError;
use crate::catalog::database::Schema;
use crate::catalog::{Catalog, ObjectCatalog, PostgresCatalog};
use crate::config::StorageConfig;
use crate::layout;
use crate::objects::Objects;

/// A deployment's bucket and catalog, as a node's config names them.
pub(crate) struct Deployment {
    /// The bucket (or the data directory's objects when the config names none).
    pub objects: Objects,
    /// The catalog: the database's, or the bucket's own manifests.
    pub catalog: Arc<dyn Catalog>,
    /// The catalog database, when there is one (limits and API keys live there too).
    pub database_url: Option<String>,
}

impl Deployment {
    /// Reaches the bucket (probed, so a wrong endpoint or key fails here) and the catalog,
    /// doing `schema` with a catalog database's schema.
    pub async fn open(config: &StorageConfig, schema: Schema) -> Result<Self, StorageError> {
        let objects = match &config.object_store {
            Some(remote) => {
                let objects = remote.objects()?;
                crate::remote::probe(remote, &objects).await?;
                objects
            }
            None => Objects::local(&layout::objects_dir(&config.data_dir))?,
        };
        let catalog: Arc<dyn Catalog> = match &config.catalog_url {
            Some(url) => Arc::new(PostgresCatalog::connect_with(url, schema).await?),
            None => Arc::new(ObjectCatalog::new(objects.clone())),
        };
        Ok(Self {
            objects,
            catalog,
            database_url: config.catalog_url.clone(),
        })
    }
}
