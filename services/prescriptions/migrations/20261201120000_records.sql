-- Medical records: one per patient, entries of a closed set of kinds (a table per kind, typed
-- columns, no JSON), prescriptions with their items and refills, and the audit trail of every
-- access to any of it. Nothing clinical is ever deleted: a correction is a new version that
-- points to the one it replaces, a cancellation a status.

create table records (
    id uuid primary key,
    patient_id uuid not null constraint records_patient_key unique,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table entries (
    id uuid primary key,
    record_id uuid not null constraint entries_record_fkey references records (id),
    kind text not null constraint entries_kind_check check (kind in ('DIAGNOSIS', 'NOTE', 'VITALS', 'ALLERGY')),
    version integer not null default 1 constraint entries_version_check check (version >= 1),
    -- The version this one corrects; each version is corrected at most once.
    previous_id uuid constraint entries_previous_fkey references entries (id)
        constraint entries_previous_key unique,
    author_id uuid not null,
    author_role text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index entries_record_idx on entries (record_id, created_at);

create table diagnoses (
    entry_id uuid primary key constraint diagnoses_entry_fkey references entries (id),
    -- ICD-10 shape: a letter, two digits (or a digit and A/B), optionally a dot and 1-4 more.
    icd10_code text not null constraint diagnoses_icd10_check
        check (icd10_code ~ '^[A-Z][0-9][0-9AB](\.[0-9A-Z]{1,4})?$'),
    description text not null constraint diagnoses_description_check check (length(description) between 1 and 2000),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table visit_notes (
    entry_id uuid primary key constraint visit_notes_entry_fkey references entries (id),
    subjective text not null default '',
    objective text not null default '',
    assessment text not null default '',
    plan text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint visit_notes_size_check check (
        length(subjective) <= 10000 and length(objective) <= 10000
        and length(assessment) <= 10000 and length(plan) <= 10000
        and length(subjective || objective || assessment || plan) > 0)
);

create table vitals (
    entry_id uuid primary key constraint vitals_entry_fkey references entries (id),
    systolic_mmhg smallint constraint vitals_systolic_check check (systolic_mmhg between 50 and 260),
    diastolic_mmhg smallint constraint vitals_diastolic_check check (diastolic_mmhg between 25 and 160),
    pulse_bpm smallint constraint vitals_pulse_check check (pulse_bpm between 20 and 250),
    temperature_c numeric(4, 1) constraint vitals_temperature_check check (temperature_c between 30 and 45),
    respiratory_rate smallint constraint vitals_respiratory_check check (respiratory_rate between 4 and 70),
    spo2_percent smallint constraint vitals_spo2_check check (spo2_percent between 50 and 100),
    weight_kg numeric(5, 1) constraint vitals_weight_check check (weight_kg between 0.3 and 500),
    height_cm numeric(4, 1) constraint vitals_height_check check (height_cm between 20 and 260),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint vitals_pressure_check check ((systolic_mmhg is null) = (diastolic_mmhg is null)
        and (systolic_mmhg is null or systolic_mmhg > diastolic_mmhg)),
    constraint vitals_something_check check (num_nonnulls(systolic_mmhg, pulse_bpm, temperature_c,
        respiratory_rate, spo2_percent, weight_kg, height_cm) > 0)
);

create table allergies (
    entry_id uuid primary key constraint allergies_entry_fkey references entries (id),
    substance text not null constraint allergies_substance_check check (length(substance) between 1 and 200),
    reaction text not null default '',
    severity text not null constraint allergies_severity_check check (severity in ('MILD', 'MODERATE', 'SEVERE')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table prescriptions (
    id uuid primary key,
    record_id uuid not null constraint prescriptions_record_fkey references records (id),
    patient_id uuid not null,
    doctor_id uuid not null,
    appointment_id uuid not null,
    status text not null default 'ACTIVE'
        constraint prescriptions_status_check check (status in ('ACTIVE', 'COMPLETED', 'CANCELLED', 'STOPPED')),
    status_reason text,
    issued_on date not null,
    valid_until date not null,
    refills_allowed smallint not null constraint prescriptions_refills_check check (refills_allowed between 0 and 12),
    refills_left smallint not null,
    -- Set when the doctor confirmed a prescription that names one of the patient's allergies.
    allergy_override_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prescriptions_validity_check check (valid_until >= issued_on),
    constraint prescriptions_refills_left_check check (refills_left between 0 and refills_allowed)
);
create index prescriptions_patient_idx on prescriptions (patient_id, id);
create index prescriptions_doctor_idx on prescriptions (doctor_id, id);

create table prescription_items (
    prescription_id uuid not null constraint prescription_items_prescription_fkey references prescriptions (id),
    position smallint not null,
    medication text not null constraint prescription_items_medication_check check (length(medication) between 1 and 200),
    strength text not null,
    form text not null,
    dose text not null,
    route text not null,
    frequency text not null,
    duration text not null,
    quantity integer not null constraint prescription_items_quantity_check check (quantity between 1 and 10000),
    instructions text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prescription_items_pkey primary key (prescription_id, position)
);

create table refills (
    id uuid primary key,
    prescription_id uuid not null constraint refills_prescription_fkey references prescriptions (id),
    status text not null default 'REQUESTED'
        constraint refills_status_check check (status in ('REQUESTED', 'APPROVED', 'DECLINED')),
    reason text,
    requested_at timestamptz not null default now(),
    decided_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- One open request per prescription at a time.
create unique index refills_one_open_key on refills (prescription_id) where status = 'REQUESTED';

-- The audit trail: one row per read, write or refused attempt on clinical data. Each row's
-- hash covers its content and the previous row's hash, so a row altered by hand breaks the
-- chain from there on (`polyclinic audit-verify` finds it).
create table audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null,
    actor_id text not null,
    actor_role text not null,
    action text not null,
    patient_id uuid,
    record_id uuid,
    entry_id uuid,
    request_id text,
    outcome text not null constraint audit_log_outcome_check check (outcome in ('allowed', 'denied')),
    prev_hash bytea not null,
    hash bytea not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index audit_log_patient_idx on audit_log (patient_id, id);
create index audit_log_actor_idx on audit_log (actor_id, id);

-- Append-only, for every role: updates, deletes and truncation are refused by triggers,
-- and the service's own role loses the privileges to try.
create function audit_log_refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'the audit trail is append-only';
end;
$$;
create trigger audit_log_append_only before update or delete on audit_log
    for each row execute function audit_log_refuse_change();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_refuse_change();
revoke update, delete, truncate on audit_log from current_user;
