-- The role the appointments service runs as (polyclinic_db::runtime_role): it reads and writes
-- this schema's tables and owns none of them, so it can neither alter a table, nor switch
-- a trigger off, nor grant itself anything. Migrations run as the schema's owner. Roles
-- belong to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_appointments nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema appointments to polyclinic_appointments;
grant select, insert, update, delete on all tables in schema appointments to polyclinic_appointments;
grant usage, select on all sequences in schema appointments to polyclinic_appointments;
-- Tables and sequences of later migrations (created by the same owner) likewise.
alter default privileges in schema appointments
    grant select, insert, update, delete on tables to polyclinic_appointments;
alter default privileges in schema appointments grant usage, select on sequences to polyclinic_appointments;
-- The migration history is the owner's alone.
revoke all on _sqlx_migrations from polyclinic_appointments;
