-- The reconciler looks every pass for orders left waiting on a 3-D Secure challenge. Since
-- `orders_capture` gave way to `orders_uncaptured` (paid orders only), nothing indexed
-- them, and each pass read the whole orders table. Like the other work-queue indexes, this
-- one holds only the waiting rows; the query names the state as a literal.
create index orders_awaiting_challenge on orders(created_at) where status = 'requires_action';
