-- Saved cards and addresses under envelope encryption, and the audit log of every read.
-- Sealed bytes are stored base64-encoded so both backends share one text type.
create table vault_records (
    id text primary key,
    owner_id text not null,
    kind text not null,
    kek_id text,
    wrapped_key text,
    ciphertext text,
    summary text not null,
    created_at bigint not null,
    deleted_at bigint
);
create index vault_records_owner on vault_records(owner_id, kind, created_at);
create index vault_records_kek on vault_records(kek_id);

create table vault_audit (
    id text primary key,
    record_id text not null,
    owner_id text not null,
    kind text not null,
    purpose text not null,
    actor text not null,
    created_at bigint not null
);
create index vault_audit_owner on vault_audit(owner_id, created_at);
