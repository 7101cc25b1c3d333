package store_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// BenchmarkSeriesHasReadings measures the series deletion check at 10,000 devices and
// 365 daily chunks, against probing every device in every chunk (SeriesHasReadingsProbeAll,
// the reference), in the same run:
//
//	AMRD_TEST_DATABASE_URL=... go test ./store/ -run '^$' -bench SeriesHasReadings -benchtime 3x -v
//
// The fleet: 10,000 devices, one reading a day of series "used" for each over 365 days
// (3.65 M readings, each device at its own quarter hour, so every daily chunk holds
// every device), and rollups materialized up to the start of the last day. The rollup
// rows are generated as the rollup job would leave them (a device row an hour with a
// reading, a series row an hour) rather than computed by it, which would take minutes
// more and change nothing the check reads. Cases:
//   - used: readings stored (the rollups answer);
//   - unused: a series never written (the old check's worst case: every probe misses);
//   - stale: the one device with readings deleted moments ago, the rollup job not run yet
//     (its rollup rows and a mark pending): the new check's slow path, which looks for
//     devices with rollup rows of the series (and probes their readings).
//
// Each sub-benchmark reports ms/op; the parent prints each case's median and the ratio.
func BenchmarkSeriesHasReadings(b *testing.B) {
	ctx := context.Background()
	st, url := storetest.New(b)
	const devices, days = 10_000, 365
	day0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	var org uuid.UUID
	storetest.Query(b, url, `INSERT INTO organizations (name) VALUES ('bench') RETURNING id`, nil, &org)
	series := map[string]uuid.UUID{}
	keys := map[string]int32{}
	for _, n := range []string{"used", "unused", "stale"} {
		var id uuid.UUID
		var key int32
		storetest.Query(b, url, `INSERT INTO meter_reading_series (organization_id, name, unit) VALUES ($1, $2, 'kWh') RETURNING id, key`,
			[]any{org, n}, &id, &key)
		series[n], keys[n] = id, key
	}
	sql := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO meter_devices (organization_id, name, protocol) SELECT $1, 'm' || g, 'dlms-cosem' FROM generate_series(1, $2) g`,
			[]any{org, devices}},
		{`INSERT INTO meter_readings (device_key, series_key, ts, value)
			SELECT d.key, $1, $2::timestamptz + g * interval '1 day' + (d.key % 96) * interval '15 minutes', g
			FROM generate_series(0, $3 - 1) g, meter_devices d`, []any{keys["used"], day0, days}},
		{`INSERT INTO rollup_series_hourly (series_key, bucket, devices, count, consumption)
			SELECT s, $1::timestamptz + g * interval '1 day' + h * interval '1 hour', $3::int / 24, $3::int / 24, 0
			FROM unnest($4::int4[]) s, generate_series(0, $2 - 1) g, generate_series(0, 23) h`,
			[]any{day0, days, devices, []int32{keys["used"], keys["stale"]}}},
		// The device rows: one an hour with a reading, of "used" for every device; of
		// "stale", for its deleted device (key 2147483647, which no device has).
		{`INSERT INTO rollup_hourly (device_key, series_key, bucket, count, consumption)
			SELECT device_key, series_key, date_trunc('hour', ts), 1, 0 FROM meter_readings`, nil},
		{`INSERT INTO rollup_hourly (device_key, series_key, bucket, count, consumption)
			SELECT 2147483647, $1, $2::timestamptz + g * interval '1 day', 1, 0 FROM generate_series(0, $3 - 1) g`,
			[]any{keys["stale"], day0, days}},
		// The stale series' device was deleted: its mark covers the whole year.
		{`INSERT INTO rollup_marks (device_key, series_key, ts_min, ts_max) VALUES (2147483647, $1, $2, $3)`,
			[]any{keys["stale"], day0, day0.Add(days * 24 * time.Hour)}},
		{`UPDATE rollup_state SET threshold = $1, materialized = $1`, []any{day0.Add((days - 1) * 24 * time.Hour)}},
		{`ANALYZE`, nil},
	}
	conn, err := pgx.Connect(ctx, url) // storetest's statements have 30 s; the readings take longer
	require.NoError(b, err)
	for _, q := range sql {
		_, err := conn.Exec(ctx, q.sql, q.args...)
		require.NoError(b, err, q.sql)
	}
	require.NoError(b, conn.Close(ctx))
	var chunks int
	storetest.QueryRow(b, url, `SELECT count(*)::int FROM timescaledb_information.chunks WHERE hypertable_name = 'meter_readings'`, &chunks)
	require.Equal(b, days, chunks)
	b.Logf("setup: %d devices, %d daily chunks, %d readings in %s", devices, chunks, devices*days, time.Since(start).Round(time.Second))

	cases := []struct {
		name string
		want bool
	}{{"used", true}, {"unused", false}, {"stale", false}}
	checks := []struct {
		name string
		fn   func(context.Context, uuid.UUID) (bool, error)
	}{{"new", st.SeriesHasReadings}, {"old", st.SeriesHasReadingsProbeAll}}
	medians := map[string]time.Duration{}
	for _, c := range cases {
		for _, chk := range checks {
			b.Run(c.name+"/"+chk.name, func(b *testing.B) {
				got, err := chk.fn(ctx, series[c.name]) // warm the cache
				require.NoError(b, err)
				require.Equal(b, c.want, got)
				var took []time.Duration
				for b.Loop() {
					t := time.Now()
					if _, err := chk.fn(ctx, series[c.name]); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(t))
				}
				sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
				medians[c.name+"/"+chk.name] = took[len(took)/2]
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
			})
		}
	}
	for _, c := range cases {
		nw, old := medians[c.name+"/new"], medians[c.name+"/old"]
		if nw > 0 {
			b.Logf("%-7s new %9.1f ms  old %9.1f ms  old/new %7.1f", c.name, float64(nw.Microseconds())/1000,
				float64(old.Microseconds())/1000, float64(old)/float64(nw))
		}
	}
}
