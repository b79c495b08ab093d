//! Uploaded files and images on products, and download grants, on SQL.

use crate::{other, Db};
use async_trait::async_trait;
use buyline_core::model::ProductFile;
use buyline_core::store::{DownloadGrant, DownloadStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A product row's uploaded file, if it has one.
pub(crate) fn file_of(r: &impl crate::read::Cols) -> StoreResult<Option<ProductFile>> {
    let blob: Option<String> = r.col("file_blob")?;
    let Some(blob) = blob else { return Ok(None) };
    Ok(Some(ProductFile {
        name: r.col::<Option<String>>("file_name")?.unwrap_or_default(),
        content_type: r.col::<Option<String>>("file_type")?.unwrap_or_default(),
        size: r.col::<Option<i64>>("file_size")?.unwrap_or(0),
        blob,
    }))
}

fn grant_of(r: &AnyRow) -> StoreResult<DownloadGrant> {
    Ok(DownloadGrant {
        order_id: r.try_get("order_id").map_err(other)?,
        line: r.try_get("line").map_err(other)?,
        generation: r.try_get("generation").map_err(other)?,
        expires_at: r.try_get("expires_at").map_err(other)?,
        downloads_left: r.try_get("downloads_left").map_err(other)?,
    })
}

const GRANT_COLUMNS: &str = "order_id, line, generation, expires_at, downloads_left";

#[async_trait]
impl DownloadStore for Db {
    async fn update_product_file(&self, product_id: &str, file: &ProductFile) -> StoreResult<()> {
        sqlx::query(
            "update products set file_blob = $1, file_name = $2, file_type = $3, file_size = $4, \
             version = version + 1 where id = $5",
        )
        .bind(&file.blob)
        .bind(&file.name)
        .bind(&file.content_type)
        .bind(file.size)
        .bind(product_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn update_product_image(&self, product_id: &str, image_path: &str) -> StoreResult<()> {
        sqlx::query("update products set image_url = $1 where id = $2")
            .bind(image_path)
            .bind(product_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_download_grants(&self, order_id: &str) -> StoreResult<Vec<DownloadGrant>> {
        let rows = sqlx::query(&format!(
            "select {GRANT_COLUMNS} from downloads where order_id = $1 order by line, generation"
        ))
        .bind(order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(grant_of).collect()
    }

    async fn insert_download_grant(&self, g: &DownloadGrant, token_hash: &str, now: i64) -> StoreResult<DownloadGrant> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into downloads (order_id, line, generation, token_hash, expires_at, downloads_left, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (order_id, line, generation) do nothing",
        )
        .bind(&g.order_id)
        .bind(g.line)
        .bind(g.generation)
        .bind(token_hash)
        .bind(g.expires_at)
        .bind(g.downloads_left)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        let row = sqlx::query(&format!(
            "select {GRANT_COLUMNS} from downloads where order_id = $1 and line = $2 and generation = $3"
        ))
        .bind(&g.order_id)
        .bind(g.line)
        .bind(g.generation)
        .fetch_one(&mut *tx)
        .await
        .map_err(other)?;
        let stored = grant_of(&row)?;
        tx.commit().await.map_err(other)?;
        Ok(stored)
    }

    async fn count_download(
        &self,
        order_id: &str,
        line: i64,
        generation: i64,
        now: i64,
    ) -> StoreResult<Option<DownloadGrant>> {
        let row = sqlx::query(&format!(
            "update downloads set downloads_left = downloads_left - 1 \
             where order_id = $1 and line = $2 and generation = $3 and downloads_left > 0 and expires_at > $4 \
             returning {GRANT_COLUMNS}"
        ))
        .bind(order_id)
        .bind(line)
        .bind(generation)
        .bind(now)
        .fetch_optional(self.writer())
        .await
        .map_err(other)?;
        row.as_ref().map(grant_of).transpose()
    }
}
