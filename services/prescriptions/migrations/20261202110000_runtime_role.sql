-- The role the prescriptions service runs as (polyclinic_db::runtime_role): it reads and writes
-- this schema's tables and owns none of them, so it can neither alter a table, nor switch
-- a trigger off, nor grant itself anything. Migrations run as the schema's owner. Roles
-- belong to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_prescriptions nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema prescriptions to polyclinic_prescriptions;
grant select, insert, update, delete on all tables in schema prescriptions to polyclinic_prescriptions;
grant usage, select on all sequences in schema prescriptions to polyclinic_prescriptions;
-- Tables and sequences of later migrations (created by the same owner) likewise.
alter default privileges in schema prescriptions
    grant select, insert, update, delete on tables to polyclinic_prescriptions;
alter default privileges in schema prescriptions grant usage, select on sequences to polyclinic_prescriptions;
-- The migration history is the owner's alone.
revoke all on _sqlx_migrations from polyclinic_prescriptions;
