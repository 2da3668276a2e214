-- The role the identity service runs as (polyclinic_db::runtime_role): it reads and writes
-- this schema's tables and owns none of them, so it can neither alter a table, nor switch
-- a trigger off, nor grant itself anything. Migrations run as the schema's owner. Roles
-- belong to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_identity nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema identity to polyclinic_identity;
grant select, insert, update, delete on all tables in schema identity to polyclinic_identity;
grant usage, select on all sequences in schema identity to polyclinic_identity;
-- Tables and sequences of later migrations (created by the same owner) likewise.
alter default privileges in schema identity
    grant select, insert, update, delete on tables to polyclinic_identity;
alter default privileges in schema identity grant usage, select on sequences to polyclinic_identity;
-- The migration history is the owner's alone.
revoke all on _sqlx_migrations from polyclinic_identity;
