-- With `migrate_on_start = false` the service checks, before it serves, that a separate
-- step (`polyclinic migrate`) applied every migration it has: it may read the history,
-- and still never write it.
grant select on _sqlx_migrations to polyclinic_payments;
