-- Nothing to change on SQLite: `posts_fts`'s tokenizer already folds accents
-- (`unicode61 remove_diacritics 2`). PostgreSQL's migration of the same number makes its
-- search do the same.
select 1;
