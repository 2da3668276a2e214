-- Doctors' schedules and the appointments booked in them.
--
-- No two active appointments of one doctor overlap, and no room or nurse is in two
-- scheduled ones at once: exclusion constraints guarantee it, whatever the application does.
-- Only active statuses take part, so an expired, cancelled or rejected appointment frees its
-- slot at once. `btree_gist` lets the constraints combine uuid equality with range overlap.

create extension if not exists btree_gist;

-- A doctor with a row here has a weekly template of their own (the days in `template_days`);
-- without one, the clinic's default applies.
create table doctor_templates (
    doctor_id uuid primary key,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table template_days (
    doctor_id uuid not null constraint template_days_template_fkey
        references doctor_templates (doctor_id) on delete cascade,
    -- ISO weekday: 1 is Monday.
    weekday smallint not null constraint template_days_weekday_check check (weekday between 1 and 7),
    starts_at time not null,
    ends_at time not null,
    slot_minutes integer not null constraint template_days_slot_check check (slot_minutes between 5 and 240),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint template_days_pkey primary key (doctor_id, weekday),
    constraint template_days_hours_check check (ends_at > starts_at)
);

create table unavailability (
    id uuid primary key,
    doctor_id uuid not null,
    kind text not null constraint unavailability_kind_check check (kind in ('DAY', 'SLOTS', 'WEEKDAY')),
    on_date date,
    weekday smallint constraint unavailability_weekday_check check (weekday between 1 and 7),
    slot_starts time[] not null default '{}',
    reason text not null default '',
    created_by uuid not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint unavailability_shape_check check (
        (kind = 'DAY' and on_date is not null and weekday is null)
        or (kind = 'SLOTS' and on_date is not null and weekday is null and cardinality(slot_starts) > 0)
        or (kind = 'WEEKDAY' and weekday is not null and on_date is null)
    )
);
create index unavailability_doctor_idx on unavailability (doctor_id);

create table appointments (
    id uuid primary key,
    patient_id uuid not null,
    doctor_id uuid not null,
    room_id uuid,
    nurse_id uuid,
    status text not null constraint appointments_status_check check (status in (
        'PENDING', 'PAID', 'SCHEDULED', 'COMPLETED', 'NO_SHOW', 'EXPIRED', 'REJECTED', 'CANCELLED'
    )),
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    period tstzrange generated always as (tstzrange(starts_at, ends_at, '[)')) stored,
    reason text not null default '',
    notes text not null default '',
    -- The fee is the doctor's, read from the identity service at booking; never the client's.
    fee_amount bigint not null constraint appointments_fee_check check (fee_amount >= 0),
    fee_currency text not null constraint appointments_currency_check check (fee_currency ~ '^[A-Z]{3}$'),
    hold_expires_at timestamptz,
    payment_id uuid,
    status_reason text,
    created_by uuid not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint appointments_period_check check (ends_at > starts_at),
    constraint appointments_scheduled_check
        check (status <> 'SCHEDULED' or (room_id is not null and nurse_id is not null)),
    constraint appointment_no_overlap exclude using gist (doctor_id with =, period with &&)
        where (status in ('PENDING', 'PAID', 'SCHEDULED')),
    constraint appointment_room_no_overlap exclude using gist (room_id with =, period with &&)
        where (status = 'SCHEDULED'),
    constraint appointment_nurse_no_overlap exclude using gist (nurse_id with =, period with &&)
        where (status = 'SCHEDULED')
);
create index appointments_patient_idx on appointments (patient_id, starts_at);
create index appointments_doctor_idx on appointments (doctor_id, starts_at);
create index appointments_status_idx on appointments (status, starts_at);
create index appointments_hold_idx on appointments (hold_expires_at) where status = 'PENDING';

-- Every status change of an appointment, who made it and why.
create table appointment_history (
    id bigint generated always as identity primary key,
    appointment_id uuid not null constraint appointment_history_appointment_fkey references appointments (id),
    from_status text,
    to_status text not null,
    actor uuid,
    reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index appointment_history_appointment_idx on appointment_history (appointment_id, id);
