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

-- Full-text search over post text (hashtags included: the tokenizer drops the `#`). The
-- triggers keep it in step with `posts` inside whichever transaction inserts or deletes a
-- post (a single post, a group commit, a cart answer, an account's erasure).
create virtual table posts_fts using fts5(text, post_id unindexed, tokenize = 'unicode61 remove_diacritics 2');

create trigger posts_fts_insert after insert on posts begin
    insert into posts_fts (rowid, text, post_id) values (new.rowid, new.text, new.id);
end;

create trigger posts_search_delete after delete on posts begin
    delete from posts_fts where rowid = old.rowid;
    delete from post_tags where post_id = old.id;
end;

-- Backfill for posts written before this migration.
insert into posts_fts (rowid, text, post_id) select rowid, text, id from posts;
insert or ignore into post_tags (tag, post_id, created_at)
    select distinct lower(json_extract(j.value, '$.tag')), p.id, p.created_at
    from posts p, json_each(p.entities, '$.hashtags') j;
