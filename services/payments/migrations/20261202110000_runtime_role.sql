-- The role the payments service runs as (polyclinic_db::runtime_role): it reads and writes
-- this schema's tables and owns none of them, so it can neither alter a table, nor switch
-- a trigger off, nor grant itself anything. Migrations run as the schema's owner. Roles
-- belong to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_payments nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema payments to polyclinic_payments;
grant select, insert, update, delete on all tables in schema payments to polyclinic_payments;
grant usage, select on all sequences in schema payments to polyclinic_payments;
-- Tables and sequences of later migrations (created by the same owner) likewise.
alter default privileges in schema payments
    grant select, insert, update, delete on tables to polyclinic_payments;
alter default privileges in schema payments grant usage, select on sequences to polyclinic_payments;
-- The migration history is the owner's alone.
revoke all on _sqlx_migrations from polyclinic_payments;
