//! Saved cards and addresses: sealed at rest, one tap, audit, rotation, key loss, data rights.

use crate::helpers::*;
use serde_json::{json, Value};

const PAN: &str = "5555555555554444";

async fn shop(app: &TestApp) -> (Value, String) {
    let (key, _) = app.merchant("vaultshop").await;
    let p = app.shirt(&key, 20).await;
    (p, key)
}

async fn save_card(app: &TestApp, token: &str, number: &str) -> Value {
    let r = app
        .post(
            "/payment_methods",
            Some(token),
            json!({"card": {"number": number, "exp_month": 11, "exp_year": 2031, "cvc": "987"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn save_address(app: &TestApp, token: &str) -> Value {
    let r = app.post("/addresses", Some(token), address()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn one_tap(app: &TestApp, token: &str, variant: &str, pm: &str, addr: &str) -> Resp {
    app.post(
        "/orders",
        Some(token),
        json!({"lines": [{"variant_id": variant}], "address_id": addr, "payment": {"payment_method_id": pm}}),
    )
    .await
}

/// Every byte the database holds, as text: the SQLite files, or a PostgreSQL dump.
async fn database_bytes(app: &TestApp) -> String {
    if app.is_sqlite() {
        let mut bytes = Vec::new();
        for f in ["buyline.db", "buyline.db-wal"] {
            if let Ok(b) = std::fs::read(app.dir.path().join(f)) {
                bytes.extend(b);
            }
        }
        String::from_utf8_lossy(&bytes).to_string()
    } else {
        let out =
            std::process::Command::new("pg_dump").arg("--data-only").arg(&app.database_url).output().expect("pg_dump");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

#[tokio::test]
async fn saved_cards_never_leave_the_vault_and_never_rest_in_plain_text() {
    let app = spawn_app().await;
    let (shopper, _) = app.signup("saver").await;
    let pm = save_card(&app, &shopper, "5555 5555 5555 4444").await;
    assert!(pm["id"].as_str().unwrap().starts_with("pm_"));
    assert_eq!(pm, json!({"id": pm["id"], "brand": "mastercard", "last4": "4444", "exp_month": 11, "exp_year": 2031}));
    let list = app.get("/payment_methods", Some(&shopper)).await;
    assert_eq!(list.body["data"], json!([pm]));
    let mut secret_place = address();
    secret_place["line1"] = json!("77 Hidden Lane");
    let addr = app.post("/addresses", Some(&shopper), secret_place).await.body;
    assert!(addr["id"].as_str().unwrap().starts_with("addr_"));
    assert_eq!((addr["line1"].as_str(), addr["postal_code"].as_str()), (Some("77 Hidden Lane"), Some("94103")));
    // Through checkout with "save for next time" too.
    let (p, _) = shop(&app).await;
    let r = app
        .post("/orders", Some(&shopper), json!({"lines": [{"variant_id": p["variants"][0]["id"]}], "shipping_address": address(),
            "payment": {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "987"}, "save": true}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.get("/payment_methods", Some(&shopper)).await.body["data"].as_array().unwrap().len(), 2);

    let dump = database_bytes(&app).await;
    assert!(dump.len() > 1000);
    use base64::Engine;
    for n in [PAN, "4242424242424242"] {
        let spaced: String =
            n.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ");
        let b64 = base64::engine::general_purpose::STANDARD.encode(n);
        let hex: String = n.bytes().map(|b| format!("{b:02x}")).collect();
        for form in [n.to_string(), spaced, b64, hex] {
            assert!(!dump.contains(&form), "the database holds a card number as {form}");
        }
    }
    assert!(!dump.to_lowercase().contains("\"cvc\""), "a CVC is stored");
    // Orders keep their shipping address for the merchant; a saved address rests sealed.
    assert!(!dump.contains("77 Hidden Lane"), "a saved address is stored in plain text");
    app.stop().await;
}

#[tokio::test]
async fn one_tap_with_a_saved_card_and_address_is_audited() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let (shopper, _) = app.signup("tapper").await;
    let pm = save_card(&app, &shopper, PAN).await;
    let addr = save_address(&app, &shopper).await;
    let vid = p["variants"][0]["id"].as_str().unwrap();
    let r = one_tap(&app, &shopper, vid, pm["id"].as_str().unwrap(), addr["id"].as_str().unwrap()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["payment"]["last4"].as_str()), (Some("paid"), Some("4444")));
    assert_eq!(r.body["shipping_address"]["line1"], "1 Market St");
    let export = app.get("/me/export", Some(&shopper)).await.body;
    let purposes: Vec<_> =
        export["vault_audit"].as_array().unwrap().iter().map(|a| a["purpose"].as_str().unwrap().to_string()).collect();
    assert!(purposes.contains(&"authorize a payment".to_string()), "{purposes:?}");
    assert!(purposes.contains(&"ship an order".to_string()), "{purposes:?}");
    assert!(export["vault_audit"][0]["created_at"].is_string() && export["vault_audit"][0]["record_id"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn another_shopper_can_never_use_my_card_or_address() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let (me, _) = app.signup("owner1").await;
    let (thief, _) = app.signup("thief").await;
    let pm = save_card(&app, &me, PAN).await;
    let addr = save_address(&app, &me).await;
    let vid = p["variants"][0]["id"].as_str().unwrap();
    let r = one_tap(&app, &thief, vid, pm["id"].as_str().unwrap(), addr["id"].as_str().unwrap()).await;
    let mut f = fields(&assert_problem(&r, 422, "validation_failed"));
    f.sort();
    assert_eq!(f, ["address_id", "payment.payment_method_id"]);
    assert_problem(
        &app.call(
            reqwest::Method::DELETE,
            &format!("/payment_methods/{}", pm["id"].as_str().unwrap()),
            Some(&thief),
            None,
        )
        .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.call(reqwest::Method::DELETE, &format!("/addresses/{}", addr["id"].as_str().unwrap()), Some(&thief), None)
            .await,
        404,
        "not_found",
    );
    assert!(app.get("/payment_methods", Some(&thief)).await.body["data"].as_array().unwrap().is_empty());
    assert!(app.get("/orders", Some(&thief)).await.body["data"].as_array().unwrap().is_empty());
    // Unknown and malformed ids get the same answer.
    let r = one_tap(&app, &me, vid, "pm_nope", "addr_nope").await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_ciphertext_copied_onto_another_shoppers_record_does_not_decrypt() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let (a, _) = app.signup("alice_v").await;
    let (b, _) = app.signup("bob_v").await;
    let pa = save_card(&app, &a, PAN).await;
    let pb = save_card(&app, &b, "4242424242424242").await;
    let addr_b = save_address(&app, &b).await;
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "update vault_records set kek_id = (select kek_id from vault_records where id = $1), \
         wrapped_key = (select wrapped_key from vault_records where id = $1), \
         ciphertext = (select ciphertext from vault_records where id = $1) where id = $2",
    )
    .bind(pa["id"].as_str().unwrap())
    .bind(pb["id"].as_str().unwrap())
    .execute(&mut c)
    .await
    .unwrap();
    let r = one_tap(
        &app,
        &b,
        p["variants"][0]["id"].as_str().unwrap(),
        pb["id"].as_str().unwrap(),
        addr_b["id"].as_str().unwrap(),
    )
    .await;
    let prob = assert_problem(&r, 422, "validation_failed");
    assert!(prob["errors"][0]["message"].as_str().unwrap().contains("can no longer be used"));
    assert!(!r.text.contains(PAN));
    assert_eq!(app.trial_balance().await["data"], json!([]), "nobody was charged");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_card_shreds_it() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let (me, _) = app.signup("shredder").await;
    let pm = save_card(&app, &me, PAN).await;
    let addr = save_address(&app, &me).await;
    let id = pm["id"].as_str().unwrap();
    let r = app.call(reqwest::Method::DELETE, &format!("/payment_methods/{id}"), Some(&me), None).await;
    assert_eq!(r.status, 204);
    assert!(app.get("/payment_methods", Some(&me)).await.body["data"].as_array().unwrap().is_empty());
    let r = one_tap(&app, &me, p["variants"][0]["id"].as_str().unwrap(), id, addr["id"].as_str().unwrap()).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["payment.payment_method_id"]);
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let row = sqlx::query("select wrapped_key, ciphertext from vault_records where id = $1")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(
        row.try_get::<Option<String>, _>(0).unwrap().is_none()
            && row.try_get::<Option<String>, _>(1).unwrap().is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn after_key_rotation_every_saved_card_still_pays() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let mut wallets = Vec::new();
    for i in 0..3 {
        let (t, _) = app.signup(&format!("rot{i}")).await;
        let pm = save_card(&app, &t, PAN).await;
        let addr = save_address(&app, &t).await;
        wallets.push((t, pm["id"].as_str().unwrap().to_string(), addr["id"].as_str().unwrap().to_string()));
    }
    let keys_dir = app.dir.path().join("vault-keys");
    let old: Vec<_> = std::fs::read_dir(&keys_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let report = buyline::rotate_keys(app.dir.path(), &app.database_url).await.unwrap();
    // Three cards, three addresses and the shop's webhook signing secret.
    assert!(report.contains("7 records re-wrapped"), "{report}");
    let now: Vec<_> = std::fs::read_dir(&keys_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    for f in old.iter().filter(|f| f.to_string_lossy().ends_with(".key")) {
        assert!(!now.contains(f), "the old key {f:?} is retired");
    }
    // The running server meets the new key id and loads it.
    for (t, pm, addr) in &wallets {
        let r = one_tap(&app, t, p["variants"][0]["id"].as_str().unwrap(), pm, addr).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // The operator's console says when the keys last rotated and what the rotation did.
    let op = Browser::new(&app);
    op.submit("/admin", "/admin/login", &[("token", &app.admin_token)]).await;
    let (_, page) = op.get("/admin").await;
    let vault = &page[page.find("id=\"vault-key\"").unwrap()..];
    assert!(vault.contains("Last rotated") && vault.contains(&report), "{vault}");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_vault_key_stops_start_up_with_a_clear_message() {
    let app = spawn_app().await;
    let (me, _) = app.signup("keyloss").await;
    save_card(&app, &me, PAN).await;
    let dir = app.dir.path().to_path_buf();
    let url = app.database_url.clone();
    let keys_dir = dir.join("vault-keys");
    let current = std::fs::read_to_string(keys_dir.join("current")).unwrap();
    let kept = app.running_stop().await;

    let start = || {
        let mut cfg = buyline::config::ServeConfig::new(dir.clone());
        cfg.listen = "127.0.0.1:0".into();
        cfg.no_demo = true;
        cfg.database_url = Some(url.clone());
        cfg.admin_token = Some("op_x".into());
        buyline::spawn(cfg)
    };
    // A wrong key: another key's bytes in the key file.
    let saved = std::fs::read_to_string(keys_dir.join(format!("{current}.key"))).unwrap();
    let other = buyline_vault::Kek::generate();
    std::fs::write(keys_dir.join(format!("{current}.key")), &*other.to_base64()).unwrap();
    let err = format!("{:#}", start().await.err().expect("refuses a wrong key"));
    assert!(err.contains("vault") && err.contains(current.trim()), "{err}");
    // No key at all: it does not quietly make a new one.
    std::fs::remove_dir_all(&keys_dir).unwrap();
    let err = format!("{:#}", start().await.err().expect("refuses a missing key"));
    assert!(err.contains("vault key") && err.contains("missing"), "{err}");
    assert!(!keys_dir.join("current").exists(), "no new key was created");
    // With the key back, it starts and the card is there.
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::write(keys_dir.join(format!("{current}.key")), saved).unwrap();
    std::fs::write(keys_dir.join("current"), &current).unwrap();
    let running = start().await.expect("starts with its key");
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(kept);
}

#[tokio::test]
async fn export_and_delete_my_account() {
    let app = spawn_app().await;
    let (p, key) = shop(&app).await;
    let (me, account) = app.signup("leaver").await;
    let pm = save_card(&app, &me, PAN).await;
    let addr = save_address(&app, &me).await;
    app.post("/accounts/vaultshop/follow", Some(&me), json!({})).await;
    let post = app.post("/posts", Some(&me), json!({"text": "bye for now"})).await.body;
    let reply = app.post("/posts", Some(&key), json!({"text": "see you", "reply_to": post["id"]})).await.body;
    let order = one_tap(
        &app,
        &me,
        p["variants"][0]["id"].as_str().unwrap(),
        pm["id"].as_str().unwrap(),
        addr["id"].as_str().unwrap(),
    )
    .await
    .body;

    let export = app.get("/me/export", Some(&me)).await;
    assert_eq!(export.status, 200);
    let e = &export.body;
    assert_eq!(e["account"]["email"], "leaver@example.com");
    assert_eq!(e["posts"][0]["text"], "bye for now");
    assert_eq!(e["following"], json!(["vaultshop"]));
    assert_eq!(e["orders"][0]["id"], order["id"]);
    assert_eq!(e["payment_methods"][0]["last4"], "4444");
    assert_eq!(e["addresses"][0]["line1"], "1 Market St");
    assert!(!e["notifications"].as_array().unwrap().is_empty());
    assert!(!export.text.contains(PAN));

    let before = app.trial_balance().await;
    let r = app.call(reqwest::Method::DELETE, "/me", Some(&me), None).await;
    assert_eq!(r.status, 204);
    assert_problem(&app.get("/me", Some(&me)).await, 401, "unauthorized");
    let r = app.post("/sessions", None, json!({"login": "leaver", "password": "correct horse battery"})).await;
    assert_problem(&r, 401, "unauthorized");
    assert_problem(&app.get(&format!("/posts/{}", post["id"].as_str().unwrap()), None).await, 404, "not_found");
    assert_eq!(app.get(&format!("/posts/{}", reply["id"].as_str().unwrap()), None).await.body["reply_to"], json!(null));
    assert_eq!(app.trial_balance().await, before, "the books are untouched");
    // The handle is free again; the order is kept without personal data.
    app.signup("leaver").await;
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let row = sqlx::query("select shopper_id, shipping_address, contact_email, total from orders where id = $1")
        .bind(order["id"].as_str().unwrap())
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(row.try_get::<Option<String>, _>(0).unwrap().is_none());
    assert!(row.try_get::<Option<String>, _>(1).unwrap().is_none());
    assert!(row.try_get::<Option<String>, _>(2).unwrap().is_none());
    assert_eq!(row.try_get::<i64, _>(3).unwrap(), 3000);
    let live: i64 = sqlx::query("select count(*) from vault_records where owner_id = $1 and wrapped_key is not null")
        .bind(account["id"].as_str().unwrap())
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "vault entries are shredded");
    app.stop().await;
}
