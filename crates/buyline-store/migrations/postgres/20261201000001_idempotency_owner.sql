-- Idempotency records know whose they are (erasing an account erases its replays) and
-- expire: an index on their age lets the reconciler prune them.
alter table idempotency_keys add column account_id text;
create index idempotency_keys_account on idempotency_keys(account_id);
create index idempotency_keys_created on idempotency_keys(created_at);
