-- Clinical facts leave the identity profile. A patient's declared allergies and blood type
-- belong to their medical record (the prescriptions service), where the prescribing check
-- and the care team read them and administrators do not. What a patient declares here (at
-- registration, on their profile) waits in `clinical_handoffs`, written in the same
-- transaction as the account, until the prescriptions service has taken it; then the row
-- is deleted. What the old profile columns held is handed over the same way.
create table clinical_handoffs (
    id uuid primary key,
    patient_id uuid not null constraint clinical_handoffs_patient_fkey references users (id),
    allergies text[] not null default '{}',
    blood_type text constraint clinical_handoffs_blood_type_check
        check (blood_type in ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index clinical_handoffs_due_idx on clinical_handoffs (next_attempt_at);

insert into clinical_handoffs (id, patient_id, allergies, blood_type)
select gen_random_uuid(), user_id, allergies, blood_type from patients
where cardinality(allergies) > 0 or blood_type is not null;

alter table patients drop column allergies, drop column blood_type;
