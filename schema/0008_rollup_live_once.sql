-- 0008_rollup_live_once: the live part of the real-time rollup views evaluates the
-- materialized point once a query, not once a row, and dashboards run without JIT
-- (docs/decisions.md, "Rollups" and "Database connections and errors").

-- The raw aggregations take their bounds from a one-row sub-select (OFFSET 0 keeps it a
-- row of its own) joined laterally, and compare each reading with its columns.
--
-- Why: the views pass public.amrd_rollup_materialized() as lo, and inlining copies an
-- argument into every place the body names it. The scan's bounds must stay that call
-- (TimescaleDB evaluates it once at the start and excludes the chunks below it), but the
-- comparisons of each reading with lo called the function three to four times a reading,
-- about 2 µs a call: 20 of the 35 ms of a fleet-wide hourly chart went there. The lateral
-- sub-select is the outer side of its join by construction, so its columns are fetched,
-- not computed, for each reading. Results are unchanged: the bounds are the same values.
-- Its columns are lo1 and hi1, not lo and hi: inside the body a column wins over a
-- parameter of the same name, and the scan's bounds must be the parameters.
CREATE OR REPLACE FUNCTION public.amrd_rollup_hourly_from_raw(lo timestamptz, hi timestamptz)
RETURNS TABLE (device_key integer, series_key integer, bucket timestamptz, count integer,
    min_value numeric, max_value numeric, sum_value numeric, first_ts timestamptz, first_value numeric,
    last_ts timestamptz, last_value numeric, consumption numeric)
LANGUAGE sql STABLE AS $$
SELECT r.device_key, r.series_key, r.gb,
    (count(*) FILTER (WHERE r.stat))::integer,
    min(r.v) FILTER (WHERE r.stat), max(r.v) FILTER (WHERE r.stat), sum(r.v) FILTER (WHERE r.stat),
    min(r.ts) FILTER (WHERE r.stat), sum(r.v) FILTER (WHERE r.stat AND r.isfirst),
    max(r.ts) FILTER (WHERE r.stat), sum(r.v) FILTER (WHERE r.stat AND r.islast),
    coalesce(sum(r.step) FILTER (WHERE r.cons), 0)
FROM (SELECT lo AS lo1, hi AS hi1 OFFSET 0) p
CROSS JOIN LATERAL (
    SELECT q.*, q.gb = q.b AND q.ts >= p.lo1 AND q.ts < p.hi1 AS stat,
        (q.b <> q.ts OR q.gb <> q.b) AND q.ts > p.lo1 AND q.d IS NOT NULL AS cons,
        CASE WHEN q.d > 0 THEN q.d * q.factor ELSE 0 END AS step
    FROM (
        SELECT m.device_key, m.series_key, m.ts,
            CASE WHEN m.factor = 1 THEN m.value ELSE m.value * m.factor END AS v,
            date_bin('1 hour', m.ts, '2000-01-01') AS b,
            unnest(CASE WHEN date_bin('1 hour', m.ts, '2000-01-01') = m.ts
                THEN ARRAY[m.ts, m.ts - interval '1 hour'] ELSE ARRAY[date_bin('1 hour', m.ts, '2000-01-01')] END) AS gb,
            date_bin('1 hour', lag(m.ts) OVER w, '2000-01-01') IS DISTINCT FROM date_bin('1 hour', m.ts, '2000-01-01') AS isfirst,
            date_bin('1 hour', lead(m.ts) OVER w, '2000-01-01') IS DISTINCT FROM date_bin('1 hour', m.ts, '2000-01-01') AS islast,
            m.factor,
            CASE WHEN m.ts >= p.lo1 THEN m.value - coalesce(lag(m.value) OVER w,
                amrd_read.prev_value(m.device_key, m.series_key, p.lo1 - interval '1 hour', current_user)) END AS d
        FROM amrd_read.raw_readings m
        WHERE m.ts >= lo - interval '1 hour' AND m.ts <= hi
        WINDOW w AS (PARTITION BY m.device_key, m.series_key ORDER BY m.ts)
    ) q
) r
WHERE r.stat OR r.cons
GROUP BY r.device_key, r.series_key, r.gb
$$;

CREATE OR REPLACE FUNCTION public.amrd_rollup_daily_from_raw(lo timestamptz, hi timestamptz)
RETURNS TABLE (device_key integer, series_key integer, day date, timezone text, day_start timestamptz,
    day_end timestamptz, count integer, min_value numeric, max_value numeric, sum_value numeric,
    first_ts timestamptz, first_value numeric, last_ts timestamptz, last_value numeric, consumption numeric)
LANGUAGE sql STABLE AS $$
SELECT r.device_key, r.series_key, e.d, r.tz, public.amrd_day_start(e.d, r.tz), public.amrd_day_start(e.d + 1, r.tz),
    (count(*) FILTER (WHERE e.stat))::integer,
    min(r.v) FILTER (WHERE e.stat), max(r.v) FILTER (WHERE e.stat), sum(r.v) FILTER (WHERE e.stat),
    min(r.ts) FILTER (WHERE e.stat), public.first(r.v, r.ts) FILTER (WHERE e.stat),
    max(r.ts) FILTER (WHERE e.stat), public.last(r.v, r.ts) FILTER (WHERE e.stat),
    coalesce(sum(r.step) FILTER (WHERE e.cons), 0)
FROM (SELECT lo AS lo1, hi AS hi1 OFFSET 0) p
CROSS JOIN LATERAL (
    SELECT x.*, CASE WHEN x.diff > 0 THEN x.diff * x.factor WHEN x.diff <= 0 THEN 0 END AS step
    FROM (
        SELECT m.device_key, m.series_key, m.ts, m.factor, z.timezone AS tz, m.value * m.factor AS v,
            public.amrd_local_day(m.ts, z.timezone) AS d1, public.amrd_local_day(m.ts - interval '1 microsecond', z.timezone) AS d2,
            CASE WHEN m.ts >= p.lo1 THEN m.value - coalesce(lag(m.value) OVER w,
                amrd_read.prev_value(m.device_key, m.series_key, p.lo1 - interval '1 day', current_user)) END AS diff
        FROM amrd_read.raw_readings m
        JOIN amrd_read.device_zones z ON z.device_key = m.device_key
        WHERE m.ts >= lo - interval '1 day' AND m.ts <= hi
        WINDOW w AS (PARTITION BY m.device_key, m.series_key ORDER BY m.ts)
    ) x
) r
CROSS JOIN LATERAL (
    SELECT r.d1 AS d, r.ts >= p.lo1 AND r.ts < p.hi1 AS stat, r.ts > p.lo1 AND r.d1 = r.d2 AND r.step IS NOT NULL AS cons
    UNION ALL
    SELECT r.d2, false, r.ts > p.lo1 AND r.step IS NOT NULL WHERE r.d1 <> r.d2
) e
WHERE e.stat OR e.cons
GROUP BY r.device_key, r.series_key, e.d, r.tz
$$;

-- The live days sum the hourly buckets of [lo, hi) from rollup_hourly_rt. Their filter
-- on the bucket goes down into that view's live aggregation, to every reading: it too
-- compares with the bounds of the one-row sub-select.
CREATE OR REPLACE FUNCTION public.amrd_rollup_daily_from_hourly(lo timestamptz, hi timestamptz)
RETURNS TABLE (device_key integer, series_key integer, day date, timezone text, day_start timestamptz,
    day_end timestamptz, count integer, min_value numeric, max_value numeric, sum_value numeric,
    first_ts timestamptz, first_value numeric, last_ts timestamptz, last_value numeric, consumption numeric)
LANGUAGE sql STABLE AS $$
SELECT h.device_key, h.series_key, h.day, h.timezone, public.amrd_day_start(h.day, h.timezone),
    public.amrd_day_start(h.day + 1, h.timezone), sum(h.count)::integer, min(h.min_value), max(h.max_value),
    sum(h.sum_value), min(h.first_ts), public.first(h.first_value, h.first_ts) FILTER (WHERE h.count > 0),
    max(h.last_ts), public.last(h.last_value, h.last_ts) FILTER (WHERE h.count > 0), sum(h.consumption)
FROM (SELECT lo AS lo1, hi AS hi1 OFFSET 0) p
CROSS JOIN LATERAL (
    SELECT r.*, z.timezone, public.amrd_local_day(r.bucket, z.timezone) AS day
    FROM amrd_read.rollup_hourly_rt r
    JOIN amrd_read.device_zones z ON z.device_key = r.device_key
    WHERE r.bucket >= p.lo1 AND r.bucket < p.hi1 AND z.hour_aligned
) h
GROUP BY h.device_key, h.series_key, h.day, h.timezone
$$;

-- The real-time views keep only the live part's buckets at or above the point; that
-- filter on the function's output is now a sub-select, which PostgreSQL evaluates once
-- (an InitPlan) and does not push down into the aggregation, where it was compared with
-- every reading (a call each). Otherwise the views are as in 0007.
CREATE OR REPLACE VIEW amrd_read.rollup_hourly_rt WITH (security_barrier) AS
SELECT h.device_key, h.series_key, h.bucket, h.count, h.min_value, h.max_value, h.sum_value, h.first_ts,
    h.first_value, h.last_ts, h.last_value, h.consumption
FROM public.rollup_hourly h
WHERE h.bucket < public.amrd_rollup_materialized()
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR h.device_key IN (
    SELECT vd.key FROM public.meter_devices vd WHERE vd.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.device_key, f.series_key, f.bucket, f.count, f.min_value, f.max_value, f.sum_value, f.first_ts,
    f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.amrd_rollup_hourly_from_raw(public.amrd_rollup_materialized(), 'infinity') f
WHERE f.bucket >= (SELECT public.amrd_rollup_materialized());

CREATE OR REPLACE VIEW amrd_read.rollup_daily_rt WITH (security_barrier) AS
SELECT d.device_key, d.series_key, d.day, d.timezone, d.day_start, d.day_end, d.count, d.min_value,
    d.max_value, d.sum_value, d.first_ts, d.first_value, d.last_ts, d.last_value, d.consumption
FROM public.rollup_daily d
WHERE d.day_end <= public.amrd_rollup_materialized()
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR d.device_key IN (
    SELECT vd.key FROM public.meter_devices vd WHERE vd.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.device_key, f.series_key, f.day, f.timezone, f.day_start, f.day_end, f.count, f.min_value,
    f.max_value, f.sum_value, f.first_ts, f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.amrd_rollup_daily_from_hourly(public.amrd_rollup_materialized() - interval '2 days', 'infinity') f
WHERE f.day_end > (SELECT public.amrd_rollup_materialized())
UNION ALL
SELECT f.device_key, f.series_key, f.day, f.timezone, f.day_start, f.day_end, f.count, f.min_value,
    f.max_value, f.sum_value, f.first_ts, f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.amrd_rollup_daily_from_raw(public.amrd_rollup_materialized() - interval '2 days', 'infinity') f
WHERE f.day_end > (SELECT public.amrd_rollup_materialized())
    AND f.device_key IN (SELECT device_key FROM amrd_read.device_zones WHERE NOT hour_aligned);

CREATE OR REPLACE VIEW amrd_read.rollup_series_hourly_rt WITH (security_barrier) AS
SELECT s.series_key, s.bucket, s.devices, s.count, s.min_value, s.max_value, s.sum_value, s.consumption
FROM public.rollup_series_hourly s
WHERE s.bucket < public.amrd_rollup_materialized()
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR s.series_key IN (
        SELECT vs.key FROM public.meter_reading_series vs WHERE vs.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.series_key, f.bucket, count(*)::integer, sum(f.count)::integer, min(f.min_value), max(f.max_value),
    sum(f.sum_value), sum(f.consumption)
FROM public.amrd_rollup_hourly_from_raw(public.amrd_rollup_materialized(), 'infinity') f
WHERE f.bucket >= (SELECT public.amrd_rollup_materialized())
GROUP BY f.series_key, f.bucket;

-- JIT off for every session of this database that does not set it itself (amrd's own
-- connections do): the planner cannot know that the live part's chunks are excluded at
-- the start, so a dashboard's small query looks costly, and compiling it took longer
-- (15-20 ms) than running it. Changing a database's settings needs its owner; a migrator
-- that is not the owner leaves it, and each read role has jit off of its own (amrd
-- sql-role create sets it; the existing ones below).
DO $$
DECLARE
    r record;
BEGIN
    BEGIN
        EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'amrd: not the owner of database %: JIT stays on for sessions that are not amrd''s or a read role''s', current_database();
    END;
    FOR r IN SELECT s.role_name FROM public.sql_roles s JOIN pg_roles g ON g.rolname = s.role_name LOOP
        BEGIN
            EXECUTE format('ALTER ROLE %I SET jit = off', r.role_name);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'amrd: may not alter role %: it keeps the database''s JIT setting', r.role_name;
        END;
    END LOOP;
END $$;
