-- Every service's runtime role (see each service's runtime-role migration) appends to the
-- shared log and reads it; the relays purge entries past their retention. The log's
-- append-only trigger refuses updates whoever asks; no runtime role can switch it off.
do $$
declare
    service text;
begin
    foreach service in array array['identity', 'appointments', 'payments', 'notifications', 'prescriptions'] loop
        begin
            execute format('create role %I nologin', 'polyclinic_' || service);
        exception
            when duplicate_object or unique_violation then null;
        end;
        execute format('grant usage on schema eventbus to %I', 'polyclinic_' || service);
        execute format('grant select, insert, delete on events to %I', 'polyclinic_' || service);
        execute format('grant usage, select on all sequences in schema eventbus to %I', 'polyclinic_' || service);
    end loop;
end
$$;
