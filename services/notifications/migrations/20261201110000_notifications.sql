-- Every message written for an event: one row per (event, recipient, template), which is
-- what makes a redelivered event or a second instance send nothing twice. The row is also
-- the recipient's in-app notification.

create table notifications (
    id uuid primary key,
    event_id uuid not null,
    event_type text not null,
    recipient_id uuid not null,
    recipient_email text not null,
    channel text not null default 'email' constraint notifications_channel_check check (channel in ('email')),
    template text not null,
    subject text not null,
    body_text text not null,
    body_html text not null,
    status text not null default 'PENDING'
        constraint notifications_status_check check (status in ('PENDING', 'SENT', 'FAILED')),
    -- How it left: `smtp`, or `log` when the log transport only recorded it.
    transport text,
    attempts integer not null default 0,
    last_error text,
    next_attempt_at timestamptz not null default now(),
    sent_at timestamptz,
    read_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notifications_once_key unique (event_id, recipient_id, template)
);
create index notifications_recipient_idx on notifications (recipient_id, id);
create index notifications_due_idx on notifications (next_attempt_at) where status = 'PENDING';
create index notifications_status_idx on notifications (status, id);
