package store_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// rowsText reads every row of query as its composite text: numbers with their scale.
func rowsText(t *testing.T, conn *pgx.Conn, query string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), query, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// requireSameRows compares what the job wrote with what the SQL functions say, row by row.
func requireSameRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == len(want) {
		var diffs []string
		for i := range got {
			if got[i] != want[i] {
				diffs = append(diffs, fmt.Sprintf("got  %s\nwant %s", got[i], want[i]))
			}
		}
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
		}
		require.Empty(t, diffs, "%s:\n%s", what, strings.Join(diffs, "\n"))
		return
	}
	require.Equal(t, want, got, what)
}

// Rollup rows as text, numbers with their scale, but for the minimum and the maximum,
// whose scale is checked apart (see materializedEqualsSQL).
const (
	hourlyText = `row(device_key, series_key, bucket, count, trim_scale(min_value), trim_scale(max_value), sum_value,
		first_ts, first_value, last_ts, last_value, consumption)::text`
	dailyText = `row(device_key, series_key, day, timezone, day_start, day_end, count, trim_scale(min_value),
		trim_scale(max_value), sum_value, first_ts, first_value, last_ts, last_value, consumption)::text`
	seriesText = `row(series_key, bucket, devices, count, trim_scale(min_value), trim_scale(max_value), sum_value,
		consumption)::text`
)

// materializedEqualsSQL checks that the buckets the job materialized up to mat are, to
// the last digit and scale, what amrd_rollup_hourly_from_raw, the series sums and
// amrd_rollup_daily_from_table / _from_raw (the real-time views' SQL) give. Of equal
// values of different scales (1.5 and 1.50) the job's minimum and maximum are the later
// in time, which is what numeric's min and max keep when the SQL aggregates the rows in
// time order (its plan for more than a few rows); for a few rows it sorts them by bucket
// and the sort leaves ties in any order, so those scales are checked against the rule.
func materializedEqualsSQL(t *testing.T, conn *pgx.Conn, unaligned int32) {
	t.Helper()
	ctx := testCtx(t)
	var start, mat time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT date_trunc('hour', min(range_start)) FROM timescaledb_information.chunks
		WHERE hypertable_name = 'meter_readings'`).Scan(&start))
	require.NoError(t, conn.QueryRow(ctx, `SELECT materialized FROM rollup_state`).Scan(&mat))
	hourly := rowsText(t, conn, `SELECT `+hourlyText+` FROM amrd_rollup_hourly_from_raw($1, $2) f ORDER BY device_key, series_key, bucket`, start, mat)
	require.NotEmpty(t, hourly)
	requireSameRows(t, "hourly", rowsText(t, conn, `SELECT `+hourlyText+` FROM rollup_hourly h ORDER BY device_key, series_key, bucket`), hourly)
	requireSameRows(t, "series hourly",
		rowsText(t, conn, `SELECT `+seriesText+` FROM rollup_series_hourly s ORDER BY series_key, bucket`),
		rowsText(t, conn, `SELECT `+seriesText+` FROM (SELECT series_key, bucket, count(*)::int AS devices, sum(count)::int AS count,
			min(min_value) AS min_value, max(max_value) AS max_value, sum(sum_value) AS sum_value, sum(consumption) AS consumption
			FROM rollup_hourly GROUP BY series_key, bucket) s ORDER BY series_key, bucket`))
	daily := rowsText(t, conn, `SELECT `+dailyText+` FROM amrd_rollup_daily_from_table($1::timestamptz - interval '2 days', $2) f
		WHERE f.day_end > $1 AND f.day_end <= $2 ORDER BY device_key, series_key, day`, start, mat)
	require.NotEmpty(t, daily)
	requireSameRows(t, "daily",
		rowsText(t, conn, `SELECT `+dailyText+` FROM rollup_daily d WHERE device_key <> $1 ORDER BY device_key, series_key, day`, unaligned), daily)
	requireSameRows(t, "daily (unaligned zone)",
		rowsText(t, conn, `SELECT `+dailyText+` FROM rollup_daily d WHERE device_key = $1 ORDER BY device_key, series_key, day`, unaligned),
		rowsText(t, conn, `SELECT `+dailyText+` FROM amrd_rollup_daily_from_raw($1::timestamptz - interval '2 days', $2) f
			WHERE f.day_end > $1 AND f.day_end <= $2 AND device_key = $3 ORDER BY device_key, series_key, day`, start, mat, unaligned))
	// The scales of minima and maxima: the latest equal value's.
	var bad int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM rollup_hourly h, LATERAL (
			SELECT (SELECT scale(m.value * m.factor) FROM meter_readings m WHERE m.device_key = h.device_key AND m.series_key = h.series_key
				AND m.ts >= h.bucket AND m.ts < h.bucket + interval '1 hour' AND m.value * m.factor = h.min_value ORDER BY m.ts DESC LIMIT 1) AS mn,
				(SELECT scale(m.value * m.factor) FROM meter_readings m WHERE m.device_key = h.device_key AND m.series_key = h.series_key
				AND m.ts >= h.bucket AND m.ts < h.bucket + interval '1 hour' AND m.value * m.factor = h.max_value ORDER BY m.ts DESC LIMIT 1) AS mx) x
		WHERE h.count > 0 AND (x.mn IS DISTINCT FROM scale(h.min_value) OR x.mx IS DISTINCT FROM scale(h.max_value))`).Scan(&bad))
	require.Zero(t, bad, "hourly minima or maxima whose scale is not their latest reading's")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM rollup_daily d, LATERAL (
			SELECT (SELECT scale(h.min_value) FROM rollup_hourly h WHERE h.device_key = d.device_key AND h.series_key = d.series_key
				AND h.bucket >= d.day_start AND h.bucket < d.day_end AND h.min_value = d.min_value ORDER BY h.bucket DESC LIMIT 1) AS mn,
				(SELECT scale(h.max_value) FROM rollup_hourly h WHERE h.device_key = d.device_key AND h.series_key = d.series_key
				AND h.bucket >= d.day_start AND h.bucket < d.day_end AND h.max_value = d.max_value ORDER BY h.bucket DESC LIMIT 1) AS mx) x
		WHERE d.count > 0 AND d.device_key <> $1 AND (x.mn IS DISTINCT FROM scale(d.min_value) OR x.mx IS DISTINCT FROM scale(d.max_value))`,
		unaligned).Scan(&bad))
	require.Zero(t, bad, "daily minima or maxima whose scale is not their latest hour's")
}

// TestRollupJobEqualsSQL: the job aggregates in Go what amrd_rollup_hourly_from_raw
// aggregates in SQL, and must write exactly its rows: numeric scales kept through sums
// (the largest), extremes and first and last values (their own) and steps, factors
// other than 1 and changing, readings on an hour's start (the step in the hour before),
// counter resets, equal values of different scales in one hour (the later is the
// minimum and the maximum, as numeric's min and max keep it), values too large for an
// int64, and devices silent for hours and days before a slice (their first step's
// predecessor is found by a probe). It materializes in slices of several sizes, so that
// days span slices.
func TestRollupJobEqualsSQL(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	conn := connect(t, url)
	keys, ser := rollupFleet(t, url)
	var rs []reading
	add := func(dev string, ts time.Time, v string, factor int64) {
		rs = append(rs, reading{dev: keys[dev], ser: ser, ts: ts, value: decimal(v), factor: factor})
	}
	day := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC)
	// sthlm: quarter-hourly, in three scales, the factor 5 then 3 (a CT change), a reset
	// to zero on an hour's start, and an hour whose two first readings are equal.
	cents := int64(123456)
	for i := 0; i < 3*96; i++ {
		ts := day.Add(time.Duration(i) * 15 * time.Minute)
		factor := int64(5)
		if i >= 130 {
			factor = 3
		}
		switch {
		case ts.Equal(day.Add(10 * time.Hour)):
			cents = 0
		case ts.Equal(day.Add(13*time.Hour + 15*time.Minute)): // equal to 13:00's
		default:
			cents += int64(i%7) * 11
		}
		v := fmt.Sprintf("%d.%02d", cents/100, cents%100) + strings.Repeat("0", i%3)
		add("sthlm", ts, v, factor)
	}
	// kolkata: half-hourly, beyond an int64 (twenty digits before the point), and a
	// step down.
	for i := 0; i < 3*48; i++ {
		ts := day.Add(time.Duration(i) * 30 * time.Minute)
		v := fmt.Sprintf("98765432109876543210.%03d", (i*37)%1000)
		if i%10 == 9 {
			v = "98765432109876543209.5"
		}
		add("kolkata", ts, v, 1)
	}
	// utc: a reading four days before, then one every five hours on the hour, with a
	// scale of 4 and small steps.
	add("utc", day.Add(-4*24*time.Hour+7*time.Minute), "50.1", 1)
	for i := 0; i < 15; i++ {
		add("utc", day.Add(time.Duration(i*5)*time.Hour), fmt.Sprintf("%d.%04d", 51+i/3, i*13), 2)
	}
	write(t, st, rs)

	// A store with a pool of two connections: one copy, and the sums wait for the
	// readings' connection.
	small, err := store.Open(ctx, store.Config{URL: url, MaxConns: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(small.Close)
	for _, step := range []struct {
		st    *store.Store
		to    time.Time
		slice time.Duration
	}{
		{st, day.Add(-2 * 24 * time.Hour), 24 * time.Hour},
		{st, day.Add(31 * time.Hour), 5 * time.Hour},
		{small, day.Add(40 * time.Hour), time.Hour},
		{st, day.Add(72 * time.Hour), 7 * time.Hour},
	} {
		require.NoError(t, step.st.MoveRollupThreshold(ctx, step.to))
		_, err := step.st.MaterializeRollups(ctx, step.slice)
		require.NoError(t, err)
	}
	materializedEqualsSQL(t, conn, keys["kolkata"])
}

// TestRollupJobNonFinite: a NaN only SQL can have written (amrd's ingestion refuses it)
// leaves its slices to the SQL functions, whose rows the job then writes.
func TestRollupJobNonFinite(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	conn := connect(t, url)
	keys, ser := rollupFleet(t, url)
	day := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC)
	var rs []reading
	for i := 0; i < 48; i++ {
		rs = append(rs, reading{dev: keys["utc"], ser: ser, ts: day.Add(time.Duration(i) * time.Hour), value: decimal(fmt.Sprint(100 + i)), factor: 1})
	}
	write(t, st, rs)
	_, err := conn.Exec(ctx, `INSERT INTO meter_readings (device_key, series_key, ts, value) VALUES ($1, $2, $3, 'NaN')`,
		keys["sthlm"], ser, day.Add(30*time.Hour+time.Minute))
	require.NoError(t, err)
	require.NoError(t, st.MoveRollupThreshold(ctx, day.Add(48*time.Hour)))
	res, err := st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(49), res.Readings)
	materializedEqualsSQL(t, conn, keys["kolkata"])
	var nan int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM rollup_hourly WHERE sum_value = 'NaN'`).Scan(&nan))
	require.Equal(t, 1, nan)
}

// TestMaterializationSummarizesTheReadingsBRIN: before it reads a slice, the job
// summarizes the new BRIN ranges on ts of the readings' chunks the slice overlaps (and
// only those), so that its range queries read their own pages (see readBatches).
func TestMaterializationSummarizesTheReadingsBRIN(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	conn := connect(t, url)
	keys, ser := rollupFleet(t, url)
	// Readings every 10 s: full BRIN ranges of 128 pages in each day's chunk (the last,
	// partial range of a chunk is never summarized by brin_summarize_new_values).
	devs := make([]int32, 0, len(keys))
	for _, d := range keys {
		devs = append(devs, d)
	}
	_, err := conn.Exec(ctx, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor)
		SELECT d, $2, ts, extract(epoch FROM ts)::bigint / 10, 1 FROM unnest($1::int4[]) d,
			generate_series('2026-10-20'::timestamptz, '2026-10-22'::timestamptz - interval '10 s', interval '10 s') ts`, devs, ser)
	require.NoError(t, err)
	require.NoError(t, st.MoveRollupThreshold(ctx, time.Date(2026, 10, 20, 23, 0, 0, 0, time.UTC)))
	_, err = st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	// What is left to summarize in each day's chunk (this summarizes it).
	left := func(day string) int64 {
		var n int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(sum(brin_summarize_new_values(i.indexrelid)), 0)
			FROM timescaledb_information.chunks c
			JOIN pg_class t ON t.relname = c.chunk_name AND t.relnamespace = c.chunk_schema::regnamespace
			JOIN pg_index i ON i.indrelid = t.oid
			WHERE c.hypertable_name = 'meter_readings' AND c.range_start = $1::timestamptz
				AND i.indexrelid::regclass::text LIKE '%ts_brin'`, day).Scan(&n))
		return n
	}
	require.Zero(t, left("2026-10-20"), "the slice's chunk was summarized")
	require.Positive(t, left("2026-10-21"), "a chunk after the slice is left to autovacuum")
}
