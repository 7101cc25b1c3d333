package store_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// The live part of the real-time rollup views reads only the raw chunks above the
// materialized point, also when no device narrows the scan (a series across the fleet):
// the point is a STABLE function call that TimescaleDB evaluates when the query starts.
func TestLiveRollupsReadOnlyChunksAboveTheMaterializedPoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// Six days of quarter-hourly readings: six day chunks.
	lf := newLiveFixture(t, 6, 4*24*time.Hour+6*time.Hour)
	conn, keys, ser, rs := lf.conn, lf.keys, lf.ser, lf.readings

	var seriesID, deviceID string
	require.NoError(t, conn.QueryRow(ctx, `SELECT id::text FROM meter_reading_series WHERE key = $1`, ser).Scan(&seriesID))
	require.NoError(t, conn.QueryRow(ctx, `SELECT id::text FROM meter_devices WHERE key = $1`, keys["utc"]).Scan(&deviceID))

	explain := func(sql string) string {
		rows, _ := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+sql)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	// The hourly live part starts an hour before the point (each first reading's step):
	// it may read the chunks of days 4 and 5 only; the four before are excluded.
	excluded := regexp.MustCompile(`ChunkAppend\) on meter_readings .*\n\s+Chunks excluded during startup: (\d+)`)
	for q, least := range map[string]int{
		`SELECT bucket, avg_value FROM amrd_read.series_rollups_hourly WHERE series_id = '` + seriesID + `'`:                4,
		`SELECT bucket, consumption FROM amrd_read.meter_reading_rollups_hourly WHERE series_id = '` + seriesID + `'`:       4,
		`SELECT bucket, consumption FROM amrd_read.meter_reading_rollups_hourly WHERE meter_device_id = '` + deviceID + `'`: 4,
		// Live days start two days before the point, and their raw part a day before that.
		`SELECT day, consumption FROM amrd_read.meter_reading_rollups_daily WHERE series_id = '` + seriesID + `'`: 1,
	} {
		plan := explain(q)
		m := excluded.FindAllStringSubmatch(plan, -1)
		require.NotEmpty(t, m, "no readings chunk excluded at startup:\n%s", plan)
		for _, x := range m {
			n, _ := strconv.Atoi(x[1])
			require.GreaterOrEqual(t, n, least, "%s\n%s", q, plan)
		}
		require.NotRegexp(t, `_hyper_1_1_chunk\b`, plan, "the first day's chunk is read:\n%s", plan)
	}

	// And the views still give every reading: materialized hours plus live ones.
	var n int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT sum(count) FROM amrd_read.series_rollups_hourly WHERE series_id = $1`, seriesID).Scan(&n))
	require.Equal(t, int64(len(rs)), n)
	storetest.Exec(t, lf.url, `SELECT 1`) // the database is still usable after the plans
}

// The live part evaluates the materialized point a few times a query (the scans' bounds,
// a lateral row, an InitPlan), not once or more for every reading it aggregates: each call runs
// a query (about 2 µs), and once a reading it was most of a fleet-wide chart's time. And
// dashboards' sessions run without JIT, which compiled such a query for longer than it ran.
func TestLiveRollupsEvaluateTheMaterializedPointOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lf := newLiveFixture(t, 3, 24*time.Hour)
	conn, ser, rs, url, materialized := lf.conn, lf.ser, lf.readings, lf.url, lf.materialized
	live := 0 // readings at or above the point
	for _, r := range rs {
		if !r.ts.Before(materialized) {
			live++
		}
	}

	var seriesID string
	require.NoError(t, conn.QueryRow(ctx, `SELECT id::text FROM meter_reading_series WHERE key = $1`, ser).Scan(&seriesID))
	for _, q := range []string{
		`SELECT sum(count) FROM amrd_read.series_rollups_hourly WHERE series_id = '` + seriesID + `'`,
		`SELECT sum(count) FROM amrd_read.meter_reading_rollups_hourly WHERE series_id = '` + seriesID + `'`,
		`SELECT sum(count) FROM amrd_read.meter_reading_rollups_daily WHERE series_id = '` + seriesID + `'`,
	} {
		var n, calls int64
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL track_functions = 'all'`); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, q).Scan(&n); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
				WHERE funcname = 'amrd_rollup_materialized'`).Scan(&calls)
		})
		require.NoError(t, err)
		require.Equal(t, int64(len(rs)), n, q)
		// A few calls a chunk and a device (the scans' bounds: the per-device views
		// run their live part once a device), far fewer than readings: one a reading
		// or more was the fault (before schema/0008: 3,370, 6,752 and 12,624 calls; after:
		// 18, 50 and 133).
		require.Less(t, calls*3, int64(live), "%s: %d calls for %d live readings", q, calls, live)
		t.Logf("%s: %d calls of amrd_rollup_materialized for %d live readings", q, calls, live)
	}

	// A new session that sets nothing (as Grafana's) runs without JIT.
	plain, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer plain.Close(ctx)
	var jit string
	require.NoError(t, plain.QueryRow(ctx, `SHOW jit`).Scan(&jit))
	require.Equal(t, "off", jit)
}

// liveFixture is a database with quarter-hourly readings of rollupFleet's devices for a
// number of days from 2026-03-01 and the rollups materialized up to a point after it.
type liveFixture struct {
	url          string
	conn         *pgx.Conn
	keys         map[string]int32
	ser          int32
	readings     []reading
	materialized time.Time
}

func newLiveFixture(t *testing.T, days int, materializedAfter time.Duration) liveFixture {
	ctx := testCtx(t)
	st, url := storetest.New(t)
	lf := liveFixture{url: url, conn: connect(t, url)}
	lf.keys, lf.ser = rollupFleet(t, url)
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range lf.keys {
		for i := range days * 96 {
			lf.readings = append(lf.readings, reading{dev: k, ser: lf.ser, ts: day0.Add(time.Duration(i) * 15 * time.Minute),
				value: *apd.New(int64(i), 0), factor: 1})
		}
	}
	write(t, st, lf.readings)
	lf.materialized = day0.Add(materializedAfter)
	require.NoError(t, st.MoveRollupThreshold(ctx, lf.materialized))
	_, err := st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	return lf
}
