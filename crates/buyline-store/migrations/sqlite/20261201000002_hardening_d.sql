-- Failed log-ins, shared by every server process: one counter per key (an account, an
-- unknown login, or a client address) for a window that starts at its first failure.
create table login_failures (
    key text primary key,
    window_start bigint not null,
    failures bigint not null
);
create index login_failures_window on login_failures(window_start);

-- Whose personal data an event or an e-mail carries (the shopper of the order or cart it
-- reports, the receipt's recipient), so erasing an account finds every copy.
alter table events add column account_id text;
create index events_account on events(account_id);
alter table emails add column account_id text;
create index emails_account on emails(account_id);
update emails set account_id = (select a.id from accounts a where a.email_key = lower(emails.to_address));
update events set account_id = (select o.shopper_id from orders o where o.id = json_extract(events.payload, '$.data.id'))
where type like 'order.%';
update events set account_id = json_extract(payload, '$.data.shopper.id') where type = 'cart.item_added';
