-- Browser sessions, in the layout of tower-sessions' PostgreSQL store (which reads and
-- writes them): the id the cookie carries, the session's data (MessagePack; the tokens in
-- it are sealed with `sessions.keys`), and when it ends. A session is only ever loaded
-- while `expiry_date` is ahead, which the app keeps at the earlier of the idle and the
-- absolute limit; the purge job deletes rows past it.
create table session (
    id text primary key,
    data bytea not null,
    expiry_date timestamptz not null
);
create index session_expiry_date_idx on session (expiry_date);
