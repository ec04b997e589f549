-- Grouped reserves and settles: a replica sends every claim waiting at once
-- in one call, so one transaction takes each scope's counter row lock once
-- for the whole group instead of once per call. Claims are answered as
-- quota_reserve would answer them one after another in arrival order.
--
-- Amounts are flat arrays of (requests, tokens, cost) per claim; limits flat
-- arrays of five per claim (rpm, tpm, tpd, cpd, cpm; NULL: unset).

-- Reserves each claim i (hold ids[i], amount amounts[3i-2:3i]) under its
-- scopes' limits. Every scope's row is locked first, in key order (a studio's
-- '' row before its users', as quota_reserve locks them), so groups from
-- several replicas never deadlock. Returns one answer per claim: NULL when
-- reserved, 'studio:K' or 'user:K' when refused, 'duplicate' when a hold of
-- that id exists already (nothing reserved).
CREATE FUNCTION quota_reserve_many(ids TEXT[], replica TEXT, studios TEXT[], users TEXT[],
                                   starts BIGINT[], amounts BIGINT[], studio_lims BIGINT[],
                                   user_lims BIGINT[], at_ms BIGINT[]) RETURNS TEXT[]
LANGUAGE plpgsql AS $$
DECLARE
    zero BIGINT[] := ARRAY[0, 0, 0];
    answers TEXT[] := '{}';
    scope RECORD;
    s quota_counters;
    u quota_counters;
    scope_user TEXT;
    amount BIGINT[];
    over INTEGER;
BEGIN
    FOR scope IN
        SELECT DISTINCT k.studio_id, k.user_id
        FROM unnest(studios, users) AS c (studio_id, user_id)
        CROSS JOIN LATERAL (VALUES (c.studio_id, ''), (c.studio_id, c.user_id))
            AS k (studio_id, user_id)
        ORDER BY k.studio_id, k.user_id
    LOOP
        PERFORM quota_apply(scope.studio_id, scope.user_id, starts, zero, zero);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        amount := amounts[3 * i - 2 : 3 * i];
        SELECT * INTO s FROM quota_counters WHERE studio_id = studios[i] AND user_id = '';
        SELECT * INTO u FROM quota_counters WHERE studio_id = studios[i] AND user_id = users[i];
        over := quota_exceeded(s, studio_lims[5 * i - 4 : 5 * i], amount);
        IF over IS NOT NULL THEN
            answers := array_append(answers, 'studio:' || over);
            CONTINUE;
        END IF;
        over := quota_exceeded(u, user_lims[5 * i - 4 : 5 * i], amount);
        IF over IS NOT NULL THEN
            answers := array_append(answers, 'user:' || over);
            CONTINUE;
        END IF;
        INSERT INTO quota_holds VALUES (ids[i], replica, studios[i], users[i], amount[1],
                                        amount[2], amount[3], at_ms[i])
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            answers := array_append(answers, 'duplicate');
            CONTINUE;
        END IF;
        -- The windows were rolled above: only the reservation changes.
        FOREACH scope_user IN ARRAY ARRAY['', users[i]] LOOP
            UPDATE quota_counters SET res_requests = res_requests + amount[1],
                                      res_tokens = res_tokens + amount[2],
                                      res_cost = res_cost + amount[3]
                WHERE studio_id = studios[i] AND user_id = scope_user;
        END LOOP;
        answers := array_append(answers, NULL::TEXT);
    END LOOP;
    RETURN answers;
END
$$;

-- Settles each claim i: replaces hold ids[i]'s reservation res[3i-2:3i] by
-- what its call used, used[3i-2:3i]. Holds already gone (swept: their
-- replica was taken for dead) count nothing, as in quota_settle. The deltas
-- are summed per scope and applied in key order, one row update each.
CREATE FUNCTION quota_settle_many(ids TEXT[], studios TEXT[], users TEXT[], starts BIGINT[],
                                  res BIGINT[], used BIGINT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    gone TEXT[];
    scope RECORD;
BEGIN
    WITH deleted AS (DELETE FROM quota_holds WHERE id = ANY (ids) RETURNING id)
    SELECT coalesce(array_agg(id), '{}') INTO gone FROM deleted;
    FOR scope IN
        SELECT k.studio_id, k.user_id,
               ARRAY[-sum(res[3 * i - 2]), -sum(res[3 * i - 1]), -sum(res[3 * i])]::BIGINT[]
                   AS release,
               ARRAY[sum(used[3 * i - 2]), sum(used[3 * i - 1]), sum(used[3 * i])]::BIGINT[]
                   AS spent
        FROM generate_subscripts(ids, 1) AS i
        CROSS JOIN LATERAL (VALUES (studios[i], ''), (studios[i], users[i]))
            AS k (studio_id, user_id)
        WHERE ids[i] = ANY (gone)
        GROUP BY k.studio_id, k.user_id
        ORDER BY k.studio_id, k.user_id
    LOOP
        PERFORM quota_apply(scope.studio_id, scope.user_id, starts, scope.release, scope.spent);
    END LOOP;
END
$$;

-- The sweeper as in 0003, but it first locks the counter rows of every hold
-- it releases in key order, as groups lock them: a group holding several
-- studios' rows and a sweep never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION replicas_sweep(at_ms BIGINT, lease_ms BIGINT) RETURNS BIGINT
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
        PERFORM 1 FROM quota_counters c
            WHERE (c.studio_id, c.user_id) IN (
                SELECT studio_id, '' FROM quota_holds WHERE replica_id = dead
                UNION SELECT studio_id, user_id FROM quota_holds WHERE replica_id = dead)
            ORDER BY c.studio_id, c.user_id
            FOR UPDATE;
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
