-- The reminder sent 24 hours before a visit is sent once: the job marks it in the same
-- transaction that writes the event. A reschedule clears the mark.
alter table appointments add column reminder_sent_at timestamptz;
create index appointments_reminder_idx on appointments (starts_at)
    where status = 'SCHEDULED' and reminder_sent_at is null;

-- Purging terminal appointments takes their history with them.
alter table appointment_history drop constraint appointment_history_appointment_fkey;
alter table appointment_history add constraint appointment_history_appointment_fkey
    foreign key (appointment_id) references appointments (id) on delete cascade;
