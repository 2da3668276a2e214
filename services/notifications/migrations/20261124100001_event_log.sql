-- The event log admins read: every event on every topic, as the `event-log` consumer saw it.
-- Each consumer's outcome lives in its own service's inbox and is asked for when listed.

create table event_log (
    event_id uuid primary key,
    topic text not null,
    event_type text not null,
    subject text not null,
    source text not null,
    correlation_id text,
    occurred_at timestamptz not null,
    envelope jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index event_log_type_time_idx on event_log (event_type, occurred_at);
create index event_log_subject_idx on event_log (subject);
create index event_log_correlation_idx on event_log (correlation_id);
