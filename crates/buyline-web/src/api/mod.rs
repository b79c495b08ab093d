//! The JSON API under `/api/v1` (SPEC §3), with its OpenAPI 3.1 document built from the
//! handlers' annotations.

mod accounts;
mod admin;
mod carts;
mod catalog;
mod discovery;
mod funnel;
mod media;
mod merchant;
mod money;
mod orders;
mod posts;
mod problems;
mod saved;

pub use media::safe_file_name;
pub use problems::{posts_requiring_credentials, ProblemResponses};

use crate::error::Problem;
use crate::state::AppState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Buyline API", version = "1", description = "In-feed commerce: posts with a Buy button. Errors are RFC 9457 problem details."),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "accounts", description = "Sign-up, sessions, follows"),
        (name = "posts", description = "Posts, replies, timelines"),
        (name = "merchants", description = "Merchant accounts and keys"),
        (name = "catalog", description = "Products, variants, stock"),
        (name = "checkout", description = "Checkout, orders, payment"),
        (name = "vault", description = "Saved cards and addresses, data rights"),
        (name = "merchant orders", description = "Orders as the merchant handles them"),
        (name = "webhooks", description = "Signed event delivery, its log, and the polling fallback"),
        (name = "carts", description = "Hashtag carts: merchant links, carts and their checkout"),
        (name = "campaigns", description = "Promoted posts: a merchant's campaigns"),
        (name = "discovery", description = "Search, hashtags, who to follow"),
        (name = "admin", description = "Operator controls"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A shopper session token (`st_…`), a merchant secret key (`sk_…`) or the operator token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API routes and their OpenAPI document, paths relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::create_account))
        .routes(routes!(accounts::create_session, accounts::delete_session))
        .routes(routes!(accounts::get_me, saved::delete_me))
        .routes(routes!(saved::export_me))
        .routes(routes!(saved::create_payment_method, saved::list_payment_methods))
        .routes(routes!(saved::delete_payment_method))
        .routes(routes!(saved::create_address, saved::list_addresses))
        .routes(routes!(saved::delete_address))
        .routes(routes!(accounts::get_account))
        .routes(routes!(accounts::list_account_posts))
        .routes(routes!(accounts::follow_account, accounts::unfollow_account))
        .routes(routes!(posts::create_post))
        .routes(routes!(posts::get_post, posts::delete_post))
        .routes(routes!(posts::get_timeline))
        .routes(routes!(catalog::create_merchant))
        .routes(routes!(catalog::get_merchant, catalog::update_merchant))
        .routes(routes!(catalog::rotate_api_key))
        .routes(routes!(catalog::list_merchant_products))
        .routes(routes!(catalog::create_product))
        .routes(routes!(catalog::get_product, catalog::update_product, catalog::delete_product))
        .routes(routes!(catalog::update_variant))
        .routes(routes!(orders::create_checkout))
        .routes(routes!(orders::get_checkout))
        .routes(routes!(orders::complete_checkout))
        .routes(routes!(orders::create_order, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(discovery::list_notifications))
        .routes(routes!(merchant::list_merchant_orders))
        .routes(routes!(merchant::get_merchant_order))
        .routes(routes!(merchant::acknowledge_order))
        .routes(routes!(merchant::fulfill_order))
        .routes(routes!(merchant::cancel_order))
        .routes(routes!(merchant::refund_order))
        .routes(routes!(merchant::list_events))
        .routes(routes!(merchant::list_deliveries))
        .routes(routes!(merchant::retry_delivery))
        .routes(routes!(merchant::rotate_webhook_secret))
        .routes(routes!(carts::link_merchant, carts::unlink_merchant))
        .routes(routes!(carts::list_links))
        .routes(routes!(carts::list_carts))
        .routes(routes!(carts::delete_cart_item))
        .routes(routes!(carts::checkout_cart))
        .routes(routes!(admin::get_buy_button_flag, admin::put_buy_button_flag))
        .routes(routes!(admin::get_fees, admin::put_fees))
        .routes(routes!(admin::get_trial_balance))
        .routes(routes!(media::put_product_image))
        .routes(routes!(media::put_product_file))
        .routes(routes!(media::get_media))
        .routes(routes!(media::get_download))
        .routes(routes!(media::create_download_link))
        .routes(routes!(money::get_balance))
        .routes(routes!(money::list_merchant_payouts))
        .routes(routes!(money::create_payouts, money::list_payouts))
        .routes(routes!(money::get_payout_settings, money::put_payout_settings))
        .routes(routes!(discovery::create_campaign, discovery::list_campaigns))
        .routes(routes!(discovery::update_campaign))
        .routes(routes!(discovery::search_posts))
        .routes(routes!(discovery::search_accounts))
        .routes(routes!(discovery::list_hashtag_posts))
        .routes(routes!(discovery::list_suggestions))
        .routes(routes!(funnel::get_merchant_funnel))
        .routes(routes!(funnel::get_admin_funnel))
}
