-- Idempotency keys of a service's mutating endpoints. A request's key is claimed in_flight
-- (with a lease, so a crashed request does not block the key forever), then completed with
-- the response it gave, which a retry with the same key and body receives again. Keys live at
-- least 24 hours. Every service that accepts Idempotency-Key carries an identical copy of this
-- file as a migration; a test keeps the copies in step.

create table idempotency_keys (
    scope text not null,
    key text not null,
    request_hash bytea not null,
    state text not null constraint idempotency_keys_state_check check (state in ('in_flight', 'completed')),
    response_status smallint,
    response_body jsonb,
    locked_until timestamptz not null,
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (scope, key)
);
create index idempotency_keys_expiry_idx on idempotency_keys (expires_at);
