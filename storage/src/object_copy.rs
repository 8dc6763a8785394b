//! Copying one object between stores (a deployment's bucket and a backup directory) in
//! bounded memory: small objects in one piece, large ones streamed as a multipart upload.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, WriteMultipart};
use tracing::warn;

use crate::StorageError;
use crate::objects::{Objects, object_error};

/// Objects up to this size travel in one piece; larger ones in parts of this size.
pub const PART_BYTES: usize = 16 * 1024 * 1024;

/// Parts uploading at once for one object.
const PARTS_IN_FLIGHT: usize = 2;

/// Copies the object at `path` from `source` to the same path in `target`, durably; its size,
/// or `None` when `source` has no such object (deleted meanwhile).
pub async fn copy_object(
    source: &Objects,
    target: &Objects,
    path: &ObjectPath,
) -> Result<Option<u64>, StorageError> {
    let found = match source.store().get(path).await {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(object_error(path, err)),
    };
    let size = found.meta.size;
    if size <= PART_BYTES as u64 {
        let bytes: Bytes = found.bytes().await.map_err(|err| object_error(path, err))?;
        target.put(path, bytes).await?;
        return Ok(Some(size));
    }
    let chunks = found
        .into_stream()
        .map(|chunk| chunk.map_err(|err| object_error(path, err)));
    write_in_parts(target, path, chunks).await?;
    Ok(Some(size))
}

/// Writes the object at `path` in `target` from `chunks` as a multipart upload of
/// [`PART_BYTES`] parts, a few in flight, durably; aborted (nothing left behind) when a chunk
/// fails.
pub async fn write_in_parts(
    target: &Objects,
    path: &ObjectPath,
    chunks: impl Stream<Item = Result<Bytes, StorageError>>,
) -> Result<(), StorageError> {
    let upload = target
        .store()
        .put_multipart(path)
        .await
        .map_err(|err| object_error(path, err))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let written = async {
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|err| object_error(path, err))?;
            writer.put(chunk?);
        }
        Ok::<_, StorageError>(())
    }
    .await;
    match written {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|err| object_error(path, err))?;
            target.sync(path).await
        }
        Err(err) => {
            if let Err(abort) = writer.abort().await {
                warn!(path = %path, error = %abort, "aborting a multipart upload failed");
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_large_objects_arrive_whole_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let source = Objects::local(&dir.path().join("a")).unwrap();
        let target = Objects::local(&dir.path().join("b")).unwrap();
        let small = ObjectPath::from("x/small.bin");
        let large = ObjectPath::from("x/large.bin");
        let big: Vec<u8> = (0..PART_BYTES * 2 + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        source
            .put(&small, Bytes::from_static(b"tiny"))
            .await
            .unwrap();
        source.put(&large, Bytes::from(big.clone())).await.unwrap();
        assert_eq!(
            copy_object(&source, &target, &small).await.unwrap(),
            Some(4)
        );
        assert_eq!(
            copy_object(&source, &target, &large).await.unwrap(),
            Some(big.len() as u64)
        );
        assert_eq!(target.get(&small).await.unwrap().as_ref(), b"tiny");
        assert_eq!(target.get(&large).await.unwrap().as_ref(), &big[..]);
        let gone = ObjectPath::from("x/gone.bin");
        assert_eq!(copy_object(&source, &target, &gone).await.unwrap(), None);
    }
}
