//! Merchants, API keys, products (variants, shipping rates) and flags on SQL.

use crate::accounts::account_insert;
use crate::args;
use crate::carts::write_cart_tags;
use crate::read::Cols;
use crate::vault::vault_record_insert;
use crate::write::{Arg, Job, Step};
use crate::{json_err, other, placeholders, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::model::{
    Account, DonationRange, Inventory, InventoryType, Merchant, Product, ProductOption, ShippingRate, Variant,
};
use buyline_core::store::{CatalogStore, StoreResult};
use buyline_core::types::{Currency, MerchantKind, ProductKind};
use sqlx::Row;
use std::collections::HashMap;

pub(crate) const MERCHANT_SELECT: &str =
    "select m.id, m.account_id, m.owner_account_id, a.handle, m.name, m.kind, m.country, \
     m.currency, m.webhook_url, m.cart_hashtags, m.cart_kinds, m.tax_rates, m.return_policy, m.created_at, m.version \
     from merchants m join accounts a on a.id = m.account_id";

pub(crate) fn merchant_row(r: &impl Cols) -> StoreResult<Merchant> {
    let kind: String = r.col("kind")?;
    let currency: String = r.col("currency")?;
    let hashtags: String = r.col("cart_hashtags")?;
    let tax: String = r.col("tax_rates")?;
    let kinds: String = r.col("cart_kinds")?;
    Ok(Merchant {
        id: r.col("id")?,
        account_id: r.col("account_id")?,
        owner_account_id: r.col("owner_account_id")?,
        handle: r.col("handle")?,
        name: r.col("name")?,
        kind: MerchantKind::parse("kind", &kind).map_err(|e| StoreError::Other(e.message))?,
        country: r.col("country")?,
        currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        webhook_url: r.col("webhook_url")?,
        cart_hashtags: serde_json::from_str(&hashtags).map_err(json_err)?,
        cart_kinds: serde_json::from_str(&kinds).map_err(json_err)?,
        tax_rates: serde_json::from_str(&tax).map_err(json_err)?,
        return_policy: r.col("return_policy")?,
        created_at: r.col("created_at")?,
        version: r.col("version")?,
    })
}

fn variant_row(r: &impl Cols) -> StoreResult<Variant> {
    let options: String = r.col("options")?;
    let kind: String = r.col("inventory_type")?;
    let quantity: Option<i64> = r.col("quantity")?;
    let inventory = if kind == "finite" {
        Inventory { kind: InventoryType::Finite, quantity: Some(quantity.unwrap_or(0)) }
    } else {
        Inventory { kind: InventoryType::Infinite, quantity: None }
    };
    Ok(Variant {
        id: r.col("id")?,
        sku: r.col("sku")?,
        options: serde_json::from_str(&options).map_err(json_err)?,
        price: r.col("price")?,
        available: inventory.kind == InventoryType::Infinite || inventory.quantity.unwrap_or(0) > 0,
        inventory,
    })
}

/// A `variants` row with the product it belongs to.
fn variant_of(r: &impl Cols) -> StoreResult<(String, Variant)> {
    Ok((r.col("product_id")?, variant_row(r)?))
}

/// A `shipping_rates` row with the product it belongs to.
fn rate_of(r: &impl Cols) -> StoreResult<(String, ShippingRate)> {
    let countries: String = r.col("countries")?;
    Ok((
        r.col("product_id")?,
        ShippingRate {
            id: r.col("id")?,
            name: r.col("name")?,
            price: r.col("price")?,
            countries: serde_json::from_str(&countries).map_err(json_err)?,
        },
    ))
}

/// A `products` row, its variants and shipping rates still to be added.
fn product_of(r: &impl Cols) -> StoreResult<Product> {
    let kind: String = r.col("kind")?;
    let currency: String = r.col("currency")?;
    let options: String = r.col("options")?;
    let dmin: Option<i64> = r.col("donation_min")?;
    let dmax: Option<i64> = r.col("donation_max")?;
    Ok(Product {
        id: r.col("id")?,
        merchant_id: r.col("merchant_id")?,
        name: r.col("name")?,
        description: r.col("description")?,
        kind: ProductKind::parse("kind", &kind).map_err(|e| StoreError::Other(e.message))?,
        url: String::new(),
        image_url: r.col("image_url")?,
        currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        options: serde_json::from_str::<Vec<ProductOption>>(&options).map_err(json_err)?,
        variants: vec![],
        shipping_rates: vec![],
        return_policy: r.col("return_policy")?,
        donation: dmin.zip(dmax).map(|(min, max)| DonationRange { min, max }),
        file: crate::downloads::file_of(r)?,
        created_at: r.col("created_at")?,
        version: r.col("version")?,
    })
}

fn inventory_columns(inv: &Inventory) -> (&'static str, Option<i64>) {
    match inv.kind {
        InventoryType::Finite => ("finite", Some(inv.quantity.unwrap_or(0))),
        InventoryType::Infinite => ("infinite", None),
    }
}

async fn insert_rates(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    product_id: &str,
    rates: &[ShippingRate],
) -> StoreResult<()> {
    for (i, r) in rates.iter().enumerate() {
        sqlx::query(
            "insert into shipping_rates (id, product_id, position, name, price, countries) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.id)
        .bind(product_id)
        .bind(i as i64)
        .bind(&r.name)
        .bind(r.price)
        .bind(serde_json::to_string(&r.countries).map_err(json_err)?)
        .execute(&mut **tx)
        .await
        .map_err(other)?;
    }
    Ok(())
}

impl Db {
    /// Live products whose id is in `set` (an SQL list or subquery over `args`), each with
    /// its variants and shipping rates: three reads.
    async fn products_in(&self, set: &str, args: Vec<Arg>) -> StoreResult<Vec<Product>> {
        if args.is_empty() {
            return Ok(vec![]);
        }
        let sql_products = format!("select * from products where id in {set} and archived_at is null");
        let sql_variants = format!("select * from variants where product_id in {set} order by product_id, position");
        let sql_rates = format!("select * from shipping_rates where product_id in {set} order by product_id, position");
        let products = self.read_rows(&sql_products, args.clone(), product_of, |r| product_of(r)).await?;
        if products.is_empty() {
            return Ok(vec![]);
        }
        let variants = self.read_rows(&sql_variants, args.clone(), variant_of, |r| variant_of(r)).await?;
        let rates = self.read_rows(&sql_rates, args, rate_of, |r| rate_of(r)).await?;
        let mut by_product: HashMap<String, (Vec<Variant>, Vec<ShippingRate>)> = HashMap::new();
        for (pid, v) in variants {
            by_product.entry(pid).or_default().0.push(v);
        }
        for (pid, r) in rates {
            by_product.entry(pid).or_default().1.push(r);
        }
        Ok(products
            .into_iter()
            .map(|mut p| {
                (p.variants, p.shipping_rates) = by_product.remove(&p.id).unwrap_or_default();
                p
            })
            .collect())
    }
}

#[async_trait]
impl CatalogStore for Db {
    async fn insert_merchant(
        &self,
        m: &Merchant,
        account: &Account,
        api_key_hash: &str,
        webhook_secret: &buyline_core::saved::VaultRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        account_insert(account, None).execute(&mut *tx).await.map_err(other)?;
        vault_record_insert(webhook_secret)?.execute(&mut *tx).await.map_err(other)?;
        sqlx::query(
            "insert into merchants (id, account_id, owner_account_id, name, kind, country, currency, webhook_url, \
             webhook_secret, cart_hashtags, tax_rates, return_policy, created_at, cart_kinds) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&m.id)
        .bind(&m.account_id)
        .bind(&m.owner_account_id)
        .bind(&m.name)
        .bind(m.kind.as_str())
        .bind(&m.country)
        .bind(m.currency.code())
        .bind(&m.webhook_url)
        .bind(&webhook_secret.id)
        .bind(serde_json::to_string(&m.cart_hashtags).map_err(json_err)?)
        .bind(serde_json::to_string(&m.tax_rates).map_err(json_err)?)
        .bind(&m.return_policy)
        .bind(m.created_at)
        .bind(serde_json::to_string(&m.cart_kinds).map_err(json_err)?)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        write_cart_tags(&mut tx, m).await?;
        sqlx::query("insert into api_keys (key_hash, merchant_id, created_at) values ($1, $2, $3)")
            .bind(api_key_hash)
            .bind(&m.id)
            .bind(m.created_at)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn find_merchant(&self, id: &str) -> StoreResult<Option<Merchant>> {
        let sql = format!("{MERCHANT_SELECT} where m.id = $1");
        Ok(self.read_rows(&sql, args![id], merchant_row, |r| merchant_row(r)).await?.pop())
    }

    async fn find_merchant_by_account(&self, account_id: &str) -> StoreResult<Option<Merchant>> {
        let sql = format!("{MERCHANT_SELECT} where m.account_id = $1");
        let row = sqlx::query(&sql).bind(account_id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(merchant_row).transpose()
    }

    async fn find_merchants_by_owner(&self, owner: &str) -> StoreResult<Vec<Merchant>> {
        let sql = format!("{MERCHANT_SELECT} where m.owner_account_id = $1 order by m.created_at");
        let rows = sqlx::query(&sql).bind(owner).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(merchant_row).collect()
    }

    async fn find_merchant_by_api_key(&self, key_hash: &str) -> StoreResult<Option<Merchant>> {
        let sql = format!(
            "{MERCHANT_SELECT} join api_keys k on k.merchant_id = m.id where k.key_hash = $1 and k.revoked_at is null"
        );
        let row = sqlx::query(&sql).bind(key_hash).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(merchant_row).transpose()
    }

    async fn replace_api_key(&self, merchant_id: &str, key_hash: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("update api_keys set revoked_at = $1 where merchant_id = $2 and revoked_at is null")
            .bind(now)
            .bind(merchant_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        sqlx::query("insert into api_keys (key_hash, merchant_id, created_at) values ($1, $2, $3)")
            .bind(key_hash)
            .bind(merchant_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn update_merchant(&self, m: &Merchant) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update merchants set name = $1, webhook_url = $2, cart_hashtags = $3, tax_rates = $4, return_policy = $5, \
             version = version + 1, \
             webhook_disabled_at = case when webhook_url = $2 then webhook_disabled_at else null end, cart_kinds = $7 \
             where id = $6",
        )
        .bind(&m.name)
        .bind(&m.webhook_url)
        .bind(serde_json::to_string(&m.cart_hashtags).map_err(json_err)?)
        .bind(serde_json::to_string(&m.tax_rates).map_err(json_err)?)
        .bind(&m.return_policy)
        .bind(&m.id)
        .bind(serde_json::to_string(&m.cart_kinds).map_err(json_err)?)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        write_cart_tags(&mut tx, m).await?;
        sqlx::query("update accounts set display_name = $1 where id = $2")
            .bind(&m.name)
            .bind(&m.account_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn insert_product(&self, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into products (id, merchant_id, name, description, kind, image_url, currency, options, \
             return_policy, donation_min, donation_max, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&p.id)
        .bind(&p.merchant_id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.kind.as_str())
        .bind(&p.image_url)
        .bind(p.currency.code())
        .bind(serde_json::to_string(&p.options).map_err(json_err)?)
        .bind(&p.return_policy)
        .bind(p.donation.as_ref().map(|d| d.min))
        .bind(p.donation.as_ref().map(|d| d.max))
        .bind(p.created_at)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        for (i, v) in p.variants.iter().enumerate() {
            let (kind, qty) = inventory_columns(&v.inventory);
            sqlx::query(
                "insert into variants (id, product_id, position, sku, options, price, inventory_type, quantity) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&v.id)
            .bind(&p.id)
            .bind(i as i64)
            .bind(&v.sku)
            .bind(serde_json::to_string(&v.options).map_err(json_err)?)
            .bind(v.price)
            .bind(kind)
            .bind(qty)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        }
        insert_rates(&mut tx, &p.id, &p.shipping_rates).await?;
        tx.commit().await.map_err(other)
    }

    async fn find_products(&self, ids: &[String]) -> StoreResult<Vec<Product>> {
        let mut ids: Vec<&String> = ids.iter().collect();
        ids.sort();
        ids.dedup();
        self.products_in(&format!("({})", placeholders(1, ids.len())), ids.into_iter().map(Arg::from).collect()).await
    }

    async fn find_products_by_variants(&self, variant_ids: &[String]) -> StoreResult<Vec<Product>> {
        let set = format!("(select product_id from variants where id in ({}))", placeholders(1, variant_ids.len()));
        self.products_in(&set, variant_ids.iter().map(Arg::from).collect()).await
    }

    async fn find_products_by_merchant(&self, merchant_id: &str) -> StoreResult<Vec<Product>> {
        let rows = sqlx::query(
            "select id from products where merchant_id = $1 and archived_at is null order by created_at desc, id",
        )
        .bind(merchant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let ids: Vec<String> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>().map_err(other)?;
        let mut products = self.find_products(&ids).await?;
        products.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(products)
    }

    async fn archive_product(
        &self,
        id: &str,
        merchant_id: &str,
        open: &[buyline_core::order::OrderStatus],
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // An order's lines are kept as JSON; the product id is a quoted value in them.
        let statuses = placeholders(3, open.len());
        let sql = format!(
            "select 1 as one from orders where merchant_id = $1 and lines like $2 and status in ({statuses}) limit 1"
        );
        let held = sqlx::query(&sql).bind(merchant_id).bind(format!("%\"product_id\":\"{id}\"%"));
        let held = open.iter().fold(held, |q, s| q.bind(s.as_str())).fetch_optional(&mut *tx).await.map_err(other)?;
        if held.is_some() {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        sqlx::query(
            "update products set archived_at = $1, version = version + 1 \
             where id = $2 and merchant_id = $3 and archived_at is null",
        )
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn find_product_file(&self, id: &str) -> StoreResult<Option<buyline_core::model::ProductFile>> {
        let row = sqlx::query("select * from products where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.as_ref().map(crate::downloads::file_of).transpose()?.flatten())
    }

    async fn update_product(&self, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update products set name = $1, description = $2, image_url = $3, return_policy = $4, \
             version = version + 1 where id = $5",
        )
        .bind(&p.name)
        .bind(&p.description)
        .bind(&p.image_url)
        .bind(&p.return_policy)
        .bind(&p.id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        sqlx::query("delete from shipping_rates where product_id = $1")
            .bind(&p.id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        insert_rates(&mut tx, &p.id, &p.shipping_rates).await?;
        tx.commit().await.map_err(other)
    }

    async fn update_variant(&self, product_id: &str, v: &Variant) -> StoreResult<()> {
        let (kind, qty) = inventory_columns(&v.inventory);
        self.run(Job::from(vec![
            Step::new(
                "update variants set sku = $1, price = $2, inventory_type = $3, quantity = $4 \
                 where id = $5 and product_id = $6",
                args![&v.sku, v.price, kind, qty, &v.id, product_id],
            ),
            Step::new("update products set version = version + 1 where id = $1", args![product_id]),
        ]))
        .await?;
        Ok(())
    }

    async fn find_flag(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("select value from flags where name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.map(|r| r.try_get("value")).transpose().map_err(other)
    }

    async fn upsert_flag(&self, name: &str, value: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into flags (name, value, updated_at) values ($1, $2, $3) \
             on conflict (name) do update set value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn insert_flag_once(&self, name: &str, value: &str, now: i64) -> StoreResult<String> {
        sqlx::query("insert into flags (name, value, updated_at) values ($1, $2, $3) on conflict (name) do nothing")
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(self.writer())
            .await
            .map_err(other)?;
        // Read through the writer: on SQLite the read pool might not see the row yet.
        let row = sqlx::query("select value from flags where name = $1")
            .bind(name)
            .fetch_one(self.writer())
            .await
            .map_err(other)?;
        row.try_get("value").map_err(other)
    }
}
