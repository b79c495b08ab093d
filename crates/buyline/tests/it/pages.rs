//! The HTML pages over plain HTTP, as a browser without JavaScript would use them.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn sign_up_post_and_see_it_without_javascript() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    let (status, home) = b.get("/").await;
    assert_eq!(status, 200);
    assert!(home.contains("Create an account"));

    // Bad input: each message beside its field, typed values kept, password not echoed.
    let (status, page, _) = b
        .submit(
            "/signup",
            "/signup",
            &[("handle", "bad handle"), ("email", "kept@example"), ("password", "short"), ("country", "ZZ")],
        )
        .await;
    assert_eq!(status, 422);
    for id in ["handle-error", "email-error", "password-error", "country-error"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        page.contains("value=\"bad handle\"")
            && page.contains("value=\"kept@example\"")
            && page.contains("value=\"ZZ\"")
    );
    assert!(!page.contains("short\""));

    let (status, _, loc) = b
        .submit(
            "/signup",
            "/signup",
            &[
                ("handle", "webby"),
                ("email", "webby@example.com"),
                ("password", "correct horse battery"),
                ("country", "US"),
            ],
        )
        .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let (_, home) = b.get("/").await;
    assert!(home.contains("@webby") && home.contains("What&#39;s happening?") || home.contains("What's happening?"));

    // Too long: the error sits beside the composer and the text is kept.
    let long = "x".repeat(300);
    let (status, page, _) = b.submit("/", "/compose", &[("text", &long)]).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"text-error\"") && page.contains(&long));

    let (status, _, loc) = b.submit("/", "/compose", &[("text", "Hello <script>alert(1)</script> #first")]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let (_, home) = b.get("/").await;
    // Hashtags link to their page (issue 14).
    assert!(home.contains(
        "Hello &lt;script&gt;alert(1)&lt;/script&gt; <a href=\"/hashtag/first\"><span class=\"tag\">#first</span></a>"
    ));
    assert!(!home.contains("<script>alert"));
    app.stop().await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    b.get("/signup").await;
    let r = b
        .client
        .post(format!("{}/signup", app.url))
        .form(&[
            ("handle", "forged"),
            ("email", "f@example.com"),
            ("password", "correct horse battery"),
            ("country", "US"),
            ("csrf", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A fresh client with no cookie at all is refused too.
    let r = app
        .client
        .post(format!("{}/signup", app.url))
        .form(&[
            ("handle", "forged"),
            ("email", "f@example.com"),
            ("password", "correct horse battery"),
            ("country", "US"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing was written.
    app.signup("forged").await;
    // A cookie-authenticated API write without X-CSRF-Token is refused.
    let (status, _, _) = b
        .submit(
            "/signup",
            "/signup",
            &[
                ("handle", "cookieguy"),
                ("email", "c@example.com"),
                ("password", "correct horse battery"),
                ("country", "US"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let r = b.client.post(format!("{}/api/v1/posts", app.url)).json(&json!({"text": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn log_in_and_out_with_the_form() {
    let app = spawn_app().await;
    app.signup("formlogin").await;
    let b = Browser::new(&app);
    let (status, page, _) =
        b.submit("/login", "/login", &[("login", "formlogin"), ("password", "nope nope nope")]).await;
    assert_eq!(status, 401);
    assert!(page.contains("id=\"login-failed\"") && page.contains("value=\"formlogin\""));
    let (status, _, loc) = b
        .submit(
            "/login?next=/u/formlogin",
            "/login",
            &[("login", "formlogin"), ("password", "correct horse battery"), ("next", "/u/formlogin")],
        )
        .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/u/formlogin")));
    // An off-site `next` is ignored.
    let (_, _, loc) = b.submit("/", "/logout", &[]).await;
    assert_eq!(loc.as_deref(), Some("/"));
    let (_, _, loc) = b
        .submit(
            "/login",
            "/login",
            &[("login", "formlogin"), ("password", "correct horse battery"), ("next", "//evil.example")],
        )
        .await;
    assert_eq!(loc.as_deref(), Some("/"));
    app.stop().await;
}

#[tokio::test]
async fn product_thread_and_profile_pages() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("pageshop").await;
    let p = app.shirt(&key, 1).await;
    let pid = p["id"].as_str().unwrap();
    let post = app.post("/posts", Some(&key), json!({"text": "Buy this", "product_id": pid})).await.body;
    let b = Browser::new(&app);
    let (status, page) = b.get(&format!("/p/{pid}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Tee</h1>") && page.contains("$25.00") && page.contains("Standard"));
    let (status, svg) = b.get(&format!("/p/{pid}/image.svg")).await;
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg"));
    let (status, page) = b.get(&format!("/posts/{}", post["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert!(page.contains("class=\"buy-card\"") && page.contains(&format!("href=\"/p/{pid}\"")));
    let (status, page) = b.get("/u/pageshop").await;
    assert_eq!(status, 200);
    assert!(page.contains("Buy this") && page.contains("Log in to follow"));
    assert_eq!(b.get("/p/prod_nothere").await.0, 404);
    assert_eq!(b.get("/u/nobody_at_all").await.0, 404);
    assert_eq!(b.get("/no/such/page").await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn merchants_set_cart_hashtags_on_the_shop_page() {
    let app = spawn_app().await;
    let (owner, _) = app.signup("shopowner").await;
    let body = json!({"name": "Page Shop", "handle": "pageshop", "kind": "retailer", "country": "US"});
    let r = app.post("/merchants", Some(&owner), body).await;
    let (mid, key) = (r.body["merchant"]["id"].as_str().unwrap(), r.body["api_key"].as_str().unwrap());
    let (rival, _) = app.merchant("rival").await;
    assert_eq!(app.patch("/merchant", Some(&rival), json!({"cart_hashtags": {"US": "#TakenCart"}})).await.status, 200);

    let b = Browser::new(&app);
    let login = [("login", "shopowner"), ("password", "correct horse battery")];
    assert_eq!(b.submit("/login", "/login", &login).await.0, 303);
    // Another shop's hashtag: the message sits beside the field, what was typed is kept.
    let fields = [("m", mid), ("tag_US", "#takencart"), ("tag_GB", "#PageBasket")];
    let (status, page, _) = b.submit("/merchant", "/merchant/cart", &fields).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"tag_US-error\"") && page.contains("another merchant"), "{page}");
    assert!(page.contains("value=\"#takencart\"") && page.contains("value=\"#PageBasket\""));

    let fields = [("m", mid), ("tag_US", "#PageCart"), ("tag_GB", "#PageBasket"), ("digital", "1")];
    let (status, _, _) = b.submit("/merchant", "/merchant/cart", &fields).await;
    assert_eq!(status, 303);
    let m = app.get("/merchant", Some(key)).await.body;
    assert_eq!(m["cart_hashtags"], json!({"GB": "#PageBasket", "US": "#PageCart"}));
    assert_eq!(m["cart_kinds"], json!(["physical", "digital"]));
    let (_, page) = b.get("/merchant").await;
    assert!(page.contains("value=\"#PageCart\"") && page.contains("name=\"digital\" value=\"1\" checked"));
    app.stop().await;
}
