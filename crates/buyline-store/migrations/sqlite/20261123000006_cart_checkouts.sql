-- A checkout opened from a hashtag cart: only its order removes cart items, so other orders
-- (one tap) skip that statement.
alter table checkouts add column from_cart bigint not null default 0;
