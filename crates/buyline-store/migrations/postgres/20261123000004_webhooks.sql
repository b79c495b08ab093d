-- The transactional outbox (events), webhook deliveries and every attempt, refunds, and
-- the merchant side of orders.
create table events (
    id text primary key,
    merchant_id text not null references merchants(id),
    type text not null,
    payload text not null,
    created_at bigint not null
);
create index events_merchant on events(merchant_id, created_at, id);

create table webhook_deliveries (
    id text primary key,
    event_id text not null references events(id),
    merchant_id text not null references merchants(id),
    status text not null,
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    locked_until bigint not null default 0,
    last_status bigint,
    last_error text,
    created_at bigint not null,
    delivered_at bigint
);
create index webhook_deliveries_due on webhook_deliveries(status, next_attempt_at);
create index webhook_deliveries_merchant on webhook_deliveries(merchant_id, created_at);

create table webhook_attempts (
    id text primary key,
    delivery_id text not null references webhook_deliveries(id),
    merchant_id text not null,
    url text not null,
    attempted_at bigint not null,
    status_code bigint,
    latency_ms bigint not null,
    excerpt text not null,
    error text
);
create index webhook_attempts_delivery on webhook_attempts(delivery_id, attempted_at);

create table refunds (
    id text primary key,
    order_id text not null references orders(id),
    amount bigint not null,
    fee_back bigint not null,
    reason text,
    cancel bigint not null,
    status text not null,
    created_at bigint not null,
    completed_at bigint
);
create index refunds_order on refunds(order_id);
create index refunds_pending on refunds(status, created_at);

alter table merchants add column webhook_secret_old text;
alter table merchants add column webhook_secret_old_until bigint;
alter table merchants add column webhook_disabled_at bigint;
alter table orders add column acknowledged_at bigint;
alter table orders add column refunded_amount bigint not null default 0;
alter table processor_payments add column refunded bigint not null default 0;

create table processor_refunds (
    idempotency_key text primary key,
    payment_id text not null references processor_payments(id),
    amount bigint not null,
    created_at bigint not null
);
