-- What patients declare about their health (at registration, on their profile), handed
-- over by the identity service: patient-reported allergies, which the prescribing check
-- sees like the care team's, and a declared blood type. They are not entries: the care
-- team confirms an allergy by recording it as one.
create table declared_allergies (
    id uuid primary key,
    record_id uuid not null constraint declared_allergies_record_fkey references records (id),
    substance text not null constraint declared_allergies_substance_check
        check (length(substance) between 1 and 200),
    declared_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index declared_allergies_substance_key on declared_allergies (record_id, lower(substance));

alter table records
    add column blood_type text constraint records_blood_type_check
        check (blood_type in ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')),
    add column blood_type_declared_at timestamptz;
