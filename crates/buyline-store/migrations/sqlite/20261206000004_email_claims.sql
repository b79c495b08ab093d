-- An e-mail is claimed before it is sent: several server processes on one database each
-- ran the mailer over the same unsent rows, so a receipt could go out once per process.
-- A sender sets `locked_until` (a lease; on PostgreSQL through `for update skip locked`),
-- sends, then sets `sent_at`; a lease that runs out (a sender that died) frees the e-mail.
alter table emails add column locked_until bigint not null default 0;
