-- Campaigns (promoted posts) and discovery: the search index over posts and their hashtags.

-- A merchant promotes one of its posts to a list of countries. `countries` is the JSON array
-- the API shows; `campaign_countries` is the same list, one row per country, for the
-- timeline's look-up of the active campaigns of a shopper's country.
create table campaigns (
    id text primary key,
    merchant_id text not null references merchants(id),
    post_id text not null,
    countries text not null,
    status text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index campaigns_merchant on campaigns(merchant_id, created_at, id);
create index campaigns_post on campaigns(post_id);

create table campaign_countries (
    country text not null,
    campaign_id text not null references campaigns(id),
    primary key (country, campaign_id)
);

-- A post's hashtags, one row per distinct tag (case-folded), for `/hashtags/{tag}` newest
-- first. Written with the post (same statement batch, same transaction); removed with it
-- by the trigger below.
create table post_tags (
    tag text not null,
    post_id text not null,
    created_at bigint not null,
    primary key (tag, created_at, post_id)
);
create index post_tags_post on post_tags(post_id);

-- Who to follow reads the accounts of one country.
create index accounts_country on accounts(country, kind);

-- Full-text search over post text (hashtags included: the parser drops the `#`). A stored
-- generated column is computed by the statement that writes the row, so it is always in
-- step with the post, in the same transaction; adding it fills it for existing posts.
alter table posts add column search tsvector generated always as (to_tsvector('simple', text)) stored;
create index posts_search on posts using gin (search);

create function post_tags_delete() returns trigger language plpgsql as $$
begin
    delete from post_tags where post_id = old.id;
    return old;
end;
$$;

create trigger posts_tags_delete after delete on posts for each row execute function post_tags_delete();

-- Backfill for posts written before this migration.
insert into post_tags (tag, post_id, created_at)
    select distinct lower(t ->> 'tag'), p.id, p.created_at
    from posts p, jsonb_array_elements(p.entities::jsonb -> 'hashtags') t
on conflict do nothing;
