//! Buying: one tap, checkout sheets, declines, 3-D Secure, rollout, idempotency, stock races,
//! the ledger, and recovery by the reconciler.

use crate::helpers::*;
use buyline_core::store::prelude::*;
use serde_json::{json, Value};

async fn setup(app: &TestApp, stock: i64) -> (String, Value, String) {
    let (key, _) = app.merchant("tees").await;
    let p = app.shirt(&key, stock).await;
    let (shopper, _) = app.signup("buyer").await;
    (key, p, shopper)
}

/// The answer comes once the order is committed, before the capture that follows it: `paid`
/// and `captured: false`; the order, read back a moment later, is captured and booked.
#[tokio::test]
async fn one_tap_order_is_paid_then_captured_and_booked() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 3).await;
    let vid = variant(&p, "M", "red");
    let r = app.buy(&shopper, &vid, "4242424242424242").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let o = &r.body;
    assert!(o["id"].as_str().unwrap().starts_with("ord_"));
    assert_eq!(o["status"], "paid");
    assert_eq!(o["merchant_id"], p["merchant_id"]);
    assert_eq!(o["lines"][0]["product_id"], p["id"]);
    assert_eq!(o["lines"][0]["variant_id"], vid.as_str());
    assert_eq!(o["lines"][0]["options"], json!({"colour": "red", "size": "M"}));
    assert_eq!((o["lines"][0]["quantity"].as_i64(), o["lines"][0]["unit_price"].as_i64()), (Some(1), Some(2500)));
    assert_eq!(o["shipping_address"]["postal_code"], "94103");
    assert_eq!(o["shipping"]["name"], "Standard");
    assert_eq!(o["shipping"]["price"], 500);
    assert_eq!(o["totals"], json!({"subtotal": 2500, "shipping": 500, "tax": 0, "total": 3000, "currency": "USD"}));
    assert_eq!(o["platform_fee"], 150, "5 % of goods plus shipping");
    assert_eq!(o["payment"], json!({"brand": "visa", "last4": "4242"}));
    assert_eq!(o["captured"], false, "answered before its capture");
    assert!(!r.text.contains("4242424242424242") && !r.text.contains("\"123\""));
    assert_eq!(stock_of(&app, &p, &vid).await, 2);
    let again = app.get(&format!("/orders/{}", o["id"].as_str().unwrap()), Some(&shopper)).await.body;
    assert_eq!((again["status"].as_str(), again["captured"].as_bool()), (Some("paid"), Some(true)));

    let tb = app.trial_balance().await;
    assert_eq!(tb["totals"], json!({"USD": 0}));
    let bal =
        |acct: &str| tb["data"].as_array().unwrap().iter().find(|l| l["account"] == acct).map(|l| l["balance"].clone());
    assert_eq!(bal("processor_receivable"), Some(json!(3000)));
    assert_eq!(bal("platform_revenue"), Some(json!(-150)));
    assert_eq!(bal(&format!("merchant_payable:{}", p["merchant_id"].as_str().unwrap())), Some(json!(-2850)));

    // The shopper sees it, with a receipt in-app and by e-mail.
    let list = app.get("/orders", Some(&shopper)).await.body;
    assert_eq!(list["data"][0]["id"], o["id"]);
    assert_eq!(app.get(&format!("/orders/{}", o["id"].as_str().unwrap()), Some(&shopper)).await.body["status"], "paid");
    let n = app.get("/notifications", Some(&shopper)).await.body;
    assert!(n["data"][0]["text"].as_str().unwrap().contains(o["id"].as_str().unwrap()));
    let mail_dir = app.dir.path().join("mail");
    let found = mail_containing(&mail_dir, o["id"].as_str().unwrap()).await;
    assert!(found.contains("buyer@example.com") && found.contains(o["id"].as_str().unwrap()), "{found}");
    assert!(!found.contains("4242424242424242"));
    // Another shopper cannot see it.
    let (other, _) = app.signup("nosy").await;
    assert_problem(&app.get(&format!("/orders/{}", o["id"].as_str().unwrap()), Some(&other)).await, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn checkout_sheet_then_complete_with_tax_and_rate_choice() {
    let app = spawn_app().await;
    let (key, p, shopper) = setup(&app, 5).await;
    app.patch("/merchant", Some(&key), json!({"tax_rates": {"US": 825}})).await;
    let vid = variant(&p, "S", "blue");
    let r = app.post("/checkouts", Some(&shopper), json!({"lines": [{"variant_id": vid, "quantity": 2}]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let c = r.body;
    assert!(c["id"].as_str().unwrap().starts_with("chk_"));
    assert_eq!(c["status"], "open");
    assert_eq!(c["shipping_options"].as_array().unwrap().len(), 1, "only US rates for a US shopper");
    // 2 × 2500 + 500 shipping = 5500; 8.25 % = 453.75 → 454.
    assert_eq!(c["totals"], json!({"subtotal": 5000, "shipping": 500, "tax": 454, "total": 5954, "currency": "USD"}));
    assert!(c["expires_at"].is_string());
    let rate = c["shipping_options"][0]["id"].as_str().unwrap();
    let done = app
        .post(
            &format!("/checkouts/{}/complete", c["id"].as_str().unwrap()),
            Some(&shopper),
            json!({"shipping_address": address(), "shipping_rate_id": rate, "payment": card("5555555555554444")}),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(done.body["totals"]["total"], 5954);
    assert_eq!(done.body["platform_fee"], 275, "fee base excludes tax: 5 % of 5500");
    assert_eq!(done.body["payment"]["brand"], "mastercard");
    // Completing again returns the same order (a double tap, a retry).
    let again = app
        .post(
            &format!("/checkouts/{}/complete", c["id"].as_str().unwrap()),
            Some(&shopper),
            json!({"shipping_address": address(), "payment": card("5555555555554444")}),
        )
        .await;
    assert_eq!(again.body["id"], done.body["id"]);
    assert_eq!(stock_of(&app, &p, &vid).await, 3);
    // A GB address for a US-only rate is refused.
    let c2 = app.post("/checkouts", Some(&shopper), json!({"lines": [{"variant_id": vid}]})).await.body;
    let mut gb = address();
    gb["country"] = json!("GB");
    gb["postal_code"] = json!("SW1A 1AA");
    gb["region"] = json!("");
    let r = app
        .post(
            &format!("/checkouts/{}/complete", c2["id"].as_str().unwrap()),
            Some(&shopper),
            json!({"shipping_address": gb, "shipping_rate_id": rate, "payment": card("4242424242424242")}),
        )
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rate_id"]);
    app.stop().await;
}

#[tokio::test]
async fn declined_cards_release_stock_and_a_good_card_then_pays_once() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 1).await;
    let vid = variant(&p, "M", "blue");
    let c = app.post("/checkouts", Some(&shopper), json!({"lines": [{"variant_id": vid}]})).await.body;
    let path = format!("/checkouts/{}/complete", c["id"].as_str().unwrap());
    let cases = [
        ("4000000000000002", "card_declined", Some("generic_decline")),
        ("4000000000009995", "card_declined", Some("insufficient_funds")),
        ("4000000000000069", "expired_card", None),
        ("4000000000000127", "incorrect_cvc", None),
        ("4000000000000119", "processing_error", None),
    ];
    for (number, code, decline) in cases {
        let r = app.post(&path, Some(&shopper), json!({"shipping_address": address(), "payment": card(number)})).await;
        let pb = assert_problem(&r, 402, code);
        assert_eq!(pb["decline_code"].as_str(), decline, "{number}");
        assert!(!r.text.contains(number));
        assert_eq!(stock_of(&app, &p, &vid).await, 1, "stock released after {number}");
    }
    assert!(app.get("/orders", Some(&shopper)).await.body["data"].as_array().unwrap().is_empty());
    let ok = app
        .post(&path, Some(&shopper), json!({"shipping_address": address(), "payment": card("4242424242424242")}))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(stock_of(&app, &p, &vid).await, 0);
    assert_eq!(app.trial_balance().await["totals"], json!({"USD": 0}));
    // Sold out now.
    let (other, _) = app.signup("late").await;
    assert_problem(&app.buy(&other, &vid, "4242424242424242").await, 409, "out_of_stock");
    app.stop().await;
}

#[tokio::test]
async fn bad_card_and_address_input_is_422_before_any_charge() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 2).await;
    let vid = variant(&p, "S", "red");
    let bad = json!({"lines": [{"variant_id": vid}],
        "shipping_address": {"name": "", "line1": "1 Main", "city": "X", "region": "ZZ", "postal_code": "123", "country": "US"},
        "payment": {"card": {"number": "4242424242424241", "exp_month": 13, "exp_year": 2030, "cvc": "1"}}});
    let r = app.post("/orders", Some(&shopper), bad).await;
    let mut f = fields(&assert_problem(&r, 422, "validation_failed"));
    f.sort();
    assert_eq!(
        f,
        [
            "payment.card.cvc",
            "payment.card.exp_month",
            "payment.card.number",
            "shipping_address.name",
            "shipping_address.postal_code",
            "shipping_address.region"
        ]
    );
    let expired = json!({"lines": [{"variant_id": vid}], "shipping_address": address(),
        "payment": {"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}}});
    assert_eq!(
        fields(&assert_problem(&app.post("/orders", Some(&shopper), expired).await, 422, "validation_failed")),
        ["payment.card.exp_year"]
    );
    let r = app
        .post(
            "/orders",
            Some(&shopper),
            json!({"lines": [{"variant_id": "var_nope", "quantity": 1}], "payment": card("4242424242424242")}),
        )
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines[0].variant_id"]);
    let r = app.post("/orders", Some(&shopper), json!({"lines": [{"variant_id": vid, "quantity": 0}], "shipping_address": address(), "payment": card("4242424242424242")})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines[0].quantity"]);
    assert_eq!(stock_of(&app, &p, &vid).await, 2);
    assert!(app.get("/orders", Some(&shopper)).await.body["data"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn three_d_secure_waits_in_requires_action_until_the_challenge_is_passed() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 2).await;
    let vid = variant(&p, "M", "red");
    let r = app.buy(&shopper, &vid, "4000002500003155").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "requires_action");
    assert_eq!(r.body["captured"], false);
    let challenge = r.body["challenge_url"].as_str().unwrap().to_string();
    assert!(challenge.starts_with(&format!("{}/test-processor/challenge/pi_", app.url)));
    assert_eq!(stock_of(&app, &p, &vid).await, 1, "held while the check is pending");
    assert_eq!(app.trial_balance().await["data"], json!([]), "nothing booked before payment");
    // The processor's page: pass the check, come back.
    let page = app.client.get(&challenge).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let back = app.client.post(&challenge).form(&[("result", "pass")]).send().await.unwrap();
    assert_eq!(back.status(), 303);
    let id = r.body["id"].as_str().unwrap();
    let o = app.get(&format!("/orders/{id}"), Some(&shopper)).await.body;
    assert_eq!((o["status"].as_str(), o["captured"].as_bool()), (Some("paid"), Some(true)));
    assert_eq!(stock_of(&app, &p, &vid).await, 1);
    assert_eq!(app.trial_balance().await["totals"], json!({"USD": 0}));

    // A failed check cancels the order and gives the stock back.
    let r = app.buy(&shopper, &vid, "4000002500003155").await;
    let challenge = r.body["challenge_url"].as_str().unwrap().to_string();
    assert_eq!(stock_of(&app, &p, &vid).await, 0);
    app.client.post(&challenge).form(&[("result", "fail")]).send().await.unwrap();
    let o = app.get(&format!("/orders/{}", r.body["id"].as_str().unwrap()), Some(&shopper)).await.body;
    assert_eq!(o["status"], "canceled");
    assert_eq!(stock_of(&app, &p, &vid).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn checkout_enforces_the_rollout() {
    let app = spawn_app().await;
    let (_, p, _) = setup(&app, 2).await;
    let vid = variant(&p, "M", "red");
    let (gb, _) = app.signup_in("briton", "GB").await;
    assert_problem(
        &app.post("/checkouts", Some(&gb), json!({"lines": [{"variant_id": vid}]})).await,
        403,
        "not_available",
    );
    assert_problem(&app.buy(&gb, &vid, "4242424242424242").await, 403, "not_available");
    let (us, _) = app.signup("yank").await;
    let off = json!({"enabled": false, "countries": ["US"], "percent": 100, "merchants": null, "holdout_percent": 0});
    app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&app.admin_token.clone()), Some(off)).await;
    assert_problem(&app.buy(&us, &vid, "4242424242424242").await, 403, "not_available");
    assert_eq!(stock_of(&app, &p, &vid).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_and_refuses_a_different_body() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 5).await;
    let vid = variant(&p, "S", "red");
    let body =
        json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")});
    let send = |b: Value| {
        app.client
            .post(format!("{}/api/v1/orders", app.url))
            .bearer_auth(&shopper)
            .header("idempotency-key", "tap-1")
            .json(&b)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send(body.clone()).await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let mut other = body.clone();
    other["lines"][0]["quantity"] = json!(2);
    let r = send(other).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "idempotency_mismatch");
    assert_eq!(app.get("/orders", Some(&shopper)).await.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(stock_of(&app, &p, &vid).await, 4);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_completes_of_one_checkout_make_one_order() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 5).await;
    let vid = variant(&p, "S", "red");
    let c = app.post("/checkouts", Some(&shopper), json!({"lines": [{"variant_id": vid}]})).await.body;
    let path = format!("/checkouts/{}/complete", c["id"].as_str().unwrap());
    let body = json!({"shipping_address": address(), "payment": card("4242424242424242")});
    let taps = (0..6).map(|_| app.post(&path, Some(&shopper), body.clone()));
    let results = join_all(taps.collect()).await;
    let ids: std::collections::BTreeSet<_> =
        results.iter().filter(|r| r.status == 201).map(|r| r.body["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "{:?}", results.iter().map(|r| &r.text).collect::<Vec<_>>());
    assert_eq!(stock_of(&app, &p, &vid).await, 4);
    let tb = app.trial_balance().await;
    let receivable = tb["data"].as_array().unwrap().iter().find(|l| l["account"] == "processor_receivable").unwrap()
        ["balance"]
        .clone();
    assert_eq!(receivable, 3000, "charged once");
    app.stop().await;
}

#[tokio::test]
async fn many_buyers_racing_for_the_last_units_never_oversell() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("racer").await;
    let p = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Limited", "kind": "physical", "price": 1000,
            "inventory": {"type": "finite", "quantity": 5},
            "shipping_rates": [{"name": "Standard", "price": 0, "countries": ["US"]}]}),
        )
        .await
        .body;
    let vid = p["variants"][0]["id"].as_str().unwrap().to_string();
    let mut buyers = Vec::new();
    for i in 0..20 {
        buyers.push(app.signup(&format!("racer{i}")).await.0);
    }
    let futs = buyers.iter().map(|t| app.buy(t, &vid, "4242424242424242"));
    let results = join_all(futs.collect()).await;
    let paid = results.iter().filter(|r| r.status == 201).count();
    let sold_out = results.iter().filter(|r| r.status == 409 && r.body["code"] == "out_of_stock").count();
    assert_eq!((paid, sold_out), (5, 15), "{:?}", results.iter().map(|r| (r.status, &r.text)).collect::<Vec<_>>());
    assert_eq!(stock_of(&app, &p, &vid).await, 0);
    let tb = app.trial_balance().await;
    assert_eq!(tb["totals"], json!({"USD": 0}));
    let receivable = tb["data"].as_array().unwrap().iter().find(|l| l["account"] == "processor_receivable").unwrap()
        ["balance"]
        .clone();
    assert_eq!(receivable, 5 * 1000);
    app.stop().await;
}

#[tokio::test]
async fn fees_follow_the_policy_and_are_frozen_on_each_order() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 5).await;
    let vid = variant(&p, "S", "red");
    let op = app.admin_token.clone();
    assert_eq!(app.get("/admin/fees", Some(&op)).await.body["kinds"]["nonprofit"], 0);
    let first = app.buy(&shopper, &vid, "4242424242424242").await.body;
    assert_eq!(first["platform_fee"], 150);
    let r = app
        .call(
            reqwest::Method::PUT,
            "/admin/fees",
            Some(&op),
            Some(json!({"kinds": {"retailer": 250}, "merchants": {}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = app.buy(&shopper, &vid, "4242424242424242").await.body;
    assert_eq!(second["platform_fee"], 75);
    let r = app
        .call(
            reqwest::Method::PUT,
            "/admin/fees",
            Some(&op),
            Some(json!({"kinds": {}, "merchants": {p["merchant_id"].as_str().unwrap(): 1000}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.body["platform_fee"], 300);
    assert_eq!(
        app.get(&format!("/orders/{}", first["id"].as_str().unwrap()), Some(&shopper)).await.body["platform_fee"],
        150
    );
    let bad = app
        .call(
            reqwest::Method::PUT,
            "/admin/fees",
            Some(&op),
            Some(json!({"kinds": {"shop": 1}, "merchants": {"mer_nope": 20000}})),
        )
        .await;
    assert_eq!(fields(&assert_problem(&bad, 422, "validation_failed")), ["kinds.shop", "merchants.mer_nope"]);
    assert_problem(
        &app.call(reqwest::Method::PUT, "/admin/fees", Some(&shopper), Some(json!({"kinds": {}}))).await,
        403,
        "forbidden",
    );
    // Donations carry no commission.
    let (owner, _) = app.signup("npo_owner").await;
    let npo = app
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "River", "handle": "river", "kind": "nonprofit", "country": "US"}),
        )
        .await
        .body;
    let gift = app
        .post(
            "/products",
            Some(npo["api_key"].as_str().unwrap()),
            json!({"name": "Give", "kind": "donation", "donation": {"min": 100, "max": 10000}}),
        )
        .await
        .body;
    let r = app.post("/orders", Some(&shopper), json!({"lines": [{"variant_id": gift["variants"][0]["id"], "amount": 2500}], "payment": card("4242424242424242")})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!((r.body["totals"]["total"].as_i64(), r.body["platform_fee"].as_i64()), (Some(2500), Some(0)));
    assert_eq!(r.body["shipping_address"], json!(null));
    let r = app.post("/orders", Some(&shopper), json!({"lines": [{"variant_id": gift["variants"][0]["id"], "amount": 5}], "payment": card("4242424242424242")})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines[0].amount"]);
    app.stop().await;
}

#[tokio::test]
async fn the_reconciler_recovers_what_a_crash_left_half_done() {
    let app = spawn_app().await;
    let (_, p, shopper) = setup(&app, 5).await;
    let vid = variant(&p, "S", "red");
    let db = app.db().clone();
    let now = buyline_core::types::now_micros();

    // 1. Crash after authorising, before the order committed: the processor holds money with
    //    no order, the checkout is stuck `completing`, the stock is reserved.
    let c = app.post("/checkouts", Some(&shopper), json!({"lines": [{"variant_id": vid}]})).await.body;
    let cid = c["id"].as_str().unwrap();
    let me = app.get("/me", Some(&shopper)).await.body;
    let attempt = db.claim_checkout(cid, me["id"].as_str().unwrap(), now).await.unwrap().unwrap();
    assert!(db.reserve_stock(cid, &[(vid.clone(), 1)], now + 600_000_000).await.unwrap().is_ok());
    let (read, write) = db.pools();
    let processor = buyline_test_processor::TestProcessor::new(read, write, app.url.clone());
    let mut e = buyline_core::error::Errors::default();
    let card_in = buyline_core::payment::CardInput {
        number: "4242424242424242".into(),
        exp_month: 12,
        exp_year: 2030,
        cvc: "123".into(),
        name: None,
    };
    let the_card = buyline_core::payment::Card::parse("c", &card_in, (2026, 1), &mut e).unwrap();
    use buyline_core::payment::Processor;
    let auth = processor
        .authorize(buyline_core::payment::AuthorizeRequest {
            idempotency_key: format!("{cid}.{attempt}"),
            amount: buyline_core::types::Money::new(3000, buyline_core::types::Currency::Usd),
            card: the_card,
            description: "crash".into(),
            return_url: String::new(),
        })
        .await
        .unwrap();
    let buyline_core::payment::Authorization::Authorized { payment_id } = auth else { panic!("authorised") };
    assert_eq!(stock_of(&app, &p, &vid).await, 4);

    // 2. Crash after the order committed, before capture: a paid order not captured.
    let o = app.buy(&shopper, &vid, "4242424242424242").await.body;
    let oid = o["id"].as_str().unwrap();
    let mut conn = sqlx_conn(&app).await;
    as_before_its_capture(&mut conn, oid).await;

    let report = app.services().reconcile(now + 3 * 60 * 1_000_000).await.unwrap();
    assert_eq!((report.voided, report.captured, report.reopened), (1, 1, 1), "{report:?}");
    assert_eq!(processor.status(&payment_id).await.unwrap(), buyline_core::payment::PaymentStatus::Voided);
    assert_eq!(stock_of(&app, &p, &vid).await, 4, "the crashed checkout's unit is back; the paid one stays sold");
    let o = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
    assert_eq!(o["captured"], true);
    assert_eq!(app.trial_balance().await["totals"], json!({"USD": 0}));
    // Running it again changes nothing: every step is idempotent.
    let again = app.services().reconcile(now + 4 * 60 * 1_000_000).await.unwrap();
    assert_eq!(again, buyline_core::service::ReconcileReport::default());
    // The reopened checkout can still be paid.
    let r = app
        .post(
            &format!("/checkouts/{cid}/complete"),
            Some(&shopper),
            json!({"shipping_address": address(), "payment": card("4242424242424242")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.stop().await;
}

/// A purchase is answered before its capture, so a merchant can refund, cancel or fulfil an
/// order whose money is not yet taken: the money is taken first (and a refund then gives it
/// back), and the ledger and the processor agree. (The order is put back as it was before its capture, as
/// the crash test above does, so that the capture is surely still to come.)
#[tokio::test]
async fn refunds_and_shipping_take_the_payment_first_when_its_capture_has_not_happened_yet() {
    let app = spawn_app().await;
    let (key, p, shopper) = setup(&app, 3).await;
    let vid = variant(&p, "M", "red");
    let mut conn = sqlx_conn(&app).await;
    let mut uncaptured = Vec::new();
    for _ in 0..3 {
        let o = app.buy(&shopper, &vid, "4242424242424242").await.body;
        let oid = o["id"].as_str().unwrap().to_string();
        as_before_its_capture(&mut conn, &oid).await;
        let back = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
        assert_eq!(back["captured"], false);
        uncaptured.push(oid);
    }
    assert_eq!(receivable(&app.trial_balance().await), None, "nothing booked while the captures are to come");

    // A partial refund of the first: captured, booked, then 1,000 given back.
    let r = app.post(&format!("/merchant/orders/{}/refund", uncaptured[0]), Some(&key), json!({"amount": 1000})).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(r.body["status"], "partially_refunded");
    // A cancellation of the second: captured, then given back in full.
    let r = app.post(&format!("/merchant/orders/{}/cancel", uncaptured[1]), Some(&key), json!({})).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(r.body["status"], "canceled");
    // Shipping the third: captured before it ships.
    let r = app
        .post(
            &format!("/merchant/orders/{}/fulfill", uncaptured[2]),
            Some(&key),
            json!({"carrier": "UPS", "tracking_number": "1Z999"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(r.body["status"], "fulfilled");
    for oid in &uncaptured {
        let o = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
        assert_eq!(o["captured"], true, "{o}");
    }
    let tb = app.trial_balance().await;
    assert_eq!(tb["totals"], json!({"USD": 0}));
    assert_eq!(receivable(&tb), Some(json!(5000)), "3,000 taken three times, 1,000 and 3,000 given back");
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("select p.status, p.refunded from processor_payments p join orders o on o.payment_id = p.id where o.id in ($1, $2) order by o.created_at")
            .bind(&uncaptured[0])
            .bind(&uncaptured[1])
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(statuses, vec![("captured".to_string(), 1000), ("captured".to_string(), 3000)]);
    app.stop().await;
}

/// Puts a captured order back as it was before its capture (a crash between its commit and
/// its capture): not marked captured, no ledger postings, the payment only authorised.
async fn as_before_its_capture(conn: &mut sqlx::AnyConnection, order_id: &str) {
    sqlx::query("update orders set captured_at = null where id = $1").bind(order_id).execute(&mut *conn).await.unwrap();
    sqlx::query("delete from ledger_entries where order_id = $1").bind(order_id).execute(&mut *conn).await.unwrap();
    sqlx::query(
        "update processor_payments set status = 'authorized' where id = (select payment_id from orders where id = $1)",
    )
    .bind(order_id)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// The ledger's `processor_receivable` balance in a trial balance (none before any capture).
fn receivable(tb: &Value) -> Option<Value> {
    tb["data"].as_array().unwrap().iter().find(|l| l["account"] == "processor_receivable").map(|l| l["balance"].clone())
}

async fn sqlx_conn(app: &TestApp) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&app.database_url).await.unwrap()
}

#[tokio::test]
async fn no_card_number_or_cvc_in_any_log_line_at_trace_level() {
    // The real binary in its own process, logging everything at TRACE into a file: what an
    // operator's log collector would keep. (A subscriber inside the test process shares
    // tracing's per-callsite interest with every other test and could miss events.)
    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => fresh_postgres(&base).await,
        _ => buyline::config::database_url(dir.path(), None),
    };
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let admin = format!("op_test_{}", rand::random::<u64>());
    let server = ChildServer::start_with(dir.path(), &database_url, &admin, |cmd| {
        cmd.env("BUYLINE_LOG", "trace").stdout(log.try_clone().unwrap()).stderr(log);
    })
    .await;
    let url = server.url.clone();
    let app = TestApp::external(url, admin, database_url, tempfile::tempdir().unwrap());
    let (_, p, shopper) = setup(&app, 10).await;
    let vid = variant(&p, "M", "red");
    let numbers = ["4242424242424242", "4000000000000002", "4000000000009995", "4000002500003155", "5555555555554444"];
    for n in numbers {
        let body = json!({"lines": [{"variant_id": vid}], "shipping_address": address(),
            "payment": {"card": {"number": n, "exp_month": 12, "exp_year": 2031, "cvc": "987"}}});
        let r = app.post("/orders", Some(&shopper), body).await;
        assert!(r.status == 201 || r.status == 402, "{}", r.text);
    }
    // A malformed card too: validation errors name the field, never echo the value.
    let bad = json!({"lines": [{"variant_id": vid}], "shipping_address": address(),
        "payment": {"card": {"number": "4242424242424241", "exp_month": 12, "exp_year": 2031, "cvc": "987"}}});
    let r = app.post("/orders", Some(&shopper), bad).await;
    assert!(!r.text.contains("4242424242424241"));
    server.stop();
    let logs = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).to_string();
    assert!(
        logs.contains("TRACE") && logs.contains("order committed"),
        "trace-level logs of the purchases were captured"
    );
    for n in numbers.iter().chain(["4242424242424241"].iter()) {
        assert!(!logs.contains(n), "card number {n} in the logs");
        assert!(!logs.contains(&n[..12]), "most of card number {n} in the logs");
    }
    // "987" alone may turn up in a timing or an id; a leaked CVC shows as a value: quoted
    // (a JSON body, a Debug of a string) or assigned to a cvc field.
    let lower = logs.to_lowercase();
    for leak in ["\"987\"", "'987'", "\\\"987\\\"", "cvc=987", "cvc: 987", "cvc:987"] {
        assert!(!lower.contains(leak), "the CVC is in the logs as {leak}");
    }
}

/// A purchase prices itself from a copy of the catalogue its server read up to a second ago;
/// a change made on another server in that second is still what it charges. Each round warms
/// the second server's copy with a purchase, changes the tax rate (the merchant) and, every
/// other round, the price (the product) on the first, and buys at once on the second: one
/// line (PostgreSQL's one-statement reservation) and two lines (the reservation job). A round
/// that took longer than the copy lives proves nothing and is run again.
#[tokio::test]
async fn a_price_changed_on_one_server_is_what_another_charges_at_once() {
    let app = spawn_app().await;
    let (key, p, shopper) = setup(&app, 100).await;
    let pid = p["id"].as_str().unwrap();
    let (s_red, m_blue) = (variant(&p, "S", "red"), variant(&p, "M", "blue"));
    let (other, b) = KilledUnlessStopped::beside(&app).await;
    let mut price = 2500;
    let (mut proved_price, mut proved_tax) = (false, false);
    for round in 1..=8i64 {
        let warm = b.buy(&shopper, &s_red, "4242424242424242").await;
        assert_eq!(warm.status, 201, "{}", warm.text);
        let warmed = std::time::Instant::now();
        let price_changes = round % 2 == 1;
        if price_changes {
            price = 2500 + 100 * round;
            for vid in [&s_red, &m_blue] {
                let r =
                    app.patch(&format!("/products/{pid}/variants/{vid}"), Some(&key), json!({"price": price})).await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }
        let r = app.patch("/merchant", Some(&key), json!({"tax_rates": {"US": 100 * round}})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let one = b.buy(&shopper, &s_red, "4242424242424242").await;
        assert_eq!(one.status, 201, "{}", one.text);
        let two = b
            .post(
                "/orders",
                Some(&shopper),
                json!({"lines": [{"variant_id": s_red}, {"variant_id": m_blue}],
                       "shipping_address": address(), "payment": card("4242424242424242")}),
            )
            .await;
        assert_eq!(two.status, 201, "{}", two.text);
        let in_time = warmed.elapsed() < std::time::Duration::from_millis(900);
        eprintln!("round {round}: changed and bought {:?} after the warming purchase", warmed.elapsed());
        for (o, lines) in [(&one.body, 1), (&two.body, 2)] {
            let subtotal = price * lines;
            let tax = ((subtotal + 500) * 100 * round + 5000) / 10_000;
            assert_eq!(o["totals"]["subtotal"], subtotal, "round {round}: {o}");
            assert_eq!(o["totals"]["tax"], tax, "round {round}: the tax rate set on the other server; {o}");
            assert_eq!(o["lines"][0]["unit_price"], price, "{o}");
        }
        if in_time {
            proved_price |= price_changes;
            proved_tax |= !price_changes;
            if proved_price && proved_tax {
                break;
            }
        }
    }
    assert!(proved_price && proved_tax, "no round of each kind ran inside the cache's second");
    other.stop();
    app.stop().await;
}

/// Captures are recorded in groups (`service/captures.rs`): one write marks every order of a
/// group captured and posts each one's ledger transaction. Two groups that share orders,
/// written at once (a purchase's group and the reconciler's), and a third later, post each
/// order once; every write answers the orders as captured.
#[tokio::test]
async fn captures_recorded_in_groups_post_each_order_once() {
    use buyline_core::checkout::{capture_postings, CaptureRecord};
    let app = spawn_app().await;
    let (_key, p, shopper) = setup(&app, 10).await;
    // Orders whose capture is not recorded yet: 3-D Secure ones, waiting on the challenge.
    let mut records = Vec::new();
    for size in ["S", "M"] {
        let r = app.buy(&shopper, &variant(&p, size, "red"), "4000002500003155").await;
        assert_eq!(r.body["status"], "requires_action", "{}", r.text);
        let o = &r.body;
        records.push(CaptureRecord {
            order_id: o["id"].as_str().unwrap().to_string(),
            currency: "USD".into(),
            postings: capture_postings(
                o["merchant_id"].as_str().unwrap(),
                o["totals"]["total"].as_i64().unwrap(),
                o["platform_fee"].as_i64().unwrap(),
            ),
        });
    }
    assert_eq!(receivable(&app.trial_balance().await), None, "nothing captured yet");
    let (a, b) = (records[0].clone(), records[1].clone());
    let now = buyline_core::types::now_micros();
    let db = app.db();
    let (ab, ba) = ([a.clone(), b.clone()], [b.clone(), a.clone()]);
    let (one, two) = tokio::join!(db.mark_captured(&ab, now), db.mark_captured(&ba, now));
    let mut want = vec![a.order_id.clone(), b.order_id.clone()];
    want.sort();
    for got in [one.unwrap(), two.unwrap()] {
        let mut got = got;
        got.sort();
        assert_eq!(got, want);
    }
    let again = db.mark_captured(std::slice::from_ref(&a), now).await.unwrap();
    assert_eq!(again, std::slice::from_ref(&a.order_id));
    let total = 2 * (2500 + 500);
    let tb = app.trial_balance().await;
    assert_eq!(receivable(&tb), Some(json!(total)), "each order posted once: {tb}");
    assert!(tb["data"].as_array().unwrap().iter().map(|l| l["balance"].as_i64().unwrap()).sum::<i64>() == 0);
    for r in &records {
        let o = app.get(&format!("/orders/{}", r.order_id), Some(&shopper)).await;
        assert_eq!(o.body["captured"], true, "{}", o.text);
    }
    app.stop().await;
}
