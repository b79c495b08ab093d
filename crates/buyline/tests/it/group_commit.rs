//! Group commit on the purchase path: one-tap orders that arrive together share durable
//! commits, yet each stays its own purchase — exactly one order and one capture per key, a
//! failure fails only its own request, and a server killed mid-group leaves every order
//! paid exactly once or not at all once the reconciler and the retries have run.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

async fn sqlx_conn(database_url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(database_url).await.unwrap()
}

async fn count(database_url: &str, sql: &str) -> i64 {
    use sqlx::Row;
    let mut c = sqlx_conn(database_url).await;
    sqlx::query(sql).fetch_one(&mut c).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// A shopper with a saved card and address: the one-tap body that buys `vid` with them.
async fn tapper(app: &TestApp, handle: &str, vid: &str, number: &str) -> (String, Value) {
    let (token, _) = app.signup(handle).await;
    let pm = app
        .post(
            "/payment_methods",
            Some(&token),
            json!({"card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}),
        )
        .await;
    assert_eq!(pm.status, 201, "{}", pm.text);
    let addr = app.post("/addresses", Some(&token), address()).await;
    assert_eq!(addr.status, 201, "{}", addr.text);
    let body = json!({"lines": [{"variant_id": vid}], "address_id": addr.body["id"],
                      "payment": {"payment_method_id": pm.body["id"]}});
    (token, body)
}

async fn keyed(client: &reqwest::Client, url: &str, token: &str, key: &str, body: &Value) -> Resp {
    let r = client
        .post(format!("{url}/api/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

/// Money and stock agree everywhere: one capture per order, nothing authorised without an
/// order, the processor's captured total equals the ledger's receivable, the trial balance
/// is zero, and the stock left is the stock less what was sold.
async fn assert_books(app: &TestApp, initial: i64, product: &Value, vid: &str) {
    let db = &app.database_url;
    let orders = count(db, "select count(*) from orders").await;
    assert_eq!(
        count(db, "select count(*) from processor_payments where status = 'captured'").await,
        orders,
        "one capture per order"
    );
    assert_eq!(count(db, "select count(*) from orders where captured_at is null").await, 0, "every order captured");
    assert_eq!(
        count(
            db,
            "select count(*) from processor_payments p where status in ('captured', 'authorized') \
             and not exists (select 1 from orders o where o.payment_id = p.id)"
        )
        .await,
        0,
        "no money held or taken without an order"
    );
    assert_eq!(
        count(db, "select count(*) from (select payment_id from orders group by payment_id having count(*) > 1) t")
            .await,
        0,
        "no payment behind two orders"
    );
    assert_eq!(
        count(db, "select count(*) from (select checkout_id from orders group by checkout_id having count(*) > 1) t")
            .await,
        0,
        "no checkout with two orders"
    );
    let captured =
        count(db, "select coalesce(cast(sum(amount) as bigint), 0) from processor_payments where status = 'captured'")
            .await;
    let receivable = count(
        db,
        "select coalesce(cast(sum(amount) as bigint), 0) from ledger_entries where account = 'processor_receivable'",
    )
    .await;
    assert_eq!(captured, receivable, "the processor's captured total is the ledger's");
    let paid = count(db, "select coalesce(cast(sum(total) as bigint), 0) from orders").await;
    assert_eq!(paid, captured, "what the orders say was paid is what was captured");
    assert_eq!(app.trial_balance().await["totals"], json!({"USD": 0}));
    let sold = count(db, "select count(*) from orders").await; // one unit per order here
    assert_eq!(stock_of(app, product, vid).await, initial - sold, "stock is the initial less what was sold");
    assert_eq!(count(db, "select count(*) from reservations where state = 'held'").await, 0, "nothing still held");
}

#[tokio::test]
async fn concurrent_one_tap_orders_with_their_own_keys_each_make_one_order_and_one_capture() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("tees").await;
    let p = app.shirt(&key, 1_000).await;
    let vid = variant(&p, "S", "red");
    let mut tappers = vec![];
    for i in 0..8 {
        tappers.push(tapper(&app, &format!("tapper{i}"), &vid, "4242424242424242").await);
    }
    const PER: usize = 8;
    let keys: Vec<(usize, String)> =
        (0..tappers.len()).flat_map(|t| (0..PER).map(move |i| (t, format!("gc-{t}-{i}")))).collect();
    let sends = keys.iter().map(|(t, k)| keyed(&app.client, &app.url, &tappers[*t].0, k, &tappers[*t].1));
    let first = join_all(sends.collect()).await;
    let mut ids = BTreeMap::new();
    for ((_, k), r) in keys.iter().zip(&first) {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["status"], "paid");
        ids.insert(k.clone(), r.body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.values().collect::<BTreeSet<_>>().len(), keys.len(), "a distinct order per key");
    // Every key again, all at once: each finds its own order.
    let again = keys.iter().map(|(t, k)| keyed(&app.client, &app.url, &tappers[*t].0, k, &tappers[*t].1));
    for ((_, k), r) in keys.iter().zip(join_all(again.collect()).await) {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["id"].as_str().unwrap(), ids[k], "the retry answers with the key's order");
    }
    assert_eq!(count(&app.database_url, "select count(*) from orders").await, keys.len() as i64);
    assert_books(&app, 1_000, &p, &vid).await;
    app.stop().await;
}

#[tokio::test]
async fn a_request_that_fails_in_a_group_fails_alone() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("tees").await;
    const STOCK: i64 = 10;
    let p = app.shirt(&key, STOCK).await;
    let vid = variant(&p, "S", "red");
    // Twelve good cards for ten units, and two saved cards the network declines.
    let mut tappers = vec![];
    for i in 0..12 {
        tappers.push((tapper(&app, &format!("good{i}"), &vid, "4242424242424242").await, true));
    }
    for i in 0..2 {
        tappers.push((tapper(&app, &format!("bad{i}"), &vid, "4000000000000002").await, false));
    }
    let keys: Vec<String> = (0..tappers.len()).map(|i| format!("f-{i}")).collect();
    let sends = tappers.iter().zip(&keys).map(|(((t, b), _), k)| keyed(&app.client, &app.url, t, k, b));
    let results = join_all(sends.collect()).await;
    let (mut paid, mut sold_out, mut declined) = (0, 0, 0);
    for ((_, good), r) in tappers.iter().zip(&results) {
        match (r.status.as_u16(), good) {
            (201, true) => paid += 1,
            (409, true) => {
                assert_problem(r, 409, "out_of_stock");
                sold_out += 1
            }
            (402, false) => {
                assert_problem(r, 402, "card_declined");
                declined += 1
            }
            // A declined card may find the stock held by others before it is tried.
            (409, false) => {
                assert_problem(r, 409, "out_of_stock");
            }
            (s, _) => panic!("unexpected {s}: {}", r.text),
        }
    }
    // A declined card holds its unit while the network answers, so a good buyer beside it
    // may hear `out_of_stock` for a unit that comes back: nothing more.
    assert!(declined <= 2, "a declined card is declined, alone");
    assert_eq!(paid + sold_out, 12, "every good card is paid or hears out_of_stock");
    assert!(paid <= STOCK && paid + stock_of(&app, &p, &vid).await == STOCK, "every unit sold at most once");
    assert_eq!(
        count(&app.database_url, "select count(*) from checkouts where status = 'open'").await,
        declined,
        "a declined purchase is left open to try again; one that found no stock leaves nothing behind"
    );
    // The buyers who heard `out_of_stock` try again, one by one: the units the declined
    // cards held are sold, and then no more.
    let mut retry = 0;
    for (((t, b), good), r) in tappers.iter().zip(&results) {
        if *good && r.status == 409 {
            retry += 1;
            let again = keyed(&app.client, &app.url, t, &format!("again-{retry}"), b).await;
            match again.status.as_u16() {
                201 => paid += 1,
                409 => assert_eq!(stock_of(&app, &p, &vid).await, 0, "refused only when sold out: {}", again.text),
                s => panic!("unexpected {s}: {}", again.text),
            }
        }
    }
    assert_eq!(paid, STOCK, "every unit sold, once");
    assert_eq!(count(&app.database_url, "select count(*) from orders").await, STOCK);
    assert_books(&app, STOCK, &p, &vid).await;
    app.stop().await;
}

#[tokio::test]
async fn a_server_killed_mid_group_leaves_every_order_paid_exactly_once_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => fresh_postgres(&base).await,
        _ => buyline::config::database_url(dir.path(), None),
    };
    let admin = format!("op_test_{}", rand::random::<u64>());
    let first = ChildServer::start(dir.path(), &database_url, &admin).await;
    let mut app = TestApp::external(first.url.clone(), admin.clone(), database_url.clone(), dir);
    let (mkey, _) = app.merchant("tees").await;
    const STOCK: i64 = 5_000;
    let p = app.shirt(&mkey, STOCK).await;
    let vid = variant(&p, "S", "red");
    let mut tappers = vec![];
    for i in 0..8 {
        tappers.push(tapper(&app, &format!("crash{i}"), &vid, "4242424242424242").await);
    }

    // 16 clients buy without pause, each purchase with a new key, until the server dies
    // under them: the kill always lands mid-load, with groups being settled.
    const CLIENTS: usize = 16;
    let issued: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let answered: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, issued, answered) =
                (app.client.clone(), app.url.clone(), issued.clone(), answered.clone());
            let (t, token, body) =
                (c % tappers.len(), tappers[c % tappers.len()].0.clone(), tappers[c % tappers.len()].1.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let k = format!("kill-{c}-{i}");
                    issued.lock().unwrap().push((t, k.clone()));
                    let r = client
                        .post(format!("{url}/api/v1/orders"))
                        .bearer_auth(&token)
                        .header("idempotency-key", &k)
                        .json(&body)
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    let status = r.status().as_u16();
                    let Ok(b) = r.json::<Value>().await else { return };
                    assert_eq!(status, 201, "before the kill: {b}");
                    answered.lock().unwrap().insert(k, b["id"].as_str().unwrap().to_string());
                }
            })
        })
        .collect();
    for _ in 0..3_000 {
        if count(&database_url, "select count(*) from orders").await >= 24 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    first.kill();
    for c in clients {
        c.await.unwrap();
    }
    let committed_at_kill = count(&database_url, "select count(*) from orders").await;
    let keys: Vec<(usize, String)> = issued.lock().unwrap().clone();
    let answered_before: BTreeMap<String, String> = answered.lock().unwrap().clone();
    let authorised_at_kill = count(&database_url, "select count(*) from processor_payments").await;
    eprintln!(
        "killed with {} purchases sent, {committed_at_kill} orders committed, {authorised_at_kill} authorisations, {} answered",
        keys.len(),
        answered_before.len()
    );
    assert!(answered_before.len() < keys.len(), "every purchase was answered before the kill; nothing was tested");
    let unanswered_committed = committed_at_kill - answered_before.len() as i64;
    eprintln!("{unanswered_committed} orders committed whose answer the kill lost");

    // Time passes before anyone retries: keys the dead server left in progress are abandoned.
    let mut c = sqlx_conn(&database_url).await;
    sqlx::query("update idempotency_keys set created_at = 0 where status is null").execute(&mut c).await.unwrap();

    // A new server on the same data; the reconciler settles what the crash left, and every
    // client retries with its key until answered.
    let second = ChildServer::start(app.dir.path(), &database_url, &admin).await;
    app.url = second.url.clone();
    let mut orders: BTreeMap<String, String> = BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while orders.len() < keys.len() {
        assert!(std::time::Instant::now() < deadline, "not every key was answered: {}/{}", orders.len(), keys.len());
        for (t, k) in &keys {
            if orders.contains_key(k) {
                continue;
            }
            let r = keyed(&app.client, &app.url, &tappers[*t].0, k, &tappers[*t].1).await;
            match r.status.as_u16() {
                201 => {
                    orders.insert(k.clone(), r.body["id"].as_str().unwrap().to_string());
                }
                409 => {} // still being settled: retry
                s => panic!("unexpected {s}: {}", r.text),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Let the reconciler void what the crash left authorised without an order and capture
    // the orders whose capture the crash cut off.
    let db = app.database_url.clone();
    for _ in 0..60 {
        let open = count(
            &db,
            "select count(*) from processor_payments p where status in ('captured', 'authorized') \
             and not exists (select 1 from orders o where o.payment_id = p.id)",
        )
        .await;
        if open == 0
            && count(&db, "select count(*) from reservations where state = 'held'").await == 0
            && count(&db, "select count(*) from orders where captured_at is null").await == 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(orders.values().collect::<BTreeSet<_>>().len(), keys.len(), "a distinct order per key");
    for (k, id) in &answered_before {
        assert_eq!(&orders[k], id, "a retry of an answered purchase finds that order");
    }
    assert_eq!(count(&db, "select count(*) from orders").await, keys.len() as i64, "no order beyond one per key");
    assert_books(&app, STOCK, &p, &vid).await;
    second.kill();
    app.stop().await;
}

/// A write that a synced write follows (a reservation, the processor's authorisation) does
/// not wait for the disk; every other write does. On PostgreSQL the first commits on
/// connections with `synchronous_commit = off`, the others with PostgreSQL's default
/// (`on`). (On SQLite the writer thread answers it at its commit, before its sync: the
/// store's `a_job_hears_its_outcome_after_its_commit_is_synced_unless_a_synced_write_follows`.)
#[tokio::test]
async fn on_postgres_only_a_write_before_a_synced_one_skips_the_flush() {
    use buyline_store::{write::Arg, Job, Step};
    use sqlx::Row;
    let Ok(base) = std::env::var("BUYLINE_TEST_DATABASE_URL") else { return };
    let url = fresh_postgres(&base).await;
    let db = buyline_store::Db::connect(&url, 4).await.unwrap();
    let mut c = sqlx_conn(&url).await;
    sqlx::query("create table commits_seen (job text primary key, setting text not null)")
        .execute(&mut c)
        .await
        .unwrap();
    let job = |name: &str| {
        Job::from(vec![Step::new(
            "insert into commits_seen (job, setting) values ($1, current_setting('synchronous_commit'))",
            vec![Arg::from(name)],
        )])
    };
    let w = db.group_writer();
    assert!(w.run(job("before a synced write").before_a_synced_write()).await.unwrap().done());
    assert!(w.run(job("synced")).await.unwrap().done());
    let seen: BTreeMap<String, String> = sqlx::query("select job, setting from commits_seen")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(seen["before a synced write"], "off", "{seen:?}");
    assert_eq!(seen["synced"], "on", "{seen:?}");
    db.close().await;
    drop(c);
    let mut admin = sqlx_conn(&base).await;
    let name = url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_string();
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut admin).await;
}
