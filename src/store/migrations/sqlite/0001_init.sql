-- The initial schema. Times are integer milliseconds since the Unix epoch;
-- enums are TEXT in their `as_str` spelling; maps and lists are JSON text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE studios (
    id           TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    create_ms    INTEGER NOT NULL,
    update_ms    INTEGER NOT NULL
) STRICT;

-- Studios are never deleted, so the foreign keys below only guard inserts.
CREATE TABLE studio_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    studio_id    TEXT NOT NULL REFERENCES studios (id),
    display_name TEXT NOT NULL,
    secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32),
    create_ms    INTEGER NOT NULL,
    revoke_ms    INTEGER
) STRICT;

-- Lists a studio's keys in id order.
CREATE INDEX studio_keys_studio ON studio_keys (studio_id, id);

CREATE TABLE user_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    studio_id   TEXT NOT NULL REFERENCES studios (id),
    user_id     TEXT NOT NULL,
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    create_ms   INTEGER NOT NULL,
    expire_ms   INTEGER,
    revoke_ms   INTEGER
) STRICT;

-- Lists by studio (and user) in id order.
CREATE INDEX user_tokens_studio_user ON user_tokens (studio_id, user_id, id);

CREATE TABLE providers (
    id        TEXT PRIMARY KEY NOT NULL,
    kind      TEXT NOT NULL,
    base_url  TEXT NOT NULL,
    update_ms INTEGER NOT NULL
) STRICT;

-- The foreign keys of models and defaults make deleting a referenced row fail.
-- They keep the default NO ACTION: SQLite reports its failure as a foreign-key
-- violation, which the store maps, whereas RESTRICT reports a trigger error.
CREATE TABLE models (
    id                     TEXT PRIMARY KEY NOT NULL,
    display_name           TEXT NOT NULL,
    provider_id            TEXT NOT NULL REFERENCES providers (id),
    upstream_model         TEXT NOT NULL,
    pathway                TEXT NOT NULL,
    enabled                INTEGER NOT NULL,
    max_output_tokens      INTEGER NOT NULL,
    max_input_tokens       INTEGER NOT NULL,
    input_micros_per_mtok  INTEGER NOT NULL,
    output_micros_per_mtok INTEGER NOT NULL,
    micros_per_image       INTEGER NOT NULL,
    fallback_model_ids     TEXT NOT NULL DEFAULT '[]',
    options                TEXT NOT NULL DEFAULT '{}',
    update_ms              INTEGER NOT NULL
) STRICT;

-- Serves the PROVIDER_IN_USE check without a scan of the catalog.
CREATE INDEX models_provider ON models (provider_id);

CREATE TABLE defaults (
    pathway  TEXT PRIMARY KEY NOT NULL,
    model_id TEXT NOT NULL REFERENCES models (id)
) STRICT;

CREATE INDEX defaults_model ON defaults (model_id);

-- No foreign keys: usage outlives the studios, models and providers it names.
CREATE TABLE usage (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id    TEXT NOT NULL,
    studio_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    pathway       TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    images        INTEGER NOT NULL,
    cost_micros   INTEGER NOT NULL,
    status_code   INTEGER NOT NULL,
    error_reason  TEXT NOT NULL,
    latency_us    INTEGER NOT NULL,
    ttft_us       INTEGER,
    create_ms     INTEGER NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}'
) STRICT;

-- Time-ranged aggregates, per studio and overall.
CREATE INDEX usage_studio_time ON usage (studio_id, create_ms);
CREATE INDEX usage_time ON usage (create_ms);
-- Newest-first pages of one studio: an index on studio_id ends in the rowid
-- (seq), so `studio_id = ? AND seq < ? ORDER BY seq DESC` needs no sort.
CREATE INDEX usage_studio_seq ON usage (studio_id);
