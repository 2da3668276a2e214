-- The reconciliation job asks the provider about payments stuck in a non-final state, the
-- least recently checked first, so a lost webhook only delays what it would have told.
alter table payments add column reconciled_at timestamptz;
create index payments_reconcile_idx on payments (coalesce(reconciled_at, created_at))
    where status in ('requires_payment_method', 'requires_capture');
