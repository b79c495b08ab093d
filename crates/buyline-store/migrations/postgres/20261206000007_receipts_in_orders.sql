-- An order paid when it is placed is its own in-app receipt: the notification list shows it
-- from the shopper's orders (`orders_shopper`, which the order writes anyway) instead of a
-- notification row, whose index by account cost every order one more page at a place of its
-- shopper's. Notifications are marked read all at once, so "read" for these is a mark per
-- account: those placed after it are unread. Orders from before keep their rows.
alter table orders add column receipt_in_place bigint not null default 0;
alter table accounts add column notifications_read_at bigint not null default 0;
