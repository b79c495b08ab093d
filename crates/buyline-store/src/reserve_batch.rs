//! PostgreSQL: one-unit reservations of a variant that arrive together are written in one
//! statement (group commit for the reservation, as SQLite's writer thread does for every
//! job).
//!
//! A variant's row is locked from its decrement to its transaction's commit, and every
//! buyer of that variant waits in line for it: in a flash sale a thousand buyers of one
//! variant, each with its own statement, took the lock one after the other, and the sale
//! lasted as long as those holds in a row. Here a task per process keeps a line per
//! variant, with at most one statement of that variant running: the buyers who come while it
//! runs make the next group (up to [`MAX_BATCH`]), which locks the row once:
//! the first `n` buyers, in the order they came, get the `n` units left, the others are
//! told it is short; each buyer's checkout, reservation and vault audit rows are written by
//! the same statement. What a buyer is told is what the statement of one buyer would have
//! told it: reserved; short (stock not there); or changed (the catalogue it was priced from
//! is no longer current, `CatalogSeen`, the same for every buyer of a group).
//!
//! A purchase of more than one unit, or a group of one, is its own statement as before. A
//! group whose statement fails (a checkout id already taken: a retry racing its request)
//! is run again one buyer at a time, so that failure is that buyer's alone.

use crate::checkout::{checkout_insert, reserved_checkout_statement, seen_current, CHECKOUT_COLUMNS};
use crate::write::{bind_any, shift_placeholders, Arg};
use crate::{args, other, GroupWriter};
use buyline_core::error::StoreError;
use buyline_core::order::{CatalogSeen, CheckoutRecord, NotReserved, ReservationState};
use buyline_core::saved::VaultAudit;
use buyline_core::store::StoreResult;
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// At most this many buyers of one variant share one statement.
pub(crate) const MAX_BATCH: usize = 64;

/// One buyer's reservation: a checkout of one line.
pub(crate) struct Want {
    pub checkout: CheckoutRecord,
    pub variant: String,
    pub qty: i64,
    pub expires_at: i64,
    pub audits: Vec<VaultAudit>,
    pub seen: CatalogSeen,
}

pub(crate) type Answer = StoreResult<Result<(), NotReserved>>;

struct Request {
    want: Want,
    reply: oneshot::Sender<Answer>,
}

/// The batching task's door.
#[derive(Clone)]
pub(crate) struct Reservations {
    tx: mpsc::Sender<Request>,
}

impl Reservations {
    /// Starts the task; its statements run on the group writer's unsynced connections (a
    /// reservation is followed by the order's synced commit).
    pub(crate) fn start(writer: GroupWriter) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, rx));
        Reservations { tx }
    }

    pub(crate) async fn reserve(&self, want: Want) -> Answer {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Other("the reservation task has stopped".into());
        self.tx.send(Request { want, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The task: a variant has at most one statement running in this process; the requests
/// for it that come meanwhile wait and make its next group. Variants apart never wait for
/// one another (a group stuck on its row's lock holds up only its own variant's buyers).
async fn run(writer: GroupWriter, mut rx: mpsc::Receiver<Request>) {
    let mut waiting: HashMap<String, VecDeque<Request>> = HashMap::new();
    let mut running: JoinSet<()> = JoinSet::new();
    // The variant each running statement is for, by task.
    let mut busy: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut incoming = Vec::with_capacity(4 * MAX_BATCH);
    let mut open = true;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut incoming, 4 * MAX_BATCH), if open => {
                open = n > 0;
                for r in incoming.drain(..) {
                    waiting.entry(r.want.variant.clone()).or_default().push_back(r);
                }
            }
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                // A group that panicked has dropped its buyers' replies: they hear the task
                // has stopped. Its variant is free again either way.
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                busy.remove(&id);
            }
            else => break,
        }
        for (variant, queue) in waiting.iter_mut() {
            if queue.is_empty() || busy.values().any(|v| v == variant) {
                continue;
            }
            let group = next_group(queue);
            let handle = running.spawn(run_group(writer.clone(), group));
            busy.insert(handle.id(), variant.clone());
        }
        waiting.retain(|_, q| !q.is_empty());
    }
}

/// The next group of a variant's line: the first buyer, and those right behind it of one
/// unit priced from the same catalogue, up to [`MAX_BATCH`]. A purchase of several units
/// goes alone.
fn next_group(queue: &mut VecDeque<Request>) -> Vec<Request> {
    let first = queue.pop_front().expect("a waiting request");
    let mut group = vec![first];
    if group[0].want.qty != 1 {
        return group;
    }
    while group.len() < MAX_BATCH && queue.front().is_some_and(|r| r.want.qty == 1 && r.want.seen == group[0].want.seen)
    {
        group.extend(queue.pop_front());
    }
    group
}

async fn run_group(writer: GroupWriter, group: Vec<Request>) {
    let pool = writer.unsynced_pool();
    let mut answers = None;
    if group.len() > 1 {
        match reserve_group(pool, &group).await {
            Ok(a) => answers = Some(a.into_iter().map(Ok).collect::<Vec<Answer>>()),
            Err(e) => tracing::debug!(error = %e, "a group of reservations failed; each runs alone"),
        }
    }
    let (wants, replies): (Vec<Want>, Vec<oneshot::Sender<Answer>>) =
        group.into_iter().map(|r| (r.want, r.reply)).unzip();
    let mut answers = match answers {
        Some(a) => a,
        None => {
            // One statement each, side by side (the row's lock puts them in line).
            let mut alone = JoinSet::new();
            for (k, w) in wants.into_iter().enumerate() {
                let pool = pool.clone();
                alone.spawn(async move { (k, reserve_one(&pool, &w).await) });
            }
            let mut out: Vec<Option<Answer>> = (0..replies.len()).map(|_| None).collect();
            while let Some(Ok((k, a))) = alone.join_next().await {
                out[k] = Some(a);
            }
            out.into_iter()
                .map(|a| a.unwrap_or_else(|| Err(StoreError::Other("a reservation stopped".into()))))
                .collect()
        }
    };
    // A refusal ends its buyer's path with no synced write after it, and the statement wrote
    // her vault audit rows without waiting for the flush: one synced commit makes them
    // durable (the WAL is flushed up to it, every earlier commit included) before any
    // refused buyer of the group hears the answer.
    if answers.iter().any(|a| matches!(a, Ok(Err(_)))) {
        if let Err(e) = writer.durable().await {
            for a in answers.iter_mut().filter(|a| matches!(a, Ok(Err(_)))) {
                *a = Err(StoreError::Other(format!("making a refusal durable: {e}")));
            }
        }
    }
    for (reply, a) in replies.into_iter().zip(answers) {
        let _ = reply.send(a);
    }
}

/// One buyer's statement (`reserved_checkout_statement`).
pub(crate) async fn reserve_one(pool: &AnyPool, w: &Want) -> Answer {
    let step = reserved_checkout_statement(&w.checkout, &w.variant, w.qty, w.expires_at, &w.audits, &w.seen)?;
    let row = bind_any(sqlx::query(&step.sql), &step.args).fetch_one(pool).await.map_err(other)?;
    let reserved: i64 = row.try_get("reserved").map_err(other)?;
    Ok(answer(reserved == 1, row.try_get("current").map_err(other)?, &w.variant))
}

/// What a buyer hears: reserved; else short when the catalogue it was priced from is
/// current, changed when it is not.
fn answer(reserved: bool, current: bool, variant: &str) -> Result<(), NotReserved> {
    match (reserved, current) {
        (true, _) => Ok(()),
        (false, true) => Err(NotReserved::Short(variant.to_string())),
        (false, false) => Err(NotReserved::Changed),
    }
}

/// A group's statement: every buyer one unit of the same variant, priced from the same
/// catalogue. One answer per buyer, in order.
async fn reserve_group(pool: &AnyPool, group: &[Request]) -> StoreResult<Vec<Result<(), NotReserved>>> {
    let first = &group[0].want;
    let mut args: Vec<Arg> = args![&first.variant, ReservationState::Held.as_str(), first.expires_at];
    let current = seen_current(&first.seen, &mut args);
    let mut rows = Vec::with_capacity(group.len());
    for (k, r) in group.iter().enumerate() {
        let insert = checkout_insert(&r.want.checkout)?;
        let (_, values) = insert.sql.split_once(" values (").expect("an insert with values");
        let values = values.strip_suffix(')').expect("values in parentheses");
        args.push(Arg::from(k as i64 + 1));
        let n = args.len();
        rows.push(format!("(${n}, {})", shift_placeholders(values, n)));
        args.extend(insert.args);
    }
    let mut sql = format!(
        "with v (k, {CHECKOUT_COLUMNS}) as (values {}), \
         locked as (select quantity, inventory_type from variants where id = $1 and {current} for update), \
         granted as (select v.k from v, locked where locked.inventory_type = 'infinite' or v.k <= locked.quantity), \
         taken as (update variants set quantity = quantity - (select count(*) from granted) \
           where id = $1 and inventory_type = 'finite' and exists (select 1 from locked) returning 1), \
         chk as (insert into checkouts ({CHECKOUT_COLUMNS}) select {CHECKOUT_COLUMNS} from v \
           where k in (select k from granted) returning id, attempt), \
         res as (insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
           select chk.id, chk.attempt, $1, 1, $2, $3 from chk returning checkout_id)",
        rows.join(", ")
    );
    let audits: Vec<VaultAudit> = group.iter().flat_map(|r| r.want.audits.iter().cloned()).collect();
    if let Some(audit) = crate::vault::audit_step(&audits) {
        let (columns, values) = audit.sql.split_once(" values ").expect("an insert with values");
        sql.push_str(&format!(", aud as ({columns} values {})", shift_placeholders(values, args.len())));
        args.extend(audit.args);
    }
    sql.push_str(&format!(
        " select v.k, exists (select 1 from res where res.checkout_id = v.id) as reserved, {current} as current \
         from v order by v.k"
    ));
    let rows = bind_any(sqlx::query(&sql), &args).fetch_all(pool).await.map_err(other)?;
    if rows.len() != group.len() {
        return Err(StoreError::Other(format!("a group of {} reservations answered {} rows", group.len(), rows.len())));
    }
    rows.iter()
        .map(|row| {
            let reserved: bool = row.try_get("reserved").map_err(other)?;
            Ok(answer(reserved, row.try_get("current").map_err(other)?, &first.variant))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use buyline_core::order::CheckoutStatus;
    use buyline_core::types::Currency;

    /// A fresh, migrated database on the local PostgreSQL (`BUYLINE_TEST_DATABASE_URL`, or the
    /// one every machine of this project runs), with a shop whose variant `v_fin` has
    /// `stock` units and `v_inf` no limit.
    async fn shop(stock: i64) -> (crate::Db, AnyPool, String, String) {
        let (url, base, name) = crate::write::tests::fresh_postgres().await;
        let db = crate::Db::connect(&url, 4).await.unwrap();
        let pool = db.pool.clone();
        for sql in [
            "insert into accounts (id, handle, handle_key, display_name, country, kind, created_at) \
             values ('acc_m', 'm', 'm', 'M', 'US', 'merchant', 0), ('acc_s', 's', 's', 'S', 'US', 'shopper', 0)",
            "insert into merchants (id, account_id, owner_account_id, name, kind, country, currency, webhook_secret, \
             created_at) values ('mer_1', 'acc_m', 'acc_m', 'M', 'retailer', 'US', 'USD', 'x', 0)",
            "insert into products (id, merchant_id, name, description, kind, image_url, currency, options, \
             return_policy, created_at) values ('prd_1', 'mer_1', 'P', '', 'physical', '', 'USD', '[]', '', 0)",
            "insert into variants (id, product_id, position, sku, options, price, inventory_type, quantity) \
             values ('v_inf', 'prd_1', 1, 'i', '{}', 100, 'infinite', null)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        sqlx::query(
            "insert into variants (id, product_id, position, sku, options, price, inventory_type, quantity) \
             values ('v_fin', 'prd_1', 0, 'f', '{}', 100, 'finite', $1)",
        )
        .bind(stock)
        .execute(&pool)
        .await
        .unwrap();
        (db, pool, base, name)
    }

    async fn drop_shop(db: crate::Db, base: &str, name: &str) {
        db.close().await;
        crate::write::tests::drop_postgres_database(base, name).await;
    }

    fn want(n: usize, variant: &str, product_version: i64) -> Request {
        Request { want: wanted(n, variant, product_version), reply: oneshot::channel().0 }
    }

    fn wanted(n: usize, variant: &str, product_version: i64) -> Want {
        let checkout = CheckoutRecord {
            id: format!("chk_{variant}_{n}"),
            shopper_id: "acc_s".into(),
            merchant_id: "mer_1".into(),
            post_id: None,
            lines: vec![],
            currency: Currency::parse("USD").unwrap(),
            status: CheckoutStatus::Completing,
            attempt: 1,
            order_id: None,
            created_at: 1,
            expires_at: 2,
            from_cart: false,
            arm: None,
        };
        let audit = VaultAudit {
            record_id: format!("vr_{n}"),
            owner_id: "acc_s".into(),
            kind: "card".into(),
            purpose: "authorize a payment".into(),
            actor: "acc_s".into(),
            at: 1,
        };
        let seen = CatalogSeen { merchant: ("mer_1".into(), 0), products: vec![("prd_1".into(), product_version)] };
        Want { checkout, variant: variant.into(), qty: 1, expires_at: 2, audits: vec![audit.clone(), audit], seen }
    }

    async fn count(pool: &AnyPool, sql: &str) -> i64 {
        sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap()
    }

    /// Five buyers, three units, one statement: the first three in line get them, the
    /// other two hear it is short; a group priced from an old catalogue changes nothing but
    /// its audit rows; unlimited stock serves every buyer. Every buyer's audit rows are kept.
    #[tokio::test]
    async fn a_group_reserves_for_the_first_in_line_and_tells_the_rest() {
        let (db, pool, base, name) = shop(3).await;
        let group: Vec<Request> = (0..5).map(|n| want(n, "v_fin", 0)).collect();
        let short = || Err(NotReserved::Short("v_fin".into()));
        assert_eq!(reserve_group(&pool, &group).await.unwrap(), vec![Ok(()), Ok(()), Ok(()), short(), short()]);
        assert_eq!(count(&pool, "select quantity from variants where id = 'v_fin'").await, 0);
        assert_eq!(count(&pool, "select count(*) from reservations where state = 'held'").await, 3);
        assert_eq!(
            count(&pool, "select count(*) from checkouts where id in ('chk_v_fin_0', 'chk_v_fin_1', 'chk_v_fin_2')")
                .await,
            3
        );
        assert_eq!(count(&pool, "select count(*) from checkouts").await, 3);
        assert_eq!(count(&pool, "select count(*) from vault_audit").await, 10);

        let stale: Vec<Request> = (0..2).map(|n| want(10 + n, "v_inf", 7)).collect();
        assert_eq!(reserve_group(&pool, &stale).await.unwrap(), vec![Err(NotReserved::Changed); 2]);
        assert_eq!(count(&pool, "select count(*) from checkouts").await, 3);
        assert_eq!(count(&pool, "select count(*) from vault_audit").await, 14);

        let open: Vec<Request> = (0..4).map(|n| want(20 + n, "v_inf", 0)).collect();
        assert_eq!(reserve_group(&pool, &open).await.unwrap(), vec![Ok(()); 4]);
        assert_eq!(count(&pool, "select count(*) from reservations").await, 7);
        assert_eq!(count(&pool, "select count(*) from variants where quantity is null").await, 1);

        // A checkout id already taken fails the whole statement, which runs again one by one.
        let again: Vec<Request> = vec![want(30, "v_inf", 0), want(20, "v_inf", 0)];
        assert!(reserve_group(&pool, &again).await.is_err());
        assert_eq!(count(&pool, "select count(*) from checkouts").await, 7, "nothing of it was written");
        drop_shop(db, &base, &name).await;
    }

    /// A buyer whose variant's row another transaction holds waits for it; the buyers of
    /// another variant, sent to the same task meanwhile, do not wait with her.
    #[tokio::test]
    async fn a_variant_whose_row_is_locked_holds_up_only_its_own_buyers() {
        let (db, pool, base, name) = shop(3).await;
        let task = Reservations::start(db.group_writer());
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("select quantity from variants where id = 'v_fin' for update").execute(&mut *holder).await.unwrap();
        let t = task.clone();
        let held = tokio::spawn(async move { t.reserve(wanted(0, "v_fin", 0)).await });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let other = tokio::time::timeout(std::time::Duration::from_secs(5), task.reserve(wanted(1, "v_inf", 0)))
            .await
            .expect("another variant's buyer is not held up");
        assert_eq!(other.unwrap(), Ok(()));
        assert!(!held.is_finished(), "hers waits for the row");
        holder.rollback().await.unwrap();
        assert_eq!(held.await.unwrap().unwrap(), Ok(()));
        assert_eq!(count(&pool, "select quantity from variants where id = 'v_fin'").await, 2);
        drop_shop(db, &base, &name).await;
    }
}
