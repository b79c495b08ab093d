//! What an attacker tried against the pages and the API (issue 11): open redirects through
//! `next`, control characters that reached a header, CSRF tokens an attacker could plant,
//! responses with secrets that a cache could keep, another shopper's order return page,
//! and receipt e-mails that did not say their charset.

use crate::helpers::*;
use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION};
use serde_json::json;

/// A client that sends exactly the cookies it is given and follows no redirect.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
    html[at..].split('"').next().unwrap().to_string()
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string())
}

/// GET `path` with `cookie`; status, `Location`, body.
async fn get_with(app: &TestApp, path: &str, cookie: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = raw_client().get(format!("{}{path}", app.url));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let r = req.send().await.unwrap();
    let loc = location(&r);
    (r.status().as_u16(), loc, r.text().await.unwrap())
}

/// POST a form to `path` with `cookie`; status and `Location`.
async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, Option<String>) {
    let r = raw_client().post(format!("{}{path}", app.url)).header(COOKIE, cookie).form(form).send().await.unwrap();
    (r.status().as_u16(), location(&r))
}

#[tokio::test]
async fn next_sends_only_to_a_local_path_of_safe_characters() {
    let app = spawn_app().await;
    let (token, _) = app.signup("nexty").await;
    let me = format!("bl_session={token}");
    let evil = [
        "/%09/evil.example",
        "/%0a/evil.example",
        "//evil.example",
        "/%5Cevil.example",
        "/%5C%5Cevil.example",
        "https://evil.example/",
        "/%0d%0aSet-Cookie:%20x=1",
    ];
    for next in evil {
        // Signed in, the log-in page sends the browser on at once.
        let (status, loc, _) = get_with(&app, &format!("/login?next={next}"), Some(&me)).await;
        assert_eq!((status, loc.as_deref()), (303, Some("/")), "GET next={next}");
        // Signed out, the form carries it to the log-in POST: it is `/` by then.
        let (status, _, page) = get_with(&app, &format!("/login?next={next}"), None).await;
        assert_eq!(status, 200);
        assert!(page.contains("name=\"next\" value=\"/\""), "next={next}: {page}");
    }
    let (_, loc, _) = get_with(&app, "/login?next=/u/nexty", Some(&me)).await;
    assert_eq!(loc.as_deref(), Some("/u/nexty"), "a local path still works");

    // The log-in POST itself, with a tab that browsers drop.
    let (_, _, page) = get_with(&app, "/login", Some("bl_presession=pre_nextyBrowserNextyBrowser00")).await;
    let csrf = csrf_of(&page);
    let (status, loc) = post_form(
        &app,
        "/login",
        "bl_presession=pre_nextyBrowserNextyBrowser00",
        &[("login", "nexty"), ("password", "correct horse battery"), ("next", "/\t/evil.example"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));

    // The hashtag-cart consent page takes a `next` too.
    app.merchant("nextshop").await;
    let (_, _, page) = get_with(&app, "/connect/nextshop", Some(&me)).await;
    let csrf = csrf_of(&page);
    let (status, loc) =
        post_form(&app, "/connect/nextshop?next=/%09/evil.example", &me, &[("action", "link"), ("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/connect/nextshop")));
    app.stop().await;
}

#[tokio::test]
async fn control_characters_in_paths_are_404_or_a_safe_redirect_never_500() {
    let app = spawn_app().await;
    let (token, _) = app.signup("junky").await;
    let me = format!("bl_session={token}");
    let paths = [
        "/buy/%0a",
        "/buy/%7f",
        "/buy/%0d%0aSet-Cookie:%20x=1",
        "/orders/%0d",
        "/orders/%00",
        "/orders/%0a/return",
        "/checkouts/%0a",
        "/connect/%0a",
        "/u/%0a",
    ];
    for path in paths {
        // Signed out: to the log-in page, with no `next` that could not be one.
        let (status, loc, _) = get_with(&app, path, None).await;
        assert!(
            (status == 303 && loc.as_deref() == Some("/login")) || status == 404,
            "{path} signed out: {status} {loc:?}"
        );
        // Signed in: there is no such thing.
        let (status, _, _) = get_with(&app, path, Some(&me)).await;
        assert_eq!(status, 404, "{path} signed in");
    }
    let (status, loc, _) = get_with(&app, "/login?next=/%0d%0aSet-Cookie:%20x=1", Some(&me)).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    app.stop().await;
}

#[tokio::test]
async fn a_planted_csrf_cookie_does_not_make_a_token() {
    let app = spawn_app().await;
    let (token, account) = app.signup("victim").await;
    let me = format!("bl_session={token}");
    let forged = "forgedforgedforgedforged0123456789";
    // The old double-submit: any cookie value echoed in the field.
    let planted = format!("{me}; bl_csrf={forged}; bl_presession={forged}");
    let (status, _) = post_form(&app, "/compose", &planted, &[("text", "forged post"), ("csrf", forged)]).await;
    assert_eq!(status, 403);
    // A token the attacker got for their own pre-session id does not fit the victim's session.
    let attacker = "pre_attackerattackerattacker00";
    let (_, _, page) = get_with(&app, "/login", Some(&format!("bl_presession={attacker}"))).await;
    let theirs = csrf_of(&page);
    let (status, _) = post_form(
        &app,
        "/compose",
        &format!("{me}; bl_presession={attacker}"),
        &[("text", "forged post"), ("csrf", &theirs)],
    )
    .await;
    assert_eq!(status, 403);
    // Nor another session's token.
    let (other, _) = app.signup("attacker").await;
    let (_, _, page) = get_with(&app, "/", Some(&format!("bl_session={other}"))).await;
    let (status, _) = post_form(&app, "/compose", &me, &[("text", "forged post"), ("csrf", &csrf_of(&page))]).await;
    assert_eq!(status, 403);
    // The cookie-authenticated API: the header must be the session's token, not a cookie's.
    let r = raw_client()
        .post(format!("{}/api/v1/posts", app.url))
        .header(COOKIE, &planted)
        .header("x-csrf-token", forged)
        .json(&json!({"text": "forged post"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let handle = account["handle"].as_str().unwrap();
    let posts = app.get(&format!("/accounts/{handle}/posts"), None).await;
    assert!(!posts.text.contains("forged post"), "{}", posts.text);

    // The page's own token works, for forms and for the API.
    let (_, _, page) = get_with(&app, "/", Some(&me)).await;
    let real = csrf_of(&page);
    let (status, loc) = post_form(&app, "/compose", &me, &[("text", "real post"), ("csrf", &real)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let r = raw_client()
        .post(format!("{}/api/v1/posts", app.url))
        .header(COOKIE, &me)
        .header("x-csrf-token", &real)
        .json(&json!({"text": "real api post"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let posts = app.get(&format!("/accounts/{handle}/posts"), None).await;
    assert!(posts.text.contains("real post") && posts.text.contains("real api post"), "{}", posts.text);
    app.stop().await;
}

#[tokio::test]
async fn servers_on_one_database_accept_each_others_forms() {
    let a = spawn_app().await;
    let shared = a.database_url.clone();
    let b = spawn_with(move |c| c.database_url = Some(shared)).await;
    let (token, _) = a.signup("roamer").await;
    let me = format!("bl_session={token}");
    // The key is in the database, not in either process: a page from one server posts to
    // the other, signed in and signed out.
    let (_, _, page) = get_with(&a, "/", Some(&me)).await;
    let (status, loc) = post_form(&b, "/compose", &me, &[("text", "from a to b"), ("csrf", &csrf_of(&page))]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let pre = "bl_presession=pre_roamerRoamerRoamerRoamer00";
    let (_, _, page) = get_with(&b, "/login", Some(pre)).await;
    let form = [("login", "roamer"), ("password", "correct horse battery"), ("csrf", &csrf_of(&page))];
    let (status, loc) = post_form(&a, "/login", pre, &form).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let dir = b.running_stop().await;
    let _ = std::fs::remove_dir_all(dir);
    a.stop().await;
}

#[tokio::test]
async fn responses_with_secrets_or_personal_data_are_not_stored() {
    let app = spawn_app().await;
    let no_store = |r: &Resp, what: &str| {
        assert_eq!(r.headers.get(CACHE_CONTROL).map(|v| v.to_str().unwrap()), Some("no-store"), "{what}: {}", r.text);
    };
    let r = app
        .post(
            "/accounts",
            None,
            json!({"handle": "cachey", "email": "cachey@example.com", "password": "correct horse battery", "country": "US"}),
        )
        .await;
    no_store(&r, "sign-up");
    let token = r.body["token"].as_str().unwrap().to_string();
    no_store(
        &app.post("/sessions", None, json!({"login": "cachey", "password": "correct horse battery"})).await,
        "log-in",
    );
    let r = app
        .post(
            "/merchants",
            Some(&token),
            json!({"name": "Cache shop", "handle": "cacheshop", "kind": "retailer", "country": "US"}),
        )
        .await;
    no_store(&r, "new merchant");
    let key = r.body["api_key"].as_str().unwrap().to_string();
    no_store(&app.post("/merchant/webhook_secret/rotate", Some(&key), json!({})).await, "webhook secret");
    let r = app.post("/merchant/api_key/rotate", Some(&key), json!({})).await;
    no_store(&r, "api key");
    let key = r.body["api_key"].as_str().unwrap_or(&key).to_string();
    no_store(&app.post("/payment_methods", Some(&token), card("4242424242424242")).await, "new card");
    no_store(&app.get("/payment_methods", Some(&token)).await, "cards");
    no_store(&app.post("/addresses", Some(&token), address()).await, "new address");
    no_store(&app.get("/addresses", Some(&token)).await, "addresses");
    no_store(&app.get("/me/export", Some(&token)).await, "export");
    let p = app.shirt(&key, 3).await;
    let order = app.buy(&token, &variant(&p, "M", "red"), "4242424242424242").await;
    no_store(&order, "one-tap order");
    no_store(&app.get("/orders", Some(&token)).await, "orders");
    no_store(&app.get(&format!("/orders/{}", order.body["id"].as_str().unwrap()), Some(&token)).await, "order");
    no_store(&app.get("/merchant/orders", Some(&key)).await, "merchant orders");
    // Pages and their redirects, signed in.
    for path in ["/", "/settings", "/orders", "/login?next=/settings"] {
        let r = raw_client().get(format!("{}{path}", app.url)).header(COOKIE, format!("bl_session={token}"));
        let r = r.send().await.unwrap();
        assert_eq!(r.headers().get(CACHE_CONTROL).map(|v| v.to_str().unwrap()), Some("no-store"), "{path}");
    }
    // What anyone may read stays cacheable.
    let r = app.get("/accounts/cachey", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get(CACHE_CONTROL).is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_return_page_of_another_shoppers_order_is_404() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("returnshop").await;
    let p = app.shirt(&key, 3).await;
    let (owner, _) = app.signup("owner").await;
    let (other, _) = app.signup("stranger").await;
    let o = app.buy(&owner, &variant(&p, "M", "red"), "4242424242424242").await;
    assert_eq!(o.status, 201, "{}", o.text);
    let id = o.body["id"].as_str().unwrap();
    let path = format!("/orders/{id}/return");
    let (status, _, _) = get_with(&app, &path, Some(&format!("bl_session={other}"))).await;
    assert_eq!(status, 404);
    let (status, _, _) =
        get_with(&app, "/orders/ord_doesNotExist0000000000/return", Some(&format!("bl_session={other}"))).await;
    assert_eq!(status, 404);
    // Signed out: log in first, then come back here.
    let (status, loc, _) = get_with(&app, &path, None).await;
    assert_eq!((status, loc), (303, Some(format!("/login?next={path}"))));
    // The owner comes back to their order.
    let (status, loc, _) = get_with(&app, &path, Some(&format!("bl_session={owner}"))).await;
    assert_eq!((status, loc), (303, Some(format!("/orders/{id}?placed=1"))));
    app.stop().await;
}

#[tokio::test]
async fn receipt_emails_say_they_are_utf8_plain_text() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("mailshop").await;
    let p = app.shirt(&key, 3).await;
    let (shopper, _) = app.signup("mailer").await;
    let o = app.buy(&shopper, &variant(&p, "M", "red"), "4242424242424242").await;
    assert_eq!(o.status, 201, "{}", o.text);
    let mail_dir = app.dir.path().join("mail");
    let found = mail_containing(&mail_dir, o.body["id"].as_str().unwrap()).await;
    assert!(found.contains(o.body["id"].as_str().unwrap()), "{found}");
    let headers = format!("\r\n{}\r\n", found.split("\r\n\r\n").next().unwrap().to_ascii_lowercase());
    assert!(headers.contains("\r\nmime-version: 1.0\r\n"), "{headers}");
    assert!(headers.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"), "{headers}");
    app.stop().await;
}
