-- The W3C trace context of the consumer span that wrote a message, so that sending it is a
-- span of the same trace. Empty when spans were not exported.
alter table notifications add column traceparent text;
