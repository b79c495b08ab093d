//! The OpenAPI document as a contract: every error is a problem document with the statuses
//! the operation can answer, the limits it declares are the ones the server enforces, and
//! the web-layer fixes schemathesis led to (credentials before an anonymous
//! `Idempotency-Key`, whole-number floats for integers, a `null` refund body).

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// `(METHOD path, operation)` for every operation in the document.
fn operations(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((format!("{} {path}", method.to_uppercase()), op.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_operation_declares_its_errors_as_problem_documents() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let ops = operations(&doc);
    assert!(ops.len() >= 50, "{} operations", ops.len());
    for (name, op) in &ops {
        let responses = op["responses"].as_object().unwrap();
        let has = |s: &str| responses.contains_key(s);
        for (status, resp) in responses {
            if status.as_str() >= "400" {
                let content = resp["content"].as_object().unwrap();
                assert_eq!(content.keys().collect::<Vec<_>>(), ["application/problem+json"], "{name} {status}");
                assert_eq!(content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
            }
        }
        let security = op["security"].as_array().cloned().unwrap_or_default();
        let takes_token = security.iter().any(|s| s.get("bearer").is_some());
        let optional = security.iter().any(|s| s.as_object().is_some_and(|o| o.is_empty()));
        if takes_token {
            assert!(has("401"), "{name}: 401");
            assert!(responses["401"]["headers"].get("WWW-Authenticate").is_some(), "{name}");
        }
        if takes_token && !optional && name != "DELETE /api/v1/sessions" {
            assert!(has("403"), "{name}: 403");
        }
        if op.get("requestBody").is_some() {
            for s in ["413", "415", "422"] {
                assert!(has(s), "{name}: {s}");
            }
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        if params.iter().any(|p| p["in"] == "path") {
            assert!(has("404"), "{name}: 404");
        }
        if params.iter().any(|p| p["in"] == "query") {
            assert!(has("422"), "{name}: 422");
        }
        if name.starts_with("POST ") {
            assert!(params.iter().any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key"), "{name}");
            assert!(has("409") && has("422"), "{name}: idempotency statuses");
        }
    }
    // The statuses only some operations answer.
    let op = |name: &str| ops.iter().find(|(n, _)| n == name).unwrap().1["responses"].clone();
    assert!(op("POST /api/v1/orders").get("402").is_some());
    assert!(op("POST /api/v1/checkouts/{id}/complete").get("402").is_some());
    assert!(op("POST /api/v1/sessions")["429"]["headers"].get("Retry-After").is_some());
    assert!(op("POST /api/v1/posts").get("429").is_some());
    assert!(op("GET /api/v1/products/{id}").get("401").is_none(), "a public read takes no token");
    // Query parameters are in the query, with their bounds.
    let timeline = &doc["paths"]["/api/v1/timeline"]["get"]["parameters"];
    let limit = timeline.as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!((limit["in"].as_str(), limit["schema"]["maximum"].as_i64()), (Some("query"), Some(100)));
    app.stop().await;
}

#[tokio::test]
async fn declared_limits_are_the_ones_the_server_enforces() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let prop = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();

    // Sign-up: a handle one past maxLength, a password one short of minLength.
    let max_handle = prop("SignUpInput", "handle")["maxLength"].as_u64().unwrap() as usize;
    let min_password = prop("SignUpInput", "password")["minLength"].as_u64().unwrap() as usize;
    assert_eq!((max_handle, min_password), (15, 8));
    let r = app
        .post(
            "/accounts",
            None,
            json!({"handle": "h".repeat(max_handle + 1), "email": "a@example.com",
                   "password": "p".repeat(min_password - 1), "country": "US"}),
        )
        .await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert!(fields(&p).contains(&"handle".to_string()) && fields(&p).contains(&"password".to_string()), "{p}");
    let r = app
        .post(
            "/accounts",
            None,
            json!({"handle": "h".repeat(max_handle), "email": "a@example.com",
                   "password": "p".repeat(min_password), "country": "US"}),
        )
        .await;
    assert_eq!(r.status, 201, "the limits themselves are allowed: {}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();

    // Countries are an enum of what the server accepts.
    let countries = schemas["CountryCode"]["enum"].as_array().unwrap();
    assert!(countries.contains(&json!("US")) && countries.contains(&json!("GB")) && !countries.contains(&json!("XX")));

    // Checkout lines: maxItems and the quantity's maximum.
    let max_lines = prop("CheckoutInput", "lines")["maxItems"].as_u64().unwrap() as usize;
    let max_qty = prop("LineInput", "quantity")["maximum"].as_i64().unwrap();
    assert_eq!((max_lines, max_qty), (20, 99));
    let (key, _) = app.merchant("limits").await;
    let shirt = app.shirt(&key, 10).await;
    let vid = variant(&shirt, "S", "red");
    let lines: Vec<Value> = (0..=max_lines).map(|_| json!({"variant_id": vid, "quantity": 1})).collect();
    let r = app.post("/checkouts", Some(&token), json!({"lines": lines})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines"]);
    let r =
        app.post("/checkouts", Some(&token), json!({"lines": [{"variant_id": vid, "quantity": max_qty + 1}]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines[0].quantity"]);

    // Products: at most 3 options, declared as maxItems.
    assert_eq!(prop("ProductInput", "options")["maxItems"], 3);
    let options: Vec<Value> = (0..4).map(|i| json!({"name": format!("o{i}"), "values": ["a"]})).collect();
    let r = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Too many", "kind": "physical", "options": options, "price": 100,
                   "shipping_rates": [{"name": "Std", "price": 0, "countries": ["US"]}]}),
        )
        .await;
    assert!(fields(&assert_problem(&r, 422, "validation_failed")).contains(&"options".to_string()));

    // Pages: limit above the declared maximum.
    let r = app.get("/timeline?limit=101", Some(&token)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["limit"]);
    app.stop().await;
}

#[tokio::test]
async fn an_anonymous_idempotency_key_meets_the_credentials_check_first() {
    let app = spawn_app().await;
    for text in ["one", "two"] {
        let r = app
            .client
            .post(format!("{}/api/v1/posts", app.url))
            .header("Idempotency-Key", "same-key")
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{text}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // Public POSTs still honour the key without credentials: the same sign-up is replayed.
    let body = json!({"handle": "idem", "email": "idem@example.com", "password": "long enough pw", "country": "US"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app
            .client
            .post(format!("{}/api/v1/accounts", app.url))
            .header("Idempotency-Key", "signup-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["account"]["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    app.stop().await;
}

#[tokio::test]
async fn whole_number_floats_are_integers_and_a_null_refund_refunds_all() {
    let app = spawn_app().await;
    let op = app.admin_token.clone();
    let r = app
        .call(
            Method::PUT,
            "/admin/flags/buy_button",
            Some(&op),
            Some(json!({"enabled": true, "countries": ["US"], "percent": 100.0, "merchants": null, "holdout_percent": 0})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body["percent"].as_i64()), (200, Some(100)), "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            "/admin/flags/buy_button",
            Some(&op),
            Some(
                json!({"enabled": true, "countries": ["US"], "percent": 99.5, "merchants": null, "holdout_percent": 0}),
            ),
        )
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["percent"]);

    let (key, _) = app.merchant("nullref").await;
    let shirt = app.shirt(&key, 5).await;
    let (shopper, _) = app.signup("nullref_b").await;
    let order = app.buy(&shopper, &variant(&shirt, "M", "blue"), "4242424242424242").await;
    assert_eq!(order.status, 201, "{}", order.text);
    let id = order.body["id"].as_str().unwrap();
    let r = app.post(&format!("/merchant/orders/{id}/refund"), Some(&key), Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "refunded");
    assert_eq!(r.body["refunded_amount"], order.body["totals"]["total"]);
    app.stop().await;
}
