-- Provider webhook events already handled: a redelivered event is acknowledged and ignored.

create table webhook_events (
    id text primary key,
    event_type text not null,
    payment_id uuid,
    received_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
