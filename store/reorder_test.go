package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

func TestClusterReadingChunks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)

	// Three days of quarter-hourly readings of 20 pairs, written in time order (as they
	// arrive): three day chunks, each in time order on disk.
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	storetest.Exec(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor, created_at)
		SELECT d, s, t, (extract(epoch FROM t) / 900)::numeric + d * 1000 + s, 1, t + interval '1 minute'
		FROM generate_series($1::timestamptz, $1::timestamptz + interval '3 days' - interval '15 minutes', interval '15 minutes') t,
			generate_series(1, 10) d, generate_series(1, 2) s
		ORDER BY t, d, s`, day0)
	before := storetest.Rows(t, url, `SELECT device_key, series_key, ts, value::text FROM meter_readings ORDER BY 1, 2, 3`)
	require.Len(t, before, 3*96*20)

	// inOrder: whether a chunk's rows lie on disk in key order.
	inOrder := func(day time.Time) bool {
		var ok bool
		storetest.QueryRow(t, url, `SELECT bool_and(k = p) FROM (
			SELECT row_number() OVER (ORDER BY device_key, series_key, ts) AS k, row_number() OVER (ORDER BY ctid) AS p
			FROM meter_readings WHERE ts >= '`+day.Format(time.RFC3339)+`' AND ts < '`+day.Add(24*time.Hour).Format(time.RFC3339)+`') x`, &ok)
		return ok
	}
	require.False(t, inOrder(day0))

	// Only chunks that ended at or before the cutoff, oldest first, at most max of them.
	done, err := st.ClusterReadingChunks(ctx, day0.Add(48*time.Hour), 1, nil)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.Equal(t, day0.Add(24*time.Hour), done[0].RangeEnd.UTC())
	require.True(t, inOrder(day0))
	// A rewritten day gets a B-tree on created_at, so that "readings taken in over the
	// last hours" does not scan it.
	var withIndex []string
	storetest.Query(t, url, `SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_indexes
		WHERE schemaname = '_timescaledb_internal' AND indexname LIKE '%\_created\_at\_idx'`, nil, &withIndex)
	require.Equal(t, []string{strings.TrimPrefix(done[0].Chunk, "_timescaledb_internal.")}, withIndex)
	var plan []string
	storetest.Exec(t, url, `ANALYZE `+done[0].Chunk) // as autovacuum does after a rewrite
	rows := storetest.Rows(t, url, `EXPLAIN (COSTS OFF) SELECT count(*) FROM `+done[0].Chunk+` WHERE created_at > now() - interval '6 hours'`)
	for _, r := range rows {
		plan = append(plan, r[0].(string))
	}
	require.NotContains(t, strings.Join(plan, "\n"), "Seq Scan", "a rewritten day is scanned for recent readings")
	require.False(t, inOrder(day0.Add(24*time.Hour)))

	// A chunk in use is left for the next run, without an error, after a bounded wait.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM meter_readings WHERE ts >= $1 AND ts < $2`,
		day0.Add(24*time.Hour), day0.Add(48*time.Hour)).Scan(&n))
	require.Equal(t, 96*20, n)
	done, err = st.ClusterReadingChunks(ctx, day0.Add(48*time.Hour), 10, nil)
	require.NoError(t, err)
	require.Empty(t, done)
	require.NoError(t, tx.Rollback(ctx))

	done, err = st.ClusterReadingChunks(ctx, day0.Add(48*time.Hour), 10, nil)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.True(t, inOrder(day0.Add(24*time.Hour)))
	require.False(t, inOrder(day0.Add(48*time.Hour)), "the chunk after the cutoff stays as written")

	// Clustered chunks are not rewritten again, and nothing changed but the order.
	done, err = st.ClusterReadingChunks(ctx, day0.Add(72*time.Hour), 10, nil)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.Equal(t, day0.Add(72*time.Hour), done[0].RangeEnd.UTC())
	done, err = st.ClusterReadingChunks(ctx, day0.Add(72*time.Hour), 10, nil)
	require.NoError(t, err)
	require.Empty(t, done)
	require.Equal(t, before, storetest.Rows(t, url, `SELECT device_key, series_key, ts, value::text FROM meter_readings ORDER BY 1, 2, 3`))
}

// With the counts of the previous call, a chunk is rewritten only once no row came
// into it since: an import into an old day is not locked out halfway.
func TestClusterWaitsForQuietChunks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	storetest.ExecCounted(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor)
		SELECT d, 1, t, 1, 1 FROM generate_series($1::timestamptz, $1::timestamptz + interval '2 days' - interval '1 hour', interval '1 hour') t,
			generate_series(1, 5) d ORDER BY t, d`, day0)
	seen := map[string]int64{}
	cutoff := day0.Add(48 * time.Hour)
	done, err := st.ClusterReadingChunks(ctx, cutoff, 10, seen)
	require.NoError(t, err)
	require.Empty(t, done, "a chunk not seen before is not known to be quiet")
	require.Len(t, seen, 2)

	// A late reading into the first day: that day waits for another quiet interval.
	storetest.ExecCounted(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor) VALUES (9, 1, $1, 1, 1)`, day0.Add(time.Minute))
	done, err = st.ClusterReadingChunks(ctx, cutoff, 10, seen)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.Equal(t, day0.Add(48*time.Hour), done[0].RangeEnd.UTC(), "the second day, untouched, is rewritten")
	require.Len(t, seen, 1)

	done, err = st.ClusterReadingChunks(ctx, cutoff, 10, seen)
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.Equal(t, day0.Add(24*time.Hour), done[0].RangeEnd.UTC())
	require.Empty(t, seen)
}
