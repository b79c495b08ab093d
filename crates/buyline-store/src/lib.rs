//! The core storage trait on SQLite and PostgreSQL. One SQL text serves both through sqlx's
//! `Any` driver (`$n` placeholders work on both); each backend has its own migrations folder.
//! No business rules live here: each method writes what a service decided, atomically.

use async_trait::async_trait;
use buyline_core::cart::{CartItemRecord, CartJob, CartResult, CartTag};
use buyline_core::checkout::{Address, Posting, Totals};
use buyline_core::error::StoreError;
use buyline_core::ids::new_id;
use buyline_core::model::{
    Account, AccountKind, Author, Credentials, DonationRange, Inventory, InventoryType, Merchant, NewPost, Post,
    Product, ProductOption, Profile, ShippingRate, Variant,
};
use buyline_core::order::{
    CheckoutRecord, Delivery, DeliveryAttempt, DeliveryJob, DeliveryOutcome, Fulfillment, NewEvent, Notification,
    Order, OrderLine, OrderStatus, OutgoingEmail, PaymentSummary, Receipt, RefundRecord, ShippingChoice,
    TrialBalanceLine,
};
use buyline_core::store::{Before, Store, StoreResult};
use buyline_core::types::{Currency, MerchantKind, ProductKind};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go. On SQLite a pool of one connection: writers queue here, in order,
    /// instead of contending for the database lock (SQLite's busy handler waits by sleeping,
    /// in steps of up to 100 ms). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    /// SQLite: posts go to a task that commits all that are waiting in one transaction
    /// (group commit). `None` on PostgreSQL, whose writers run side by side.
    posts: Option<tokio::sync::mpsc::Sender<PostWrite>>,
    backend: Backend,
}

/// A post (with its cart job or not) waiting for the group commit, and who to tell.
struct PostWrite {
    post: NewPost,
    cart_job: bool,
    done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

/// Most posts written in one group-commit transaction.
const POST_GROUP: usize = 256;

fn other(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
            let what = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
            return StoreError::Unique(what);
        }
    }
    StoreError::Other(e.to_string())
}

/// The insert of a new (sealed) vault record, to run alone or inside a transaction.
fn vault_record_insert(r: &buyline_core::saved::VaultRecord) -> StoreResult<AnyQuery<'_>> {
    let sealed = r.sealed.as_ref().ok_or_else(|| StoreError::Other("a new vault record must be sealed".into()))?;
    Ok(sqlx::query(
        "insert into vault_records (id, owner_id, kind, kek_id, wrapped_key, ciphertext, summary, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id)
    .bind(&r.owner_id)
    .bind(&r.kind)
    .bind(sealed.kek_id.clone())
    .bind(b64(&sealed.wrapped_key))
    .bind(b64(&sealed.ciphertext))
    .bind(&r.summary)
    .bind(r.created_at))
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("stored JSON does not parse: {e}"))
}

/// `($s, …, $s+cols-1), (…)` for `rows` rows of `cols` values, numbered from `start`.
fn rows_of(rows: usize, cols: usize, start: usize) -> String {
    (0..rows).map(|r| format!("({})", placeholders(start + r * cols, cols))).collect::<Vec<_>>().join(", ")
}

/// `$start, $start+1, …` for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Db {
    /// Connects and applies migrations. `url` is `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Other(format!(
                "unsupported database URL scheme in {:?}: use sqlite:// or postgres://",
                url.split(':').next().unwrap_or("")
            )));
        };
        if backend == Backend::Sqlite {
            // WAL is a property of the file; set it once, outside the pool, before any reader.
            use sqlx::Connection;
            let mut c = sqlx::AnyConnection::connect(url).await.map_err(other)?;
            sqlx::query("pragma journal_mode = wal").execute(&mut c).await.map_err(other)?;
            c.close().await.map_err(other)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(other)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let writer = match backend {
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .connect(url)
                .await
                .map_err(other)?,
            Backend::Postgres => pool.clone(),
        };
        let posts = (backend == Backend::Sqlite).then(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * POST_GROUP);
            tokio::spawn(group_commit_posts(writer.clone(), rx));
            tx
        });
        Ok(Db { pool, writer, posts, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The read pool and the write pool, for an adapter that keeps its own tables in this
    /// database (the test processor). On SQLite the write pool is the one writer
    /// connection: the adapter's writes must queue there with the store's.
    pub fn pools(&self) -> (AnyPool, AnyPool) {
        (self.pool.clone(), self.writer.clone())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// A write transaction, on the writer pool. On SQLite it also takes the write lock up
    /// front (`begin immediate`), so a read inside it cannot fail to upgrade to a write.
    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("begin immediate").await.map_err(other),
            Backend::Postgres => self.pool.begin().await.map_err(other),
        }
    }

    fn writer(&self) -> &AnyPool {
        &self.writer
    }
}

const ACCOUNT_COLUMNS: &str = "id, handle, display_name, email, country, kind, bio, created_at";
const POST_SELECT: &str = "select p.id, p.author_id, a.handle, a.display_name, p.text, p.entities, p.reply_to, \
     p.product_id, p.created_at from posts p join accounts a on a.id = p.author_id";
const MERCHANT_SELECT: &str = "select m.id, m.account_id, m.owner_account_id, a.handle, m.name, m.kind, m.country, \
     m.currency, m.webhook_url, m.cart_hashtags, m.cart_kinds, m.tax_rates, m.return_policy, m.created_at \
     from merchants m join accounts a on a.id = m.account_id";

type AnyQuery<'a> = sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>>;

fn checkout_insert(c: &CheckoutRecord) -> StoreResult<AnyQuery<'_>> {
    Ok(sqlx::query(
        "insert into checkouts (id, shopper_id, merchant_id, post_id, lines, currency, status, attempt, order_id, \
         created_at, updated_at, expires_at, from_cart) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)",
    )
    .bind(&c.id)
    .bind(&c.shopper_id)
    .bind(&c.merchant_id)
    .bind(&c.post_id)
    .bind(serde_json::to_string(&c.lines).map_err(json_err)?)
    .bind(c.currency.code())
    .bind(&c.status)
    .bind(c.attempt)
    .bind(&c.order_id)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(i64::from(c.from_cart)))
}

/// Writes posts, and the cart jobs of those that have one, with one statement each.
async fn write_posts(tx: &mut sqlx::Transaction<'static, sqlx::Any>, posts: &[(&NewPost, bool)]) -> StoreResult<()> {
    let sql = format!(
        "insert into posts (id, author_id, text, entities, reply_to, product_id, created_at) values {}",
        rows_of(posts.len(), 7, 1)
    );
    let mut q = sqlx::query(&sql);
    for (p, _) in posts {
        q = q
            .bind(&p.id)
            .bind(&p.author_id)
            .bind(&p.text)
            .bind(serde_json::to_string(&p.entities).map_err(json_err)?)
            .bind(&p.reply_to)
            .bind(&p.product_id)
            .bind(p.created_at);
    }
    q.execute(&mut **tx).await.map_err(other)?;
    let jobs: Vec<&NewPost> = posts.iter().filter(|(_, job)| *job).map(|(p, _)| *p).collect();
    if !jobs.is_empty() {
        let sql = format!(
            "insert into cart_jobs (post_id, account_id, parent_id, state, created_at) values {}",
            (0..jobs.len())
                .map(|k| format!("(${}, ${}, ${}, 'pending', ${})", 4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 4))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for p in jobs {
            q = q.bind(&p.id).bind(&p.author_id).bind(&p.reply_to).bind(p.created_at);
        }
        q.execute(&mut **tx).await.map_err(other)?;
    }
    Ok(())
}

/// Group commit of posts on SQLite: takes every post waiting (up to [`POST_GROUP`]) and
/// writes them in one transaction, one fsync for all. If that fails (one post's parent was
/// deleted a moment ago, say), each is written alone, so only the bad one fails.
async fn group_commit_posts(writer: AnyPool, mut rx: tokio::sync::mpsc::Receiver<PostWrite>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < POST_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let together: Vec<(&NewPost, bool)> = group.iter().map(|w| (&w.post, w.cart_job)).collect();
        let result = async {
            let mut tx = writer.begin_with("begin immediate").await.map_err(other)?;
            write_posts(&mut tx, &together).await?;
            tx.commit().await.map_err(other)
        }
        .await;
        if result.is_ok() || group.len() == 1 {
            for w in group {
                let _ = w.done.send(result.clone());
            }
            continue;
        }
        for w in group {
            let alone = async {
                let mut tx = writer.begin_with("begin immediate").await.map_err(other)?;
                write_posts(&mut tx, &[(&w.post, w.cart_job)]).await?;
                tx.commit().await.map_err(other)
            }
            .await;
            let _ = w.done.send(alone);
        }
    }
}

/// Replaces the merchant's rows in `cart_hashtags`, whose key makes a tag one merchant's.
async fn write_cart_tags(tx: &mut sqlx::Transaction<'static, sqlx::Any>, m: &Merchant) -> StoreResult<()> {
    sqlx::query("delete from cart_hashtags where merchant_id = $1")
        .bind(&m.id)
        .execute(&mut **tx)
        .await
        .map_err(other)?;
    for (country, tag) in &m.cart_hashtags {
        let key = buyline_core::cart::tag_key(tag);
        sqlx::query("insert into cart_hashtags (tag_key, merchant_id, country, tag) values ($1, $2, $3, $4)")
            .bind(&key)
            .bind(&m.id)
            .bind(country)
            .bind(tag)
            .execute(&mut **tx)
            .await
            .map_err(|e| match other(e) {
                StoreError::Unique(_) => StoreError::Unique(format!("cart_hashtags:{key}")),
                e => e,
            })?;
    }
    Ok(())
}

fn cart_item_row(r: &AnyRow) -> StoreResult<CartItemRecord> {
    Ok(CartItemRecord {
        id: r.try_get("id").map_err(other)?,
        account_id: r.try_get("account_id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        product_id: r.try_get("product_id").map_err(other)?,
        variant_id: r.try_get("variant_id").map_err(other)?,
        quantity: r.try_get("quantity").map_err(other)?,
        source_post_id: r.try_get("source_post_id").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

/// The insert of an account row, for the pool or a transaction.
fn account_insert<'a>(
    a: &'a Account,
    password_hash: Option<&'a str>,
) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>> {
    sqlx::query(
        "insert into accounts (id, handle, handle_key, display_name, email, email_key, password_hash, country, kind, bio, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&a.id)
    .bind(&a.handle)
    .bind(a.handle.to_lowercase())
    .bind(&a.display_name)
    .bind(&a.email)
    .bind(a.email.as_ref().map(|e| e.to_lowercase()))
    .bind(password_hash)
    .bind(&a.country)
    .bind(match a.kind {
        AccountKind::Person => "person",
        AccountKind::Merchant => "merchant",
    })
    .bind(&a.bio)
    .bind(a.created_at)
}

fn account_row(r: &AnyRow) -> StoreResult<Account> {
    let kind: String = r.try_get("kind").map_err(other)?;
    Ok(Account {
        id: r.try_get("id").map_err(other)?,
        handle: r.try_get("handle").map_err(other)?,
        display_name: r.try_get("display_name").map_err(other)?,
        email: r.try_get("email").map_err(other)?,
        country: r.try_get("country").map_err(other)?,
        kind: if kind == "merchant" { AccountKind::Merchant } else { AccountKind::Person },
        bio: r.try_get("bio").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

fn post_row(r: &AnyRow) -> StoreResult<Post> {
    let entities: String = r.try_get("entities").map_err(other)?;
    Ok(Post {
        id: r.try_get("id").map_err(other)?,
        author: Author {
            id: r.try_get("author_id").map_err(other)?,
            handle: r.try_get("handle").map_err(other)?,
            display_name: r.try_get("display_name").map_err(other)?,
        },
        text: r.try_get("text").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
        reply_to: r.try_get("reply_to").map_err(other)?,
        product_id: r.try_get("product_id").map_err(other)?,
        entities: serde_json::from_str(&entities).map_err(json_err)?,
    })
}

fn merchant_row(r: &AnyRow) -> StoreResult<Merchant> {
    let kind: String = r.try_get("kind").map_err(other)?;
    let currency: String = r.try_get("currency").map_err(other)?;
    let hashtags: String = r.try_get("cart_hashtags").map_err(other)?;
    let tax: String = r.try_get("tax_rates").map_err(other)?;
    let kinds: String = r.try_get("cart_kinds").map_err(other)?;
    Ok(Merchant {
        id: r.try_get("id").map_err(other)?,
        account_id: r.try_get("account_id").map_err(other)?,
        owner_account_id: r.try_get("owner_account_id").map_err(other)?,
        handle: r.try_get("handle").map_err(other)?,
        name: r.try_get("name").map_err(other)?,
        kind: MerchantKind::parse("kind", &kind).map_err(|e| StoreError::Other(e.message))?,
        country: r.try_get("country").map_err(other)?,
        currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        webhook_url: r.try_get("webhook_url").map_err(other)?,
        cart_hashtags: serde_json::from_str(&hashtags).map_err(json_err)?,
        cart_kinds: serde_json::from_str(&kinds).map_err(json_err)?,
        tax_rates: serde_json::from_str(&tax).map_err(json_err)?,
        return_policy: r.try_get("return_policy").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

fn variant_row(r: &AnyRow) -> StoreResult<Variant> {
    let options: String = r.try_get("options").map_err(other)?;
    let kind: String = r.try_get("inventory_type").map_err(other)?;
    let quantity: Option<i64> = r.try_get("quantity").map_err(other)?;
    let inventory = if kind == "finite" {
        Inventory { kind: InventoryType::Finite, quantity: Some(quantity.unwrap_or(0)) }
    } else {
        Inventory { kind: InventoryType::Infinite, quantity: None }
    };
    Ok(Variant {
        id: r.try_get("id").map_err(other)?,
        sku: r.try_get("sku").map_err(other)?,
        options: serde_json::from_str(&options).map_err(json_err)?,
        price: r.try_get("price").map_err(other)?,
        available: inventory.kind == InventoryType::Infinite || inventory.quantity.unwrap_or(0) > 0,
        inventory,
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

fn checkout_row(r: &AnyRow) -> StoreResult<CheckoutRecord> {
    let lines: String = r.try_get("lines").map_err(other)?;
    let currency: String = r.try_get("currency").map_err(other)?;
    Ok(CheckoutRecord {
        id: r.try_get("id").map_err(other)?,
        shopper_id: r.try_get("shopper_id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        post_id: r.try_get("post_id").map_err(other)?,
        lines: serde_json::from_str(&lines).map_err(json_err)?,
        currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        status: r.try_get("status").map_err(other)?,
        attempt: r.try_get("attempt").map_err(other)?,
        order_id: r.try_get("order_id").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
        expires_at: r.try_get("expires_at").map_err(other)?,
        from_cart: r.try_get::<i64, _>("from_cart").map_err(other)? != 0,
    })
}

fn order_row(r: &AnyRow) -> StoreResult<Order> {
    let status: String = r.try_get("status").map_err(other)?;
    let currency: String = r.try_get("currency").map_err(other)?;
    let lines: String = r.try_get("lines").map_err(other)?;
    let address: Option<String> = r.try_get("shipping_address").map_err(other)?;
    let shipping: Option<String> = r.try_get("shipping").map_err(other)?;
    let fulfillment: String = r.try_get("fulfillment").map_err(other)?;
    let captured_at: Option<i64> = r.try_get("captured_at").map_err(other)?;
    let fee_bps: i64 = r.try_get("fee_bps").map_err(other)?;
    Ok(Order {
        id: r.try_get("id").map_err(other)?,
        status: OrderStatus::parse(&status).ok_or_else(|| StoreError::Other(format!("order status {status}")))?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        shopper_id: r.try_get("shopper_id").map_err(other)?,
        checkout_id: r.try_get("checkout_id").map_err(other)?,
        lines: serde_json::from_str::<Vec<OrderLine>>(&lines).map_err(json_err)?,
        shipping_address: address.map(|a| serde_json::from_str::<Address>(&a)).transpose().map_err(json_err)?,
        shipping: shipping.map(|a| serde_json::from_str::<ShippingChoice>(&a)).transpose().map_err(json_err)?,
        totals: Totals {
            subtotal: r.try_get("subtotal").map_err(other)?,
            shipping: r.try_get("shipping_amount").map_err(other)?,
            tax: r.try_get("tax").map_err(other)?,
            total: r.try_get("total").map_err(other)?,
            currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        },
        platform_fee: r.try_get("platform_fee").map_err(other)?,
        fee_bps: fee_bps as u32,
        fulfillment: serde_json::from_str::<Fulfillment>(&fulfillment).map_err(json_err)?,
        payment: PaymentSummary {
            brand: r.try_get("card_brand").map_err(other)?,
            last4: r.try_get("card_last4").map_err(other)?,
        },
        payment_id: r.try_get("payment_id").map_err(other)?,
        challenge_url: r.try_get("challenge_url").map_err(other)?,
        post_id: r.try_get("post_id").map_err(other)?,
        contact_email: r.try_get("contact_email").map_err(other)?,
        captured: captured_at.is_some(),
        acknowledged: r.try_get::<Option<i64>, _>("acknowledged_at").map_err(other)?.is_some(),
        refunded_amount: r.try_get("refunded_amount").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

async fn insert_receipt(tx: &mut sqlx::Transaction<'static, sqlx::Any>, r: &Receipt, now: i64) -> StoreResult<()> {
    insert_receipts(tx, &[r], now).await
}

/// In-app notifications and the e-mails that go with them: one statement per table.
async fn insert_receipts(tx: &mut sqlx::Transaction<'static, sqlx::Any>, rs: &[&Receipt], now: i64) -> StoreResult<()> {
    if rs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "insert into notifications (id, account_id, text, link, created_at) values {}",
        rows_of(rs.len(), 5, 1)
    );
    let mut q = sqlx::query(&sql);
    for r in rs {
        q = q.bind(new_id("ntf")).bind(&r.account_id).bind(&r.text).bind(&r.link).bind(now);
    }
    q.execute(&mut **tx).await.map_err(other)?;
    let mails: Vec<(&str, &(String, String, String))> =
        rs.iter().filter_map(|r| r.email.as_ref().map(|m| (r.account_id.as_str(), m))).collect();
    if !mails.is_empty() {
        let sql = format!(
            "insert into emails (id, to_address, subject, body, created_at, account_id) values {}",
            rows_of(mails.len(), 6, 1)
        );
        let mut q = sqlx::query(&sql);
        for (account_id, (to, subject, body)) in mails {
            q = q.bind(new_id("eml")).bind(to).bind(subject).bind(body).bind(now).bind(account_id);
        }
        q.execute(&mut **tx).await.map_err(other)?;
    }
    Ok(())
}

const ORDER_SELECT: &str = "select * from orders";

/// How long stock stays held for an order waiting on a 3-D Secure challenge.
const CHALLENGE_HOLD_MICROS: i64 = 65 * 60 * 1_000_000;

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> StoreResult<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| StoreError::Other(format!("sealed bytes: {e}")))
}

fn vault_row(r: &AnyRow) -> StoreResult<buyline_core::saved::VaultRecord> {
    let kek: Option<String> = r.try_get("kek_id").map_err(other)?;
    let wrapped: Option<String> = r.try_get("wrapped_key").map_err(other)?;
    let ct: Option<String> = r.try_get("ciphertext").map_err(other)?;
    let sealed = match (kek, wrapped, ct) {
        (Some(kek_id), Some(w), Some(c)) => {
            Some(buyline_core::vault::Sealed { kek_id, wrapped_key: unb64(&w)?, ciphertext: unb64(&c)? })
        }
        _ => None,
    };
    Ok(buyline_core::saved::VaultRecord {
        id: r.try_get("id").map_err(other)?,
        owner_id: r.try_get("owner_id").map_err(other)?,
        kind: r.try_get("kind").map_err(other)?,
        sealed,
        summary: r.try_get("summary").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

async fn insert_event(tx: &mut sqlx::Transaction<'static, sqlx::Any>, e: &NewEvent) -> StoreResult<()> {
    insert_events(tx, &[e]).await
}

/// Writes events and, for each whose merchant has a live webhook endpoint, its delivery: in
/// the caller's transaction, so an event exists exactly when the change it reports does.
async fn insert_events(tx: &mut sqlx::Transaction<'static, sqlx::Any>, events: &[&NewEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "insert into events (id, merchant_id, type, payload, created_at, account_id) values {}",
        rows_of(events.len(), 6, 1)
    );
    let mut q = sqlx::query(&sql);
    for e in events {
        q = q.bind(&e.id).bind(&e.merchant_id).bind(&e.kind).bind(&e.payload).bind(e.created_at).bind(&e.account_id);
    }
    q.execute(&mut **tx).await.map_err(other)?;
    let selects = (0..events.len())
        .map(|k| {
            let b = 4 * k;
            format!(
                "select ${}, ${}, id, 'pending', 0, ${}, 0, ${} from merchants \
                 where id = ${} and webhook_url is not null and webhook_disabled_at is null",
                b + 1,
                b + 2,
                b + 3,
                b + 3,
                b + 4
            )
        })
        .collect::<Vec<_>>()
        .join(" union all ");
    let sql = format!(
        "insert into webhook_deliveries (id, event_id, merchant_id, status, attempts, next_attempt_at, locked_until, \
         created_at) {selects}"
    );
    let mut q = sqlx::query(&sql);
    for e in events {
        q = q.bind(new_id("dlv")).bind(&e.id).bind(e.created_at).bind(&e.merchant_id);
    }
    q.execute(&mut **tx).await.map_err(other)?;
    Ok(())
}

fn event_row(r: &AnyRow) -> StoreResult<buyline_core::order::Event> {
    let payload: String = r.try_get("payload").map_err(other)?;
    Ok(buyline_core::order::Event {
        id: r.try_get("id").map_err(other)?,
        kind: r.try_get("type").map_err(other)?,
        payload: serde_json::from_str(&payload).map_err(json_err)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

fn refund_row(r: &AnyRow) -> StoreResult<RefundRecord> {
    let cancel: i64 = r.try_get("cancel").map_err(other)?;
    Ok(RefundRecord {
        id: r.try_get("id").map_err(other)?,
        order_id: r.try_get("order_id").map_err(other)?,
        amount: r.try_get("amount").map_err(other)?,
        fee_back: r.try_get("fee_back").map_err(other)?,
        reason: r.try_get("reason").map_err(other)?,
        cancel: cancel != 0,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

async fn post_ledger(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    order_id: &str,
    currency: &str,
    postings: &[Posting],
    now: i64,
) -> StoreResult<()> {
    let txn = new_id("txn");
    for p in postings {
        sqlx::query(
            "insert into ledger_entries (id, txn_id, account, currency, amount, order_id, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("le"))
        .bind(&txn)
        .bind(&p.account)
        .bind(currency)
        .bind(p.amount)
        .bind(order_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(other)?;
    }
    Ok(())
}

impl Db {
    /// Runs `sql` whose placeholders `$1…$n` take `ids` in order.
    async fn fetch_in(&self, sql: &str, ids: &[&String]) -> StoreResult<Vec<AnyRow>> {
        let mut q = sqlx::query(sql);
        for id in ids {
            q = q.bind(id.as_str());
        }
        q.fetch_all(&self.pool).await.map_err(other)
    }

    /// A newest-first page of posts matching `cond`, whose only parameter (if any) is `$1`,
    /// bound to `value`.
    async fn posts_where(
        &self,
        cond: &str,
        value: Option<&str>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Post>> {
        let n = value.is_some() as usize;
        let page = match before {
            Some(_) => format!(
                "and (p.created_at < ${a} or (p.created_at = ${a} and p.id < ${b})) order by p.created_at desc, p.id desc limit ${c}",
                a = n + 1,
                b = n + 2,
                c = n + 3
            ),
            None => format!("order by p.created_at desc, p.id desc limit ${}", n + 1),
        };
        let sql = format!("{POST_SELECT} where {cond} {page}");
        let mut q = sqlx::query(&sql);
        if let Some(v) = value {
            q = q.bind(v);
        }
        if let Some((ts, id)) = before {
            q = q.bind(ts).bind(id);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(post_row).collect()
    }
}

#[async_trait]
impl Store for Db {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select count(*) from flags").fetch_one(&self.pool).await.map_err(other)?;
        Ok(())
    }

    async fn insert_account(&self, a: &Account, password_hash: Option<&str>) -> StoreResult<()> {
        account_insert(a, password_hash).execute(self.writer()).await.map_err(other)?;
        Ok(())
    }

    async fn find_account(&self, id: &str) -> StoreResult<Option<Account>> {
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn find_account_by_handle(&self, handle: &str) -> StoreResult<Option<Account>> {
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where handle_key = $1");
        let row = sqlx::query(&sql).bind(handle.to_lowercase()).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn find_credentials(&self, login: &str) -> StoreResult<Option<Credentials>> {
        let sql = format!(
            "select {ACCOUNT_COLUMNS}, password_hash from accounts \
             where (handle_key = $1 or email_key = $1) and password_hash is not null"
        );
        let row = sqlx::query(&sql).bind(login.to_lowercase()).fetch_optional(&self.pool).await.map_err(other)?;
        match row {
            Some(r) => Ok(Some(Credentials {
                account: account_row(&r)?,
                password_hash: r.try_get("password_hash").map_err(other)?,
            })),
            None => Ok(None),
        }
    }

    async fn count_accounts(&self) -> StoreResult<i64> {
        let r = sqlx::query("select count(*) as n from accounts").fetch_one(&self.pool).await.map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn find_login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<(String, i64, i64)>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "select key, failures, window_start from login_failures where key in ({}) and window_start >= $1",
            placeholders(2, keys.len())
        );
        let mut q = sqlx::query(&sql).bind(since);
        for k in keys {
            q = q.bind(k);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("key").map_err(other)?,
                    r.try_get("failures").map_err(other)?,
                    r.try_get("window_start").map_err(other)?,
                ))
            })
            .collect()
    }

    async fn record_login_failure(&self, keys: &[String], now: i64, since: i64) -> StoreResult<()> {
        // Each statement commits on its own: a transaction holding one key's row while it
        // waits for another's could deadlock with a concurrent prune on PostgreSQL.
        for k in keys {
            sqlx::query(
                "insert into login_failures (key, window_start, failures) values ($1, $2, 1) \
                 on conflict (key) do update set \
                 failures = case when login_failures.window_start < $3 then 1 else login_failures.failures + 1 end, \
                 window_start = case when login_failures.window_start < $3 then $2 else login_failures.window_start end",
            )
            .bind(k)
            .bind(now)
            .bind(since)
            .execute(self.writer())
            .await
            .map_err(other)?;
        }
        // Bounded: only windows still running are kept.
        sqlx::query("delete from login_failures where window_start < $1")
            .bind(since)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn delete_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("delete from login_failures where key = $1")
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn insert_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query("insert into sessions (token_hash, account_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(account_id)
            .bind(buyline_core::types::now_micros())
            .bind(expires_at)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<Account>> {
        let sql = "select a.id, a.handle, a.display_name, a.email, a.country, a.kind, a.bio, a.created_at \
             from sessions s join accounts a on a.id = s.account_id where s.token_hash = $1 and s.expires_at > $2";
        let row = sqlx::query(sql).bind(token_hash).bind(now).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn insert_follow(&self, follower: &str, followee: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into follows (follower_id, followee_id, created_at) values ($1, $2, $3) \
             on conflict (follower_id, followee_id) do nothing",
        )
        .bind(follower)
        .bind(followee)
        .bind(at)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn delete_follow(&self, follower: &str, followee: &str) -> StoreResult<()> {
        sqlx::query("delete from follows where follower_id = $1 and followee_id = $2")
            .bind(follower)
            .bind(followee)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_profile(&self, handle: &str, viewer: Option<&str>) -> StoreResult<Option<Profile>> {
        let Some(account) = self.find_account_by_handle(handle).await? else { return Ok(None) };
        let r = sqlx::query(
            "select (select count(*) from follows where followee_id = $1) as followers, \
                    (select count(*) from follows where follower_id = $1) as following, \
                    (select count(*) from follows where follower_id = $2 and followee_id = $1) as viewer_follows, \
                    (select min(id) from merchants where account_id = $1) as merchant_id",
        )
        .bind(&account.id)
        .bind(viewer.unwrap_or(""))
        .fetch_one(&self.pool)
        .await
        .map_err(other)?;
        let viewer_follows: i64 = r.try_get("viewer_follows").map_err(other)?;
        Ok(Some(Profile {
            followers: r.try_get("followers").map_err(other)?,
            following: r.try_get("following").map_err(other)?,
            followed_by_viewer: viewer_follows > 0,
            merchant_id: r.try_get("merchant_id").map_err(other)?,
            account,
        }))
    }

    async fn insert_post(&self, p: &NewPost, cart_job: bool) -> StoreResult<()> {
        match &self.posts {
            Some(queue) => {
                let (done, answer) = tokio::sync::oneshot::channel();
                let write = PostWrite { post: p.clone(), cart_job, done };
                queue.send(write).await.map_err(|_| StoreError::Other("the post writer has stopped".into()))?;
                answer.await.map_err(|_| StoreError::Other("the post writer has stopped".into()))?
            }
            None => {
                let mut tx = self.begin().await?;
                write_posts(&mut tx, &[(p, cart_job)]).await?;
                tx.commit().await.map_err(other)
            }
        }
    }

    async fn delete_post(&self, id: &str, author_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let mine = sqlx::query("select 1 from posts where id = $1 and author_id = $2")
            .bind(id)
            .bind(author_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(other)?;
        if mine.is_none() {
            return Ok(false);
        }
        sqlx::query("update posts set reply_to = null where reply_to = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        sqlx::query("delete from posts where id = $1").bind(id).execute(&mut *tx).await.map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn find_post(&self, id: &str) -> StoreResult<Option<Post>> {
        let sql = format!("{POST_SELECT} where p.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(post_row).transpose()
    }

    async fn find_replies(&self, id: &str, limit: i64) -> StoreResult<Vec<Post>> {
        let sql = format!("{POST_SELECT} where p.reply_to = $1 order by p.created_at, p.id limit $2");
        let rows = sqlx::query(&sql).bind(id).bind(limit).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(post_row).collect()
    }

    async fn find_home_timeline(&self, viewer: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where(
            "(p.author_id = $1 or p.author_id in (select followee_id from follows where follower_id = $1))",
            Some(viewer),
            before,
            limit,
        )
        .await
    }

    async fn find_posts_by_author(&self, author: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where("p.author_id = $1", Some(author), before, limit).await
    }

    async fn find_recent_posts(&self, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        self.posts_where("p.reply_to is null", None, before, limit).await
    }

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
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(merchant_row).transpose()
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

    async fn replace_api_key(&self, merchant_id: &str, key_hash: &str) -> StoreResult<()> {
        let now = buyline_core::types::now_micros();
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
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut ids: Vec<&String> = ids.iter().collect();
        ids.sort();
        ids.dedup();
        let list = placeholders(1, ids.len());
        let sql_products = format!("select * from products where id in ({list})");
        let sql_variants = format!("select * from variants where product_id in ({list}) order by product_id, position");
        let sql_rates =
            format!("select * from shipping_rates where product_id in ({list}) order by product_id, position");
        let products = self.fetch_in(&sql_products, &ids).await?;
        let variants = self.fetch_in(&sql_variants, &ids).await?;
        let rates = self.fetch_in(&sql_rates, &ids).await?;
        let mut by_product: HashMap<String, (Vec<Variant>, Vec<ShippingRate>)> = HashMap::new();
        for r in &variants {
            let pid: String = r.try_get("product_id").map_err(other)?;
            by_product.entry(pid).or_default().0.push(variant_row(r)?);
        }
        for r in &rates {
            let pid: String = r.try_get("product_id").map_err(other)?;
            let countries: String = r.try_get("countries").map_err(other)?;
            by_product.entry(pid).or_default().1.push(ShippingRate {
                id: r.try_get("id").map_err(other)?,
                name: r.try_get("name").map_err(other)?,
                price: r.try_get("price").map_err(other)?,
                countries: serde_json::from_str(&countries).map_err(json_err)?,
            });
        }
        products
            .iter()
            .map(|r| {
                let id: String = r.try_get("id").map_err(other)?;
                let (variants, shipping_rates) = by_product.remove(&id).unwrap_or_default();
                let kind: String = r.try_get("kind").map_err(other)?;
                let currency: String = r.try_get("currency").map_err(other)?;
                let options: String = r.try_get("options").map_err(other)?;
                let dmin: Option<i64> = r.try_get("donation_min").map_err(other)?;
                let dmax: Option<i64> = r.try_get("donation_max").map_err(other)?;
                Ok(Product {
                    id,
                    merchant_id: r.try_get("merchant_id").map_err(other)?,
                    name: r.try_get("name").map_err(other)?,
                    description: r.try_get("description").map_err(other)?,
                    kind: ProductKind::parse("kind", &kind).map_err(|e| StoreError::Other(e.message))?,
                    url: String::new(),
                    image_url: r.try_get("image_url").map_err(other)?,
                    currency: Currency::parse(&currency)
                        .ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
                    options: serde_json::from_str::<Vec<ProductOption>>(&options).map_err(json_err)?,
                    variants,
                    shipping_rates,
                    return_policy: r.try_get("return_policy").map_err(other)?,
                    donation: dmin.zip(dmax).map(|(min, max)| DonationRange { min, max }),
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }

    async fn find_products_by_merchant(&self, merchant_id: &str) -> StoreResult<Vec<Product>> {
        let rows = sqlx::query("select id from products where merchant_id = $1 order by created_at desc, id")
            .bind(merchant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        let ids: Vec<String> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>().map_err(other)?;
        let mut products = self.find_products(&ids).await?;
        products.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(products)
    }

    async fn update_product(&self, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update products set name = $1, description = $2, image_url = $3, return_policy = $4 where id = $5",
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
        sqlx::query(
            "update variants set sku = $1, price = $2, inventory_type = $3, quantity = $4 where id = $5 and product_id = $6",
        )
        .bind(&v.sku)
        .bind(v.price)
        .bind(kind)
        .bind(qty)
        .bind(&v.id)
        .bind(product_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
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

    async fn upsert_flag(&self, name: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "insert into flags (name, value, updated_at) values ($1, $2, $3) \
             on conflict (name) do update set value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(buyline_core::types::now_micros())
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn insert_flag_once(&self, name: &str, value: &str) -> StoreResult<String> {
        sqlx::query("insert into flags (name, value, updated_at) values ($1, $2, $3) on conflict (name) do nothing")
            .bind(name)
            .bind(value)
            .bind(buyline_core::types::now_micros())
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

    async fn insert_checkout(&self, c: &CheckoutRecord) -> StoreResult<()> {
        checkout_insert(c)?.execute(self.writer()).await.map_err(other)?;
        Ok(())
    }

    async fn find_checkout(&self, id: &str) -> StoreResult<Option<CheckoutRecord>> {
        let row = sqlx::query("select * from checkouts where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(checkout_row).transpose()
    }

    async fn claim_checkout(&self, id: &str, shopper_id: &str, now: i64) -> StoreResult<Option<i64>> {
        let r = sqlx::query(
            "update checkouts set status = 'completing', attempt = attempt + 1, updated_at = $1 \
             where id = $2 and shopper_id = $3 and status = 'open' and expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .bind(shopper_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query("select attempt from checkouts where id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        Ok(Some(row.try_get("attempt").map_err(other)?))
    }

    async fn set_checkout_status(&self, id: &str, from: &str, to: &str) -> StoreResult<bool> {
        let r = sqlx::query("update checkouts set status = $1, updated_at = $2 where id = $3 and status = $4")
            .bind(to)
            .bind(buyline_core::types::now_micros())
            .bind(id)
            .bind(from)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn reserve_stock(
        &self,
        checkout_id: &str,
        lines: &[(String, i64)],
        expires_at: i64,
    ) -> StoreResult<Result<(), String>> {
        let mut tx = self.begin().await?;
        for (variant_id, qty) in lines {
            // The conditional decrement is the whole guard against overselling: it cannot take
            // stock that is not there, whatever runs beside it.
            // Infinite stock has a null quantity, which the decrement leaves null.
            let r = sqlx::query(
                "update variants set quantity = quantity - $1 \
                 where id = $2 and (inventory_type = 'infinite' or quantity >= $1)",
            )
            .bind(*qty)
            .bind(variant_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
            if r.rows_affected() != 1 {
                tx.rollback().await.map_err(other)?;
                return Ok(Err(variant_id.clone()));
            }
            sqlx::query(
                "insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
                 values ($1, (select attempt from checkouts where id = $1), $2, $3, 'held', $4)",
            )
            .bind(checkout_id)
            .bind(variant_id)
            .bind(*qty)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        }
        tx.commit().await.map_err(other)?;
        Ok(Ok(()))
    }

    async fn release_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let held = sqlx::query(
            "select attempt, variant_id, quantity from reservations where checkout_id = $1 and state = 'held'",
        )
        .bind(checkout_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(other)?;
        for r in &held {
            let attempt: i64 = r.try_get("attempt").map_err(other)?;
            let variant: String = r.try_get("variant_id").map_err(other)?;
            let qty: i64 = r.try_get("quantity").map_err(other)?;
            let moved = sqlx::query(
                "update reservations set state = 'released' where checkout_id = $1 and attempt = $2 and variant_id = $3 \
                 and state = 'held'",
            )
            .bind(checkout_id)
            .bind(attempt)
            .bind(&variant)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
            if moved.rows_affected() == 1 {
                sqlx::query("update variants set quantity = quantity + $1 where id = $2 and inventory_type = 'finite'")
                    .bind(qty)
                    .bind(&variant)
                    .execute(&mut *tx)
                    .await
                    .map_err(other)?;
            }
        }
        tx.commit().await.map_err(other)
    }

    async fn commit_order(
        &self,
        o: &Order,
        from_cart: bool,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
    ) -> StoreResult<()> {
        let now = buyline_core::types::now_micros();
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into orders (id, checkout_id, shopper_id, merchant_id, status, currency, subtotal, shipping_amount, tax, \
             total, platform_fee, fee_bps, lines, shipping_address, shipping, fulfillment, payment_id, card_brand, card_last4, \
             challenge_url, post_id, contact_email, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23)",
        )
        .bind(&o.id)
        .bind(&o.checkout_id)
        .bind(&o.shopper_id)
        .bind(&o.merchant_id)
        .bind(o.status.as_str())
        .bind(o.totals.currency.code())
        .bind(o.totals.subtotal)
        .bind(o.totals.shipping)
        .bind(o.totals.tax)
        .bind(o.totals.total)
        .bind(o.platform_fee)
        .bind(o.fee_bps as i64)
        .bind(serde_json::to_string(&o.lines).map_err(json_err)?)
        .bind(o.shipping_address.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?)
        .bind(o.shipping.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?)
        .bind(serde_json::to_string(&o.fulfillment).map_err(json_err)?)
        .bind(&o.payment_id)
        .bind(&o.payment.brand)
        .bind(&o.payment.last4)
        .bind(&o.challenge_url)
        .bind(&o.post_id)
        .bind(&o.contact_email)
        .bind(o.created_at)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if o.status == OrderStatus::RequiresAction {
            // Stock stays held while the shopper passes the card check, a little longer than
            // the reconciler waits before it cancels an unfinished check.
            sqlx::query("update reservations set expires_at = $1 where checkout_id = $2 and state = 'held'")
                .bind(now + CHALLENGE_HOLD_MICROS)
                .bind(&o.checkout_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        } else {
            sqlx::query("update reservations set state = 'consumed' where checkout_id = $1 and state = 'held'")
                .bind(&o.checkout_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        let done = sqlx::query(
            "update checkouts set status = 'completed', order_id = $1, updated_at = $2 where id = $3 and status = 'completing'",
        )
        .bind(&o.id)
        .bind(now)
        .bind(&o.checkout_id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if done.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Err(StoreError::Other(format!("checkout {} was not completing", o.checkout_id)));
        }
        if from_cart {
            // Bought from the cart: those items leave it with the order.
            sqlx::query("delete from cart_items where checkout_id = $1")
                .bind(&o.checkout_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        if let Some(r) = receipt {
            insert_receipt(&mut tx, r, now).await?;
        }
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        tx.commit().await.map_err(other)
    }

    async fn consume_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        sqlx::query("update reservations set state = 'consumed' where checkout_id = $1 and state = 'held'")
            .bind(checkout_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_product_ids_by_variants(&self, variant_ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        if variant_ids.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<&String> = variant_ids.iter().collect();
        let sql = format!("select id, product_id from variants where id in ({})", placeholders(1, ids.len()));
        let rows = self.fetch_in(&sql, &ids).await?;
        rows.iter().map(|r| Ok((r.try_get("id").map_err(other)?, r.try_get("product_id").map_err(other)?))).collect()
    }

    async fn find_order(&self, id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_order_by_checkout(&self, checkout_id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where checkout_id = $1");
        let row = sqlx::query(&sql).bind(checkout_id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_order_by_payment(&self, payment_id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where payment_id = $1");
        let row = sqlx::query(&sql).bind(payment_id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_orders_by_shopper(
        &self,
        shopper_id: &str,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let rows = match before {
            Some((ts, id)) => {
                let sql = format!(
                    "{ORDER_SELECT} where shopper_id = $1 and (created_at < $2 or (created_at = $2 and id < $3)) \
                     order by created_at desc, id desc limit $4"
                );
                sqlx::query(&sql).bind(shopper_id).bind(ts).bind(id).bind(limit).fetch_all(&self.pool).await
            }
            None => {
                let sql = format!("{ORDER_SELECT} where shopper_id = $1 order by created_at desc, id desc limit $2");
                sqlx::query(&sql).bind(shopper_id).bind(limit).fetch_all(&self.pool).await
            }
        }
        .map_err(other)?;
        rows.iter().map(order_row).collect()
    }

    async fn update_order_status(
        &self,
        id: &str,
        from: &str,
        to: &str,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
    ) -> StoreResult<bool> {
        let now = buyline_core::types::now_micros();
        let mut tx = self.begin().await?;
        let r = sqlx::query("update orders set status = $1, updated_at = $2 where id = $3 and status = $4")
            .bind(to)
            .bind(now)
            .bind(id)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        if let Some(rc) = receipt {
            insert_receipt(&mut tx, rc, now).await?;
        }
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn mark_captured(&self, order_id: &str, currency: &str, postings: &[Posting], now: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let r =
            sqlx::query("update orders set captured_at = $1, updated_at = $1 where id = $2 and captured_at is null")
                .bind(now)
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        post_ledger(&mut tx, order_id, currency, postings, now).await?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn find_expired_reservations(&self, now: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "select distinct checkout_id from reservations where state = 'held' and expires_at < $1 limit 500",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| r.try_get("checkout_id").map_err(other)).collect()
    }

    async fn find_uncaptured_orders(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "select id from orders where status = 'paid' and captured_at is null and updated_at < $1 order by created_at limit 500",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }

    async fn find_stale_requires_action(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("select id from orders where status = 'requires_action' and created_at < $1 limit 500")
            .bind(before)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }

    async fn find_stuck_checkouts(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("select id from checkouts where status = 'completing' and updated_at < $1 limit 500")
            .bind(before)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }

    async fn trial_balance(&self) -> StoreResult<Vec<TrialBalanceLine>> {
        let rows = sqlx::query(
            "select account, currency, cast(sum(amount) as bigint) as balance from ledger_entries group by account, currency order by account, currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(TrialBalanceLine {
                    account: r.try_get("account").map_err(other)?,
                    currency: r.try_get("currency").map_err(other)?,
                    balance: r.try_get("balance").map_err(other)?,
                })
            })
            .collect()
    }

    async fn find_notifications(&self, account_id: &str, limit: i64) -> StoreResult<Vec<Notification>> {
        let rows = sqlx::query(
            "select id, text, link, created_at from notifications where account_id = $1 order by created_at desc, id desc limit $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(Notification {
                    id: r.try_get("id").map_err(other)?,
                    text: r.try_get("text").map_err(other)?,
                    link: r.try_get("link").map_err(other)?,
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }

    async fn find_pending_emails(&self, limit: i64) -> StoreResult<Vec<OutgoingEmail>> {
        let rows = sqlx::query(
            "select id, to_address, subject, body from emails where sent_at is null order by created_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(OutgoingEmail {
                    id: r.try_get("id").map_err(other)?,
                    to: r.try_get("to_address").map_err(other)?,
                    subject: r.try_get("subject").map_err(other)?,
                    body: r.try_get("body").map_err(other)?,
                })
            })
            .collect()
    }

    async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("update emails set sent_at = $1 where id = $2 and sent_at is null")
            .bind(now)
            .bind(id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn begin_idempotent(
        &self,
        scope: &str,
        account_id: Option<&str>,
        key: &str,
        request_hash: &str,
        now: i64,
        abandoned_after: i64,
        expired_before: i64,
    ) -> StoreResult<buyline_core::service::Idempotency> {
        use buyline_core::service::Idempotency;
        let inserted = sqlx::query(
            "insert into idempotency_keys (scope, key, account_id, request_hash, created_at) values ($1, $2, $3, $4, $5) \
             on conflict (scope, key) do nothing",
        )
        .bind(scope)
        .bind(key)
        .bind(account_id)
        .bind(request_hash)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        if inserted.rows_affected() == 1 {
            return Ok(Idempotency::New);
        }
        let r = sqlx::query("select * from idempotency_keys where scope = $1 and key = $2")
            .bind(scope)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        let created: i64 = r.try_get("created_at").map_err(other)?;
        if created < expired_before {
            // Past its replay window: the key is new again, for whatever request this is.
            let took = sqlx::query(
                "update idempotency_keys set request_hash = $1, account_id = $2, status = null, content_type = null, \
                 response = null, created_at = $3 where scope = $4 and key = $5 and created_at = $6",
            )
            .bind(request_hash)
            .bind(account_id)
            .bind(now)
            .bind(scope)
            .bind(key)
            .bind(created)
            .execute(self.writer())
            .await
            .map_err(other)?;
            return Ok(if took.rows_affected() == 1 { Idempotency::New } else { Idempotency::InProgress });
        }
        let hash: String = r.try_get("request_hash").map_err(other)?;
        if hash != request_hash {
            return Ok(Idempotency::Mismatch);
        }
        let status: Option<i64> = r.try_get("status").map_err(other)?;
        match status {
            Some(status) => Ok(Idempotency::Replay {
                status: status as u16,
                content_type: r.try_get::<Option<String>, _>("content_type").map_err(other)?.unwrap_or_default(),
                body: r.try_get::<Option<String>, _>("response").map_err(other)?.unwrap_or_default(),
            }),
            None => {
                if created < now - abandoned_after {
                    let took = sqlx::query(
                        "update idempotency_keys set created_at = $1 where scope = $2 and key = $3 and created_at = $4 \
                         and status is null",
                    )
                    .bind(now)
                    .bind(scope)
                    .bind(key)
                    .bind(created)
                    .execute(self.writer())
                    .await
                    .map_err(other)?;
                    if took.rows_affected() == 1 {
                        return Ok(Idempotency::New);
                    }
                }
                Ok(Idempotency::InProgress)
            }
        }
    }

    async fn delete_idempotency_before(&self, before: i64) -> StoreResult<u64> {
        let r = sqlx::query("delete from idempotency_keys where created_at < $1")
            .bind(before)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected())
    }

    async fn finish_idempotent(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
        account_id: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "update idempotency_keys set status = $1, content_type = $2, response = $3, \
             account_id = coalesce($6, account_id) where scope = $4 and key = $5",
        )
        .bind(status as i64)
        .bind(content_type)
        .bind(body)
        .bind(scope)
        .bind(key)
        .bind(account_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn abandon_idempotent(&self, scope: &str, key: &str) -> StoreResult<()> {
        sqlx::query("delete from idempotency_keys where scope = $1 and key = $2 and status is null")
            .bind(scope)
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn insert_vault_record(&self, r: &buyline_core::saved::VaultRecord) -> StoreResult<()> {
        vault_record_insert(r)?.execute(self.writer()).await.map_err(other)?;
        Ok(())
    }

    async fn find_vault_record(&self, id: &str) -> StoreResult<Option<buyline_core::saved::VaultRecord>> {
        let row = sqlx::query("select * from vault_records where id = $1 and deleted_at is null")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(vault_row).transpose()
    }

    async fn find_vault_records(
        &self,
        owner_id: &str,
        kind: &str,
    ) -> StoreResult<Vec<buyline_core::saved::VaultRecord>> {
        let rows = sqlx::query(
            "select * from vault_records where owner_id = $1 and kind = $2 and deleted_at is null order by created_at desc, id",
        )
        .bind(owner_id)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(vault_row).collect()
    }

    async fn shred_vault_record(&self, id: &str, owner_id: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "update vault_records set wrapped_key = null, ciphertext = null, kek_id = null, summary = '{}', deleted_at = $1 \
             where id = $2 and owner_id = $3 and deleted_at is null",
        )
        .bind(now)
        .bind(id)
        .bind(owner_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn find_vault_records_not_under(
        &self,
        kek_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<buyline_core::saved::VaultRecord>> {
        let rows = sqlx::query(
            "select * from vault_records where deleted_at is null and kek_id is not null and kek_id <> $1 limit $2",
        )
        .bind(kek_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(vault_row).collect()
    }

    async fn update_vault_wrap(
        &self,
        id: &str,
        old_kek: &str,
        sealed: &buyline_core::vault::Sealed,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "update vault_records set kek_id = $1, wrapped_key = $2 where id = $3 and kek_id = $4 and deleted_at is null",
        )
        .bind(&sealed.kek_id)
        .bind(b64(&sealed.wrapped_key))
        .bind(id)
        .bind(old_kek)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_vault_records_by_kek(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "select kek_id, count(*) as n from vault_records where deleted_at is null and kek_id is not null group by kek_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| Ok((r.try_get("kek_id").map_err(other)?, r.try_get("n").map_err(other)?))).collect()
    }

    async fn insert_vault_audit(
        &self,
        record_id: &str,
        owner_id: &str,
        kind: &str,
        purpose: &str,
        actor: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into vault_audit (id, record_id, owner_id, kind, purpose, actor, created_at) values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("aud"))
        .bind(record_id)
        .bind(owner_id)
        .bind(kind)
        .bind(purpose)
        .bind(actor)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn find_vault_audit(&self, owner_id: &str) -> StoreResult<Vec<buyline_core::saved::AuditEntry>> {
        let rows = sqlx::query("select * from vault_audit where owner_id = $1 order by created_at, id")
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(buyline_core::saved::AuditEntry {
                    record_id: r.try_get("record_id").map_err(other)?,
                    kind: r.try_get("kind").map_err(other)?,
                    purpose: r.try_get("purpose").map_err(other)?,
                    actor: r.try_get("actor").map_err(other)?,
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }

    async fn find_posts(&self, ids: &[String]) -> StoreResult<Vec<Post>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!("{POST_SELECT} where p.id in ({})", placeholders(1, refs.len()));
        self.fetch_in(&sql, &refs).await?.iter().map(post_row).collect()
    }

    async fn find_accounts(&self, ids: &[String]) -> StoreResult<Vec<Account>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where id in ({})", placeholders(1, refs.len()));
        self.fetch_in(&sql, &refs).await?.iter().map(account_row).collect()
    }

    async fn find_cart_items(&self, account_ids: &[String]) -> StoreResult<Vec<CartItemRecord>> {
        if account_ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = account_ids.iter().collect();
        let sql = format!(
            "select * from cart_items where account_id in ({}) order by created_at, id",
            placeholders(1, refs.len())
        );
        self.fetch_in(&sql, &refs).await?.iter().map(cart_item_row).collect()
    }

    async fn find_cart_tags(&self, keys: &[String]) -> StoreResult<Vec<CartTag>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = keys.iter().collect();
        let sql = format!(
            "select tag_key, merchant_id, country, tag from cart_hashtags where tag_key in ({})",
            placeholders(1, refs.len())
        );
        let rows = self.fetch_in(&sql, &refs).await?;
        rows.iter()
            .map(|r| {
                Ok(CartTag {
                    key: r.try_get("tag_key").map_err(other)?,
                    merchant_id: r.try_get("merchant_id").map_err(other)?,
                    country: r.try_get("country").map_err(other)?,
                    tag: r.try_get("tag").map_err(other)?,
                })
            })
            .collect()
    }

    async fn insert_merchant_link(&self, account_id: &str, merchant_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into merchant_links (account_id, merchant_id, created_at) values ($1, $2, $3) \
             on conflict (account_id, merchant_id) do nothing",
        )
        .bind(account_id)
        .bind(merchant_id)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn delete_merchant_link(&self, account_id: &str, merchant_id: &str) -> StoreResult<bool> {
        let r = sqlx::query("delete from merchant_links where account_id = $1 and merchant_id = $2")
            .bind(account_id)
            .bind(merchant_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() > 0)
    }

    async fn find_merchant_links(&self, account_ids: &[String]) -> StoreResult<Vec<(String, String, i64)>> {
        if account_ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = account_ids.iter().collect();
        let sql = format!(
            "select account_id, merchant_id, created_at from merchant_links where account_id in ({}) \
             order by created_at, merchant_id",
            placeholders(1, refs.len())
        );
        self.fetch_in(&sql, &refs)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("account_id").map_err(other)?,
                    r.try_get("merchant_id").map_err(other)?,
                    r.try_get("created_at").map_err(other)?,
                ))
            })
            .collect()
    }

    async fn find_recent_cart_jobs(&self, account_id: &str, since: i64, limit: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(
            "select created_at from cart_jobs where account_id = $1 and created_at > $2 \
             order by created_at desc limit $3",
        )
        .bind(account_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| r.try_get("created_at").map_err(other)).collect()
    }

    async fn claim_cart_jobs(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<CartJob>> {
        // As with deliveries: `skip locked` shares the work between PostgreSQL processes.
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "update cart_jobs set lease_until = $1, attempts = attempts + 1 where post_id in ( \
               select post_id from cart_jobs where state = 'pending' and lease_until <= $2 \
               order by created_at limit $3 {lock}) \
             returning post_id, account_id, parent_id, attempts, created_at"
        );
        let rows =
            sqlx::query(&sql).bind(lease_until).bind(now).bind(limit).fetch_all(self.writer()).await.map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(CartJob {
                    post_id: r.try_get("post_id").map_err(other)?,
                    account_id: r.try_get("account_id").map_err(other)?,
                    parent_id: r.try_get("parent_id").map_err(other)?,
                    attempts: r.try_get("attempts").map_err(other)?,
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }

    async fn finish_cart_jobs(&self, results: &[CartResult], now: i64) -> StoreResult<usize> {
        if results.is_empty() {
            return Ok(0);
        }
        // One transaction and a handful of statements for the whole batch: one durable commit
        // answers many replies, and the single SQLite writer is held briefly.
        let mut tx = self.begin().await?;
        // Mark the jobs done, each with its outcome; only those still pending are ours.
        let n = results.len();
        let whens = |col: usize| -> String {
            (0..n).map(|k| format!("when ${} then ${}", 2 + 3 * k, 2 + 3 * k + col)).collect::<Vec<_>>().join(" ")
        };
        let sql = format!(
            "update cart_jobs set state = 'done', processed_at = $1, \
             outcome = case post_id {} end, reply_post_id = case post_id {} end \
             where state = 'pending' and post_id in ({}) returning post_id",
            whens(1),
            whens(2),
            (0..n).map(|k| format!("${}", 2 + 3 * k)).collect::<Vec<_>>().join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now);
        for r in results {
            q = q.bind(&r.job_post_id).bind(r.outcome.as_str()).bind(r.reply.as_ref().map(|p| p.id.clone()));
        }
        let owned: std::collections::HashSet<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(other)?
            .iter()
            .map(|r| r.try_get("post_id"))
            .collect::<Result<_, _>>()
            .map_err(other)?;
        let mine: Vec<&CartResult> = results.iter().filter(|r| owned.contains(&r.job_post_id)).collect();

        // Cart items; `returning` names those inserted (another process may have added one
        // a moment ago: that one gets no second event).
        let items: Vec<&CartItemRecord> = mine.iter().filter_map(|r| r.item.as_ref()).collect();
        let mut inserted = std::collections::HashSet::new();
        if !items.is_empty() {
            let sql = format!(
                "insert into cart_items (id, account_id, merchant_id, product_id, variant_id, quantity, source_post_id, \
                 created_at) values {} on conflict (account_id, variant_id) do nothing returning id",
                rows_of(items.len(), 8, 1)
            );
            let mut q = sqlx::query(&sql);
            for i in &items {
                q = q
                    .bind(&i.id)
                    .bind(&i.account_id)
                    .bind(&i.merchant_id)
                    .bind(&i.product_id)
                    .bind(&i.variant_id)
                    .bind(i.quantity)
                    .bind(&i.source_post_id)
                    .bind(i.created_at);
            }
            for r in q.fetch_all(&mut *tx).await.map_err(other)? {
                inserted.insert(r.try_get::<String, _>("id").map_err(other)?);
            }
        }

        let replies: Vec<(&NewPost, bool)> = mine.iter().filter_map(|r| r.reply.as_ref()).map(|p| (p, false)).collect();
        if !replies.is_empty() {
            write_posts(&mut tx, &replies).await?;
        }

        let notes: Vec<&Receipt> = mine.iter().filter_map(|r| r.notification.as_ref()).collect();
        insert_receipts(&mut tx, &notes, now).await?;
        let events: Vec<&NewEvent> = mine
            .iter()
            .filter(|r| r.item.as_ref().is_some_and(|i| inserted.contains(&i.id)))
            .filter_map(|r| r.event.as_ref())
            .collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await.map_err(other)?;
        Ok(mine.len())
    }

    async fn delete_cart_item(&self, account_id: &str, merchant_id: &str, item_id: &str) -> StoreResult<bool> {
        let r = sqlx::query("delete from cart_items where id = $1 and account_id = $2 and merchant_id = $3")
            .bind(item_id)
            .bind(account_id)
            .bind(merchant_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_cart_checkout(&self, c: &CheckoutRecord, item_ids: &[String]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        checkout_insert(c)?.execute(&mut *tx).await.map_err(other)?;
        for id in item_ids {
            sqlx::query("update cart_items set checkout_id = $1 where id = $2 and account_id = $3")
                .bind(&c.id)
                .bind(id)
                .bind(&c.shopper_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        tx.commit().await.map_err(other)
    }

    async fn find_follow_handles(&self, account_id: &str) -> StoreResult<(Vec<String>, Vec<String>)> {
        let following = sqlx::query(
            "select a.handle from follows f join accounts a on a.id = f.followee_id where f.follower_id = $1 order by a.handle",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let followers = sqlx::query(
            "select a.handle from follows f join accounts a on a.id = f.follower_id where f.followee_id = $1 order by a.handle",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let h = |rows: Vec<AnyRow>| {
            rows.iter().map(|r| r.try_get("handle").map_err(other)).collect::<StoreResult<Vec<String>>>()
        };
        Ok((h(following)?, h(followers)?))
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: i64,
        erase_payload: for<'p> fn(&'p str) -> Option<String>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        // Events about the shopper's orders and cart keep their place in the merchant's
        // history; their stored bodies, which the events API and every later delivery
        // (a retry, a replay) send, lose the personal data.
        let rows = sqlx::query("select id, payload from events where account_id = $1")
            .bind(account_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(other)?;
        for r in &rows {
            let payload: String = r.try_get("payload").map_err(other)?;
            if let Some(erased) = erase_payload(&payload) {
                let id: String = r.try_get("id").map_err(other)?;
                sqlx::query("update events set payload = $1 where id = $2")
                    .bind(erased)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(other)?;
            }
        }
        let emails: Vec<String> = sqlx::query("select id from emails where account_id = $1")
            .bind(account_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(other)?
            .iter()
            .map(|r| r.try_get("id").map_err(other))
            .collect::<StoreResult<_>>()?;
        let steps: &[&str] = &[
            "update vault_records set wrapped_key = null, ciphertext = null, kek_id = null, summary = '{}', deleted_at = $2 \
             where owner_id = $1 and deleted_at is null",
            "delete from sessions where account_id = $1 and $2 = $2",
            "delete from follows where (follower_id = $1 or followee_id = $1) and $2 = $2",
            "delete from notifications where account_id = $1 and $2 = $2",
            // Receipts, sent or not: they carry her address and what she bought.
            "delete from emails where account_id = $1 and $2 = $2",
            "update events set account_id = null where account_id = $1 and $2 = $2",
            "delete from cart_items where account_id = $1 and $2 = $2",
            "delete from merchant_links where account_id = $1 and $2 = $2",
            // The merchants' automatic answers to her cart hashtags name her (`@handle …`)
            // and answer posts that are going: they go too.
            "update posts set reply_to = null where reply_to in \
             (select reply_post_id from cart_jobs where account_id = $1 and reply_post_id is not null) and $2 = $2",
            "delete from posts where id in \
             (select reply_post_id from cart_jobs where account_id = $1 and reply_post_id is not null) and $2 = $2",
            "delete from cart_jobs where account_id = $1 and $2 = $2",
            // Her idempotency replays (her requests, and the sign-up that made her).
            "delete from idempotency_keys where account_id = $1 and $2 = $2",
            // Replies by others stay, no longer under a parent that is gone.
            "update posts set reply_to = null where reply_to in (select id from posts where author_id = $1) and $2 = $2",
            "delete from posts where author_id = $1 and $2 = $2",
            "update orders set shopper_id = null, shipping_address = null, contact_email = null, updated_at = $2 \
             where shopper_id = $1",
            "update accounts set handle = 'deleted', handle_key = 'deleted:' || id, display_name = 'Deleted account', \
             email = null, email_key = null, password_hash = null, bio = '', kind = 'deleted' where id = $1 and $2 = $2",
            // Her failed log-in count is keyed by her account id.
            "delete from login_failures where key = 'account:' || $1 and $2 = $2",
        ];
        for sql in steps {
            sqlx::query(sql).bind(account_id).bind(now).execute(&mut *tx).await.map_err(other)?;
        }
        tx.commit().await.map_err(other)?;
        Ok(emails)
    }

    async fn find_orders_by_merchant(
        &self,
        merchant_id: &str,
        status: Option<&str>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let (ts, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}"));
        let rows = sqlx::query(
            "select * from orders where merchant_id = $1 and ($2 = '' or status = $2) \
             and (created_at < $3 or (created_at = $3 and id < $4)) and status <> 'requires_action' \
             order by created_at desc, id desc limit $5",
        )
        .bind(merchant_id)
        .bind(status.unwrap_or(""))
        .bind(ts)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(order_row).collect()
    }

    async fn acknowledge_order(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "update orders set acknowledged_at = coalesce(acknowledged_at, $1), updated_at = $1 \
             where id = $2 and merchant_id = $3 and status <> 'requires_action'",
        )
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn fulfill_order(&self, id: &str, f: &Fulfillment, receipt: Option<&Receipt>) -> StoreResult<bool> {
        let now = buyline_core::types::now_micros();
        let mut tx = self.begin().await?;
        // A partly refunded order still ships the rest: it keeps its status (the refund
        // stays on record) and gains its tracking, once — `$4` is the unshipped fulfilment.
        let unshipped = Fulfillment { carrier: None, tracking_number: None };
        let r = sqlx::query(
            "update orders set status = case when status = 'paid' then 'fulfilled' else status end, \
             fulfillment = $1, updated_at = $2 \
             where id = $3 and (status = 'paid' or (status = 'partially_refunded' and fulfillment = $4))",
        )
        .bind(serde_json::to_string(f).map_err(json_err)?)
        .bind(now)
        .bind(id)
        .bind(serde_json::to_string(&unshipped).map_err(json_err)?)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        if let Some(rc) = receipt {
            insert_receipt(&mut tx, rc, now).await?;
        }
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn begin_refund(&self, r: &RefundRecord, allowed_from: &[&str]) -> StoreResult<bool> {
        let statuses = allowed_from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let mut tx = self.begin().await?;
        // The amount is taken from the order in the same statement that checks it, so two
        // refunds at once can never together exceed the total.
        let sql = format!(
            "update orders set refunded_amount = refunded_amount + $1, updated_at = $2 \
             where id = $3 and refunded_amount + $1 <= total and status in ({statuses})"
        );
        let moved = sqlx::query(&sql)
            .bind(r.amount)
            .bind(r.created_at)
            .bind(&r.order_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        sqlx::query(
            "insert into refunds (id, order_id, amount, fee_back, reason, cancel, status, created_at) \
             values ($1, $2, $3, $4, $5, $6, 'pending', $7)",
        )
        .bind(&r.id)
        .bind(&r.order_id)
        .bind(r.amount)
        .bind(r.fee_back)
        .bind(&r.reason)
        .bind(r.cancel as i64)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn complete_refund(
        &self,
        r: &RefundRecord,
        new_status: &str,
        currency: &str,
        postings: &[Posting],
        event: Option<&NewEvent>,
        receipt: Option<&Receipt>,
        restock: &[(String, i64)],
    ) -> StoreResult<bool> {
        let now = buyline_core::types::now_micros();
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update refunds set status = 'succeeded', completed_at = $1 where id = $2 and status = 'pending'",
        )
        .bind(now)
        .bind(&r.id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if done.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        sqlx::query("update orders set status = $1, updated_at = $2 where id = $3")
            .bind(new_status)
            .bind(now)
            .bind(&r.order_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        post_ledger(&mut tx, &r.order_id, currency, postings, now).await?;
        for (variant, qty) in restock {
            sqlx::query("update variants set quantity = quantity + $1 where id = $2 and inventory_type = 'finite'")
                .bind(*qty)
                .bind(variant)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        if let Some(rc) = receipt {
            insert_receipt(&mut tx, rc, now).await?;
        }
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn fail_refund(&self, r: &RefundRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("update refunds set status = 'failed', completed_at = $1 where id = $2 and status = 'pending'")
                .bind(buyline_core::types::now_micros())
                .bind(&r.id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        if done.rows_affected() == 1 {
            sqlx::query("update orders set refunded_amount = refunded_amount - $1 where id = $2")
                .bind(r.amount)
                .bind(&r.order_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        tx.commit().await.map_err(other)
    }

    async fn find_pending_refunds(&self, before: i64) -> StoreResult<Vec<RefundRecord>> {
        let rows = sqlx::query(
            "select * from refunds where status = 'pending' and created_at < $1 order by created_at limit 200",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(refund_row).collect()
    }

    async fn find_refund_total_fee_back(&self, order_id: &str) -> StoreResult<i64> {
        let r = sqlx::query(
            "select cast(coalesce(sum(fee_back), 0) as bigint) as n from refunds \
             where order_id = $1 and status in ('pending', 'succeeded')",
        )
        .bind(order_id)
        .fetch_one(&self.pool)
        .await
        .map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn find_event(&self, id: &str) -> StoreResult<Option<buyline_core::order::Event>> {
        let row = sqlx::query("select * from events where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(event_row).transpose()
    }

    async fn find_events_after(
        &self,
        merchant_id: &str,
        after: Before<'_>,
        visible_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<buyline_core::order::Event>> {
        let (ts, id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(
            "select * from events where merchant_id = $1 and (created_at > $2 or (created_at = $2 and id > $3)) \
             and created_at < $4 order by created_at, id limit $5",
        )
        .bind(merchant_id)
        .bind(ts)
        .bind(id)
        .bind(visible_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(event_row).collect()
    }

    async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<DeliveryJob>> {
        // On PostgreSQL several processes claim side by side: `skip locked` hands each row to
        // one of them. SQLite has one writer at a time, so the update alone is enough.
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "update webhook_deliveries set locked_until = $1, attempts = attempts + 1 where id in ( \
               select id from webhook_deliveries where status = 'pending' and next_attempt_at <= $2 and locked_until <= $2 \
               order by next_attempt_at limit $3 {lock}) returning id"
        );
        let claimed =
            sqlx::query(&sql).bind(lease_until).bind(now).bind(limit).fetch_all(self.writer()).await.map_err(other)?;
        let ids: Vec<String> = claimed.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>().map_err(other)?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!(
            "select d.id, d.event_id, d.merchant_id, d.attempts, e.payload, m.webhook_url, m.webhook_secret, \
                    m.webhook_secret_old, m.webhook_secret_old_until \
             from webhook_deliveries d join events e on e.id = d.event_id join merchants m on m.id = d.merchant_id \
             where d.id in ({})",
            placeholders(1, refs.len())
        );
        let rows = self.fetch_in(&sql, &refs).await?;
        rows.iter()
            .map(|r| {
                let old: Option<String> = r.try_get("webhook_secret_old").map_err(other)?;
                let until: Option<i64> = r.try_get("webhook_secret_old_until").map_err(other)?;
                Ok(DeliveryJob {
                    delivery_id: r.try_get("id").map_err(other)?,
                    event_id: r.try_get("event_id").map_err(other)?,
                    merchant_id: r.try_get("merchant_id").map_err(other)?,
                    url: r.try_get::<Option<String>, _>("webhook_url").map_err(other)?.unwrap_or_default(),
                    payload: r.try_get("payload").map_err(other)?,
                    secret: r.try_get("webhook_secret").map_err(other)?,
                    old_secret: old.filter(|_| until.is_some_and(|u| u > now)),
                    attempts: r.try_get("attempts").map_err(other)?,
                })
            })
            .collect()
    }

    async fn record_delivery_attempts(
        &self,
        attempts: &[(&DeliveryJob, DeliveryAttempt, DeliveryOutcome)],
    ) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        // One transaction for a worker's whole batch: one durable commit for many attempts.
        let mut tx = self.begin().await?;
        let sql = format!(
            "insert into webhook_attempts (id, delivery_id, merchant_id, url, attempted_at, status_code, latency_ms, \
             excerpt, error) values {}",
            rows_of(attempts.len(), 9, 1)
        );
        let mut q = sqlx::query(&sql);
        for (job, a, _) in attempts {
            q = q
                .bind(new_id("att"))
                .bind(&job.delivery_id)
                .bind(&job.merchant_id)
                .bind(&a.url)
                .bind(a.attempted_at)
                .bind(a.status_code)
                .bind(a.latency_ms)
                .bind(&a.excerpt)
                .bind(&a.error);
        }
        q.execute(&mut *tx).await.map_err(other)?;
        for (job, a, outcome) in attempts {
            let (status, next, delivered) = match outcome {
                DeliveryOutcome::Delivered => ("delivered", a.attempted_at, Some(a.attempted_at)),
                DeliveryOutcome::Retry { at } => ("pending", *at, None),
                DeliveryOutcome::Failed => ("failed", a.attempted_at, None),
                DeliveryOutcome::Disabled => ("disabled", a.attempted_at, None),
            };
            sqlx::query(
                "update webhook_deliveries set status = $1, next_attempt_at = $2, locked_until = 0, last_status = $3, \
                 last_error = $4, delivered_at = coalesce($5, delivered_at) where id = $6 and status = 'pending'",
            )
            .bind(status)
            .bind(next)
            .bind(a.status_code)
            .bind(&a.error)
            .bind(delivered)
            .bind(&job.delivery_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
            if matches!(outcome, DeliveryOutcome::Disabled) {
                sqlx::query("update merchants set webhook_disabled_at = $1 where id = $2")
                    .bind(a.attempted_at)
                    .bind(&job.merchant_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(other)?;
            }
        }
        tx.commit().await.map_err(other)
    }

    async fn find_deliveries(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Delivery>> {
        let (ts, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}"));
        let rows = sqlx::query(
            "select d.*, e.type as event_type from webhook_deliveries d join events e on e.id = d.event_id \
             where d.merchant_id = $1 and (d.created_at < $2 or (d.created_at = $2 and d.id < $3)) \
             order by d.created_at desc, d.id desc limit $4",
        )
        .bind(merchant_id)
        .bind(ts)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id").map_err(other)?;
            let attempts =
                sqlx::query("select * from webhook_attempts where delivery_id = $1 order by attempted_at, id")
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(other)?;
            let attempt_log = attempts
                .iter()
                .map(|a| {
                    Ok(DeliveryAttempt {
                        attempted_at: a.try_get("attempted_at").map_err(other)?,
                        url: a.try_get("url").map_err(other)?,
                        status_code: a.try_get("status_code").map_err(other)?,
                        latency_ms: a.try_get("latency_ms").map_err(other)?,
                        excerpt: a.try_get("excerpt").map_err(other)?,
                        error: a.try_get("error").map_err(other)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(Delivery {
                id,
                event_id: r.try_get("event_id").map_err(other)?,
                event_type: r.try_get("event_type").map_err(other)?,
                status: r.try_get("status").map_err(other)?,
                attempts: r.try_get("attempts").map_err(other)?,
                last_status: r.try_get("last_status").map_err(other)?,
                last_error: r.try_get("last_error").map_err(other)?,
                next_attempt_at: r.try_get("next_attempt_at").map_err(other)?,
                created_at: r.try_get("created_at").map_err(other)?,
                attempt_log,
            });
        }
        Ok(out)
    }

    async fn retry_delivery(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "update webhook_deliveries set status = 'pending', next_attempt_at = $1, locked_until = 0 \
             where id = $2 and merchant_id = $3",
        )
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_pending_deliveries(&self) -> StoreResult<i64> {
        let r = sqlx::query("select count(*) as n from webhook_deliveries where status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn rotate_webhook_secret(
        &self,
        merchant_id: &str,
        secret: &buyline_core::saved::VaultRecord,
        old_until: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        vault_record_insert(secret)?.execute(&mut *tx).await.map_err(other)?;
        sqlx::query(
            "update merchants set webhook_secret_old = webhook_secret, webhook_secret_old_until = $1, webhook_secret = $2 \
             where id = $3",
        )
        .bind(old_until)
        .bind(&secret.id)
        .bind(merchant_id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn find_plain_webhook_secrets(&self, limit: i64) -> StoreResult<Vec<(String, bool, String)>> {
        let rows = sqlx::query(
            "select id, webhook_secret, webhook_secret_old from merchants \
             where webhook_secret like 'whsec\\_%' escape '\\' or webhook_secret_old like 'whsec\\_%' escape '\\' limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id").map_err(other)?;
            let current: String = r.try_get("webhook_secret").map_err(other)?;
            let old: Option<String> = r.try_get("webhook_secret_old").map_err(other)?;
            if current.starts_with("whsec_") {
                out.push((id.clone(), false, current));
            }
            if let Some(old) = old.filter(|o| o.starts_with("whsec_")) {
                out.push((id, true, old));
            }
        }
        Ok(out)
    }

    async fn seal_plain_webhook_secret(
        &self,
        merchant_id: &str,
        old: bool,
        plain: &str,
        sealed: &buyline_core::saved::VaultRecord,
    ) -> StoreResult<bool> {
        let column = if old { "webhook_secret_old" } else { "webhook_secret" };
        let mut tx = self.begin().await?;
        let r = sqlx::query(&format!("update merchants set {column} = $1 where id = $2 and {column} = $3"))
            .bind(&sealed.id)
            .bind(merchant_id)
            .bind(plain)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        vault_record_insert(sealed)?.execute(&mut *tx).await.map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }
}
