//! Posts, replies, follows, the home timeline and its pages.

use crate::helpers::*;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn post_carries_twitter_text_entities() {
    let app = spawn_app().await;
    let (t, me) = app.signup("poster").await;
    let r =
        app.post("/posts", Some(&t), json!({"text": "Hi @acme, loving #CoffeeTime — see https://example.com/x"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let p = &r.body;
    assert!(p["id"].as_str().unwrap().starts_with("post_"));
    assert_eq!(p["author"], json!({"id": me["id"], "handle": "poster", "display_name": "poster"}));
    assert_eq!(p["reply_to"], json!(null));
    assert_eq!(p["product_id"], json!(null));
    assert_eq!(p["entities"]["mentions"], json!([{"handle": "acme", "indices": [3, 8]}]));
    assert_eq!(p["entities"]["hashtags"], json!([{"tag": "CoffeeTime", "indices": [17, 28]}]));
    assert_eq!(p["entities"]["urls"][0]["url"], "https://example.com/x");
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    app.stop().await;
}

#[tokio::test]
async fn over_long_or_empty_posts_are_refused() {
    let app = spawn_app().await;
    let (t, _) = app.signup("talker").await;
    let r = app.post("/posts", Some(&t), json!({"text": "a".repeat(281)})).await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["text"]);
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("281 of 280"));
    assert_eq!(app.post("/posts", Some(&t), json!({"text": "a".repeat(280)})).await.status, 201);
    assert_problem(&app.post("/posts", Some(&t), json!({"text": "   "})).await, 422, "validation_failed");
    assert_problem(&app.post("/posts", None, json!({"text": "hi"})).await, 401, "unauthorized");
    let r = app.post("/posts", Some(&t), json!({"text": "hi", "reply_to": "post_missing0000000000"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["reply_to"]);
    let r = app.post("/posts", Some(&t), json!({"text": "hi", "product_id": "prod_x"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["product_id"]);
    app.stop().await;
}

#[tokio::test]
async fn replies_thread_under_their_parent_oldest_first() {
    let app = spawn_app().await;
    let (a, _) = app.signup("threada").await;
    let (b, _) = app.signup("threadb").await;
    let parent = app.post("/posts", Some(&a), json!({"text": "parent"})).await.body;
    let pid = parent["id"].as_str().unwrap();
    let r1 = app.post("/posts", Some(&b), json!({"text": "first reply", "reply_to": pid})).await.body;
    let r2 = app.post("/posts", Some(&a), json!({"text": "second reply", "reply_to": pid})).await.body;
    assert_eq!(r1["reply_to"], pid);
    let thread = app.get(&format!("/posts/{pid}"), None).await;
    assert_eq!(thread.status, 200);
    assert_eq!(thread.body["text"], "parent");
    let replies: Vec<_> = thread.body["replies"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(replies, vec![r1["id"].clone(), r2["id"].clone()]);
    assert_eq!(thread.body["buy"], json!(null));
    app.stop().await;
}

#[tokio::test]
async fn home_timeline_is_own_and_followed_newest_first() {
    let app = spawn_app().await;
    let (me, _) = app.signup("reader").await;
    let (friend, _) = app.signup("friend").await;
    let (stranger, _) = app.signup("stranger").await;
    app.post("/posts", Some(&friend), json!({"text": "friend before follow"})).await;
    app.post("/posts", Some(&stranger), json!({"text": "stranger"})).await;
    let r = app.post("/accounts/friend/follow", Some(&me), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["followed_by_viewer"], true);
    assert_eq!(r.body["followers"], 1);
    app.post("/posts", Some(&me), json!({"text": "mine"})).await;
    app.post("/posts", Some(&friend), json!({"text": "friend after"})).await;
    let tl = app.get("/timeline", Some(&me)).await;
    let texts: Vec<_> =
        tl.body["data"].as_array().unwrap().iter().map(|i| i["post"]["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["friend after", "mine", "friend before follow"]);
    assert_eq!(tl.body["next_cursor"], json!(null));
    assert_eq!(tl.body["data"][0]["promoted"], false);
    // Following twice is one follow; unfollow removes their posts.
    app.post("/accounts/friend/follow", Some(&me), json!({})).await;
    assert_eq!(app.get("/accounts/friend", Some(&me)).await.body["followers"], 1);
    let r = app.call(reqwest::Method::DELETE, "/accounts/friend/follow", Some(&me), None).await;
    assert_eq!(r.body["followed_by_viewer"], false);
    let texts: Vec<_> = app.get("/timeline", Some(&me)).await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["post"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("mine")]);
    assert_problem(&app.post("/accounts/reader/follow", Some(&me), json!({})).await, 422, "validation_failed");
    assert_problem(&app.post("/accounts/nobody/follow", Some(&me), json!({})).await, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn timeline_pages_cover_everything_once() {
    let app = spawn_app().await;
    let (me, _) = app.signup("pager").await;
    for i in 0..23 {
        app.post("/posts", Some(&me), json!({"text": format!("post {i}")})).await;
    }
    let seen: Vec<String> = app
        .every_page("/timeline?limit=10", Some(&me))
        .await
        .iter()
        .map(|i| i["post"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
    assert_eq!(seen[0], "post 22");
    assert_eq!(seen[22], "post 0");
    app.stop().await;
}

/// Posts written at the same moment share one transaction on SQLite (group commit); one
/// that cannot be written (its parent is gone) fails alone, and the others are kept.
#[tokio::test]
async fn posts_written_together_fail_alone() {
    use buyline_core::model::NewPost;
    use buyline_core::store::prelude::*;
    let app = spawn_app().await;
    let (_, me) = app.signup("crowd").await;
    let author = me["id"].as_str().unwrap().to_string();
    let db = app.db().clone();
    let writes: Vec<_> = (0..20)
        .map(|i| {
            let (db, author) = (db.clone(), author.clone());
            tokio::spawn(async move {
                let post = NewPost {
                    id: format!("post_crowd{i}"),
                    author_id: author,
                    text: format!("post {i}"),
                    created_at: buyline_core::types::now_micros(),
                    // One reply to a post that does not exist.
                    reply_to: (i == 7).then(|| "post_missing".to_string()),
                    product_id: None,
                    entities: Default::default(),
                };
                db.insert_post(&post, i % 2 == 0).await
            })
        })
        .collect();
    let mut failed = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        if w.await.unwrap().is_err() {
            failed.push(i);
        }
    }
    assert_eq!(failed, [7]);
    let ids: Vec<String> = (0..20).filter(|i| *i != 7).map(|i| format!("post_crowd{i}")).collect();
    assert_eq!(db.find_posts(&ids).await.unwrap().len(), 19);
    assert!(db.find_post("post_crowd7").await.unwrap().is_none());
    app.stop().await;
}
