-- Every change of an appointment's status or time raises its revision, which its events
-- carry: calendars read it as the iCalendar SEQUENCE, so a later invite always replaces an
-- earlier one, and a consumer can tell a stale event from a newer one.
alter table appointments add column revision integer not null default 0;
