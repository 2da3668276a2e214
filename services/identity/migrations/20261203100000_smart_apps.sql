-- SMART on FHIR: the third-party apps administrators register, the access people grant
-- them, and the authorization codes of the standalone launch. A login an app holds is a
-- refresh token family like any other, tied to its grant so that revoking the grant ends it.

create table smart_apps (
    client_id text primary key constraint smart_apps_client_id_check
        check (client_id ~ '^[A-Za-z0-9._-]{3,64}$' and client_id !~ '^polyclinic-'),
    name text not null constraint smart_apps_name_check check (length(name) between 1 and 200),
    redirect_uris text[] not null constraint smart_apps_redirect_uris_check
        check (cardinality(redirect_uris) between 1 and 10),
    -- A confidential app authenticates with its secret (kept as a SHA-256 digest); a public
    -- one (a browser or native app) with PKCE alone.
    confidential boolean not null,
    secret_hash bytea,
    -- What the app may ask for; a person may grant less, never more.
    scopes text[] not null,
    status text not null default 'ACTIVE' constraint smart_apps_status_check
        check (status in ('ACTIVE', 'DISABLED')),
    created_by uuid not null constraint smart_apps_created_by_fkey references users (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint smart_apps_secret_check check (confidential = (secret_hash is not null))
);

create table smart_grants (
    id uuid primary key,
    client_id text not null constraint smart_grants_app_fkey references smart_apps (client_id),
    user_id uuid not null constraint smart_grants_user_fkey references users (id),
    scopes text[] not null,
    granted_at timestamptz not null default now(),
    revoked_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- One live grant per app and person: allowing again replaces what was granted.
create unique index smart_grants_live_key on smart_grants (client_id, user_id) where revoked_at is null;
create index smart_grants_user_idx on smart_grants (user_id, granted_at);

-- A code is good once, for two minutes, for the redirect URI and PKCE challenge it was
-- issued with. Only its SHA-256 digest is kept.
create table authorization_codes (
    code_hash bytea primary key,
    grant_id uuid not null constraint authorization_codes_grant_fkey references smart_grants (id),
    redirect_uri text not null,
    code_challenge text not null,
    -- What this consent granted: a later, wider one does not widen this code.
    scopes text[] not null,
    nonce text,
    expires_at timestamptz not null,
    used_at timestamptz,
    -- The login the code's exchange started: a second use of the code ends it.
    family_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index authorization_codes_expiry_idx on authorization_codes (expires_at);

-- An app's login keeps the scopes it was granted; a refresh gets those still granted.
alter table refresh_tokens add column grant_id uuid
    constraint refresh_tokens_grant_fkey references smart_grants (id),
    add column scopes text[];
create index refresh_tokens_grant_idx on refresh_tokens (grant_id) where grant_id is not null;
