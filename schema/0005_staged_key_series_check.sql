-- 0005_staged_key_series_check: a staged reading is staged once; deleting a series checks
-- for readings without probing every device in every chunk (docs/decisions.md,
-- "Deleting a series").

-- Staged readings ---------------------------------------------------------------------
--
-- A staged reading is identified by what was sent: (meter_device_name, series_name, ts,
-- local_time). A unique index on the hypertable would have to include its partitioning
-- column (created_at, the time it was received), which differs between two sends of the
-- same reading, so the key is kept by the writers instead: amrd_stage_readings stages a
-- reading only when its key is not staged yet, under an advisory lock of the device
-- name's bucket taken for the rest of the transaction. Two transactions that stage the
-- same name take turns; the second one, reading after the first committed, finds the
-- row. This index serves that lookup (and promotion's, by name).
CREATE INDEX staged_meter_readings_key_idx ON staged_meter_readings (meter_device_name, series_name, ts);

-- Duplicates staged before this key existed: the oldest row of each key and value stays.
-- Rows of one key with different values all stay (they are meter data; promotion takes
-- the oldest, the others expire with staged retention).
DELETE FROM staged_meter_readings a USING staged_meter_readings b
WHERE b.meter_device_name = a.meter_device_name AND b.series_name = a.series_name AND b.ts = a.ts
    AND b.local_time IS NOT DISTINCT FROM a.local_time AND b.value = a.value AND b.id < a.id;

-- amrd_lock_staged takes, until the end of the transaction, the advisory locks of the
-- buckets of the names, in bucket order (so two transactions never wait for each other
-- in a cycle). 16 buckets: two flushers and the API stage at once, and a transaction
-- holds at most 16 locks of the shared lock table, however many names it stages. The
-- class id is 'amrs' in ASCII (two-key advisory locks: no clash with the one-key locks of
-- migrations, jobs and rollups).
CREATE FUNCTION amrd_lock_staged(names text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    b integer;
BEGIN
    FOR b IN SELECT DISTINCT hashtext(n) & 15 FROM unnest(names) n ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1634562675, b);
    END LOOP;
END $$;

-- amrd_stage_readings stages readings (arrays of one length, one element a reading) when
-- run is true, and returns for each (i, from 1) what became of it with the id of its
-- staged row: 0 staged; 1 a duplicate (the same key and value, compared as numeric, is
-- staged already, or earlier in the arrays); 2 a conflict (another value is staged for
-- the key: the first one stays). VOLATILE: its queries run with snapshots taken after the
-- locks, also inside a single statement that began before another transaction committed.
CREATE FUNCTION amrd_stage_readings(run boolean, names text[], series text[], tss timestamptz[],
    local_times timestamp[], vals numeric[])
RETURNS TABLE (i integer, outcome smallint, id bigint)
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT run OR coalesce(cardinality(names), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM amrd_lock_staged(names);
    RETURN QUERY
    WITH u AS (
        SELECT x.n, x.s, x.t, x.l, x.v, x.i::integer AS i
        FROM unnest(names, series, tss, local_times, vals) WITH ORDINALITY AS x(n, s, t, l, v, i)
    ), old AS (
        -- the staged row of each reading's key, one with its value first
        SELECT u.i AS ui, e.id AS eid, e.same
        FROM u CROSS JOIN LATERAL (
            SELECT st.id, st.value = u.v AS same FROM staged_meter_readings st
            WHERE st.meter_device_name = u.n AND st.series_name = u.s AND st.ts = u.t
                AND st.local_time IS NOT DISTINCT FROM u.l
            ORDER BY st.value = u.v DESC, st.id LIMIT 1) e
    ), first AS (
        -- the first reading of each key that is not staged yet
        SELECT DISTINCT ON (u.n, u.s, u.t, u.l) u.*
        FROM u WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.ui = u.i)
        ORDER BY u.n, u.s, u.t, u.l, u.i
    ), ins AS (
        INSERT INTO staged_meter_readings (meter_device_name, series_name, ts, local_time, value)
        SELECT f.n, f.s, f.t, f.l, f.v FROM first f ORDER BY f.i
        RETURNING staged_meter_readings.id AS nid, meter_device_name AS n, series_name AS s, ts AS t, local_time AS l
    )
    SELECT u.i,
        (CASE WHEN old.ui IS NOT NULL THEN (CASE WHEN old.same THEN 1 ELSE 2 END)
            WHEN f.i = u.i THEN 0
            WHEN f.v = u.v THEN 1
            ELSE 2 END)::smallint,
        coalesce(old.eid, ins.nid)
    FROM u
    LEFT JOIN old ON old.ui = u.i
    LEFT JOIN first f ON old.ui IS NULL AND f.n = u.n AND f.s = u.s AND f.t = u.t AND f.l IS NOT DISTINCT FROM u.l
    LEFT JOIN ins ON ins.n = f.n AND ins.s = f.s AND ins.t = f.t AND ins.l IS NOT DISTINCT FROM f.l
    ORDER BY u.i;
END $$;
REVOKE EXECUTE ON FUNCTION amrd_lock_staged(text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION amrd_stage_readings(boolean, text[], text[], timestamptz[], timestamp[], numeric[]) FROM PUBLIC;

-- Series deletion ---------------------------------------------------------------------
--
-- "Are readings of series s stored?" meter_readings has no index led by the series, and
-- one would cost every insert. The rollups answer for the hours they cover, and the raw
-- readings are probed (each device's key index, in the chunks of a range) only outside
-- them. amrd_series_has_readings documents the argument.

-- hourly_horizon: retention dropped hourly rollups (device or series) below it, so they
-- say nothing of the readings there. The retention job moves it in the transaction that
-- drops their chunks (store.DropChunks).
ALTER TABLE rollup_state ADD COLUMN hourly_horizon timestamptz NOT NULL DEFAULT '-infinity';

-- An installation that expired hourly rollups before this migration recorded no horizon.
-- A day of readings (a chunk that is not empty) inside the materialized range has device
-- and series rollups unless retention dropped them (readings written later are marked,
-- and their hours recomputed), so such a day is taken as evidence: every hour up to the
-- end of the rollup chunks it falls in (365 days for series, 30 for devices, aligned on
-- 1970-01-01 as TimescaleDB places them) is treated as dropped. A day only briefly
-- without rollups (marks still pending) errs on the safe side: more is probed.
DO $$
DECLARE
    st rollup_state%ROWTYPE;
    c  record;
    nonempty boolean;
    day constant bigint := 86400;
BEGIN
    SELECT * INTO st FROM rollup_state;
    IF NOT FOUND OR st.materialized = '-infinity' THEN
        RETURN;
    END IF;
    FOR c IN SELECT ch.chunk_schema, ch.chunk_name, ch.range_start, ch.range_end
        FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = 'public' AND ch.hypertable_name = 'meter_readings'
            AND ch.range_end <= st.materialized AND ch.range_start >= st.raw_horizon + interval '2 days'
            AND (NOT EXISTS (SELECT 1 FROM rollup_series_hourly h WHERE h.bucket >= ch.range_start AND h.bucket < ch.range_end)
                OR NOT EXISTS (SELECT 1 FROM rollup_hourly h WHERE h.bucket >= ch.range_start AND h.bucket < ch.range_end))
        ORDER BY ch.range_start DESC
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', c.chunk_schema, c.chunk_name) INTO nonempty;
        IF nonempty THEN
            UPDATE rollup_state SET hourly_horizon = greatest(
                to_timestamp((floor(extract(epoch FROM c.range_start) / (365 * day)) + 1) * (365 * day)),
                to_timestamp((floor(extract(epoch FROM c.range_start) / (30 * day)) + 1) * (30 * day)));
            RETURN;
        END IF;
    END LOOP;
END $$;

-- amrd_series_probe says whether readings of series s lie in [lo, hi): one probe of the
-- key index per device and chunk of the range (the range is planned as constants, so
-- that TimescaleDB leaves out the chunks outside it).
CREATE FUNCTION amrd_series_probe(s integer, lo timestamptz, hi timestamptz) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    found boolean;
BEGIN
    IF lo >= hi THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM meter_devices d CROSS JOIN LATERAL (
            SELECT 1 FROM meter_readings r
            WHERE r.device_key = d.key AND r.series_key = $1 AND r.ts >= $2 AND r.ts < $3 LIMIT 1) x)'
        INTO found USING s, lo, hi;
    RETURN found;
END $$;

-- amrd_series_has_readings says whether readings of series s are stored. STABLE: every
-- query in it (and in amrd_series_probe) reads the snapshot of the statement that calls
-- it, so the rollups, their marks and the raw readings are seen at one instant (the job
-- replaces marks by recomputed rollups in one transaction).
--
-- Covered hours [lo, hi): from the materialized point down to where the rollups are
-- complete: above the frozen line (raw_horizon + 2 days: below it late readings are not
-- recomputed) and above hourly_horizon. There, a reading stored at the last
-- materialization or recomputation of its hour has a row of its device, series and hour
-- in rollup_hourly and a row of its series and hour in rollup_series_hourly, and one
-- written or deleted since has a pending mark of its device and series over its time.
-- So:
--   1. a series row whose hour no pending mark of the series comes near (a mark changes
--      the rows of the hours from the one before its first time to that of its last) is a
--      reading of that hour or of the next hour's start: readings are stored;
--   2. a mark of a device that exists, over a range where a reading of the series is:
--      readings are stored;
--   3. otherwise, when series rows remain (they lie near marks: stale, say, because a
--      device was deleted and the job has not run yet), a reading of the covered hours is
--      of a device that exists and has a row in rollup_hourly: those devices' readings of
--      the covered hours are probed (a deleted device has none);
--   4. the readings above the covered hours (the unmaterialized tail, today's chunk or
--      two) and below them (mostly dropped by retention) are probed.
-- A false "stored" would only delay a delete; a false "not stored" is ruled out by the
-- argument above. Without rollups (AMRD_ROLLUPS=false), everything is probed.
CREATE FUNCTION amrd_series_has_readings(s integer) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    st    rollup_state%ROWTYPE;
    lo    timestamptz;
    hi    timestamptz;
    mlo   timestamptz;
    mhi   timestamptz;
    found boolean;
BEGIN
    SELECT * INTO st FROM rollup_state;
    IF NOT FOUND OR st.materialized = '-infinity' THEN
        RETURN amrd_series_probe(s, '-infinity', 'infinity');
    END IF;
    hi := date_trunc('hour', st.materialized);
    lo := greatest(st.raw_horizon + interval '2 days', st.hourly_horizon);
    IF date_trunc('hour', lo) < lo THEN
        lo := date_trunc('hour', lo) + interval '1 hour';
    END IF;
    IF lo >= hi THEN
        RETURN amrd_series_probe(s, '-infinity', 'infinity');
    END IF;
    -- 1.
    IF EXISTS (SELECT 1 FROM rollup_series_hourly h
            WHERE h.series_key = s AND h.bucket >= lo AND h.bucket < hi
            AND NOT EXISTS (SELECT 1 FROM rollup_marks m WHERE m.series_key = s
                AND h.bucket >= m.ts_min - interval '1 hour' AND h.bucket <= m.ts_max)) THEN
        RETURN true;
    END IF;
    -- 2. The readings are probed only when there are such marks, over their time span as
    -- constants: a plan over every chunk costs tens of milliseconds to make.
    SELECT min(m.ts_min), max(m.ts_max) INTO mlo, mhi FROM rollup_marks m
    WHERE m.series_key = s AND m.ts_max >= lo AND m.ts_min < hi
        AND EXISTS (SELECT 1 FROM meter_devices d WHERE d.key = m.device_key);
    IF mlo IS NOT NULL THEN
        mlo := greatest(mlo, lo);
        mhi := least(mhi, hi);
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM rollup_marks m
                WHERE m.series_key = $1 AND m.ts_max >= $2 AND m.ts_min <= $3
                AND EXISTS (SELECT 1 FROM meter_devices d WHERE d.key = m.device_key)
                AND EXISTS (SELECT 1 FROM meter_readings r WHERE r.device_key = m.device_key AND r.series_key = $1
                    AND r.ts >= $2 AND r.ts <= $3 AND r.ts >= m.ts_min AND r.ts <= m.ts_max))'
            INTO found USING s, mlo, mhi;
        IF found THEN
            RETURN true;
        END IF;
    END IF;
    -- 3. The device rows are found by probing rollup_hourly's key per device and chunk
    -- (30 days a chunk: 13 probes a device a year), and only devices with rows get the
    -- raw probe (365 a device a year).
    IF EXISTS (SELECT 1 FROM rollup_series_hourly h WHERE h.series_key = s AND h.bucket >= lo AND h.bucket < hi) THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM meter_devices d
                WHERE CASE WHEN EXISTS (SELECT 1 FROM rollup_hourly h
                        WHERE h.device_key = d.key AND h.series_key = $1 AND h.bucket >= $2 AND h.bucket < $3)
                    THEN EXISTS (SELECT 1 FROM meter_readings r
                        WHERE r.device_key = d.key AND r.series_key = $1 AND r.ts >= $2 AND r.ts < $3)
                    ELSE false END)'
            INTO found USING s, lo, hi;
        IF found THEN
            RETURN true;
        END IF;
    END IF;
    -- 4.
    RETURN amrd_series_probe(s, hi, 'infinity') OR amrd_series_probe(s, '-infinity', lo);
END $$;
REVOKE EXECUTE ON FUNCTION amrd_series_probe(integer, timestamptz, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION amrd_series_has_readings(integer) FROM PUBLIC;
