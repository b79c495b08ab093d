//! A fresh PostgreSQL database for the flash sale's two servers. This is provisioning, like
//! `createdb`: the bench creates and drops a database on the server it is given and never
//! reads or writes the product's tables (the servers migrate it themselves).

use anyhow::Context;
use sqlx::Connection;

/// A fresh database on the server named by `base`; returns its URL.
pub async fn fresh(base: &str) -> anyhow::Result<String> {
    let name = format!("bl_bench_{}", rand::random::<u32>());
    let mut c = sqlx::PgConnection::connect(base).await.context("connecting to PostgreSQL for the flash sale")?;
    sqlx::query(&format!("create database {name}")).execute(&mut c).await?;
    let mut u = url::Url::parse(base)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

pub async fn drop(base: &str, url: &str) {
    if let (Ok(mut c), Ok(u)) = (sqlx::PgConnection::connect(base).await, url::Url::parse(url)) {
        let name = u.path().trim_start_matches('/').to_string();
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut c).await;
    }
}
