-- Accounts, sessions, follows, merchants, catalog, posts, flags.
-- Timestamps are microseconds since the Unix epoch; money is integer minor units.
create table accounts (
    id text primary key,
    handle text not null,
    handle_key text not null unique,
    display_name text not null,
    email text,
    email_key text unique,
    password_hash text,
    country text not null,
    kind text not null,
    bio text not null default '',
    created_at bigint not null
);

create table sessions (
    token_hash text primary key,
    account_id text not null references accounts(id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null
);
create index sessions_account on sessions(account_id);

create table follows (
    follower_id text not null references accounts(id) on delete cascade,
    followee_id text not null references accounts(id) on delete cascade,
    created_at bigint not null,
    primary key (follower_id, followee_id)
);
create index follows_followee on follows(followee_id);

create table merchants (
    id text primary key,
    account_id text not null unique references accounts(id),
    owner_account_id text not null references accounts(id),
    name text not null,
    kind text not null,
    country text not null,
    currency text not null,
    webhook_url text,
    webhook_secret text not null,
    cart_hashtags text not null default '{}',
    tax_rates text not null default '{}',
    return_policy text not null default '',
    created_at bigint not null
);
create index merchants_owner on merchants(owner_account_id);

create table api_keys (
    key_hash text primary key,
    merchant_id text not null references merchants(id),
    created_at bigint not null,
    revoked_at bigint
);
create index api_keys_merchant on api_keys(merchant_id);

create table products (
    id text primary key,
    merchant_id text not null references merchants(id),
    name text not null,
    description text not null,
    kind text not null,
    image_url text not null,
    currency text not null,
    options text not null,
    return_policy text not null,
    donation_min bigint,
    donation_max bigint,
    created_at bigint not null
);
create index products_merchant on products(merchant_id, created_at);

create table variants (
    id text primary key,
    product_id text not null references products(id),
    position bigint not null,
    sku text not null,
    options text not null,
    price bigint not null,
    inventory_type text not null,
    quantity bigint,
    check (quantity is null or quantity >= 0)
);
create index variants_product on variants(product_id, position);

create table shipping_rates (
    id text primary key,
    product_id text not null references products(id),
    position bigint not null,
    name text not null,
    price bigint not null,
    countries text not null
);
create index shipping_rates_product on shipping_rates(product_id, position);

create table posts (
    id text primary key,
    author_id text not null references accounts(id),
    text text not null,
    entities text not null,
    reply_to text references posts(id),
    product_id text references products(id),
    created_at bigint not null
);
create index posts_author on posts(author_id, created_at, id);
create index posts_reply on posts(reply_to, created_at);
create index posts_recent on posts(created_at, id);

create table flags (
    name text primary key,
    value text not null,
    updated_at bigint not null
);
