-- A merchant retires a product that has no open orders: it leaves the catalogue, the buy
-- cards and checkout, while paid orders (and their download links) keep working.
alter table products add column archived_at bigint;
