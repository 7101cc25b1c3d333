-- 0004_read_side: what dashboards read over SQL (docs/sql.md documents every column).
--
-- * amrd_read: amrd's own read views, one per thing an operator charts or lists.
-- * public.metering_*: Utilitarian's Django table names, as views with the original
--   columns, so that dashboards written for Utilitarian run unchanged.
-- * sql_roles: PostgreSQL login roles bound to one organization (amrd sql-role). Every
--   view filters its rows to the organizations its reader may see (amrd_read.visible_orgs),
--   inside the database: the dashboard's SQL is never trusted to filter. The views are
--   security barriers, so that a reader's own functions or casts never see a row of
--   another organization before that filter ran.
-- * rollups: hourly (UTC) and daily (local day) aggregates per device and series, kept by
--   the rollup job, with real-time views that add live aggregation above the materialized
--   part.

-- Ingestion-health panels count readings by when they were taken in. Rows are appended
-- in created_at order inside each chunk, so a BRIN index prunes as a B-tree would at a
-- tiny fraction of the write cost (see 0003 for the same reasoning on ts).
CREATE INDEX meter_readings_created_brin ON meter_readings USING brin (created_at) WITH (autosummarize = on);

-- The organization each SQL login role may read; the role itself is cluster-wide
-- (CREATE ROLE), this row binds it to this database's organization.
CREATE TABLE sql_roles (
    role_name       name PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA amrd_read;

-- visible_orgs says which organizations role r may read: {its organization} for a role
-- made by amrd sql-role; NULL (all of them) for a role that may read the base tables
-- anyway (amrd's own user, a superuser); {} (none) for any other role. It answers only
-- for a role the session's login user is a member of, so that one reader cannot learn
-- another's organization. The views call it once a query, as an init plan.
CREATE FUNCTION amrd_read.visible_orgs(r name) RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    org uuid;
BEGIN
    IF NOT pg_has_role(session_user, r, 'MEMBER') THEN
        RETURN '{}';
    END IF;
    SELECT organization_id INTO org FROM public.sql_roles WHERE role_name = r;
    IF FOUND THEN
        RETURN ARRAY[org];
    END IF;
    IF has_table_privilege(r, 'public.meter_devices', 'SELECT') THEN
        RETURN NULL;
    END IF;
    RETURN '{}';
END $$;

CREATE FUNCTION amrd_read.sees(org uuid, visible uuid[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT $2 IS NULL OR $1 = ANY ($2) $$;

CREATE VIEW amrd_read.organizations WITH (security_barrier) AS
SELECT o.id, o.name, o.is_active, o.created_at, o.updated_at
FROM public.organizations o
WHERE amrd_read.sees(o.id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.meter_reading_series WITH (security_barrier) AS
SELECT s.id, s.key AS series_key, s.organization_id, s.name, s.description, s.unit, s.unit_description,
    s.si_multiplier, s.affected_by_ct_ratio, s.affected_by_vt_ratio, s.created_at, s.updated_at
FROM public.meter_reading_series s
WHERE amrd_read.sees(s.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.meter_device_configs WITH (security_barrier) AS
SELECT c.id, c.organization_id, c.name, c.timezone, c.created_at, c.updated_at
FROM public.meter_device_configs c
WHERE amrd_read.sees(c.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.meter_device_config_series WITH (security_barrier) AS
SELECT cs.config_id, cs.series_id, c.organization_id
FROM public.meter_device_config_series cs
JOIN public.meter_device_configs c ON c.id = cs.config_id
WHERE amrd_read.sees(c.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.meter_device_types WITH (security_barrier) AS
SELECT t.id, t.organization_id, t.name, t.description, t.manufacturer, t.manufacturer_model, t.config_id,
    t.created_at, t.updated_at
FROM public.meter_device_types t
WHERE amrd_read.sees(t.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- Devices without an organization are seen only by readers of every organization.
CREATE VIEW amrd_read.meter_devices WITH (security_barrier) AS
SELECT d.id, d.key AS device_key, d.organization_id, d.name, d.external_system_reference, d.manufacturer_serial,
    d.protocol, d.iec62056_21_address, d.dlms_logical_device_name, d.dlms_system_title, d.type_id,
    t.name AS type_name, t.config_id, c.timezone, d.network_interface_id,
    d.has_current_transformer, d.current_transformer_ratio, d.has_voltage_transformer,
    d.voltage_transformer_ratio, d.has_disconnector, d.disconnector_status, d.created_at, d.updated_at
FROM public.meter_devices d
LEFT JOIN public.meter_device_types t ON t.id = d.type_id
LEFT JOIN public.meter_device_configs c ON c.id = t.config_id
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- A reading belongs to its device's organization (a device that moves takes them along).
CREATE VIEW amrd_read.meter_readings WITH (security_barrier) AS
SELECT r.id, d.organization_id, d.id AS meter_device_id, d.name AS meter_device_name,
    s.id AS series_id, s.name AS series_name, r.ts AS "timestamp", r.value, r.factor,
    r.value * r.factor AS value_scaled, r.value * r.factor * s.si_multiplier AS value_si,
    s.unit, r.created_at
FROM public.meter_readings r
JOIN public.meter_devices d ON d.key = r.device_key
JOIN public.meter_reading_series s ON s.key = r.series_key
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- Staged readings are for device names that exist nowhere yet, so no organization owns
-- them: only readers of every organization see them.
CREATE VIEW amrd_read.staged_meter_readings WITH (security_barrier) AS
SELECT st.id, st.meter_device_name, st.series_name, st.ts AS "timestamp", st.local_time, st.value,
    st.created_at, st.updated_at
FROM public.staged_meter_readings st
WHERE (SELECT amrd_read.visible_orgs(current_user)) IS NULL;

CREATE VIEW amrd_read.meter_system_events WITH (security_barrier) AS
SELECT e.id, e.organization_id, e.meter_device_id, d.name AS meter_device_name, e.ts AS "timestamp",
    e.title, e.content, e.created_at, e.updated_at
FROM public.meter_system_events e
LEFT JOIN public.meter_devices d ON d.id = e.meter_device_id
WHERE amrd_read.sees(e.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.amr_tasks WITH (security_barrier) AS
SELECT t.id, t.organization_id, t.name, t.description, t.is_active, t.schedule, t.run_offset_seconds,
    t.meter_execution_type, t.task_call, t.created_at, t.updated_at
FROM public.amr_tasks t
WHERE amrd_read.sees(t.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- Runs without their claim tokens.
CREATE VIEW amrd_read.amr_task_runs WITH (security_barrier) AS
SELECT x.id, d.organization_id, x.task_id, x.meter_device_id, d.name AS meter_device_name, x.trigger, x.slot,
    x.run_at, x.meter_execution_type, x.task_call, x.status, x.attempts, x.max_attempts, x.worker,
    x.lease_until, x.started_at, x.finished_at, x.error, x.result, x.created_at, x.updated_at
FROM public.amr_task_runs x
JOIN public.meter_devices d ON d.id = x.meter_device_id
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- Utilitarian's tables by their Django names and columns (app "metering"), for the
-- dashboards published for Utilitarian. Each reads an amrd_read view, so it filters the
-- same way.
CREATE VIEW public.metering_meterreading AS
SELECT id, meter_device_id, series_id, "timestamp", value, created_at FROM amrd_read.meter_readings;

CREATE VIEW public.metering_meterdevice AS
SELECT id, name, organization_id, external_system_reference, manufacturer_serial, protocol,
    iec62056_21_address, dlms_logical_device_name, dlms_system_title, type_id, network_interface_id,
    has_current_transformer, current_transformer_ratio, has_voltage_transformer, voltage_transformer_ratio,
    has_disconnector, disconnector_status, created_at, updated_at
FROM amrd_read.meter_devices;

CREATE VIEW public.metering_meterdevicetype AS
SELECT id, name, organization_id, description, manufacturer, manufacturer_model, config_id, created_at, updated_at
FROM amrd_read.meter_device_types;

CREATE VIEW public.metering_meterdeviceconfig AS
SELECT id, name, organization_id, timezone, created_at, updated_at FROM amrd_read.meter_device_configs;

-- Django's many-to-many table has a serial id of its own; amrd's has none, so the row
-- number of the pair stands in (stable while the pairs do not change).
CREATE VIEW public.metering_meterdeviceconfig_series AS
SELECT row_number() OVER (ORDER BY config_id, series_id) AS id,
    config_id AS meterdeviceconfig_id, series_id AS meterreadingseries_id
FROM amrd_read.meter_device_config_series;

CREATE VIEW public.metering_meterreadingseries AS
SELECT id, name, organization_id, description, unit, unit_description, si_multiplier,
    affected_by_ct_ratio, affected_by_vt_ratio, created_at, updated_at
FROM amrd_read.meter_reading_series;

CREATE VIEW public.metering_stagedmeterreading AS
SELECT id, meter_device_name, series_name, "timestamp", value, created_at, updated_at
FROM amrd_read.staged_meter_readings;

CREATE VIEW public.metering_metersystemevent AS
SELECT id, organization_id, meter_device_id, "timestamp", title, content, created_at, updated_at
FROM amrd_read.meter_system_events;

CREATE VIEW public.organizations_organization AS
SELECT id, name, is_active, created_at, updated_at FROM amrd_read.organizations;

-- Rollups ---------------------------------------------------------------------------
--
-- Values are scaled (raw value x the CT/VT factor stored with each reading): sums and
-- extremes of readings taken under different factors only mean something scaled. The
-- views add the SI multiplier of the series.
--
-- consumption is the sum of a cumulative register's non-negative steps: a step is the
-- raw increase from one reading to the next of the same device and series, times the
-- later reading's factor, and belongs to the bucket (a, b] its later reading falls in, so
-- that a reading at exactly midnight closes the day before (with quarter-hourly readings
-- a day's consumption is then R(next midnight) - R(midnight), a billing register's
-- difference). A step down is a reset or a meter exchange and counts as zero.
CREATE TABLE rollup_hourly (
    device_key  integer NOT NULL,
    series_key  integer NOT NULL,
    bucket      timestamptz NOT NULL, -- the UTC hour [bucket, bucket + 1 h)
    count       integer NOT NULL,     -- readings in the hour (0: only consumption)
    min_value   numeric,
    max_value   numeric,
    sum_value   numeric,
    first_ts    timestamptz,
    first_value numeric,
    last_ts     timestamptz,
    last_value  numeric,
    consumption numeric NOT NULL,
    PRIMARY KEY (device_key, series_key, bucket)
);
SELECT create_hypertable('rollup_hourly', 'bucket', chunk_time_interval => interval '30 days');

-- Daily buckets are local days in the zone of the device's config (UTC without one), 23
-- or 25 hours long around DST changes; day_start and day_end are their UTC instants.
CREATE TABLE rollup_daily (
    device_key  integer NOT NULL,
    series_key  integer NOT NULL,
    day         date NOT NULL,
    timezone    text NOT NULL,
    day_start   timestamptz NOT NULL,
    day_end     timestamptz NOT NULL,
    count       integer NOT NULL,
    min_value   numeric,
    max_value   numeric,
    sum_value   numeric,
    first_ts    timestamptz,
    first_value numeric,
    last_ts     timestamptz,
    last_value  numeric,
    consumption numeric NOT NULL,
    PRIMARY KEY (device_key, series_key, day)
);
SELECT create_hypertable('rollup_daily', 'day', chunk_time_interval => interval '365 days');

-- One series across its fleet, by UTC hour: what "average of a series over the fleet"
-- charts read, a row an hour instead of a row a device and hour.
CREATE TABLE rollup_series_hourly (
    series_key  integer NOT NULL,
    bucket      timestamptz NOT NULL,
    devices     integer NOT NULL,
    count       integer NOT NULL,
    min_value   numeric,
    max_value   numeric,
    sum_value   numeric,
    consumption numeric NOT NULL,
    PRIMARY KEY (series_key, bucket)
);
SELECT create_hypertable('rollup_series_hourly', 'bucket', chunk_time_interval => interval '365 days');

-- threshold: a reading written at or below it marks its device, series and time in
-- rollup_marks, in the transaction that writes it (amrd_rollup_threshold). materialized:
-- every bucket that ends at or before it is in the rollup tables, except those marked.
-- materialized <= threshold; the job moves threshold first, then materializes up to it.
-- raw_horizon: retention dropped the raw readings below it; buckets that need readings
-- from below it are frozen (see store/rollups.go).
CREATE TABLE rollup_state (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    threshold    timestamptz NOT NULL,
    materialized timestamptz NOT NULL,
    raw_horizon  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (materialized <= threshold)
);
INSERT INTO rollup_state (threshold, materialized) VALUES ('-infinity', '-infinity');

-- Marks are only ever inserted by writers and deleted by the job, never updated, so a
-- writer never waits for the job: a mark committed after the job read the marks is
-- simply read by its next run.
CREATE TABLE rollup_marks (
    device_key integer NOT NULL,
    series_key integer NOT NULL,
    ts_min     timestamptz NOT NULL,
    ts_max     timestamptz NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_marks_ts_idx ON rollup_marks (ts_min);

-- amrd_rollup_threshold is what a writer of readings calls inside its transaction: it
-- takes the rollup lock in shared mode (held to the end of that transaction) and returns
-- the threshold as committed now. The job moves the threshold under the same lock in
-- exclusive mode, in a transaction of its own that writes nothing else, so that every
-- writer either committed before the move (its rows are seen by the job's next
-- snapshot) or reads the new threshold (and marks). VOLATILE: the read takes a snapshot
-- after the lock, also inside a single statement that began before the move.
-- The lock key is 'amrd.rollup' as hashtextextended(..., 0) would give; a constant here.
CREATE FUNCTION amrd_rollup_threshold() RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7236982715031363584);
    RETURN (SELECT threshold FROM rollup_state);
END $$;
REVOKE EXECUTE ON FUNCTION amrd_rollup_threshold() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION amrd_read.visible_orgs(name) FROM PUBLIC;

-- The local day of an instant in a zone, and that day's UTC bounds.
CREATE FUNCTION public.amrd_local_day(ts timestamptz, tz text) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (ts AT TIME ZONE tz)::date $$;
CREATE FUNCTION public.amrd_day_start(day date, tz text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (day::timestamp) AT TIME ZONE tz $$;

-- The building blocks of the real-time rollups below are views in amrd_read too, each
-- filtered like every other read view: the rollup functions read them, and PostgreSQL
-- checks what an inlined function reads with the rights of whoever runs the query (a
-- Grafana role), not those of the view that calls it. For amrd's own user (every
-- organization) each filter is one constant test, so the rollup job pays nothing.

-- Raw readings by amrd's internal keys (device_key, series_key).
CREATE VIEW amrd_read.raw_readings WITH (security_barrier) AS
SELECT m.device_key, m.series_key, m.ts, m.value, m.factor, m.created_at
FROM public.meter_readings m
WHERE ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR m.device_key IN (
    SELECT vd.key FROM public.meter_devices vd WHERE vd.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])));

-- prev_value is the raw value of the reading of a device and series just before an
-- instant: the predecessor of the first reading of a rollup range, whose step the window
-- cannot see. It reads the table's key index backwards, newest chunk first (through the
-- filtered view the planner would sort every older reading instead), as its definer, and
-- answers only for a device that reader (the caller passes current_user) may see.
CREATE FUNCTION amrd_read.prev_value(dk integer, sk integer, before timestamptz, reader name) RETURNS numeric
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    visible uuid[] := amrd_read.visible_orgs(reader);
    v numeric;
BEGIN
    IF visible IS NOT NULL AND NOT EXISTS (
            SELECT FROM public.meter_devices WHERE key = dk AND organization_id = ANY (visible)) THEN
        RETURN NULL;
    END IF;
    SELECT m.value INTO v FROM public.meter_readings m
    WHERE m.device_key = dk AND m.series_key = sk AND m.ts < before ORDER BY m.ts DESC LIMIT 1;
    RETURN v;
END $$;

-- The zone of each device's daily buckets, and whether its local days begin on a UTC
-- hour (every zone but the few with a half- or quarter-hour offset, such as Asia/Kolkata):
-- those days are sums of hourly buckets; the others are aggregated from the raw readings.
CREATE VIEW amrd_read.device_zones WITH (security_barrier) AS
SELECT d.key AS device_key, z.timezone,
    date_trunc('hour', public.amrd_day_start(current_date, z.timezone)) = public.amrd_day_start(current_date, z.timezone)
    AND date_trunc('hour', public.amrd_day_start(current_date + 183, z.timezone)) = public.amrd_day_start(current_date + 183, z.timezone)
    AS hour_aligned
FROM public.meter_devices d
LEFT JOIN public.meter_device_types t ON t.id = d.type_id
LEFT JOIN public.meter_device_configs c ON c.id = t.config_id
CROSS JOIN LATERAL (SELECT coalesce(c.timezone, 'UTC') AS timezone) z
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- amrd_rollup_hourly_from_raw aggregates the raw readings of [lo, hi] into UTC hours (lo
-- on an hour): the statistics of the readings in [lo, hi), and the consumption steps of
-- the readings in (lo, hi] (a step belongs to the bucket (a, b] its later reading is in;
-- the first reading of a device and series has none). A reading's step needs the one
-- before it: the window, which starts an hour before lo, gives it (and the readings of
-- that hour count nowhere else); for a device and series silent during that hour, one
-- probe of the key index finds it. A reading on an
-- hour's start counts in that hour and its step in the hour before (unnest makes it two
-- rows); every other reading is one row. First and last values are the readings that
-- the window says begin and end their hour: a sum over one row each, cheaper than
-- public.first()/public.last() over every row. One pass in (device, series, time) order, so that the
-- key index feeds it and a caller's device or series filter goes down into the scan.
CREATE FUNCTION public.amrd_rollup_hourly_from_raw(lo timestamptz, hi timestamptz)
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
FROM (
    SELECT q.*, q.gb = q.b AND q.ts >= lo AND q.ts < hi AS stat,
        (q.b <> q.ts OR q.gb <> q.b) AND q.ts > lo AND q.d IS NOT NULL AS cons,
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
            CASE WHEN m.ts >= lo THEN m.value - coalesce(lag(m.value) OVER w,
                amrd_read.prev_value(m.device_key, m.series_key, lo - interval '1 hour', current_user)) END AS d
        FROM amrd_read.raw_readings m
        WHERE m.ts >= lo - interval '1 hour' AND m.ts <= hi
        WINDOW w AS (PARTITION BY m.device_key, m.series_key ORDER BY m.ts)
    ) q
) r
WHERE r.stat OR r.cons
GROUP BY r.device_key, r.series_key, r.gb
$$;

-- amrd_rollup_daily_from_raw is the same by local day, in the zone of each device's
-- config: every day that has a reading (or a step) in the range; the caller keeps the
-- days that lie inside it.
CREATE FUNCTION public.amrd_rollup_daily_from_raw(lo timestamptz, hi timestamptz)
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
FROM (
    SELECT x.*, CASE WHEN x.diff > 0 THEN x.diff * x.factor WHEN x.diff <= 0 THEN 0 END AS step
    FROM (
        SELECT m.device_key, m.series_key, m.ts, m.factor, z.timezone AS tz, m.value * m.factor AS v,
            public.amrd_local_day(m.ts, z.timezone) AS d1, public.amrd_local_day(m.ts - interval '1 microsecond', z.timezone) AS d2,
            CASE WHEN m.ts >= lo THEN m.value - coalesce(lag(m.value) OVER w,
                amrd_read.prev_value(m.device_key, m.series_key, lo - interval '1 day', current_user)) END AS diff
        FROM amrd_read.raw_readings m
        JOIN amrd_read.device_zones z ON z.device_key = m.device_key
        WHERE m.ts >= lo - interval '1 day' AND m.ts <= hi
        WINDOW w AS (PARTITION BY m.device_key, m.series_key ORDER BY m.ts)
    ) x
) r
CROSS JOIN LATERAL (
    SELECT r.d1 AS d, r.ts >= lo AND r.ts < hi AS stat, r.ts > lo AND r.d1 = r.d2 AND r.step IS NOT NULL AS cons
    UNION ALL
    SELECT r.d2, false, r.ts > lo AND r.step IS NOT NULL WHERE r.d1 <> r.d2
) e
WHERE e.stat OR e.cons
GROUP BY r.device_key, r.series_key, e.d, r.tz
$$;

-- Real-time rollups: the materialized buckets below rollup_state.materialized, and live
-- aggregation of the raw readings above it, so that a chart never sees a gap between the
-- two. The live part takes the materialized point from a lateral join, not a sub-select:
-- PostgreSQL inlines a SQL function only when its arguments hold no sub-select, and only
-- an inlined one lets a device or series filter of the caller go down into its scan. Values are scaled; the _si columns add the series' SI multiplier.
CREATE VIEW amrd_read.rollup_hourly_rt WITH (security_barrier) AS
SELECT h.device_key, h.series_key, h.bucket, h.count, h.min_value, h.max_value, h.sum_value, h.first_ts,
    h.first_value, h.last_ts, h.last_value, h.consumption
FROM public.rollup_hourly h
WHERE h.bucket < (SELECT materialized FROM public.rollup_state)
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR h.device_key IN (
    SELECT vd.key FROM public.meter_devices vd WHERE vd.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.device_key, f.series_key, f.bucket, f.count, f.min_value, f.max_value, f.sum_value, f.first_ts,
    f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.rollup_state st
CROSS JOIN LATERAL public.amrd_rollup_hourly_from_raw(st.materialized, 'infinity') f
WHERE f.bucket >= st.materialized;

-- amrd_rollup_daily_from_hourly sums the hourly buckets of [lo, hi) into the local days
-- of each device's zone (for zones whose days begin on a UTC hour): a day's consumption
-- is its hours' (steps ending in (day_start, day_end]), its first reading its earliest
-- hour's. The caller keeps the days that lie inside the range.
CREATE FUNCTION public.amrd_rollup_daily_from_hourly(lo timestamptz, hi timestamptz)
RETURNS TABLE (device_key integer, series_key integer, day date, timezone text, day_start timestamptz,
    day_end timestamptz, count integer, min_value numeric, max_value numeric, sum_value numeric,
    first_ts timestamptz, first_value numeric, last_ts timestamptz, last_value numeric, consumption numeric)
LANGUAGE sql STABLE AS $$
SELECT h.device_key, h.series_key, h.day, h.timezone, public.amrd_day_start(h.day, h.timezone),
    public.amrd_day_start(h.day + 1, h.timezone), sum(h.count)::integer, min(h.min_value), max(h.max_value),
    sum(h.sum_value), min(h.first_ts), public.first(h.first_value, h.first_ts) FILTER (WHERE h.count > 0),
    max(h.last_ts), public.last(h.last_value, h.last_ts) FILTER (WHERE h.count > 0), sum(h.consumption)
FROM (
    SELECT r.*, z.timezone, public.amrd_local_day(r.bucket, z.timezone) AS day
    FROM amrd_read.rollup_hourly_rt r
    JOIN amrd_read.device_zones z ON z.device_key = r.device_key
    WHERE r.bucket >= lo AND r.bucket < hi AND z.hour_aligned
) h
GROUP BY h.device_key, h.series_key, h.day, h.timezone
$$;

-- amrd_rollup_daily_from_table is the same over the materialized hours only (the rollup
-- job's: the days it writes end at or before the materialized point; reading them through
-- the real-time view would make the planner rerun the live part once a device).
-- amrd_rollup_daily_from_hourly sums the hourly buckets of [lo, hi) into the local days
-- of each device's zone (for zones whose days begin on a UTC hour): a day's consumption
-- is its hours' (steps ending in (day_start, day_end]), its first reading its earliest
-- hour's. The caller keeps the days that lie inside the range.
CREATE FUNCTION public.amrd_rollup_daily_from_table(lo timestamptz, hi timestamptz)
RETURNS TABLE (device_key integer, series_key integer, day date, timezone text, day_start timestamptz,
    day_end timestamptz, count integer, min_value numeric, max_value numeric, sum_value numeric,
    first_ts timestamptz, first_value numeric, last_ts timestamptz, last_value numeric, consumption numeric)
LANGUAGE sql STABLE AS $$
SELECT h.device_key, h.series_key, h.day, h.timezone, public.amrd_day_start(h.day, h.timezone),
    public.amrd_day_start(h.day + 1, h.timezone), sum(h.count)::integer, min(h.min_value), max(h.max_value),
    sum(h.sum_value), min(h.first_ts), public.first(h.first_value, h.first_ts) FILTER (WHERE h.count > 0),
    max(h.last_ts), public.last(h.last_value, h.last_ts) FILTER (WHERE h.count > 0), sum(h.consumption)
FROM (
    SELECT r.*, z.timezone, public.amrd_local_day(r.bucket, z.timezone) AS day
    FROM public.rollup_hourly r
    JOIN amrd_read.device_zones z ON z.device_key = r.device_key
    WHERE r.bucket >= lo AND r.bucket < hi AND z.hour_aligned
) h
GROUP BY h.device_key, h.series_key, h.day, h.timezone
$$;

-- Days that end after the materialized point are live: sums of real-time hours for zones
-- whose days begin on a UTC hour, the raw readings for the others.
CREATE VIEW amrd_read.rollup_daily_rt WITH (security_barrier) AS
SELECT d.device_key, d.series_key, d.day, d.timezone, d.day_start, d.day_end, d.count, d.min_value,
    d.max_value, d.sum_value, d.first_ts, d.first_value, d.last_ts, d.last_value, d.consumption
FROM public.rollup_daily d
WHERE d.day_end <= (SELECT materialized FROM public.rollup_state)
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR d.device_key IN (
    SELECT vd.key FROM public.meter_devices vd WHERE vd.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.device_key, f.series_key, f.day, f.timezone, f.day_start, f.day_end, f.count, f.min_value,
    f.max_value, f.sum_value, f.first_ts, f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.rollup_state st
CROSS JOIN LATERAL public.amrd_rollup_daily_from_hourly(st.materialized - interval '2 days', 'infinity') f
WHERE f.day_end > st.materialized
UNION ALL
SELECT f.device_key, f.series_key, f.day, f.timezone, f.day_start, f.day_end, f.count, f.min_value,
    f.max_value, f.sum_value, f.first_ts, f.first_value, f.last_ts, f.last_value, f.consumption
FROM public.rollup_state st
CROSS JOIN LATERAL public.amrd_rollup_daily_from_raw(st.materialized - interval '2 days', 'infinity') f
WHERE f.day_end > st.materialized
    AND f.device_key IN (SELECT device_key FROM amrd_read.device_zones WHERE NOT hour_aligned);

CREATE VIEW amrd_read.rollup_series_hourly_rt WITH (security_barrier) AS
SELECT s.series_key, s.bucket, s.devices, s.count, s.min_value, s.max_value, s.sum_value, s.consumption
FROM public.rollup_series_hourly s
WHERE s.bucket < (SELECT materialized FROM public.rollup_state)
    AND ((SELECT amrd_read.visible_orgs(current_user)) IS NULL OR s.series_key IN (
        SELECT vs.key FROM public.meter_reading_series vs WHERE vs.organization_id = ANY ((SELECT amrd_read.visible_orgs(current_user))::uuid[])))
UNION ALL
SELECT f.series_key, f.bucket, count(*)::integer, sum(f.count)::integer, min(f.min_value), max(f.max_value),
    sum(f.sum_value), sum(f.consumption)
FROM public.rollup_state st
CROSS JOIN LATERAL public.amrd_rollup_hourly_from_raw(st.materialized, 'infinity') f
WHERE f.bucket >= st.materialized
GROUP BY f.series_key, f.bucket;

-- The rollup views go through the pairs of a device and a series of its organization, and
-- read each pair's real-time buckets in a lateral subquery: so a dashboard's filter on a
-- device or series (by id or name, in meter_devices and meter_reading_series) reaches
-- the live aggregation as that pair's keys, and only that pair's readings are scanned.
-- A join on the keys instead would aggregate the live part of every device first (OFFSET
-- 0 keeps the planner from turning the lateral subquery back into such a join).
CREATE VIEW amrd_read.meter_reading_rollups_hourly WITH (security_barrier) AS
SELECT d.organization_id, d.id AS meter_device_id, d.name AS meter_device_name, s.id AS series_id,
    s.name AS series_name, s.unit, h.bucket, h.bucket + interval '1 hour' AS bucket_end, h.count,
    h.min_value, h.max_value, h.sum_value / nullif(h.count, 0) AS avg_value, h.sum_value,
    h.first_ts, h.first_value, h.last_ts, h.last_value, h.consumption,
    h.min_value * s.si_multiplier AS min_value_si, h.max_value * s.si_multiplier AS max_value_si,
    h.sum_value / nullif(h.count, 0) * s.si_multiplier AS avg_value_si,
    h.last_value * s.si_multiplier AS last_value_si, h.consumption * s.si_multiplier AS consumption_si
FROM public.meter_devices d
JOIN public.meter_reading_series s ON s.organization_id = d.organization_id
CROSS JOIN LATERAL (SELECT * FROM amrd_read.rollup_hourly_rt r WHERE r.device_key = d.key AND r.series_key = s.key OFFSET 0) h
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

CREATE VIEW amrd_read.meter_reading_rollups_daily WITH (security_barrier) AS
SELECT d.organization_id, d.id AS meter_device_id, d.name AS meter_device_name, s.id AS series_id,
    s.name AS series_name, s.unit, r.day, r.timezone, r.day_start AS bucket, r.day_end AS bucket_end, r.count,
    r.min_value, r.max_value, r.sum_value / nullif(r.count, 0) AS avg_value, r.sum_value,
    r.first_ts, r.first_value, r.last_ts, r.last_value, r.consumption,
    r.min_value * s.si_multiplier AS min_value_si, r.max_value * s.si_multiplier AS max_value_si,
    r.sum_value / nullif(r.count, 0) * s.si_multiplier AS avg_value_si,
    r.last_value * s.si_multiplier AS last_value_si, r.consumption * s.si_multiplier AS consumption_si
FROM public.meter_devices d
JOIN public.meter_reading_series s ON s.organization_id = d.organization_id
CROSS JOIN LATERAL (SELECT * FROM amrd_read.rollup_daily_rt x WHERE x.device_key = d.key AND x.series_key = s.key OFFSET 0) r
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- Months are sums of local days (the month of the device's zone).
CREATE VIEW amrd_read.meter_reading_rollups_monthly WITH (security_barrier) AS
SELECT r.organization_id, r.meter_device_id, r.meter_device_name, r.series_id, r.series_name, r.unit,
    date_trunc('month', r.day)::date AS month, r.timezone, min(r.bucket) AS bucket, max(r.bucket_end) AS bucket_end,
    sum(r.count)::bigint AS count, min(r.min_value) AS min_value, max(r.max_value) AS max_value,
    sum(r.sum_value) / nullif(sum(r.count), 0) AS avg_value, sum(r.sum_value) AS sum_value,
    min(r.first_ts) AS first_ts, public.first(r.first_value, r.first_ts) AS first_value,
    max(r.last_ts) AS last_ts, public.last(r.last_value, r.last_ts) AS last_value,
    sum(r.consumption) AS consumption, sum(r.consumption_si) AS consumption_si
FROM amrd_read.meter_reading_rollups_daily r
GROUP BY r.organization_id, r.meter_device_id, r.meter_device_name, r.series_id, r.series_name, r.unit,
    date_trunc('month', r.day)::date, r.timezone;

-- One series over its whole fleet by UTC hour (the series' organization's devices).
CREATE VIEW amrd_read.series_rollups_hourly WITH (security_barrier) AS
SELECT s.organization_id, s.id AS series_id, s.name AS series_name, s.unit, h.bucket,
    h.bucket + interval '1 hour' AS bucket_end, h.devices, h.count, h.min_value, h.max_value,
    h.sum_value / nullif(h.count, 0) AS avg_value, h.sum_value, h.consumption,
    h.sum_value / nullif(h.count, 0) * s.si_multiplier AS avg_value_si, h.consumption * s.si_multiplier AS consumption_si
FROM public.meter_reading_series s
CROSS JOIN LATERAL (SELECT * FROM amrd_read.rollup_series_hourly_rt x WHERE x.series_key = s.key OFFSET 0) h
WHERE amrd_read.sees(s.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

-- The newest reading of each device and series its config allows: one backwards probe
-- of the key index a pair, instead of sorting every reading (DISTINCT ON).
CREATE VIEW amrd_read.latest_readings WITH (security_barrier) AS
SELECT d.organization_id, d.id AS meter_device_id, d.name AS meter_device_name, s.id AS series_id,
    s.name AS series_name, s.unit, l.ts AS "timestamp", l.value, l.factor, l.value * l.factor AS value_scaled,
    l.value * l.factor * s.si_multiplier AS value_si, l.created_at
FROM public.meter_devices d
JOIN public.meter_device_types t ON t.id = d.type_id
JOIN public.meter_device_config_series cs ON cs.config_id = t.config_id
JOIN public.meter_reading_series s ON s.id = cs.series_id
CROSS JOIN LATERAL (
    SELECT r.ts, r.value, r.factor, r.created_at FROM public.meter_readings r
    WHERE r.device_key = d.key AND r.series_key = s.key
    ORDER BY r.ts DESC LIMIT 1) l
WHERE amrd_read.sees(d.organization_id, (SELECT amrd_read.visible_orgs(current_user)));

REVOKE ALL ON ALL TABLES IN SCHEMA amrd_read FROM PUBLIC;
