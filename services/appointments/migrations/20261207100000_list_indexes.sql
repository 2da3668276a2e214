-- Every list of appointments reads its page off an index in the list's own order, so a page
-- costs the same with five thousand appointments or five hundred thousand: booking order
-- (ids are UUIDv7) for a patient's, a doctor's, a nurse's and a status's list (the approval
-- queue), start order for a time window. The patient's index by start time had no query
-- left that needed its order.
drop index appointments_patient_idx;
create index appointments_patient_idx on appointments (patient_id, id);
create index appointments_doctor_list_idx on appointments (doctor_id, id);
create index appointments_nurse_list_idx on appointments (nurse_id, id) where nurse_id is not null;
create index appointments_status_list_idx on appointments (status, id);
create index appointments_starts_idx on appointments (starts_at, id);

-- The nightly purge finds the terminal appointments past their retention here, instead of
-- reading the whole table.
create index appointments_purge_idx on appointments (updated_at)
    where status in ('COMPLETED', 'NO_SHOW', 'EXPIRED', 'REJECTED', 'CANCELLED');
