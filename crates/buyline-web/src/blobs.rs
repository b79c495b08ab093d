//! The blob store that holds uploads — product images and digital files — through the
//! `object_store` crate: a folder in the data directory, or an S3-compatible bucket (the
//! binary builds the store; this module only needs the trait). Names are content
//! addresses: `images/{sha256}.{ext}` and `files/{sha256}`, so an upload that repeats
//! another stores nothing new and a name never changes what it points at (images are
//! served `immutable`).
//!
//! An upload is streamed: each chunk is counted against the limit before it is written
//! (over it, the partial upload is aborted: nothing stored), hashed, and written to a
//! temporary object with a multipart upload; the finished object is then renamed to its
//! content address. An image's type is judged from its first bytes.

use crate::error::ApiError;
use axum::body::Body;
use buyline_core::Error;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Default upload limits.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;

/// Where uploads live, and how large they may be.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    pub max_image_bytes: u64,
    pub max_file_bytes: u64,
}

/// What an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Image,
    File,
}

/// A stored upload.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object's name in the store (`images/…` or `files/…`).
    pub name: String,
    pub size: u64,
    /// For images, the sniffed type.
    pub image: Option<ImageType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Webp,
    Gif,
}

impl ImageType {
    pub fn ext(self) -> &'static str {
        match self {
            ImageType::Png => "png",
            ImageType::Jpeg => "jpg",
            ImageType::Webp => "webp",
            ImageType::Gif => "gif",
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        [ImageType::Png, ImageType::Jpeg, ImageType::Webp, ImageType::Gif].into_iter().find(|t| t.ext() == ext)
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    /// The type the first bytes announce, if one of ours.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageType::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageType::Jpeg)
        } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            Some(ImageType::Webp)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(ImageType::Gif)
        } else {
            None
        }
    }
}

/// Bytes enough to judge an image's type.
const HEAD: usize = 12;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Core(Error::Internal(format!("blob store: {e}")))
}

impl Blobs {
    pub fn new(store: Arc<dyn ObjectStore>, max_image_bytes: u64, max_file_bytes: u64) -> Self {
        Blobs { store, max_image_bytes, max_file_bytes }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Streams `body` into the store; `declared` is the request's `Content-Length`, refused
    /// at once when over the limit.
    pub async fn upload(&self, kind: Upload, body: Body, declared: Option<u64>) -> Result<Stored, ApiError> {
        self.upload_stream(kind, body.into_data_stream(), declared).await
    }

    /// [`Blobs::upload`] of any stream of chunks (a request body, a multipart form's field).
    pub async fn upload_stream<S, E>(&self, kind: Upload, stream: S, declared: Option<u64>) -> Result<Stored, ApiError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut stream = std::pin::pin!(stream);
        let limit = match kind {
            Upload::Image => self.max_image_bytes,
            Upload::File => self.max_file_bytes,
        };
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::UploadTooLarge(limit));
        }
        let tmp = Path::from(format!("tmp/{}", uuid::Uuid::new_v4()));
        let mut writer = WriteMultipart::new(self.store.put_multipart(&tmp).await.map_err(internal)?);
        let mut hasher = Sha256::new();
        let mut head: Vec<u8> = Vec::with_capacity(HEAD);
        let mut size: u64 = 0;
        let mut image = None;
        let failure = loop {
            let chunk = match stream.next().await {
                None => break None,
                Some(Ok(c)) => c,
                Some(Err(e)) => break Some(ApiError::Core(Error::field("body", &format!("could not be read: {e}")))),
            };
            size += chunk.len() as u64;
            if size > limit {
                break Some(ApiError::UploadTooLarge(limit));
            }
            if head.len() < HEAD {
                let take = (HEAD - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if kind == Upload::Image && head.len() == HEAD {
                    image = ImageType::sniff(&head);
                    if image.is_none() {
                        break Some(ApiError::NotAnImage);
                    }
                }
            }
            hasher.update(&chunk);
            if let Err(e) = writer.wait_for_capacity(4).await {
                break Some(internal(e));
            }
            writer.put(chunk);
        };
        let failure = failure.or_else(|| {
            if size == 0 {
                Some(ApiError::Core(Error::field("body", "is empty: send the file's bytes")))
            } else if kind == Upload::Image && image.is_none() {
                image = ImageType::sniff(&head);
                image.is_none().then_some(ApiError::NotAnImage)
            } else {
                None
            }
        });
        if let Some(e) = failure {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(internal)?;
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let name = match image {
            Some(t) => format!("images/{hex}.{}", t.ext()),
            None => format!("files/{hex}"),
        };
        let target = Path::from(name.clone());
        if self.store.head(&target).await.is_ok() {
            let _ = self.store.delete(&tmp).await;
        } else {
            self.store.rename(&tmp, &target).await.map_err(internal)?;
        }
        Ok(Stored { name, size, image })
    }

    /// Stores bytes already in memory (the demo's file) under their content address.
    pub async fn put_file(&self, bytes: Vec<u8>) -> Result<Stored, ApiError> {
        let size = bytes.len() as u64;
        self.upload(Upload::File, Body::from(bytes), Some(size)).await
    }

    /// The object `name` as a streamed body, or `None` if the store has none by that name.
    pub async fn open(&self, name: &str) -> Result<Option<(Body, u64)>, ApiError> {
        match self.store.get(&Path::from(name)).await {
            Ok(r) => {
                let size = r.meta.size;
                Ok(Some((Body::from_stream(r.into_stream()), size)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }
}
