-- Hashtag carts: each merchant's cart hashtags (unique across merchants, matched
-- case-insensitively), shoppers' consent links, cart items and the reply jobs.

-- Which product kinds a merchant lets shoppers add by hashtag (JSON list).
alter table merchants add column cart_kinds text not null default '["physical"]';

create table cart_hashtags (
    -- The tag lower-cased, without '#': the key twitter-text's hashtags are matched on.
    tag_key text primary key,
    merchant_id text not null references merchants(id),
    country text not null,
    tag text not null
);
create index cart_hashtags_merchant on cart_hashtags(merchant_id);

create table merchant_links (
    account_id text not null references accounts(id),
    merchant_id text not null references merchants(id),
    created_at bigint not null,
    primary key (account_id, merchant_id)
);
create index merchant_links_merchant on merchant_links(merchant_id);

create table cart_items (
    id text primary key,
    account_id text not null references accounts(id),
    merchant_id text not null references merchants(id),
    product_id text not null,
    variant_id text not null,
    quantity bigint not null,
    -- The reply that added it.
    source_post_id text,
    -- The checkout opened from the cart; the order it becomes removes the item.
    checkout_id text,
    created_at bigint not null,
    unique (account_id, variant_id)
);
create index cart_items_checkout on cart_items(checkout_id);

-- One job per post that carries a cart hashtag, written with the post: the post id is the
-- key, so a reply is processed at most once, and a pending job survives a restart.
create table cart_jobs (
    post_id text primary key,
    account_id text not null,
    parent_id text,
    state text not null,
    attempts bigint not null default 0,
    lease_until bigint not null default 0,
    outcome text,
    reply_post_id text,
    created_at bigint not null,
    processed_at bigint
);
create index cart_jobs_due on cart_jobs(state, lease_until);
create index cart_jobs_account on cart_jobs(account_id, created_at);
