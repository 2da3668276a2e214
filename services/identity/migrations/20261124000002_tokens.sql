-- The built-in OIDC provider: signing keys, logins (refresh token families) and failed
-- login attempts for throttling.

create table signing_keys (
    kid text primary key,
    algorithm text not null constraint signing_keys_algorithm_check check (algorithm = 'EdDSA'),
    -- PKCS#8 document of the Ed25519 key pair.
    private_key bytea not null,
    public_key bytea not null,
    -- Published in the JWKS from creation; signs from `active_from` on.
    active_from timestamptz not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index signing_keys_active_idx on signing_keys (active_from desc);

-- One row per refresh token. Rotation marks the presented one used and inserts its
-- successor in the same family; presenting a used one again revokes the whole family.
create table refresh_tokens (
    id uuid primary key,
    family_id uuid not null,
    user_id uuid not null constraint refresh_tokens_user_fkey references users (id),
    client_id text not null,
    token_hash bytea not null constraint refresh_tokens_hash_key unique,
    expires_at timestamptz not null,
    used_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_expiry_idx on refresh_tokens (expires_at);

create table revoked_sessions (
    family_id uuid primary key,
    user_id uuid not null constraint revoked_sessions_user_fkey references users (id),
    reason text not null,
    revoked_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index revoked_sessions_time_idx on revoked_sessions (revoked_at);

create table login_failures (
    id bigint generated always as identity primary key,
    user_id uuid not null constraint login_failures_user_fkey references users (id),
    failed_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index login_failures_user_time_idx on login_failures (user_id, failed_at);
