-- The W3C traceparent of the call an after_call delivery reports, sent as
-- its `traceparent` header on every attempt; NULL when the call had none.
ALTER TABLE hook_outbox ADD COLUMN traceparent TEXT;
