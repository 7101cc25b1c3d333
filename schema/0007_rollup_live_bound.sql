-- The live part of each real-time rollup view takes the materialized point from a
-- function call instead of a lateral join on rollup_state.
--
-- Why: with the point as a column of a joined row, the inlined aggregation's time filter
-- was a run-time parameter of a nested loop, which TimescaleDB's ChunkAppend cannot use
-- to exclude chunks when the scan is not driven by a key (a whole series across the
-- fleet): it scanned that series in every chunk of the raw readings. A STABLE function
-- call is allowed as an argument of an inlined SQL function (a sub-select is not: it
-- stops the inlining, and then no filter of the caller reaches the scan), and ChunkAppend
-- evaluates it once when the query starts and keeps only the chunks above the point.
--
-- SECURITY DEFINER: a Grafana role may not read rollup_state itself; the point is no
-- secret. Every call in one statement sees the same snapshot, so the materialized and the
-- live branch of a view meet exactly at one point.
CREATE FUNCTION public.amrd_rollup_materialized() RETURNS timestamptz
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT materialized FROM public.rollup_state
$$;

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
WHERE f.bucket >= public.amrd_rollup_materialized();

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
WHERE f.day_end > public.amrd_rollup_materialized()
UNION ALL
SELECT f.device_key, f.series_key, f.day, f.timezone, f.day_start, f.day_end, f.count, f.min_value,
    f.max_value, f.sum_value, f.first_ts, f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.amrd_rollup_daily_from_raw(public.amrd_rollup_materialized() - interval '2 days', 'infinity') f
WHERE f.day_end > public.amrd_rollup_materialized()
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
WHERE f.bucket >= public.amrd_rollup_materialized()
GROUP BY f.series_key, f.bucket;
