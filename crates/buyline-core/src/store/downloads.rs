//! Digital delivery: a product's uploaded file and image, and the download grants of paid
//! digital lines (counted and expired here; the token itself is never stored, only its hash).

use super::StoreResult;
use crate::model::ProductFile;
use async_trait::async_trait;

/// One download link of a paid digital line, as storage keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadGrant {
    pub order_id: String,
    pub line: i64,
    pub generation: i64,
    pub expires_at: i64,
    pub downloads_left: i64,
}

/// Uploaded files and images, and download grants.
#[async_trait]
pub trait DownloadStore: Send + Sync {
    /// Records the product's uploaded file (the blob is already stored).
    async fn update_product_file(&self, product_id: &str, file: &ProductFile) -> StoreResult<()>;

    /// Points the product's image at an uploaded blob (a path on this server).
    async fn update_product_image(&self, product_id: &str, image_path: &str) -> StoreResult<()>;

    /// Every grant of an order, by line and generation.
    async fn find_download_grants(&self, order_id: &str) -> StoreResult<Vec<DownloadGrant>>;

    /// Writes a grant unless one with its order, line and generation exists (the receipt's
    /// link is written on first use); the stored grant either way.
    async fn insert_download_grant(
        &self,
        grant: &DownloadGrant,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<DownloadGrant>;

    /// Counts one download, atomically: only while the grant has downloads left and has not
    /// expired at `now`. The grant after the count, or `None` if it could not be counted.
    async fn count_download(
        &self,
        order_id: &str,
        line: i64,
        generation: i64,
        now: i64,
    ) -> StoreResult<Option<DownloadGrant>>;
}
