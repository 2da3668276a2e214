-- Login throttling that holds under a burst, and token revocation of a user that is not
-- only deactivation.

-- Every password check first takes an attempt from two counters in one atomic upsert: the
-- (account, client address) pair's (5 per 15 minutes) and the account's across every
-- address (a short, higher cap). A burst of parallel guesses therefore gets at most the
-- pair's allowance verified; a locked pair does not lock the account for other addresses
-- beyond the account's cap. Keys are SHA-256 digests (of the account, or of the login as
-- typed when no account has it, so unknown logins are throttled alike), never the login or
-- the address in the clear.
create table login_throttle (
    key bytea primary key,
    window_started_at timestamptz not null,
    attempts integer not null constraint login_throttle_attempts_check check (attempts >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index login_throttle_window_idx on login_throttle (window_started_at);

drop table login_failures;

-- Tokens of the user issued at or before this instant are void: deactivation sets it, and
-- under Keycloak so does a change of role or department (built-in logins are ended by
-- revoking their refresh token families instead).
alter table users add column tokens_revoked_at timestamptz;
update users set tokens_revoked_at = deactivated_at where status = 'DEACTIVATED';
create index users_tokens_revoked_idx on users (tokens_revoked_at) where tokens_revoked_at is not null;
