//! Opens the blob store `--blob-url` names: the `blobs` folder in the data dir by default
//! (or any `file://` folder), an S3-compatible bucket for `s3://bucket/prefix` with
//! credentials, region and endpoint from the `AWS_*` variables.

use anyhow::Context;
use buyline_web::blobs::Blobs;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use std::sync::Arc;

pub fn open(cfg: &crate::config::ServeConfig) -> anyhow::Result<Blobs> {
    let store: Arc<dyn ObjectStore> = match cfg.blob_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => folder(&cfg.data_dir.join("blobs"))?,
        Some(u) => {
            let url = url::Url::parse(u).with_context(|| format!("--blob-url {u:?} is not a URL"))?;
            match url.scheme() {
                "file" => folder(std::path::Path::new(url.path()))?,
                "s3" => {
                    let bucket = url.host_str().filter(|b| !b.is_empty()).context("--blob-url s3:// needs a bucket")?;
                    let s3 = AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .with_context(|| format!("cannot use the S3 bucket {bucket}"))?;
                    let prefix = url.path().trim_matches('/');
                    if prefix.is_empty() {
                        Arc::new(s3)
                    } else {
                        Arc::new(PrefixStore::new(s3, prefix))
                    }
                }
                other => anyhow::bail!("--blob-url: unsupported scheme {other:?}; use s3:// or file://"),
            }
        }
    };
    Ok(Blobs::new(store, cfg.max_image_bytes.max(1), cfg.max_file_bytes.max(1)))
}

fn folder(dir: &std::path::Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the blob folder {}", dir.display()))?;
    Ok(Arc::new(LocalFileSystem::new_with_prefix(dir).with_context(|| format!("blob folder {}", dir.display()))?))
}
