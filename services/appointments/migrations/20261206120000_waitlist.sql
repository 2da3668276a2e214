-- Waitlists: patients waiting for a slot with a doctor (or any doctor of a specialization)
-- within a range of dates and a window of the day, first come, first served.
--
-- An offer is an appointment in status OFFERED: it holds its slot under the same exclusion
-- constraint as every booking, so a slot goes to at most one patient whatever runs at once
-- (two slots freeing, two instances matching, a claim racing the offer's expiry).

alter table appointments drop constraint appointments_status_check;
alter table appointments add constraint appointments_status_check check (status in (
    'OFFERED', 'PENDING', 'PAID', 'SCHEDULED', 'COMPLETED', 'NO_SHOW', 'EXPIRED', 'REJECTED', 'CANCELLED'
));
alter table appointments drop constraint appointment_no_overlap;
alter table appointments add constraint appointment_no_overlap
    exclude using gist (doctor_id with =, blocked with &&)
    where (status in ('OFFERED', 'PENDING', 'PAID', 'SCHEDULED'));
drop index appointments_hold_idx;
create index appointments_hold_idx on appointments (hold_expires_at) where status in ('OFFERED', 'PENDING');

-- One patient's place in line. Ids are UUIDv7, so they sort in the order patients joined.
create table waitlist_entries (
    id uuid primary key,
    patient_id uuid not null,
    -- One doctor, or any doctor of a specialization (kept in lower case).
    doctor_id uuid,
    specialization text,
    from_date date not null,
    to_date date not null,
    -- The window of the day (clinic time) in which the whole visit must fall.
    earliest time not null,
    latest time not null,
    status text not null constraint waitlist_entries_status_check
        check (status in ('WAITING', 'OFFERED', 'BOOKED', 'ENDED', 'LEFT')),
    ended_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint waitlist_entries_target_check check ((doctor_id is null) <> (specialization is null)),
    constraint waitlist_entries_range_check check (to_date >= from_date),
    constraint waitlist_entries_window_check check (latest > earliest)
);
create index waitlist_entries_doctor_idx on waitlist_entries (doctor_id, id)
    where status in ('WAITING', 'OFFERED');
create index waitlist_entries_specialization_idx on waitlist_entries (specialization, id)
    where status in ('WAITING', 'OFFERED');
create index waitlist_entries_patient_idx on waitlist_entries (patient_id, id);
create index waitlist_entries_active_idx on waitlist_entries (to_date) where status = 'WAITING';

-- Every slot offered to an entry, and what became of it.
create table waitlist_offers (
    id uuid primary key,
    entry_id uuid not null constraint waitlist_offers_entry_fkey references waitlist_entries (id),
    appointment_id uuid not null constraint waitlist_offers_appointment_key unique,
    doctor_id uuid not null,
    starts_at timestamptz not null,
    status text not null constraint waitlist_offers_status_check
        check (status in ('OPEN', 'CLAIMED', 'EXPIRED', 'DECLINED', 'WITHDRAWN')),
    expires_at timestamptz not null,
    decided_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- An entry holds one open offer at a time.
create unique index waitlist_offers_one_open_idx on waitlist_offers (entry_id) where status = 'OPEN';
-- A slot once offered to an entry is not offered to it again.
create index waitlist_offers_slot_idx on waitlist_offers (entry_id, doctor_id, starts_at);

-- Times that may have freed for a doctor (or for every doctor of a specialization): written
-- in the transaction that frees them (a cancellation, an expired hold or offer, a rejection,
-- a move, time off lifted, new hours, a patient joining or back in line after an offer),
-- worked through by the matcher, one instance at a time.
create table waitlist_openings (
    id bigint generated always as identity primary key,
    doctor_id uuid,
    specialization text,
    starts_from timestamptz not null,
    starts_until timestamptz not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint waitlist_openings_target_check check ((doctor_id is null) <> (specialization is null)),
    constraint waitlist_openings_period_check check (starts_until > starts_from)
);
