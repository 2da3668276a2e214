-- The event backbone's tables in a service's own schema: the outbox it publishes from, and
-- the inbox, positions, parked events and dead letters of its consumers. Every service
-- carries an identical copy of this file as a migration; a test keeps the copies in step.

-- Events written in the same transaction as the change they announce, relayed in `seq`
-- order.
create table outbox (
    seq bigint generated always as identity primary key,
    event_id uuid not null constraint outbox_event_id_key unique,
    topic text not null,
    key text not null,
    event_type text not null,
    envelope jsonb not null,
    published_at timestamptz,
    attempts integer not null default 0,
    last_error text,
    next_attempt_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index outbox_pending_idx on outbox (seq) where published_at is null;
create index outbox_published_idx on outbox (published_at) where published_at is not null;

-- One row per (consumer, event) handled: a redelivered event finds its row and changes
-- nothing. Written in the handler's transaction.
create table inbox (
    consumer text not null,
    event_id uuid not null,
    event_type text not null,
    outcome text not null constraint inbox_outcome_check
        check (outcome in ('handled', 'skipped', 'dead_lettered', 'replayed')),
    detail text,
    handled_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint inbox_pkey primary key (consumer, event_id)
);
create index inbox_event_idx on inbox (event_id);

-- How far each consumer has read each topic of the `postgres` bus.
create table consumer_positions (
    consumer text not null,
    topic text not null,
    position bigint not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint consumer_positions_pkey primary key (consumer, topic)
);

-- Events whose handler failed, retried with backoff away from the stream so that other
-- aggregates go on; later events of the same aggregate wait behind them in order.
create table parked_events (
    id bigint generated always as identity primary key,
    consumer text not null,
    event_id uuid not null,
    topic text not null,
    key text not null,
    event_type text not null,
    envelope jsonb not null,
    state text not null constraint parked_events_state_check check (state in ('retrying', 'waiting')),
    attempts integer not null default 0,
    last_error text,
    next_attempt_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint parked_events_consumer_event_key unique (consumer, event_id)
);
create index parked_events_due_idx on parked_events (consumer, next_attempt_at) where state = 'retrying';
create index parked_events_key_idx on parked_events (consumer, key, id);

-- Events that failed every attempt; an admin lists and replays them.
create table dead_letters (
    id uuid primary key,
    consumer text not null,
    event_id uuid not null,
    topic text not null,
    key text not null,
    event_type text not null,
    envelope jsonb not null,
    error text not null,
    attempts integer not null,
    replayed_at timestamptz,
    replay_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint dead_letters_consumer_event_key unique (consumer, event_id)
);
create index dead_letters_open_idx on dead_letters (created_at) where replayed_at is null;
