-- Calendars: the iCalendar part an email about an appointment's time carries, the
-- calendar's own view of appointments, and the private feeds people subscribe to.

-- The invite (`REQUEST`) or cancellation (`CANCEL`) sent with a message, as written.
alter table notifications
    add column calendar text,
    add column calendar_method text
        constraint notifications_calendar_method_check check (calendar_method in ('REQUEST', 'CANCEL')),
    add constraint notifications_calendar_check check ((calendar is null) = (calendar_method is null));

-- Every appointment as the appointments service's events last described it (ids, times,
-- status and revision: nothing clinical), kept by the `notifications-calendar` consumer.
-- A later revision replaces an earlier one; an earlier one arriving late changes nothing.
create table calendar_visits (
    appointment_id uuid primary key,
    patient_id uuid not null,
    doctor_id uuid not null,
    nurse_id uuid,
    room_id uuid,
    status text not null,
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    revision integer not null,
    -- When the event that described it last happened: the iCalendar DTSTAMP.
    changed_at timestamptz not null,
    -- Whether it was ever paid or scheduled, so that calendars heard of it: only such visits
    -- are in feeds (a hold that ran out is nobody's calendar business).
    announced boolean not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint calendar_visits_period_check check (ends_at > starts_at)
);
create index calendar_visits_patient_idx on calendar_visits (patient_id, starts_at);
create index calendar_visits_doctor_idx on calendar_visits (doctor_id, starts_at);
create index calendar_visits_nurse_idx on calendar_visits (nurse_id, starts_at) where nurse_id is not null;

-- One private feed per person. Only a SHA-256 hash of its secret is kept: the URL is shown
-- once, when it is made; making a new one (rotation) replaces the old, which stops working.
create table calendar_feeds (
    user_id uuid primary key,
    secret_hash bytea not null constraint calendar_feeds_secret_key unique,
    last_read_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
