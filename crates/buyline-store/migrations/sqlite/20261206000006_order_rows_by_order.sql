-- An order's e-mails and events are found through the order, not through an index of the
-- shopper's own. `emails_account` and `events_account` took one more page per order at a
-- place of the shopper's own (a random place, as shoppers go), and only an erasure ever read
-- them: each order wrote two such pages to the WAL beside the one `orders_shopper` already
-- costs, and the erasure can reach the same rows from her orders (`orders_shopper`), then
-- by order id, which grows with time like the rows' own keys. Rows about no order (a cart
-- answer's event, a password e-mail) keep an index by account, holding only them; rows
-- written before this migration have no order id and stay in it.
alter table emails add column order_id text;
alter table events add column order_id text;
drop index emails_account;
drop index events_account;
create index emails_account on emails(account_id) where order_id is null;
create index events_account on events(account_id) where order_id is null;
create index emails_order on emails(order_id) where order_id is not null;
create index events_order on events(order_id) where order_id is not null;
