-- Quotas: limits per studio, per studio-wide user default and per user, and
-- each studio's model allow-list.

-- target: 'studio' | 'user_default' | 'user' (then user_id is set; else '').
CREATE TABLE limits (
    studio_id             TEXT NOT NULL REFERENCES studios (id),
    target                TEXT NOT NULL CHECK (target IN ('studio', 'user_default', 'user')),
    user_id               TEXT NOT NULL,
    requests_per_minute   INTEGER,
    tokens_per_minute     INTEGER,
    tokens_per_day        INTEGER,
    cost_micros_per_day   INTEGER,
    cost_micros_per_month INTEGER,
    update_ms             INTEGER NOT NULL,
    PRIMARY KEY (studio_id, target, user_id)
) STRICT;

-- A studio with no rows here may use every model.
CREATE TABLE studio_models (
    studio_id TEXT NOT NULL REFERENCES studios (id),
    model_id  TEXT NOT NULL,
    PRIMARY KEY (studio_id, model_id)
) STRICT;
