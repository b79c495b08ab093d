-- Search ignores accents, as SQLite's FTS5 tokenizer does (`remove_diacritics 2`): the
-- posts' `tsvector` and the query both go through `unaccent` (a trusted extension from
-- PostgreSQL's contrib, so the database's owner may create it). `unaccent` itself is only
-- stable (its dictionary could change), so a generated column needs this immutable wrapper;
-- its SQL-standard body binds the dictionary when it is created, whatever the search_path.
create extension if not exists unaccent;
create function search_fold(t text) returns text language sql immutable strict parallel safe
    return unaccent('unaccent'::regdictionary, t);
drop index posts_search;
alter table posts drop column search;
alter table posts add column search tsvector generated always as (to_tsvector('simple', search_fold(text))) stored;
create index posts_search on posts using gin (search);
