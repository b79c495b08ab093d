-- The indexes the reconciler and the senders scan for work left to do hold only the rows
-- still waiting: a row leaves its index when its work is done (captured, completed, sent,
-- consumed). They stay a few pages however long the history grows, and a purchase no longer
-- writes its finished rows into them (one-tap wrote about five index pages per group
-- commit for rows that would never be looked up again). The queries that use them name the
-- same states as literals, so the planner can prove the index covers them.
drop index orders_capture;
create index orders_uncaptured on orders(created_at) where status = 'paid' and captured_at is null;
drop index checkouts_status;
create index checkouts_completing on checkouts(updated_at) where status = 'completing';
drop index reservations_expiry;
create index reservations_held on reservations(expires_at) where state = 'held';
drop index processor_payments_open;
create index processor_payments_open on processor_payments(created_at) where status in ('authorized', 'requires_action');
drop index emails_pending;
create index emails_unsent on emails(created_at) where sent_at is null;
