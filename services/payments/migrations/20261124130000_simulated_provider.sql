-- The `simulated` payment provider's own records: what Stripe would keep for us, kept here so
-- that the whole flow can be tried without a Stripe account, across restarts.

create table simulated_intents (
    id text primary key,
    amount bigint not null constraint simulated_intents_amount_check check (amount > 0),
    currency text not null,
    status text not null constraint simulated_intents_status_check
        check (status in ('requires_payment_method', 'requires_capture', 'succeeded', 'canceled')),
    amount_received bigint not null default 0,
    amount_refunded bigint not null default 0,
    authorized_at timestamptz,
    client_secret text not null,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Like Stripe: a request repeated with the same Idempotency-Key gets the first answer.
create table simulated_requests (
    idempotency_key text primary key,
    operation text not null,
    intent_id text not null,
    answer jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
