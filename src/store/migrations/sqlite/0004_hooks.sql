-- Business hooks: before_call / after_call webhooks of a studio (or, with an
-- empty studio_id, City-wide), and the outbox of after_call deliveries.

-- events: JSON list of 'before_call' | 'after_call'. secret: the sealed
-- `whsec_...` signing secret (see crate::keys).
CREATE TABLE hooks (
    id             TEXT PRIMARY KEY,
    studio_id      TEXT NOT NULL,
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,
    timeout_ms     INTEGER NOT NULL,
    fail_closed    INTEGER NOT NULL,
    include_prompt INTEGER NOT NULL,
    secret         BLOB NOT NULL,
    create_ms      INTEGER NOT NULL,
    update_ms      INTEGER NOT NULL
) STRICT;

CREATE INDEX hooks_by_studio ON hooks (studio_id, id);

-- One row per (usage row, after_call hook), written in the usage row's
-- transaction. id is the `webhook-id`, stable across attempts.
-- state: 'pending' | 'delivered' | 'dead'.
CREATE TABLE hook_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    hook_id         TEXT NOT NULL,
    studio_id       TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    last_error      TEXT NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    create_ms       INTEGER NOT NULL,
    deliver_ms      INTEGER
) STRICT;

CREATE INDEX hook_outbox_due ON hook_outbox (state, next_attempt_ms);
CREATE INDEX hook_outbox_by_studio ON hook_outbox (studio_id, seq);
