-- A reference clinic, `polyclinic.scale` times over, written straight into a migrated
-- platform database with set-based SQL (see `scale.rs`). At scale 1: 20 doctors (each with a
-- nurse and a room of their own), 2,000 patients, 5,000 appointments over the two years
-- behind today and the month ahead, in every status but OFFERED; 10,000 history
-- rows; a record of three entries per patient; 20,000 rows of the audit trail (its hash
-- chain computed as the service computes it, so `polyclinic audit-verify` passes); 5,000
-- notifications; 20,000 events in the event log.
--
-- The work a night finds is there too: the last day's visits still SCHEDULED (completion),
-- holds that ran out (expiry), visits in the next 24 hours not yet reminded of (reminders),
-- and a day of terminal appointments just past the 730-day retention (purge).
--
-- Every seeded person signs in with the administrator's password (the hash is copied).

create function pg_temp.uuid7(at timestamptz) returns uuid
    language sql volatile
    return (lpad(to_hex(floor(extract(epoch from at) * 1000)::bigint), 12, '0')
            || '7' || substr(md5(random()::text), 1, 3)
            || substr('89ab', 1 + floor(random() * 4)::int, 1)
            || substr(md5(random()::text), 1, 15))::uuid;

create temp table seed_scale as
select current_setting('polyclinic.scale')::int as factor,
       (select password_hash from identity.users where role = 'ADMIN' order by created_at limit 1) as password_hash;

-- People and places ----------------------------------------------------------------------

create temp table seed_departments as
select n, gen_random_uuid() as id from generate_series(1, 5) n;
insert into identity.departments (id, name, description)
select id, 'Scale department ' || n, 'Seeded for the scale benchmark' from seed_departments;

create temp table seed_doctors as
select n, gen_random_uuid() as id, gen_random_uuid() as nurse_id, gen_random_uuid() as room_id,
       (select id from seed_departments d where d.n = 1 + g.n % 5) as department_id
from generate_series(1, 20 * (select factor from seed_scale)) g(n);
alter table seed_doctors add primary key (n);

create temp table seed_patients as
select n, gen_random_uuid() as id, gen_random_uuid() as record_id
from generate_series(1, 2000 * (select factor from seed_scale)) n;
alter table seed_patients add primary key (n);

insert into identity.users (id, role, email, username, first_name, last_name, password_hash, created_at)
select id, 'DOCTOR', 'doctor' || n || '@scale.example', 'scale-doctor-' || n, 'Doctor', 'Number ' || n,
       (select password_hash from seed_scale), now() - interval '3 years'
from seed_doctors
union all
select nurse_id, 'NURSE', 'nurse' || n || '@scale.example', 'scale-nurse-' || n, 'Nurse', 'Number ' || n,
       (select password_hash from seed_scale), now() - interval '3 years'
from seed_doctors
union all
select id, 'PATIENT', 'patient' || n || '@scale.example', 'scale-patient-' || n, 'Patient', 'Number ' || n,
       (select password_hash from seed_scale), now() - interval '3 years'
from seed_patients;

insert into identity.doctors (user_id, specialization, years_of_experience, department_id, fee_amount, fee_currency)
select id, (array['General practice', 'Cardiology', 'Dermatology', 'Paediatrics'])[1 + n % 4], 1 + n % 30,
       department_id, 6000, 'EUR'
from seed_doctors;
insert into identity.nurses (user_id, department_id) select nurse_id, department_id from seed_doctors;
insert into identity.patients (user_id) select id from seed_patients;
insert into identity.rooms (id, department_id, name)
select room_id, department_id, 'Scale room ' || n from seed_doctors;

-- Schedules: every day, 08:00 to 16:00 in 30-minute slots ---------------------------------

insert into appointments.doctor_templates (doctor_id) select id from seed_doctors;
insert into appointments.template_days (doctor_id, weekday, starts_at, ends_at, slot_minutes)
select d.id, w, time '08:00', time '16:00', 30 from seed_doctors d, generate_series(1, 7) w;

-- Appointments: 250 per doctor over 761 days (731 behind today, 30 ahead), every third day or
-- so (each doctor's days their own), each in a slot of its own, in every status but OFFERED (a waitlist's offer lives minutes) -------------------

create temp table seed_appointments as
with slots as (
    select d.id as doctor_id, d.nurse_id, d.room_id, p.id as patient_id, s.starts_at, s.r
    from seed_doctors d
    cross join generate_series(0, 249) k
    cross join lateral (
        select ((current_date - 731 + ((k * 761 + d.n * 97 % 761) / 250)) + time '08:00'
                   + make_interval(mins => 30 * ((k * 7 + d.n) % 16)))::timestamptz as starts_at,
               random() as r,
               1 + floor(random() * 2000 * (select factor from seed_scale))::int as patient_n
    ) s
    join seed_patients p on p.n = s.patient_n
),
statused as (
    select *,
           case
               when starts_at < now() - interval '1 day' then
                   case when r < 0.75 then 'COMPLETED' when r < 0.80 then 'NO_SHOW'
                        when r < 0.92 then 'CANCELLED' when r < 0.95 then 'REJECTED' else 'EXPIRED' end
               when starts_at < now() then
                   case when r < 0.85 then 'SCHEDULED' else 'CANCELLED' end
               else
                   case when r < 0.55 then 'SCHEDULED' when r < 0.70 then 'PAID'
                        when r < 0.80 then 'PENDING' else 'CANCELLED' end
           end as status
    from slots
),
booked as (
    select *,
           case when status = 'PENDING' then now() - random() * interval '30 minutes'
                else least(now() - interval '1 hour' - random() * interval '3 days',
                           starts_at - interval '1 day' - random() * interval '20 days')
           end as booked_at
    from statused
)
select pg_temp.uuid7(booked_at) as id, *,
       case when status in ('COMPLETED', 'NO_SHOW', 'CANCELLED', 'REJECTED', 'EXPIRED')
            then least(now(), starts_at + interval '3 hours') else booked_at end as changed_at
from booked;

insert into appointments.appointments (
    id, patient_id, doctor_id, room_id, nurse_id, status, starts_at, ends_at, fee_amount, fee_currency,
    hold_expires_at, status_reason, created_by, reminder_sent_at, created_at, updated_at)
select id, patient_id, doctor_id,
       case when status in ('SCHEDULED', 'COMPLETED', 'NO_SHOW') then room_id end,
       case when status in ('SCHEDULED', 'COMPLETED', 'NO_SHOW') then nurse_id end,
       status, starts_at, starts_at + interval '30 minutes', 6000, 'EUR',
       case when status = 'PENDING' then booked_at + interval '15 minutes' end,
       case when status in ('CANCELLED', 'REJECTED', 'EXPIRED') then 'seeded' end,
       patient_id,
       case when status = 'SCHEDULED' and starts_at < now() then starts_at - interval '1 day' end,
       booked_at, changed_at
from seed_appointments
order by booked_at;

insert into appointments.appointment_history (appointment_id, from_status, to_status, actor, created_at)
select id, null, 'PENDING', patient_id, booked_at from seed_appointments
union all
select id, 'PENDING', status, null, changed_at from seed_appointments where status <> 'PENDING'
order by 5;

-- Records: three entries per patient, written by the doctor of one of their visits -----------

insert into prescriptions.records (id, patient_id, created_at)
select record_id, id, now() - interval '2 years' from seed_patients;

create temp table seed_entries as
select p.record_id, kind, gen_random_uuid() as id,
       (select id from seed_doctors d where d.n = 1 + (p.n % (20 * (select factor from seed_scale)))) as author_id,
       now() - interval '1 year' + make_interval(days => (k * 30)::int) as created_at
from seed_patients p,
     unnest(array['DIAGNOSIS', 'NOTE', 'VITALS']) with ordinality as kinds(kind, k);

insert into prescriptions.entries (id, record_id, kind, author_id, author_role, created_at)
select id, record_id, kind, author_id, 'DOCTOR', created_at from seed_entries;
insert into prescriptions.diagnoses (entry_id, icd10_code, description)
select id, 'J06.9', 'Acute upper respiratory infection' from seed_entries where kind = 'DIAGNOSIS';
insert into prescriptions.visit_notes (entry_id, subjective, assessment, plan)
select id, 'Sore throat for three days', 'Viral pharyngitis', 'Rest and fluids'
from seed_entries where kind = 'NOTE';
insert into prescriptions.vitals (entry_id, systolic_mmhg, diastolic_mmhg, pulse_bpm)
select id, 120, 80, 70 from seed_entries where kind = 'VITALS';

-- The audit trail: reads and writes over two years, hash-chained as the service chains them --

create temp table seed_audit as
with picked as (
    select n, random() as r,
           1 + floor(random() * 2000 * (select factor from seed_scale))::int as patient_n,
           1 + floor(random() * 20 * (select factor from seed_scale))::int as doctor_n
    from generate_series(1, 20000 * (select factor from seed_scale)) n
)
select picked.n,
       date_trunc('milliseconds', now() - interval '730 days'
           + (interval '730 days' - interval '1 hour') * picked.n / (20000 * (select factor from seed_scale))) as at,
       case when r < 0.7 then d.id::text when r < 0.8 then d.nurse_id::text else p.id::text end as actor_id,
       case when r < 0.7 then 'DOCTOR' when r < 0.8 then 'NURSE' else 'PATIENT' end as actor_role,
       case when r < 0.15 then 'entry.write' else 'record.read' end as action,
       p.id as patient_id, p.record_id,
       case when r < 0.995 then 'allowed' else 'denied' end as outcome
from picked
join seed_patients p on p.n = picked.patient_n
join seed_doctors d on d.n = picked.doctor_n;
alter table seed_audit add primary key (n);

create temp table seed_audit_chain as
with recursive chain (n, prev_hash, hash) as (
    select 0::bigint, ''::bytea,
           coalesce((select hash from prescriptions.audit_log order by id desc limit 1), ''::bytea)
    union all
    select a.n, c.hash,
           sha256(c.hash || convert_to(
               concat_ws('|', (extract(epoch from a.at) * 1000000)::bigint, a.actor_id, a.actor_role,
                         a.action, a.patient_id, a.record_id, '', '', a.outcome), 'UTF8'))
    from chain c join seed_audit a on a.n = c.n + 1
)
select * from chain where n > 0;

insert into prescriptions.audit_log (at, actor_id, actor_role, action, patient_id, record_id, outcome, prev_hash, hash)
select a.at, a.actor_id, a.actor_role, a.action, a.patient_id, a.record_id, a.outcome, c.prev_hash, c.hash
from seed_audit a join seed_audit_chain c using (n)
order by n;
insert into prescriptions.audit_checkpoints (audit_id, hash)
select id, hash from prescriptions.audit_log order by id desc limit 1;

-- Notifications: a patient's messages over two years, most of them read -----------------------

insert into notifications.notifications (
    id, event_id, event_type, recipient_id, recipient_email, template, subject, body_text, body_html,
    status, transport, attempts, next_attempt_at, sent_at, read_at, created_at, updated_at)
select pg_temp.uuid7(at), gen_random_uuid(), 'polyclinic.appointment.scheduled.v1', p.id,
       'patient' || p.n || '@scale.example', 'appointment_scheduled', 'Your appointment is confirmed',
       'Your appointment is confirmed.', '<p>Your appointment is confirmed.</p>',
       'SENT', 'smtp', 1, at, at, case when random() < 0.7 then at + interval '1 hour' end, at, at
from (
    select now() - interval '730 days' + interval '730 days' * random() as at,
           1 + floor(random() * 2000 * (select factor from seed_scale))::int as patient_n
    from generate_series(1, 5000 * (select factor from seed_scale))
) picked
join seed_patients p on p.n = picked.patient_n
order by at;

-- The event log: every topic's events over two years -------------------------------------------

insert into notifications.event_log (event_id, topic, event_type, subject, source, correlation_id, occurred_at, envelope)
select pg_temp.uuid7(at), 'polyclinic.appointments', type, subject, 'polyclinic-appointments', gen_random_uuid()::text, at,
       jsonb_build_object('id', gen_random_uuid(), 'type', type, 'subject', subject, 'time', at)
from (
    select now() - interval '730 days' + interval '730 days' * random() as at,
           'appointment/' || gen_random_uuid() as subject,
           (array['polyclinic.appointment.reserved.v1', 'polyclinic.appointment.paid.v1',
                  'polyclinic.appointment.scheduled.v1', 'polyclinic.appointment.completed.v1'])[1 + n % 4] as type
    from generate_series(1, 20000 * (select factor from seed_scale)) n
) picked
order by at;

-- Statistics, as autovacuum would gather them on a clinic's database ---------------------------

analyze identity.users, identity.doctors, identity.nurses, identity.patients, identity.rooms;
analyze appointments.appointments, appointments.appointment_history, appointments.template_days;
analyze prescriptions.records, prescriptions.entries, prescriptions.audit_log;
analyze notifications.notifications, notifications.event_log;
