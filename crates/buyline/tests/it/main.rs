//! Integration tests: each spawns the real server on `127.0.0.1:0` with a fresh database —
//! SQLite in a temp dir, or a new PostgreSQL database when `BUYLINE_TEST_DATABASE_URL` is set.

mod accounts;
mod carts;
mod catalog;
mod checkout;
mod errors;
mod group_commit;
mod helpers;
mod idempotency;
mod limits;
mod openapi;
mod ops;
mod pages;
mod posts;
mod rights;
mod vault;
mod web_hardening;
mod webhooks;
