//! Span and metric files (and their manifests) in an S3-compatible bucket instead of the data
//! directory: `s3://bucket` or `s3://bucket/prefix`, an endpoint for compatible servers
//! (MinIO, Ceph, moto…), path-style addressing, credentials from the section, the usual
//! `AWS_*` environment variables or the shared credentials file. The WAL and the log indexes
//! are written on local disk.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, RetryConfig};

use crate::StorageError;
use crate::objects::Objects;

/// Where an S3-compatible bucket is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The server, for S3-compatible stores (`http://127.0.0.1:9000`); AWS when `None`.
    pub endpoint: Option<String>,
    /// The region; `AWS_REGION` / `AWS_DEFAULT_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// `endpoint/bucket/key` instead of `bucket.endpoint/key` (most compatible servers).
    pub path_style: bool,
    /// How long one request is retried (with exponential backoff) before it fails.
    pub retry_timeout: Duration,
    /// Access key id and secret; the `AWS_*` environment variables when `None`.
    pub credentials: Option<(String, String)>,
}

/// Never prints the secret.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("retry_timeout", &self.retry_timeout)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|(key_id, _)| key_id),
            )
            .finish()
    }
}

impl S3Config {
    /// A bucket at `url` with AWS's defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            endpoint: None,
            region: None,
            path_style: false,
            retry_timeout: Duration::from_secs(60),
            credentials: None,
        }
    }

    /// The bucket and the key prefix (without slashes at its ends) of `url`.
    pub fn bucket_and_prefix(&self) -> Result<(String, String), StorageError> {
        let invalid = |reason: &str| StorageError::InvalidStoreUrl {
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        let rest = self
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("it names no bucket"));
        }
        Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
    }

    /// The objects of the bucket under the prefix. Nothing is sent yet: [`probe`] checks
    /// that the bucket answers.
    pub fn objects(&self) -> Result<Objects, StorageError> {
        let (bucket, prefix) = self.bucket_and_prefix()?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 10,
                retry_timeout: self.retry_timeout,
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some((key_id, secret)) = &self.credentials {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some(file) = crate::aws_credentials::from_shared_file()
        {
            builder = builder
                .with_access_key_id(file.key_id)
                .with_secret_access_key(file.secret);
            if let Some(token) = file.token {
                builder = builder.with_token(token);
            }
        }
        let store = builder
            .build()
            .map_err(|source| StorageError::ObjectStore {
                path: self.url.clone(),
                source,
            })?;
        let store: Arc<dyn ObjectStore> = match prefix.is_empty() {
            true => Arc::new(store),
            false => Arc::new(PrefixStore::new(store, ObjectPath::from(prefix))),
        };
        Ok(Objects::remote(store))
    }
}

/// Checks that the store answers a listing (the bucket exists and the credentials are
/// accepted), so a start fails with the store's own words instead of on the first flush.
pub async fn probe(config: &S3Config, objects: &Objects) -> Result<(), StorageError> {
    objects
        .store()
        .list_with_delimiter(None)
        .await
        .map(|_| ())
        .map_err(|source| StorageError::StoreUnavailable {
            url: config.url.clone(),
            reason: with_hint(source.to_string()),
        })
}

/// The store's words, with what to check when they name a refusal of the credentials or a
/// missing bucket.
fn with_hint(reason: String) -> String {
    const REFUSED: [&str; 4] = [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "403 Forbidden",
    ];
    let hint = if REFUSED.iter().any(|code| reason.contains(code)) {
        "the store refused the credentials: check [storage] access_key_id / secret_access_key \
         or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables"
    } else if reason.contains("NoSuchBucket") {
        "the bucket does not exist: create it, or fix [storage] url"
    } else {
        return reason;
    };
    format!("{hint} ({reason})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        let split = |url: &str| S3Config::new(url).bucket_and_prefix();
        assert_eq!(split("s3://b").unwrap(), ("b".into(), String::new()));
        assert_eq!(
            split("s3://b/team/skewer/").unwrap(),
            ("b".into(), "team/skewer".into())
        );
        for bad in ["b/prefix", "s3://", "s3:///prefix", "file:///tmp"] {
            let err = split(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn refusals_and_missing_buckets_say_what_to_check() {
        let refused = with_hint("403 Forbidden: <Code>SignatureDoesNotMatch</Code>".into());
        assert!(
            refused.starts_with("the store refused the credentials"),
            "{refused}"
        );
        assert!(refused.contains("SignatureDoesNotMatch"), "{refused}");
        let missing = with_hint("404 Not Found: <Code>NoSuchBucket</Code>".into());
        assert!(
            missing.starts_with("the bucket does not exist"),
            "{missing}"
        );
        assert_eq!(with_hint("connection refused".into()), "connection refused");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let config = S3Config {
            credentials: Some(("AKIDEXAMPLE".into(), "s3cr3t-value".into())),
            ..S3Config::new("s3://b")
        };
        let printed = format!("{config:?}");
        assert!(
            printed.contains("AKIDEXAMPLE") && !printed.contains("s3cr3t"),
            "{printed}"
        );
    }
}
