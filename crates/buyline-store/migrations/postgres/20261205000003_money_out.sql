-- Money out and every merchant kind: uploaded images and digital files (blobs named by
-- content), download grants, payouts and the lock that keeps two payouts apart.
alter table products add column file_blob text;
alter table products add column file_name text;
alter table products add column file_type text;
alter table products add column file_size bigint;

-- A download link of one paid digital line. The token is never stored: only its SHA-256.
-- Generation 0 is the receipt's link (its row is written on first use); later generations
-- are the fresh links the shopper asks for.
create table downloads (
    order_id text not null references orders(id),
    line bigint not null,
    generation bigint not null,
    token_hash text not null unique,
    expires_at bigint not null,
    downloads_left bigint not null,
    created_at bigint not null,
    primary key (order_id, line, generation)
);

create table payouts (
    id text primary key,
    merchant_id text not null references merchants(id),
    currency text not null,
    amount bigint not null,
    status text not null,
    created_at bigint not null
);
create index payouts_merchant on payouts(merchant_id, created_at, id);
create index payouts_created on payouts(created_at, id);

-- One row per merchant and currency, updated at the start of every payout transaction:
-- the row lock makes a second payout of the same money wait, then see the first.
create table payout_locks (
    merchant_id text not null,
    currency text not null,
    locked_at bigint not null,
    primary key (merchant_id, currency)
);

alter table ledger_entries add column payout_id text;
