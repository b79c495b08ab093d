//! The error half of the OpenAPI document, added by one pass over every operation rather
//! than by hand on each: the statuses an operation can answer follow from what it takes
//! (credentials, a JSON body, path ids, a query string, being a POST), because the
//! extractors and middleware that answer them are shared. Statuses that depend on what an
//! operation does (402 payment, 409 state, 429 throttles, `not_available`) stay declared
//! in its `#[utoipa::path]`; this pass gives those the same problem response too.

use crate::error::{CODES, PROBLEM_JSON};
use std::collections::HashSet;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::Modify;

/// Operations that take a bearer token but check no role: log-out accepts any session
/// token and answers 401 for anything else.
const NO_ROLE_CHECK: &[&str] = &["delete_session"];

/// Adds the shared error responses to every operation, turns every 4xx/5xx response into
/// a problem document, and declares `Idempotency-Key` on every POST.
pub struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let methods = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for (op, is_post) in methods.into_iter().zip([false, false, true, false, false]) {
                if let Some(op) = op.as_mut() {
                    complete(op, is_post);
                }
            }
        }
    }
}

/// Whether an operation takes a token, and whether it requires one. `security: [{}, {bearer:
/// []}]` is optional auth: no credentials is fine, bad credentials are still 401.
fn credentials(op: &Operation) -> (bool, bool) {
    let security = op.security.as_deref().unwrap_or_default();
    let anonymous = SecurityRequirement::default();
    let takes_token = security.iter().any(|s| *s != anonymous);
    (takes_token, takes_token && !security.contains(&anonymous))
}

/// `(METHOD, path)` of every POST that requires credentials, paths as axum matches them.
pub fn posts_requiring_credentials(openapi: &OpenApi) -> HashSet<String> {
    openapi
        .paths
        .paths
        .iter()
        .filter(|(_, item)| item.post.as_ref().is_some_and(|op| credentials(op).1))
        .map(|(path, _)| path.clone())
        .collect()
}

fn complete(op: &mut Operation, is_post: bool) {
    let (takes_token, token_required) = credentials(op);
    let id = op.operation_id.clone().unwrap_or_default();
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path_ids = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let has_body = op.request_body.is_some();

    let mut statuses: Vec<u16> = Vec::new();
    if takes_token {
        statuses.push(401);
    }
    // A role check (shopper, merchant key, operator) or, for a browser session, the CSRF
    // header on a change.
    if token_required && !NO_ROLE_CHECK.contains(&id.as_str()) {
        statuses.push(403);
    }
    if has_path_ids {
        statuses.push(404);
    }
    if has_body {
        statuses.extend([413, 415]);
    }
    if has_body || has_query {
        statuses.push(422);
    }
    if is_post {
        // The idempotency middleware: a key whose first request is still running (409), a
        // key reused with another body or not 1 to 255 characters (422).
        statuses.extend([409, 422]);
        add_idempotency_key(op);
        // The middleware reads the body (up to the limit) before any handler does.
        statuses.push(413);
    }
    for status in statuses {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(Response::default()));
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let Ok(status) = status.parse::<u16>() else { continue };
        if status >= 400 {
            *response = RefOr::T(problem_response(status));
        }
    }
}

/// The problem response for a status: every code the server answers with it, the problem
/// schema as `application/problem+json`, and the headers that come with it.
fn problem_response(status: u16) -> Response {
    let codes: Vec<String> = CODES.iter().filter(|c| c.1 == status).map(|c| format!("`{}` ({})", c.0, c.2)).collect();
    let description = if codes.is_empty() { "A problem document.".to_string() } else { codes.join(", ") };
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    let mut builder = ResponseBuilder::new().description(description).content(PROBLEM_JSON, content);
    let string = || ObjectBuilder::new().schema_type(Type::String);
    match status {
        401 => {
            builder = builder
                .header("WWW-Authenticate", HeaderBuilder::new().schema(string()).description(Some("`Bearer`")).build())
        }
        429 => {
            builder = builder.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]+$")))
                    .description(Some("Seconds to wait"))
                    .build(),
            )
        }
        _ => {}
    }
    builder.build()
}

fn add_idempotency_key(op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    params.retain(|p| !(p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case("idempotency-key")));
    params.push(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Replays the first response for the same key and body (scoped to the credentials); \
                 the same key with another body is 422 `idempotency_mismatch`.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(255))))
            .build(),
    );
}
