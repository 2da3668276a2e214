-- Buffers: minutes a doctor keeps free before and after every visit (to prepare the room,
-- to write notes). The template sets them; each appointment keeps the buffers it was booked
-- with, so a later change of the template neither moves nor breaks what is booked.
--
-- The doctor's exclusion constraint now compares the time each appointment keeps (`blocked`:
-- the visit and its buffers), so no booking can fall inside another's buffers, whatever a
-- client sends and whichever template it was booked under.

alter table doctor_templates
    add column buffer_before_minutes integer not null default 0
        constraint doctor_templates_buffer_before_check check (buffer_before_minutes between 0 and 120),
    add column buffer_after_minutes integer not null default 0
        constraint doctor_templates_buffer_after_check check (buffer_after_minutes between 0 and 120);

-- `timestamptz - interval` is only stable, as an interval of days or months means different
-- lengths in different zones; an interval of minutes does not, so this is immutable in
-- fact, which a generated column needs.
create function padded_period(
    starts timestamptz, ends timestamptz, before_minutes integer, after_minutes integer
) returns tstzrange
    language sql immutable parallel safe
    return tstzrange(
        starts - make_interval(mins => before_minutes),
        ends + make_interval(mins => after_minutes),
        '[)'
    );

alter table appointments
    add column buffer_before_minutes integer not null default 0
        constraint appointments_buffer_before_check check (buffer_before_minutes between 0 and 120),
    add column buffer_after_minutes integer not null default 0
        constraint appointments_buffer_after_check check (buffer_after_minutes between 0 and 120),
    add column blocked tstzrange generated always as (
        padded_period(starts_at, ends_at, buffer_before_minutes, buffer_after_minutes)
    ) stored;

alter table appointments drop constraint appointment_no_overlap;
alter table appointments add constraint appointment_no_overlap
    exclude using gist (doctor_id with =, blocked with &&)
    where (status in ('PENDING', 'PAID', 'SCHEDULED'));
