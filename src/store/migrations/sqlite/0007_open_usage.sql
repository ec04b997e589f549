-- A row written when a streamed call is admitted is open (counts: the
-- reserved estimate) until the call ends and replaces it; one left open by a
-- crash is settled as it is when City starts again.
ALTER TABLE usage ADD COLUMN open INTEGER NOT NULL DEFAULT 0;
CREATE INDEX usage_open ON usage (open) WHERE open = 1;
