//! Integration tests: each spawns the real server on `127.0.0.1:0` with a fresh database —
//! SQLite in a temp dir, or a new PostgreSQL database when `BUYLINE_TEST_DATABASE_URL` is set.

mod accounts;
mod admin_console;
mod carts;
mod catalog;
mod checkout;
mod discovery;
mod errors;
mod funnel;
mod group_commit;
mod helpers;
mod idempotency;
mod limits;
mod money_out;
mod openapi;
mod ops;
mod page_auth;
mod pages;
mod posts;
mod rights;
mod shop_console;
mod timeline_cache;
mod vault;
mod web_hardening;
mod webhooks;
