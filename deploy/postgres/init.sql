-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d).
-- One schema and one least-privilege login role per service: a role owns its own schema,
-- may connect to the database, and can neither create schemas nor touch another's tables.
-- Passwords here are for the local stack only; real deployments set them from secrets.

revoke create on database polyclinic from public;
revoke all on schema public from public;

create role identity login password 'identity';
create role appointments login password 'appointments';
create role payments login password 'payments';
create role notifications login password 'notifications';
create role prescriptions login password 'prescriptions';

create schema identity authorization identity;
create schema appointments authorization appointments;
create schema payments authorization payments;
create schema notifications authorization notifications;
create schema prescriptions authorization prescriptions;

-- The appointments schema's exclusion constraints need btree_gist; a superuser installs it
-- there so that the least-privilege role does not have to.
create extension btree_gist schema appointments;

grant connect on database polyclinic to identity, appointments, payments, notifications, prescriptions;

alter role identity set search_path = identity;
alter role appointments set search_path = appointments;
alter role payments set search_path = payments;
alter role notifications set search_path = notifications;
alter role prescriptions set search_path = prescriptions;

-- The full stack runs the `kafka` event bus. The `postgres` bus keeps its shared log in an
-- `eventbus` schema that every service appends to and reads: with per-service roles, create
-- it here owned by a role all of them are members of, or give them `create` on the database.
