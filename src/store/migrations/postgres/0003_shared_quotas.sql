-- Quotas shared by every replica, calls' rows open from admission, and the
-- replicas' heartbeats that tell a dead replica's holds and rows apart.

-- Each live replica's heartbeat (every lease/3). One whose heartbeat is older
-- than the lease is dead: any replica's sweeper settles what it left.
CREATE TABLE replicas (
    id           TEXT COLLATE "C" PRIMARY KEY,
    heartbeat_ms BIGINT NOT NULL
);

-- One row per scope: a studio (user_id '') or one of its users. Used counts
-- per limit in its current window (rolled forward, never back, by whoever
-- sees a later window first); reserved counts are held by calls in flight
-- and carry over windows.
CREATE TABLE quota_counters (
    studio_id    TEXT COLLATE "C" NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL,
    minute_start BIGINT NOT NULL DEFAULT 0,
    day_start    BIGINT NOT NULL DEFAULT 0,
    month_start  BIGINT NOT NULL DEFAULT 0,
    used_rpm     BIGINT NOT NULL DEFAULT 0,
    used_tpm     BIGINT NOT NULL DEFAULT 0,
    used_tpd     BIGINT NOT NULL DEFAULT 0,
    used_cpd     BIGINT NOT NULL DEFAULT 0,
    used_cpm     BIGINT NOT NULL DEFAULT 0,
    res_requests BIGINT NOT NULL DEFAULT 0,
    res_tokens   BIGINT NOT NULL DEFAULT 0,
    res_cost     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (studio_id, user_id)
);

-- One row per call holding a reservation (id = the call's request id;
-- create_ms = its arrival, as its usage row has it).
CREATE TABLE quota_holds (
    id          TEXT COLLATE "C" PRIMARY KEY,
    replica_id  TEXT COLLATE "C" NOT NULL,
    studio_id   TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    requests    BIGINT NOT NULL,
    tokens      BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    create_ms   BIGINT NOT NULL
);

CREATE INDEX quota_holds_replica ON quota_holds (replica_id);

-- A row written at admission is open (counts: the reserved estimate) until
-- its call ends and the replica that serves it (replica_id) settles it.
ALTER TABLE usage ADD COLUMN open BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE usage ADD COLUMN replica_id TEXT COLLATE "C";
CREATE INDEX usage_open ON usage (replica_id) WHERE open;

-- A database that served calls before this migration: its counters start
-- from the rows of the current minute, day and month (as a single City's
-- in-memory ledger seeds itself at start).
WITH starts AS (
    SELECT t - t % 60000 AS m, t - t % 86400000 AS d,
           (extract(epoch FROM date_trunc('month', now() AT TIME ZONE 'UTC')) * 1000)::BIGINT AS mo
    FROM (SELECT (extract(epoch FROM now()) * 1000)::BIGINT AS t) AS clock
), calls AS (
    SELECT studio_id, scope.user_id, create_ms, input_tokens + output_tokens AS tokens, cost_micros
    FROM usage CROSS JOIN LATERAL (VALUES (''), (usage.user_id)) AS scope (user_id), starts
    WHERE create_ms >= starts.mo
)
INSERT INTO quota_counters (studio_id, user_id, minute_start, day_start, month_start,
                            used_rpm, used_tpm, used_tpd, used_cpd, used_cpm)
SELECT studio_id, user_id, s.m, s.d, s.mo,
       count(*) FILTER (WHERE create_ms >= s.m),
       COALESCE(sum(tokens) FILTER (WHERE create_ms >= s.m), 0),
       COALESCE(sum(tokens) FILTER (WHERE create_ms >= s.d), 0),
       COALESCE(sum(cost_micros) FILTER (WHERE create_ms >= s.d), 0),
       COALESCE(sum(cost_micros), 0)
FROM calls, starts AS s
GROUP BY studio_id, user_id, s.m, s.d, s.mo;

-- Rolls one scope's windows forward to `starts` (minute, day, month) and
-- applies deltas: reserved (requests, tokens, cost) and used (same order).
CREATE FUNCTION quota_apply(p_studio TEXT, p_user TEXT, starts BIGINT[], res BIGINT[],
                            used BIGINT[]) RETURNS quota_counters
LANGUAGE plpgsql AS $$
DECLARE
    c quota_counters;
BEGIN
    INSERT INTO quota_counters (studio_id, user_id) VALUES (p_studio, p_user)
        ON CONFLICT DO NOTHING;
    UPDATE quota_counters SET
        used_rpm = GREATEST(0, CASE WHEN starts[1] > minute_start THEN 0 ELSE used_rpm END + used[1]),
        used_tpm = GREATEST(0, CASE WHEN starts[1] > minute_start THEN 0 ELSE used_tpm END + used[2]),
        used_tpd = GREATEST(0, CASE WHEN starts[2] > day_start THEN 0 ELSE used_tpd END + used[2]),
        used_cpd = GREATEST(0, CASE WHEN starts[2] > day_start THEN 0 ELSE used_cpd END + used[3]),
        used_cpm = GREATEST(0, CASE WHEN starts[3] > month_start THEN 0 ELSE used_cpm END + used[3]),
        minute_start = GREATEST(minute_start, starts[1]),
        day_start = GREATEST(day_start, starts[2]),
        month_start = GREATEST(month_start, starts[3]),
        res_requests = GREATEST(0, res_requests + res[1]),
        res_tokens = GREATEST(0, res_tokens + res[2]),
        res_cost = GREATEST(0, res_cost + res[3])
    WHERE studio_id = p_studio AND user_id = p_user
    RETURNING * INTO c;
    RETURN c;
END
$$;

-- The first limit (0-based: rpm, tpm, tpd, cpd, cpm) that `amount` would
-- exceed in scope `c`, or NULL.
CREATE FUNCTION quota_exceeded(c quota_counters, lim BIGINT[], amount BIGINT[]) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN lim[1] IS NOT NULL AND c.used_rpm + c.res_requests + amount[1] > lim[1] THEN 0
        WHEN lim[2] IS NOT NULL AND c.used_tpm + c.res_tokens + amount[2] > lim[2] THEN 1
        WHEN lim[3] IS NOT NULL AND c.used_tpd + c.res_tokens + amount[2] > lim[3] THEN 2
        WHEN lim[4] IS NOT NULL AND c.used_cpd + c.res_cost + amount[3] > lim[4] THEN 3
        WHEN lim[5] IS NOT NULL AND c.used_cpm + c.res_cost + amount[3] > lim[5] THEN 4
    END
$$;

-- Reserves `amount` (requests, tokens, cost) for call `hold_id` under both
-- scopes' limits, atomically: the studio's row, then the user's, stay locked
-- until commit, so concurrent calls queue there and none sees a stale count.
-- Returns NULL when reserved, else 'studio:K' or 'user:K' (K: the limit).
CREATE FUNCTION quota_reserve(hold_id TEXT, replica TEXT, p_studio TEXT, p_user TEXT,
                              starts BIGINT[], amount BIGINT[], studio_lim BIGINT[],
                              user_lim BIGINT[], at_ms BIGINT) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    zero BIGINT[] := ARRAY[0, 0, 0];
    s quota_counters := quota_apply(p_studio, '', starts, zero, zero);
    u quota_counters := quota_apply(p_studio, p_user, starts, zero, zero);
    over INTEGER;
BEGIN
    over := quota_exceeded(s, studio_lim, amount);
    IF over IS NOT NULL THEN
        RETURN 'studio:' || over;
    END IF;
    over := quota_exceeded(u, user_lim, amount);
    IF over IS NOT NULL THEN
        RETURN 'user:' || over;
    END IF;
    PERFORM quota_apply(p_studio, '', starts, amount, zero);
    PERFORM quota_apply(p_studio, p_user, starts, amount, zero);
    INSERT INTO quota_holds VALUES (hold_id, replica, p_studio, p_user, amount[1], amount[2],
                                    amount[3], at_ms);
    RETURN NULL;
END
$$;

-- Replaces call `hold_id`'s reservation `res` by what it used. When the hold
-- is gone, its replica was taken for dead (a pause longer than the lease)
-- and the sweeper already counted the call from its row: nothing to do.
CREATE FUNCTION quota_settle(hold_id TEXT, p_studio TEXT, p_user TEXT, starts BIGINT[],
                             res BIGINT[], used BIGINT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    release BIGINT[] := ARRAY[-res[1], -res[2], -res[3]];
BEGIN
    DELETE FROM quota_holds WHERE id = hold_id;
    IF FOUND THEN
        PERFORM quota_apply(p_studio, '', starts, release, used);
        PERFORM quota_apply(p_studio, p_user, starts, release, used);
    END IF;
END
$$;

-- Settles what dead replicas left: each hold is released and its call
-- counted as its row says (a final row: what it used; an open one: the
-- reserved estimate; none: nothing, the call was never answered); open rows
-- close as they are (estimated). One transaction per dead replica; SKIP
-- LOCKED: sweepers on several replicas split the work. Returns how many open
-- rows were settled.
CREATE FUNCTION replicas_sweep(at_ms BIGINT, lease_ms BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    starts BIGINT[] := ARRAY[
        at_ms - at_ms % 60000,
        at_ms - at_ms % 86400000,
        (extract(epoch FROM date_trunc('month', to_timestamp(at_ms / 1000) AT TIME ZONE 'UTC'))
            * 1000)::BIGINT];
    dead TEXT;
    h quota_holds;
    used BIGINT[];
    release BIGINT[];
    settled BIGINT := 0;
    n BIGINT;
BEGIN
    FOR dead IN SELECT id FROM replicas WHERE heartbeat_ms < at_ms - lease_ms
                FOR UPDATE SKIP LOCKED LOOP
        FOR h IN DELETE FROM quota_holds WHERE replica_id = dead RETURNING * LOOP
            release := ARRAY[-h.requests, -h.tokens, -h.cost_micros];
            SELECT ARRAY[1, input_tokens + output_tokens, cost_micros] INTO used
                FROM usage WHERE create_ms = h.create_ms AND request_id = h.id LIMIT 1;
            used := COALESCE(used, ARRAY[0, 0, 0]::BIGINT[]);
            PERFORM quota_apply(h.studio_id, '', starts, release, used);
            PERFORM quota_apply(h.studio_id, h.user_id, starts, release, used);
        END LOOP;
        UPDATE usage SET open = false WHERE open AND replica_id = dead;
        GET DIAGNOSTICS n = ROW_COUNT;
        settled := settled + n;
        DELETE FROM replicas WHERE id = dead;
    END LOOP;
    RETURN settled;
END
$$;
