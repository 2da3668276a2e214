-- The role the web app runs as (polyclinic_db::runtime_role): it reads and writes this
-- schema's tables and owns none of them. Migrations run as the schema's owner. Roles belong
-- to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_web nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema web to polyclinic_web;
alter default privileges in schema web
    grant select, insert, update, delete on tables to polyclinic_web;
-- The migration history is the owner's to write; the app only reads it (to check, with
-- `migrate_on_start = false`, that `polyclinic migrate` applied every migration).
grant select on _sqlx_migrations to polyclinic_web;
