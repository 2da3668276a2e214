-- The `postgres` event bus: one append-only log shared by every service, in the
-- `eventbus` schema. Positions are assigned under a transaction-level advisory lock held by
-- the appending relay, so they are also commit order and a consumer that reads past a
-- position never misses a later-committed lower one.

create table events (
    position bigint generated always as identity primary key,
    topic text not null,
    key text not null,
    event_id uuid not null constraint events_event_id_key unique,
    event_type text not null,
    envelope jsonb not null,
    appended_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index events_topic_position_idx on events (topic, position);
create index events_type_time_idx on events (event_type, appended_at);

-- Append-only: nobody rewrites history. Retention is the only delete (see `purge_log`).
create function events_refuse_update() returns trigger language plpgsql as $$
begin
    raise exception 'the event log is append-only';
end;
$$;
create trigger events_append_only before update on events
    for each row execute function events_refuse_update();
