-- Visits booked further ahead than a card authorisation lives (Stripe cancels an
-- uncaptured authorisation after seven days): the card is saved at booking (a SetupIntent
-- for off-session use) and authorised off-session shortly before the visit. Every payment's
-- card is saved to the patient's customer, so an authorisation that would lapse before the
-- visit is renewed the same way. A refused off-session authorisation gives the patient until
-- a deadline to give another card; after it the payment is canceled (and the visit with it).

alter table payments drop constraint payments_status_check;
alter table payments add constraint payments_status_check check (status in (
    'requires_payment_method', 'card_saved', 'requires_capture', 'succeeded', 'canceled'
));
-- A payment whose card is only saved has no PaymentIntent yet.
alter table payments alter column provider_intent_id drop not null;
alter table payments
    -- When the visit starts, as the appointments service last said (moves follow).
    add column visit_starts_at timestamptz,
    -- The patient's customer at the provider, whose saved card is charged off-session.
    add column customer_id text,
    -- The SetupIntent that saved the card of a visit booked far ahead.
    add column setup_intent_id text constraint payments_setup_intent_key unique,
    -- The saved card (the provider's payment method id).
    add column payment_method text,
    -- When the saved card is to be authorised (the visit's start less the lead time).
    add column authorize_at timestamptz,
    -- The clinic approved the visit before the card was authorised: capture follows it.
    add column capture_requested_at timestamptz,
    -- A refused authorisation: by when the patient must give another card.
    add column card_deadline timestamptz,
    add constraint payments_intent_check check (provider_intent_id is not null or setup_intent_id is not null);
create index payments_authorize_due_idx on payments (authorize_at) where status = 'card_saved';
create index payments_card_deadline_idx on payments (card_deadline)
    where status = 'requires_payment_method' and card_deadline is not null;
create index payments_reauthorize_idx on payments (authorized_at) where status = 'requires_capture';

-- One customer per patient at the provider.
create table payment_customers (
    patient_id uuid primary key,
    provider text not null,
    customer_id text not null constraint payment_customers_customer_key unique,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- The simulated provider's SetupIntents, and what its intents were confirmed with.
create table simulated_setups (
    id text primary key,
    customer text not null,
    status text not null constraint simulated_setups_status_check
        check (status in ('requires_payment_method', 'succeeded', 'canceled')),
    payment_method text,
    client_secret text not null,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
alter table simulated_intents add column customer text, add column payment_method text;
