-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d).
-- Two kinds of login. `polyclinic` owns the schemas: the services migrate with it at start-up
-- (DATABASE_URL), so it owns every table and trigger. Each service then runs as a login of
-- its own, `polyclinic_<service>`, which its schema's migrations grant what the service needs
-- on its tables and nothing more: it owns none of them, so it can neither alter a table nor
-- switch a trigger off (the audit trail stays append-only whatever the service does).
-- Passwords here are for the local stack only; real deployments set them from secrets.

revoke create on database polyclinic from public;
revoke all on schema public from public;

create role polyclinic login password 'polyclinic';
grant connect, create on database polyclinic to polyclinic;

create role polyclinic_identity login password 'identity';
create role polyclinic_appointments login password 'appointments';
create role polyclinic_payments login password 'payments';
create role polyclinic_notifications login password 'notifications';
create role polyclinic_prescriptions login password 'prescriptions';
create role polyclinic_web login password 'web';
grant connect on database polyclinic to polyclinic_identity, polyclinic_appointments,
    polyclinic_payments, polyclinic_notifications, polyclinic_prescriptions, polyclinic_web;

-- The appointments schema's exclusion constraints need btree_gist, which only a superuser
-- installs: create the schema for the owner here and the extension in it.
create schema appointments authorization polyclinic;
create extension btree_gist schema appointments;
