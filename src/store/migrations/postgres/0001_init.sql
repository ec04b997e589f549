-- The PostgreSQL schema: the same tables as SQLite's migrations 0001-0004, in
-- PostgreSQL's types. Times are BIGINT milliseconds since the Unix epoch;
-- enums are TEXT in their `as_str` spelling; maps and lists are JSON text.
-- Identifiers compare and sort bytewise (COLLATE "C"), as in SQLite, whatever
-- the database's default collation: keyset pages and aggregates order the
-- same on both backends.

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE studios (
    id           TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    create_ms    BIGINT NOT NULL,
    update_ms    BIGINT NOT NULL
);

-- Studios are never deleted, so the foreign keys below only guard inserts.
CREATE TABLE studio_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    studio_id    TEXT COLLATE "C" NOT NULL REFERENCES studios (id),
    display_name TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL CHECK (length(secret_hash) = 32),
    create_ms    BIGINT NOT NULL,
    revoke_ms    BIGINT
);

-- Lists a studio's keys in id order.
CREATE INDEX studio_keys_studio ON studio_keys (studio_id, id);

CREATE TABLE user_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    studio_id   TEXT COLLATE "C" NOT NULL REFERENCES studios (id),
    user_id     TEXT COLLATE "C" NOT NULL,
    secret_hash BYTEA NOT NULL CHECK (length(secret_hash) = 32),
    create_ms   BIGINT NOT NULL,
    expire_ms   BIGINT,
    revoke_ms   BIGINT
);

-- Lists by studio (and user) in id order.
CREATE INDEX user_tokens_studio_user ON user_tokens (studio_id, user_id, id);

-- api_key holds nonce || ciphertext (see crate::keys); api_key_hint its last
-- 4 characters.
CREATE TABLE providers (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    kind                  TEXT NOT NULL,
    base_url              TEXT NOT NULL,
    update_ms             BIGINT NOT NULL,
    headers               TEXT NOT NULL DEFAULT '{}',
    connect_timeout_ms    BIGINT,
    first_byte_timeout_ms BIGINT,
    total_timeout_ms      BIGINT,
    api_key               BYTEA,
    api_key_hint          TEXT NOT NULL DEFAULT '',
    api_key_update_ms     BIGINT
);

-- The foreign keys of models and defaults make deleting a referenced row fail
-- (NO ACTION: reported as a foreign-key violation, which the store maps).
CREATE TABLE models (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    display_name           TEXT NOT NULL,
    provider_id            TEXT COLLATE "C" NOT NULL REFERENCES providers (id),
    upstream_model         TEXT NOT NULL,
    pathway                TEXT NOT NULL,
    enabled                BOOLEAN NOT NULL,
    max_output_tokens      INTEGER NOT NULL,
    max_input_tokens       INTEGER NOT NULL,
    input_micros_per_mtok  BIGINT NOT NULL,
    output_micros_per_mtok BIGINT NOT NULL,
    micros_per_image       BIGINT NOT NULL,
    fallback_model_ids     TEXT NOT NULL DEFAULT '[]',
    options                TEXT NOT NULL DEFAULT '{}',
    update_ms              BIGINT NOT NULL
);

-- Serves the PROVIDER_IN_USE check without a scan of the catalog.
CREATE INDEX models_provider ON models (provider_id);

CREATE TABLE defaults (
    pathway  TEXT COLLATE "C" PRIMARY KEY,
    model_id TEXT COLLATE "C" NOT NULL REFERENCES models (id)
);

CREATE INDEX defaults_model ON defaults (model_id);

-- target: 'studio' (the operator's) | 'studio_own' (the studio key's, under the operator's)
--         | 'user_default' | 'user' (then user_id is set; else '').
CREATE TABLE limits (
    studio_id             TEXT COLLATE "C" NOT NULL REFERENCES studios (id),
    target                TEXT COLLATE "C" NOT NULL
                          CHECK (target IN ('studio', 'studio_own', 'user_default', 'user')),
    user_id               TEXT COLLATE "C" NOT NULL,
    requests_per_minute   BIGINT,
    tokens_per_minute     BIGINT,
    tokens_per_day        BIGINT,
    cost_micros_per_day   BIGINT,
    cost_micros_per_month BIGINT,
    update_ms             BIGINT NOT NULL,
    PRIMARY KEY (studio_id, target, user_id)
);

-- A studio with no rows here may use every model.
CREATE TABLE studio_models (
    studio_id TEXT COLLATE "C" NOT NULL REFERENCES studios (id),
    model_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (studio_id, model_id)
);

-- events: JSON list of 'before_call' | 'after_call'. secret: the sealed
-- `whsec_...` signing secret. An empty studio_id is City-wide.
CREATE TABLE hooks (
    id             TEXT COLLATE "C" PRIMARY KEY,
    studio_id      TEXT COLLATE "C" NOT NULL,
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,
    timeout_ms     BIGINT NOT NULL,
    fail_closed    BOOLEAN NOT NULL,
    include_prompt BOOLEAN NOT NULL,
    secret         BYTEA NOT NULL,
    create_ms      BIGINT NOT NULL,
    update_ms      BIGINT NOT NULL
);

CREATE INDEX hooks_by_studio ON hooks (studio_id, id);

-- One row per (usage row, after_call hook), written in the usage row's
-- transaction. id is the `webhook-id`, stable across attempts. A replica
-- that takes a due delivery leases it until lease_until_ms, so no other
-- replica sends it meanwhile; a dead replica's lease simply expires.
CREATE TABLE hook_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    hook_id         TEXT COLLATE "C" NOT NULL,
    studio_id       TEXT COLLATE "C" NOT NULL,
    request_id      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    last_error      TEXT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    create_ms       BIGINT NOT NULL,
    deliver_ms      BIGINT,
    lease_until_ms  BIGINT
);

-- Due deliveries: only pending rows are ever looked up by time.
CREATE INDEX hook_outbox_due ON hook_outbox (next_attempt_ms, seq) WHERE state = 'pending';
CREATE INDEX hook_outbox_by_studio ON hook_outbox (studio_id, seq);
CREATE INDEX hook_outbox_by_hook ON hook_outbox (hook_id) WHERE state = 'pending';

-- No foreign keys: usage outlives the studios, models and providers it names.
-- Partitioned by calendar month (UTC) of create_ms, one partition per month
-- (usage_YYYY_MM, made by usage_ensure_partition): retention drops whole
-- partitions, never DELETEs rows.
CREATE TABLE usage (
    seq           BIGSERIAL NOT NULL,
    request_id    TEXT NOT NULL,
    studio_id     TEXT COLLATE "C" NOT NULL,
    user_id       TEXT COLLATE "C" NOT NULL,
    model_id      TEXT COLLATE "C" NOT NULL,
    provider_id   TEXT NOT NULL,
    pathway       TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    images        BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    status_code   INTEGER NOT NULL,
    error_reason  TEXT NOT NULL,
    latency_us    BIGINT NOT NULL,
    ttft_us       BIGINT,
    create_ms     BIGINT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (create_ms);

-- ListUsageRecords (newest first by seq): all rows, or one studio's; each
-- partition's index is read backwards and merged.
CREATE INDEX usage_seq ON usage (seq);
CREATE INDEX usage_studio_seq ON usage (studio_id, seq);
-- AggregateUsage over a time range, of one studio or all: partitions outside
-- the range are pruned; within one, these ranges are index scans.
CREATE INDEX usage_studio_time ON usage (studio_id, create_ms);
CREATE INDEX usage_time ON usage (create_ms);

-- Creates the partition holding `at_ms` unless it exists. Replicas may race
-- here: the transaction-scoped advisory lock makes the check-then-create atomic.
CREATE FUNCTION usage_ensure_partition(at_ms BIGINT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    month_start TIMESTAMP := date_trunc('month', to_timestamp(at_ms / 1000) AT TIME ZONE 'UTC');
    name TEXT := 'usage_' || to_char(month_start, 'YYYY_MM');
    low BIGINT := (extract(epoch FROM month_start) * 1000)::BIGINT;
    high BIGINT := (extract(epoch FROM month_start + INTERVAL '1 month') * 1000)::BIGINT;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN FALSE;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('downcity.usage_partitions'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN FALSE;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF usage FOR VALUES FROM (%s) TO (%s)',
                   name, low, high);
    RETURN TRUE;
EXCEPTION WHEN duplicate_table THEN
    -- Made by another replica between the check and the create.
    RETURN FALSE;
END
$$;
