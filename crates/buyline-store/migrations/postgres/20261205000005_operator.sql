-- The operator console: cookie sessions opened with the operator token (stored hashed,
-- short-lived, shared by every server process) and the audit log of operator actions.
create table operator_sessions (
    token_hash text primary key,
    created_at bigint not null,
    expires_at bigint not null
);
create index operator_sessions_expiry on operator_sessions(expires_at);

create table operator_audit (
    id text primary key,
    at bigint not null,
    action text not null,
    detail text not null
);
create index operator_audit_at on operator_audit(at, id);
