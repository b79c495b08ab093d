-- The experiment funnel (SPEC §2 Experiment). Checkouts and orders already carry `post_id`
-- (the post a purchase came from); a checkout with a post also keeps the arm its shopper was
-- in when it opened (`buy` or `holdout`), so a later change of the rollout flag does not move
-- past orders between arms. Orders find their arm through their checkout.
alter table checkouts add column arm text;
create index orders_post on orders(post_id) where post_id is not null;

-- Impressions per post and arm, added to by the in-memory counter's batches (about once a
-- second) with `on conflict do update`.
create table funnel_counts (
    post_id text not null,
    arm text not null,
    impressions bigint not null default 0,
    updated_at bigint not null,
    primary key (post_id, arm)
);

-- Distinct shoppers reached and distinct shoppers who opened the buy sheet (holdout: the
-- product page from the post's link), one row each, written insert-or-ignore.
create table funnel_reach (
    post_id text not null,
    arm text not null,
    account_id text not null,
    primary key (post_id, arm, account_id)
);

create table funnel_opens (
    post_id text not null,
    arm text not null,
    account_id text not null,
    primary key (post_id, arm, account_id)
);
