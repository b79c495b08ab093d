//! The per-viewer home timeline cache (`buyline-core/src/service/home_cache.rs`) seen from
//! outside: every read below comes right after a read that filled the cache, so a cache
//! that missed a change would answer the old timeline.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

async fn texts(app: &TestApp, token: &str) -> Vec<String> {
    let r = app.get("/timeline", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().iter().map(|i| i["post"]["text"].as_str().unwrap().to_string()).collect()
}

async fn post(app: &TestApp, token: &str, body: serde_json::Value) -> String {
    let r = app.post("/posts", Some(token), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_follower_sees_a_new_post_at_once_and_pages_stay_whole() {
    let app = spawn_app().await;
    let (reader, _) = app.signup("cachereader").await;
    let (author, _) = app.signup("cacheauthor").await;
    app.post("/accounts/cacheauthor/follow", Some(&reader), json!({})).await;
    for i in 0..5 {
        let before = texts(&app, &reader).await;
        post(&app, &author, json!({"text": format!("news {i}")})).await;
        let after = texts(&app, &reader).await;
        assert_eq!(after.first().map(String::as_str), Some(format!("news {i}").as_str()), "{after:?}");
        assert_eq!(after[1..], before[..], "one new post on top, nothing else changed");
    }
    // The reader's own posts too.
    texts(&app, &reader).await;
    post(&app, &reader, json!({"text": "my own"})).await;
    assert_eq!(texts(&app, &reader).await[0], "my own");

    // Pages walked from a warm cache are the store's pages: 45 posts, limit 20, no gap, no
    // repeat, newest first.
    for i in 5..44 {
        post(&app, &author, json!({"text": format!("news {i}")})).await;
    }
    texts(&app, &reader).await;
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/timeline?limit=20&cursor={c}"),
            None => "/timeline?limit=20".into(),
        };
        let r = app.get(&path, Some(&reader)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(r.body["data"].as_array().unwrap().iter().map(|i| i["post"]["text"].as_str().unwrap().to_string()));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // news 43..5 came after "my own", news 4..0 before it.
    let mut want: Vec<String> = (5..44).rev().map(|i| format!("news {i}")).collect();
    want.push("my own".into());
    want.extend((0..5).rev().map(|i| format!("news {i}")));
    assert_eq!(seen, want);
    app.stop().await;
}

#[tokio::test]
async fn follow_unfollow_delete_and_erasure_change_a_warm_timeline_at_once() {
    let app = spawn_app().await;
    let (reader, _) = app.signup("warmreader").await;
    let (shop, _) = app.signup("warmshop").await;
    let (friend, _) = app.signup("warmfriend").await;
    let kept = post(&app, &shop, json!({"text": "from the shop"})).await;
    post(&app, &friend, json!({"text": "from the friend"})).await;

    assert!(texts(&app, &reader).await.is_empty());
    app.post("/accounts/warmshop/follow", Some(&reader), json!({})).await;
    assert_eq!(texts(&app, &reader).await, ["from the shop"], "follow");
    app.post("/accounts/warmfriend/follow", Some(&reader), json!({})).await;
    assert_eq!(texts(&app, &reader).await, ["from the friend", "from the shop"], "second follow");

    let r = app.call(Method::DELETE, "/accounts/warmshop/follow", Some(&reader), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(texts(&app, &reader).await, ["from the friend"], "unfollow");
    app.post("/accounts/warmshop/follow", Some(&reader), json!({})).await;
    assert_eq!(texts(&app, &reader).await, ["from the friend", "from the shop"]);

    // Delete: the post goes.
    let gone = post(&app, &shop, json!({"text": "to be deleted"})).await;
    assert_eq!(texts(&app, &reader).await[0], "to be deleted");
    let r = app.call(Method::DELETE, &format!("/posts/{gone}"), Some(&shop), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(texts(&app, &reader).await, ["from the friend", "from the shop"], "delete");

    // A reply shows only when the reader follows both sides; once its parent is deleted it
    // stands alone, and shows at once.
    let (stranger, _) = app.signup("warmstranger").await;
    let parent = post(&app, &stranger, json!({"text": "stranger's"})).await;
    post(&app, &friend, json!({"text": "friend answers stranger", "reply_to": parent})).await;
    assert_eq!(texts(&app, &reader).await, ["from the friend", "from the shop"], "reply hidden");
    let r = app.call(Method::DELETE, &format!("/posts/{parent}"), Some(&stranger), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(texts(&app, &reader).await, ["friend answers stranger", "from the friend", "from the shop"]);

    // Erasure: the friend deletes their account; their posts leave the warm timeline.
    let r = app.call(Method::DELETE, "/me", Some(&friend), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(texts(&app, &reader).await, ["from the shop"], "erasure");
    let r = app.get(&format!("/posts/{kept}"), None).await;
    assert_eq!(r.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_post_made_on_one_server_shows_on_another_within_a_second() {
    let app = spawn_app().await;
    let (reader, _) = app.signup("nodereader").await;
    let (author, _) = app.signup("nodeauthor").await;
    app.post("/accounts/nodeauthor/follow", Some(&reader), json!({})).await;
    post(&app, &author, json!({"text": "old news"})).await;
    // A second `buyline serve`, its own process, on the same database.
    let (other, b) = KilledUnlessStopped::beside(&app).await;

    for round in 0..3 {
        // The second node's cache is warm...
        assert_eq!(texts(&b, &reader).await.len(), round + 1);
        // ...when the post is committed through the first.
        let text = format!("fresh {round}");
        post(&app, &author, json!({"text": text})).await;
        let posted = Instant::now();
        let mut shown = None;
        while posted.elapsed() < Duration::from_secs(3) {
            let started = posted.elapsed();
            if texts(&b, &reader).await.first() == Some(&text) {
                shown = Some(started);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let shown = shown.unwrap_or_else(|| panic!("{text} never showed on the second server"));
        eprintln!("round {round}: shown on the other node by a read started {shown:?} after the post");
        assert!(shown <= Duration::from_secs(1), "shown only after {shown:?}");
    }
    other.stop();
    app.stop().await;
}
