//! Health, readiness, metrics, OpenAPI, request ids, operator flag.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn health_ready_metrics_and_request_ids() {
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let r = app.client.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = app.client.get(format!("{}/", app.url)).send().await.unwrap();
    let csp = page.headers().get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers().get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(page.headers().get("x-frame-options").unwrap(), "DENY");
    let r = app.client.get(format!("{}/healthz", app.url)).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let app = spawn_app().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/accounts",
        "/api/v1/sessions",
        "/api/v1/posts",
        "/api/v1/posts/{id}",
        "/api/v1/timeline",
        "/api/v1/merchants",
        "/api/v1/merchant",
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/products/{id}/variants/{vid}",
        "/api/v1/accounts/{handle}/follow",
        "/api/v1/admin/flags/buy_button",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(r.body["components"]["schemas"]["Problem"].is_object());
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn operator_controls_the_buy_button_flag() {
    let app = spawn_app().await;
    let op = app.admin_token.clone();
    let r = app.get("/admin/flags/buy_button", Some(&op)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"enabled": true, "countries": ["US"], "percent": 100, "merchants": null, "holdout_percent": 0})
    );
    let (shopper, _) = app.signup("nosy").await;
    assert_problem(&app.get("/admin/flags/buy_button", Some(&shopper)).await, 403, "forbidden");
    assert_problem(&app.get("/admin/flags/buy_button", None).await, 401, "unauthorized");
    let bad = json!({"enabled": true, "countries": ["ZZ"], "percent": 101, "merchants": null, "holdout_percent": 0});
    let p = assert_problem(
        &app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&op), Some(bad)).await,
        422,
        "validation_failed",
    );
    assert_eq!(fields(&p), ["countries[0]", "percent"]);
    let new =
        json!({"enabled": true, "countries": ["US", "GB"], "percent": 50, "merchants": null, "holdout_percent": 10});
    let r = app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&op), Some(new.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/admin/flags/buy_button", Some(&op)).await.body, new);
    app.stop().await;
}

/// Two server processes on one database run the mailer side by side: each unsent e-mail is
/// claimed by one of them, so a receipt goes out once, not once per process. A claim that
/// is never marked sent (its sender died) frees the e-mail when its lease runs out.
#[tokio::test]
async fn each_email_is_claimed_by_one_sender_until_its_lease_runs_out() {
    use buyline_core::store::prelude::*;
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) => fresh_postgres(&base).await,
        Err(_) => format!("sqlite://{}?mode=rwc", dir.path().join("mail.db").display()),
    };
    // Two processes' stores on one database.
    let one = buyline_store::Db::connect(&url, 4).await.unwrap();
    let two = buyline_store::Db::connect(&url, 4).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    for i in 0..5i64 {
        sqlx::query("insert into emails (id, to_address, subject, body, created_at) values ($1, $2, $3, $4, $5)")
            .bind(format!("eml_{i}"))
            .bind("buyer@example.com")
            .bind("Your receipt")
            .bind("Thank you")
            .bind(1_000 + i)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let now = buyline_core::types::now_micros();
    let lease = now + buyline_core::service::MAIL_LEASE;
    let (a, b) = tokio::join!(one.claim_pending_emails(now, lease, 3), two.claim_pending_emails(now, lease, 3));
    let ids = |m: &[buyline_core::order::OutgoingEmail]| m.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let (a, b) = (ids(&a.unwrap()), ids(&b.unwrap()));
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    assert_eq!(all, (0..5).map(|i| format!("eml_{i}")).collect::<Vec<_>>(), "each once: {a:?} {b:?}");
    for mine in [&a, &b] {
        let mut sorted = mine.clone();
        sorted.sort();
        assert_eq!(*mine, sorted, "oldest first");
    }
    assert!(one.claim_pending_emails(now, lease, 10).await.unwrap().is_empty(), "all are claimed");
    // The first sender sends its e-mails; the second dies holding its own.
    for id in &a {
        one.mark_email_sent(id, now).await.unwrap();
    }
    assert!(two.claim_pending_emails(lease - 1, lease + 1, 10).await.unwrap().is_empty(), "still leased");
    let after = ids(&one.claim_pending_emails(lease, lease + 1_000_000, 10).await.unwrap());
    assert_eq!(after, b, "the dead sender's e-mails, and only those, are free again");
    drop(conn);
    one.close().await;
    two.close().await;
    TestApp::external(String::new(), String::new(), url, dir).stop().await;
}
