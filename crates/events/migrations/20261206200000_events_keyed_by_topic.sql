-- Consumers read the log by topic from a position (`log::READ_AFTER`). Keyed by position
-- alone, the log offered the planner two ways to do that: the topic's own index, or the
-- whole log from the position on, dropping other topics' events as it goes. A pooled
-- connection's cached generic plan (parameters unknown) took the second, and a consumer of
-- a quiet topic then read every event of a busy one on each wake-up. Keyed by topic and
-- position, the log has one index that reads in position order, and it is the topic's.
-- Positions stay unique: they come from the identity sequence, under the append lock.
alter table events drop constraint events_pkey;
drop index events_topic_position_idx;
alter table events add constraint events_pkey primary key (topic, position);
