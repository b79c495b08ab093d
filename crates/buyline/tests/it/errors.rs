//! Bad input of every shape gets a problem document, never a half-write.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn malformed_wrong_type_missing_field_oversized_and_wrong_content_type() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/accounts", app.url);
    let send = |body: String, ct: &'static str| {
        let c = app.client.clone();
        let url = url.clone();
        async move {
            let r = c.post(url).header("content-type", ct).body(body).send().await.unwrap();
            let status = r.status();
            let headers = r.headers().clone();
            let text = r.text().await.unwrap();
            Resp { status, headers, body: serde_json::from_str(&text).unwrap_or_default(), text }
        }
    };
    let r = send("{\"handle\": ".into(), "application/json").await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["body"]);
    let r = send(
        json!({"handle": 5, "email": "a@b.co", "password": "xxxxxxxx", "country": "US"}).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["handle"]);
    let r =
        send(json!({"email": "a@b.co", "password": "xxxxxxxx", "country": "US"}).to_string(), "application/json").await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["handle"]);
    assert_eq!(p["errors"][0]["message"], "is required");
    let r = send(format!("{{\"handle\": \"{}\"}}", "x".repeat(70_000)), "application/json").await;
    assert_problem(&r, 413, "payload_too_large");
    let r = send("handle=x".into(), "application/x-www-form-urlencoded").await;
    assert_problem(&r, 415, "unsupported_media_type");
    app.stop().await;
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_problems() {
    let app = spawn_app().await;
    assert_problem(&app.get("/posts/post_doesnotexist00000", None).await, 404, "not_found");
    assert_problem(&app.get("/posts/not-an-id", None).await, 404, "not_found");
    assert_problem(&app.get("/products/prod_nope", None).await, 404, "not_found");
    assert_problem(&app.get("/accounts/nobody_here", None).await, 404, "not_found");
    assert_problem(&app.get("/no/such/route", None).await, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let app = spawn_app().await;
    let (t, _) = app.signup("qq").await;
    assert_eq!(
        fields(&assert_problem(&app.get("/timeline?limit=abc", Some(&t)).await, 422, "validation_failed")),
        ["limit"]
    );
    assert_eq!(
        fields(&assert_problem(&app.get("/timeline?limit=1000", Some(&t)).await, 422, "validation_failed")),
        ["limit"]
    );
    assert_eq!(
        fields(&assert_problem(&app.get("/timeline?cursor=zzz", Some(&t)).await, 422, "validation_failed")),
        ["cursor"]
    );
    app.stop().await;
}
