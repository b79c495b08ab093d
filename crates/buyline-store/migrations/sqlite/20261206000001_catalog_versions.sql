-- A purchase may price itself from a copy of the catalogue cached for a second; the copy
-- carries the version it was read at, and the reservation's own statement checks it is
-- still current. Every change to what a purchase reads of a product (its row, variants other
-- than their stock, shipping rates, file, archiving) or of its merchant adds one.
alter table products add column version bigint not null default 0;
alter table merchants add column version bigint not null default 0;
