//! `/admin`, the operator's console, over plain HTTP as a browser without JavaScript uses
//! it: the token log-in, the rollout flag and its kill switch, fees, merchants, the trial
//! balance and the audit log — and that nobody else gets anything from it.

use crate::helpers::*;
use reqwest::Method;

async fn logged_in(app: &TestApp) -> Browser {
    let b = Browser::new(app);
    let (status, _, loc) = b.submit("/admin", "/admin/login", &[("token", &app.admin_token)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/admin")));
    b
}

#[tokio::test]
async fn the_operator_logs_in_with_the_token_and_nobody_else_gets_in() {
    let app = spawn_app().await;
    let (shopper, _) = app.signup("ann").await;
    let (key, m) = app.merchant("acme").await;

    // Anonymous: the log-in form, nothing of the console.
    let anon = Browser::new(&app);
    let (status, page) = anon.get("/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("Operator token") && !page.contains("Kill switch"));

    // A wrong token is refused beside the field, and is never echoed.
    let (status, page, _) = anon.submit("/admin", "/admin/login", &[("token", "guess-123")]).await;
    assert_eq!(status, 401);
    assert!(page.contains("id=\"token-error\"") && !page.contains("guess-123"));

    // A shopper's own session gives nothing either, and their console forms change nothing.
    let ann = Browser::new(&app);
    ann.submit("/login", "/login", &[("login", "ann"), ("password", "correct horse battery")]).await;
    let (_, page) = ann.get("/admin").await;
    assert!(page.contains("Operator token") && !page.contains("Kill switch"));
    let (status, _, _) = ann.submit("/admin", "/admin/kill", &[("confirm", "yes")]).await;
    assert_eq!(status, 401);
    let (status, _) = ann.get(&format!("/admin/merchants/{}", m["id"].as_str().unwrap())).await;
    assert_eq!(status, 401);
    let flag = app.get("/admin/flags/buy_button", Some(&app.admin_token)).await;
    assert_eq!(flag.body["enabled"], true);
    // Neither a shopper's bearer token nor a merchant key is the operator's.
    for token in [shopper.as_str(), key.as_str()] {
        assert_eq!(app.get("/admin/ledger/trial_balance", Some(token)).await.status.as_u16(), 403);
    }

    // The operator: the console, with a session cookie scoped to /admin.
    let op = Browser::new(&app);
    let (_, page) = op.get("/admin").await;
    let token = csrf_of(&page);
    let r = op
        .client
        .post(format!("{}/admin/login", app.url))
        .form(&[("token", app.admin_token.as_str()), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("bl_operator=op_"), "{cookie}");
    assert!(cookie.contains("Path=/admin") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
    let (status, page) = op.get("/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("Kill switch") && page.contains("acme") && page.contains("operator.log_in"));
    assert!(!page.contains(&app.admin_token), "the operator token is never shown");

    // Leaving ends the session on the server, not only in this browser.
    let session = cookie.split(';').next().unwrap().trim_start_matches("bl_operator=").to_string();
    op.submit("/admin", "/admin/logout", &[]).await;
    let replay = reqwest::Client::new()
        .get(format!("{}/admin", app.url))
        .header("cookie", format!("bl_operator={session}"))
        .send()
        .await
        .unwrap();
    assert!(replay.text().await.unwrap().contains("Operator token"));
}

#[tokio::test]
async fn rollout_kill_switch_and_fees_from_the_console_are_the_apis_and_audited() {
    let app = spawn_app().await;
    let (_, m) = app.merchant("acme").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let op = logged_in(&app).await;

    // Turn GB on, half the shoppers, a 10 % holdout.
    let fields =
        [("enabled", "1"), ("countries", "US, gb"), ("percent", "50"), ("holdout_percent", "10"), ("merchants", "")];
    let (status, _, loc) = op.submit("/admin", "/admin/flag", &fields).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/admin#rollout")));
    let flag = app.get("/admin/flags/buy_button", Some(&app.admin_token)).await.body;
    assert_eq!(flag["countries"], serde_json::json!(["US", "GB"]));
    assert_eq!((flag["percent"].as_i64(), flag["holdout_percent"].as_i64()), (Some(50), Some(10)));
    assert_eq!(flag["merchants"], serde_json::Value::Null);

    // Bad input: errors beside the fields, typed values kept, nothing saved.
    let bad = [
        ("enabled", "1"),
        ("countries", "US, Narnia"),
        ("percent", "150"),
        ("holdout_percent", "0"),
        ("merchants", ""),
    ];
    let (status, page, _) = op.submit("/admin", "/admin/flag", &bad).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"percent-error\"") && page.contains("value=\"US, Narnia\""));
    let (status, page, _) = op
        .submit("/admin", "/admin/flag", &[("countries", "US, ZZZ"), ("percent", "100"), ("holdout_percent", "0")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"countries-error\""));
    assert_eq!(app.get("/admin/flags/buy_button", Some(&app.admin_token)).await.body, flag);

    // The kill switch needs its confirmation.
    let (status, page, _) = op.submit("/admin", "/admin/kill", &[]).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"confirm-error\""));
    assert_eq!(app.get("/admin/flags/buy_button", Some(&app.admin_token)).await.body["enabled"], true);
    let (status, _, _) = op.submit("/admin", "/admin/kill", &[("confirm", "yes")]).await;
    assert_eq!(status, 303);
    let off = app.get("/admin/flags/buy_button", Some(&app.admin_token)).await.body;
    assert_eq!(off["enabled"], false);
    assert_eq!(off["countries"], flag["countries"], "the kill switch changes nothing else");
    let (_, page) = op.get("/admin").await;
    assert!(page.contains("Buy is off everywhere"));

    // Fees: a kind and a per-merchant override, as the API sees them.
    let fees = [
        ("kind_retailer", "400"),
        ("kind_brand", "500"),
        ("kind_artist", "500"),
        ("kind_nonprofit", "0"),
        ("override_merchant", mid.as_str()),
        ("override_bps", "250"),
    ];
    let (status, _, _) = op.submit("/admin", "/admin/fees", &fees).await;
    assert_eq!(status, 303);
    let policy = app.call(Method::GET, "/admin/fees", Some(&app.admin_token), None).await.body;
    assert_eq!(policy["kinds"]["retailer"], 400);
    assert_eq!(policy["merchants"][&mid], 250);
    let (_, page) = op.get(&format!("/admin/merchants/{mid}")).await;
    assert!(page.contains("250 basis points"));
    // An override for no merchant is refused beside the merchant field.
    let mut unknown = fees;
    unknown[4] = ("override_merchant", "mer_nobody");
    let (status, page, _) = op.submit("/admin", "/admin/fees", &unknown).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"override_merchant-error\"") && page.contains("value=\"mer_nobody\""));
    let (status, _, _) = op.submit("/admin", &format!("/admin/fees/overrides/{mid}/delete"), &[]).await;
    assert_eq!(status, 303);
    let policy = app.call(Method::GET, "/admin/fees", Some(&app.admin_token), None).await.body;
    assert!(policy["merchants"].get(&mid).is_none());

    // Every action is in the audit log — the console's and the API's alike.
    app.call(Method::PUT, "/admin/flags/buy_button", Some(&app.admin_token), Some(flag.clone())).await;
    let (_, page) = op.get("/admin").await;
    let audit = &page[page.find("id=\"audit-h\"").unwrap()..];
    assert_eq!(audit.matches("flag.buy_button").count(), 3, "saved, killed, and the API's put");
    assert_eq!(audit.matches("fees.set").count(), 2);
    assert!(audit.contains("operator.log_in"));
}

#[tokio::test]
async fn the_console_finds_merchants_and_shows_a_balanced_ledger_and_the_vault_key() {
    let app = spawn_app().await;
    app.merchant("acme").await;
    app.merchant("zenith").await;
    let (shopper, _) = app.signup("ann").await;
    let m = app.merchant("shirts").await;
    let (key, m) = (m.0, m.1);
    let p = app.shirt(&key, 5).await;
    let vid = variant(&p, "M", "red");
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.status.as_u16(), 201);

    let op = logged_in(&app).await;
    let (_, page) = op.get("/admin?q=zen").await;
    let list = &page[page.find("id=\"merchants-h\"").unwrap()..page.find("id=\"ledger-h\"").unwrap()];
    assert!(list.contains("@zenith") && !list.contains("@acme"));
    // Pattern characters are matched as themselves.
    let (_, page) = op.get("/admin?q=%25").await;
    let list = &page[page.find("id=\"merchants-h\"").unwrap()..page.find("id=\"ledger-h\"").unwrap()];
    assert!(list.contains("No merchant matches"));
    let (status, page) = op.get(&format!("/admin?q={}", "x".repeat(101))).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"q-error\""));

    let (_, page) = op.get("/admin").await;
    assert!(page.contains("USD: $0.00 (balanced)"), "trial balance at zero");
    let vault = &page[page.find("id=\"vault-key\"").unwrap()..];
    assert!(vault.contains("Not rotated yet"));

    // The merchant's page lists its order; an unknown merchant is a 404.
    let (status, page) = op.get(&format!("/admin/merchants/{}", m["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert!(page.contains("ord_") && page.contains("paid"));
    assert_eq!(op.get("/admin/merchants/mer_nobody").await.0, 404);
}

#[tokio::test]
async fn wrong_operator_tokens_are_throttled_per_client_and_the_count_survives_a_restart() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    for i in 0..10 {
        let (status, _, _) = b.submit("/admin", "/admin/login", &[("token", &format!("guess-{i}"))]).await;
        assert_eq!(status, 401);
    }
    // The eleventh guess from this address is refused before the token is even compared.
    let (status, page, _) = b.submit("/admin", "/admin/login", &[("token", &app.admin_token)]).await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Try again in"));
    // The count is kept in the database, shared by every node: a restart does not reset it.
    let app = app.restart(|_| {}).await;
    let b = Browser::new(&app);
    let (status, _, _) = b.submit("/admin", "/admin/login", &[("token", &app.admin_token)]).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn the_operator_pays_merchants_and_reads_any_posts_funnel_from_the_console() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("shirts").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let p = app.shirt(&key, 5).await;
    let post = app.post("/posts", Some(&key), serde_json::json!({"text": "New shirts", "product_id": p["id"]})).await;
    assert_eq!(post.status.as_u16(), 201, "{}", post.text);
    let post_id = post.body["id"].as_str().unwrap().to_string();
    let (shopper, _) = app.signup("ann").await;
    assert_eq!(app.buy(&shopper, &variant(&p, "M", "red"), "4242424242424242").await.status.as_u16(), 201);

    // Nobody but the operator: the log-in form, and nothing paid.
    let anon = Browser::new(&app);
    let (status, _, _) = anon.submit("/admin", "/admin/payouts", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(anon.get(&format!("/admin/funnel/{post_id}")).await.0, 401);
    assert_eq!(app.get("/admin/payouts", Some(&app.admin_token)).await.body["data"], serde_json::json!([]));

    let op = logged_in(&app).await;
    // The merchant's page: what it is owed, and its post with a funnel.
    let (_, page) = op.get(&format!("/admin/merchants/{mid}")).await;
    assert!(page.contains("Owed now: <strong>$"), "{page}");
    assert!(page.contains(&format!("/admin/funnel/{post_id}")));
    let (status, page) = op.get(&format!("/admin/funnel/{post_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Does Buy convert?") && page.contains("← Operator console"));
    let (status, _, loc) = op.submit("/admin", &format!("/admin/funnel?post_id={post_id}"), &[]).await;
    assert_eq!(status, 405, "the funnel finder is a GET form: {loc:?}");
    let r = op.client.get(format!("{}/admin/funnel?post_id={post_id}", app.url)).send().await.unwrap();
    assert_eq!(r.headers()["location"], format!("/admin/funnel/{post_id}").as_str());

    // A payout for a merchant that does not exist is refused beside the field.
    let (status, page, _) = op.submit("/admin", "/admin/payouts", &[("merchant_id", "mer_nobody")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"merchant_id-error\"") && page.contains("value=\"mer_nobody\""));
    // Run payouts now: one payout, the balance is paid, the books still balance, audited.
    let (status, page, _) = op.submit("/admin", "/admin/payouts", &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("1 payout paid."), "{}", &page[page.find("<main").unwrap_or(0)..][..400.min(page.len())]);
    let payouts = app.get("/admin/payouts", Some(&app.admin_token)).await.body;
    assert_eq!(payouts["data"].as_array().unwrap().len(), 1);
    assert_eq!(payouts["data"][0]["merchant_id"], mid.as_str());
    assert!(page.contains(payouts["data"][0]["id"].as_str().unwrap()));
    let balance = app.get("/merchant/balance", Some(&key)).await.body;
    assert_eq!(balance["data"][0]["balance"], 0);
    assert!(page.contains("USD: $0.00 (balanced)"));
    assert!(page[page.find("id=\"audit-h\"").unwrap()..].contains("payouts.run"));
    // Again: nothing left to pay, nothing paid twice.
    let (_, page, _) = op.submit("/admin", "/admin/payouts", &[]).await;
    assert!(page.contains("Nothing to pay"));
    assert_eq!(app.get("/admin/payouts", Some(&app.admin_token)).await.body["data"].as_array().unwrap().len(), 1);
}
