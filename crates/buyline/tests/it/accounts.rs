//! Sign-up, log-in, sessions.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn sign_up_then_log_in_by_handle_or_email() {
    let app = spawn_app().await;
    let (token, account) = app.signup("Alice").await;
    assert!(token.starts_with("st_"));
    assert!(account["id"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(account["handle"], "Alice");
    assert_eq!(account["country"], "US");
    assert!(account.get("password_hash").is_none() && !account.to_string().contains("horse"));

    for login in ["alice", "@ALICE", "ALICE@example.com"] {
        let r = app.post("/sessions", None, json!({"login": login, "password": "correct horse battery"})).await;
        assert_eq!(r.status, 201, "{login}: {}", r.text);
        let me = app.get("/me", r.body["token"].as_str()).await;
        assert_eq!(me.body["handle"], "Alice");
        assert_eq!(me.body["email"], "Alice@example.com");
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_one_401() {
    let app = spawn_app().await;
    app.signup("bob").await;
    for (login, pw) in [("bob", "wrong password"), ("nobody", "correct horse battery")] {
        let r = app.post("/sessions", None, json!({"login": login, "password": pw})).await;
        let p = assert_problem(&r, 401, "unauthorized");
        assert!(!p.to_string().contains("wrong password"));
    }
    let r = app.get("/me", Some("st_notatoken")).await;
    assert_problem(&r, 401, "unauthorized");
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    assert_problem(&app.get("/me", None).await, 401, "unauthorized");
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let (token, _) = app.signup("carol").await;
    assert_eq!(app.get("/me", Some(&token)).await.status, 200);
    let r = app.call(reqwest::Method::DELETE, "/sessions", Some(&token), None).await;
    assert_eq!(r.status, 204);
    assert_problem(&app.get("/me", Some(&token)).await, 401, "unauthorized");
    app.stop().await;
}

#[tokio::test]
async fn invalid_sign_up_names_every_bad_field_and_writes_nothing() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/accounts",
            None,
            json!({"handle": "bad handle!", "email": "nope", "password": "short", "country": "XX"}),
        )
        .await;
    let p = assert_problem(&r, 422, "validation_failed");
    let mut f = fields(&p);
    f.sort();
    assert_eq!(f, ["country", "email", "handle", "password"]);
    let long = app
        .post(
            "/accounts",
            None,
            json!({"handle": "a_very_long_handle_x", "email": "a@b.co", "password": "longenough", "country": "US"}),
        )
        .await;
    assert_eq!(fields(&assert_problem(&long, 422, "validation_failed")), ["handle"]);
    // Nothing was written: the handle is still free.
    app.signup("free").await;
    app.stop().await;
}

#[tokio::test]
async fn duplicate_handle_or_email_is_409_on_that_field() {
    let app = spawn_app().await;
    app.signup("dave").await;
    let r = app
        .post("/accounts", None, json!({"handle": "DAVE", "email": "other@example.com", "password": "correct horse battery", "country": "US"}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["handle"]);
    let r = app
        .post("/accounts", None, json!({"handle": "dave2", "email": "Dave@Example.com", "password": "correct horse battery", "country": "GB"}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["email"]);
    // The clash left no half-made account behind: dave2 is still free.
    let r = app.post("/sessions", None, json!({"login": "dave2", "password": "correct horse battery"})).await;
    assert_problem(&r, 401, "unauthorized");
    app.signup("dave2").await;
    app.stop().await;
}

#[tokio::test]
async fn passwords_and_tokens_are_stored_hashed() {
    let app = spawn_app().await;
    let (token, _) = app.signup("erin").await;
    let (key, _) = app.merchant("erinshop").await;
    if app.is_sqlite() {
        let mut bytes = std::fs::read(app.dir.path().join("buyline.db")).unwrap();
        if let Ok(wal) = std::fs::read(app.dir.path().join("buyline.db-wal")) {
            bytes.extend(wal);
        }
        let hay = String::from_utf8_lossy(&bytes);
        for secret in ["correct horse battery", token.as_str(), key.as_str()] {
            assert!(!hay.contains(secret), "a secret is stored in plain text");
        }
    } else {
        use sqlx::{Connection, Row};
        let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        let rows = sqlx::query("select password_hash from accounts where password_hash is not null")
            .fetch_all(&mut c)
            .await
            .unwrap();
        for r in rows {
            let h: String = r.get(0);
            assert!(h.starts_with("$argon2id$") && !h.contains("horse"));
        }
        let dump: Vec<(String,)> =
            sqlx::query_as("select token_hash from sessions union all select key_hash from api_keys")
                .fetch_all(&mut c)
                .await
                .unwrap();
        assert!(dump.iter().all(|(h,)| h != &token && h != &key && h.len() == 64));
    }
    app.stop().await;
}

#[tokio::test]
async fn password_guessing_is_throttled_with_429_and_retry_after() {
    let app = spawn_app().await;
    app.signup("guarded").await;
    for _ in 0..10 {
        let r = app.post("/sessions", None, json!({"login": "guarded", "password": "not the password"})).await;
        assert_problem(&r, 401, "unauthorized");
    }
    let r = app.post("/sessions", None, json!({"login": "guarded", "password": "not the password"})).await;
    assert_problem(&r, 429, "rate_limited");
    let wait: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // Even the right password waits out the window: guessing cannot be confirmed.
    let r = app.post("/sessions", None, json!({"login": "guarded", "password": "correct horse battery"})).await;
    assert_problem(&r, 429, "rate_limited");
    // Other accounts are unaffected until the client itself has failed 50 times.
    app.signup("neighbour").await;
    let r = app.post("/sessions", None, json!({"login": "neighbour", "password": "correct horse battery"})).await;
    assert_eq!(r.status, 201);
    for i in 0..40 {
        app.post("/sessions", None, json!({"login": format!("nobody{i}"), "password": "guess"})).await;
    }
    let r = app.post("/sessions", None, json!({"login": "neighbour", "password": "correct horse battery"})).await;
    assert_problem(&r, 429, "rate_limited");
    app.stop().await;
}
