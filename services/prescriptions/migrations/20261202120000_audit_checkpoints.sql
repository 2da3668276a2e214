-- The audit trail's head, anchored outside the trail: every so often the newest row's id
-- and hash are copied here. Deleting the newest rows of the trail leaves the chain before
-- them intact, but not the checkpoint that saw them, so `polyclinic audit-verify` finds the
-- gap. Append-only like the trail.
create table audit_checkpoints (
    id bigint generated always as identity primary key,
    audit_id bigint not null,
    hash bytea not null,
    at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index audit_checkpoints_audit_idx on audit_checkpoints (audit_id);

create trigger audit_checkpoints_append_only before update or delete on audit_checkpoints
    for each row execute function audit_log_refuse_change();
create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints
    for each statement execute function audit_log_refuse_change();

-- The service appends to the trail and its checkpoints and reads them; nothing more.
revoke update, delete, truncate on audit_log, audit_checkpoints from polyclinic_prescriptions;
