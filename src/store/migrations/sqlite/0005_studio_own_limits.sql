-- A studio's own, tighter studio-wide limits ('studio_own'), next to the
-- operator's ceiling ('studio'). SQLite cannot alter a CHECK: rebuild.

CREATE TABLE limits_new (
    studio_id             TEXT NOT NULL REFERENCES studios (id),
    target                TEXT NOT NULL
                          CHECK (target IN ('studio', 'studio_own', 'user_default', 'user')),
    user_id               TEXT NOT NULL,
    requests_per_minute   INTEGER,
    tokens_per_minute     INTEGER,
    tokens_per_day        INTEGER,
    cost_micros_per_day   INTEGER,
    cost_micros_per_month INTEGER,
    update_ms             INTEGER NOT NULL,
    PRIMARY KEY (studio_id, target, user_id)
) STRICT;

INSERT INTO limits_new SELECT * FROM limits;
DROP TABLE limits;
ALTER TABLE limits_new RENAME TO limits;
