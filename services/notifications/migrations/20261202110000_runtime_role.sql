-- The role the notifications service runs as (polyclinic_db::runtime_role): it reads and writes
-- this schema's tables and owns none of them, so it can neither alter a table, nor switch
-- a trigger off, nor grant itself anything. Migrations run as the schema's owner. Roles
-- belong to the whole server, so another database may have created it already.
do $$
begin
    create role polyclinic_notifications nologin;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema notifications to polyclinic_notifications;
grant select, insert, update, delete on all tables in schema notifications to polyclinic_notifications;
grant usage, select on all sequences in schema notifications to polyclinic_notifications;
-- Tables and sequences of later migrations (created by the same owner) likewise.
alter default privileges in schema notifications
    grant select, insert, update, delete on tables to polyclinic_notifications;
alter default privileges in schema notifications grant usage, select on sequences to polyclinic_notifications;
-- The migration history is the owner's alone.
revoke all on _sqlx_migrations from polyclinic_notifications;
