-- One payment per appointment, its provider intent, and the history of every change.

create table payments (
    id uuid primary key,
    appointment_id uuid not null constraint payments_appointment_key unique,
    patient_id uuid not null,
    amount bigint not null constraint payments_amount_check check (amount > 0),
    currency text not null constraint payments_currency_check check (currency ~ '^[A-Z]{3}$'),
    status text not null constraint payments_status_check
        check (status in ('requires_payment_method', 'requires_capture', 'succeeded', 'canceled')),
    provider text not null constraint payments_provider_check check (provider in ('simulated', 'stripe')),
    provider_intent_id text not null constraint payments_provider_intent_key unique,
    client_secret text,
    amount_captured bigint not null default 0,
    amount_refunded bigint not null default 0,
    authorized_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint payments_refund_check check (amount_refunded <= amount_captured and amount_captured <= amount)
);
create index payments_patient_idx on payments (patient_id, created_at);
create index payments_status_idx on payments (status, updated_at);

create table payment_history (
    id bigint generated always as identity primary key,
    payment_id uuid not null constraint payment_history_payment_fkey references payments (id),
    action text not null,
    from_status text,
    to_status text not null,
    amount bigint,
    detail text,
    actor text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index payment_history_payment_idx on payment_history (payment_id, id);
