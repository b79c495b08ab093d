//! The work-queue queries use the partial indexes made for them (migration
//! `20261206000002_queue_indexes.sql`): each names its states as literals matching the
//! index's definition. A query that bound the state as a parameter, or a state renamed on one
//! side only, would scan the whole table, every reconciler pass, as history grows.

use crate::Db;
use buyline_core::order::{CheckoutStatus, OrderStatus, ReservationState};

async fn migrated() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("plans.db").display());
    let db = Db::connect(&url, 2).await.unwrap();
    (dir, db)
}

#[tokio::test]
async fn work_queues_are_read_through_their_partial_indexes() {
    let (_dir, db) = migrated().await;
    for (sql, index) in [
        (crate::orders::UNCAPTURED_ORDERS, "orders_uncaptured"),
        (crate::orders::STALE_REQUIRES_ACTION, "orders_awaiting_challenge"),
        (crate::checkout::EXPIRED_RESERVATIONS, "reservations_held"),
        (crate::checkout::STUCK_CHECKOUTS, "checkouts_completing"),
        (crate::outbox::UNSENT_EMAILS, "emails_unsent"),
    ] {
        let plan = db.query_plan(sql).await.unwrap();
        assert!(plan.contains(&format!("USING INDEX {index}")), "{sql}\nis planned as\n{plan}");
    }
    // The literals are the states the code writes.
    assert!(crate::orders::UNCAPTURED_ORDERS.contains(&format!("status = '{}'", OrderStatus::Paid.as_str())));
    assert!(
        crate::orders::STALE_REQUIRES_ACTION.contains(&format!("status = '{}'", OrderStatus::RequiresAction.as_str()))
    );
    assert!(crate::checkout::EXPIRED_RESERVATIONS.contains(&format!("state = '{}'", ReservationState::Held.as_str())));
    assert!(crate::checkout::STUCK_CHECKOUTS.contains(&format!("status = '{}'", CheckoutStatus::Completing.as_str())));
}

/// An erasure finds a shopper's e-mails and events through her orders and by order id, and
/// the rest through the partial indexes by account: no step reads a whole table. (The
/// statements that delete and update them name the same conditions.)
#[tokio::test]
async fn an_erasure_reaches_the_shoppers_rows_through_indexes() {
    let (_dir, db) = migrated().await;
    for (sql, indexes) in [
        (crate::accounts::ACCOUNT_EVENTS, ["events_account", "orders_shopper", "events_order"]),
        (crate::accounts::ACCOUNT_EMAILS, ["emails_account", "orders_shopper", "emails_order"]),
    ] {
        let plan = db.query_plan(sql).await.unwrap();
        for index in indexes {
            assert!(plan.contains(&format!("INDEX {index}")), "{sql}\nis planned as\n{plan}");
        }
        assert!(!plan.contains("SCAN "), "{sql}\nis planned as\n{plan}");
    }
    for sql in [
        "delete from emails where order_id in (select id from orders where shopper_id = $1)",
        "update events set account_id = null where order_id in (select id from orders where shopper_id = $1)",
        "delete from emails where account_id = $1 and order_id is null",
    ] {
        let plan = db.query_plan(sql).await.unwrap();
        assert!(!plan.contains("SCAN "), "{sql}\nis planned as\n{plan}");
    }
}

/// The notification list and its unread count read each side through its own index: the
/// shopper's notification rows (`notifications_account`) and her orders that are their own
/// receipts (`orders_shopper`).
#[tokio::test]
async fn notifications_are_read_through_the_account_and_the_shoppers_orders() {
    let (_dir, db) = migrated().await;
    for sql in [crate::discovery::notifications_page_sql(), crate::discovery::UNREAD_NOTIFICATIONS] {
        let plan = db.query_plan(sql).await.unwrap();
        for index in ["notifications_account", "orders_shopper"] {
            assert!(plan.contains(&format!("INDEX {index}")), "{sql}\nis planned as\n{plan}");
        }
        // (The subqueries' own rows, `SCAN rows_kept`, are the page's, not a table's.)
        let scans_a_table = plan.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("SCAN") && matches!(words.next(), Some("notifications" | "orders"))
        });
        assert!(!scans_a_table, "{sql}\nis planned as\n{plan}");
    }
}
