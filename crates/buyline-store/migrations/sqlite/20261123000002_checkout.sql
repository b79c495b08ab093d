-- Checkout, the test processor's payments, stock reservations, orders, the ledger,
-- receipts (in-app and an e-mail outbox) and idempotency keys.
create table processor_payments (
    id text primary key,
    idempotency_key text not null unique,
    amount bigint not null,
    currency text not null,
    status text not null,
    brand text not null,
    last4 text not null,
    error_code text,
    decline_code text,
    return_url text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index processor_payments_open on processor_payments(status, created_at);

create table checkouts (
    id text primary key,
    shopper_id text not null references accounts(id),
    merchant_id text not null references merchants(id),
    post_id text,
    lines text not null,
    currency text not null,
    status text not null,
    attempt bigint not null default 0,
    order_id text,
    created_at bigint not null,
    updated_at bigint not null,
    expires_at bigint not null
);
create index checkouts_status on checkouts(status, updated_at);

create table reservations (
    checkout_id text not null references checkouts(id),
    attempt bigint not null,
    variant_id text not null references variants(id),
    quantity bigint not null,
    state text not null,
    expires_at bigint not null,
    primary key (checkout_id, attempt, variant_id)
);
create index reservations_expiry on reservations(state, expires_at);

create table orders (
    id text primary key,
    checkout_id text not null unique references checkouts(id),
    shopper_id text,
    merchant_id text not null references merchants(id),
    status text not null,
    currency text not null,
    subtotal bigint not null,
    shipping_amount bigint not null,
    tax bigint not null,
    total bigint not null,
    platform_fee bigint not null,
    fee_bps bigint not null,
    lines text not null,
    shipping_address text,
    shipping text,
    fulfillment text not null,
    payment_id text not null unique,
    card_brand text not null,
    card_last4 text not null,
    challenge_url text,
    post_id text,
    contact_email text,
    captured_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index orders_shopper on orders(shopper_id, created_at, id);
create index orders_merchant on orders(merchant_id, created_at, id);
create index orders_capture on orders(status, captured_at);

create table ledger_entries (
    id text primary key,
    txn_id text not null,
    account text not null,
    currency text not null,
    amount bigint not null,
    order_id text,
    created_at bigint not null
);
create index ledger_account on ledger_entries(account, currency);
create index ledger_order on ledger_entries(order_id);

create table notifications (
    id text primary key,
    account_id text not null,
    text text not null,
    link text not null,
    created_at bigint not null,
    read_at bigint
);
create index notifications_account on notifications(account_id, created_at);

create table emails (
    id text primary key,
    to_address text not null,
    subject text not null,
    body text not null,
    created_at bigint not null,
    sent_at bigint
);
create index emails_pending on emails(sent_at, created_at);

create table idempotency_keys (
    scope text not null,
    key text not null,
    request_hash text not null,
    status bigint,
    content_type text,
    response text,
    created_at bigint not null,
    primary key (scope, key)
);
