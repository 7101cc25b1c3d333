package store_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// rollupFleet makes one organization with a cumulative series "1.8.0" and a device in
// each of three zones: "sthlm" (Europe/Stockholm, DST ends 2026-10-25, CT factor 5),
// "kolkata" (Asia/Kolkata, +05:30: its days do not begin on a UTC hour) and "utc". It
// returns the devices' keys by name and the series key.
func rollupFleet(t *testing.T, url string) (map[string]int32, int32) {
	t.Helper()
	conn := connect(t, url)
	ctx := testCtx(t)
	_, err := conn.Exec(ctx, `
		WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
		s AS (INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio, si_multiplier)
			SELECT id, '1.8.0', 'kWh', true, 1000 FROM o RETURNING id),
		c AS (INSERT INTO meter_device_configs (organization_id, name, timezone)
			SELECT o.id, z, z FROM o, unnest(ARRAY['Europe/Stockholm', 'Asia/Kolkata', 'UTC']) z RETURNING id, timezone),
		cs AS (INSERT INTO meter_device_config_series (config_id, series_id) SELECT c.id, s.id FROM c, s),
		ty AS (INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
			SELECT o.id, c.timezone, 'm', 'mm', c.id FROM o, c RETURNING id, name)
		INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio)
		SELECT o.id, CASE ty.name WHEN 'Europe/Stockholm' THEN 'sthlm' WHEN 'Asia/Kolkata' THEN 'kolkata' ELSE 'utc' END,
			'iec62056-21', ty.id, ty.name = 'Europe/Stockholm', 5 FROM o, ty`)
	require.NoError(t, err)
	keys := map[string]int32{}
	rows, err := conn.Query(ctx, `SELECT name, key FROM meter_devices`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		var k int32
		require.NoError(t, rows.Scan(&n, &k))
		keys[n] = k
	}
	require.NoError(t, rows.Err())
	var series int32
	require.NoError(t, conn.QueryRow(ctx, `SELECT key FROM meter_reading_series`).Scan(&series))
	return keys, series
}

// reading is a test reading as the reference computation sees it.
type reading struct {
	dev, ser int32
	ts       time.Time
	value    apd.Decimal
	factor   int64
}

func readingRow(r reading) store.ReadingRow {
	return store.ReadingRow{DeviceKey: r.dev, SeriesKey: r.ser, Time: r.ts, Value: r.value, Factor: r.factor}
}

func write(t *testing.T, st *store.Store, rs []reading) {
	t.Helper()
	rows := make([]store.ReadingRow, len(rs))
	for i, r := range rs {
		rows[i] = readingRow(r)
	}
	out, err := st.WriteReadings(testCtx(t), store.AnyCatalog, rows, nil)
	require.NoError(t, err)
	for i, o := range out {
		require.Equal(t, store.Inserted, o, "reading %d", i)
	}
}

func decimal(s string) apd.Decimal {
	var d apd.Decimal
	if _, _, err := d.SetString(s); err != nil {
		panic(err)
	}
	return d
}

// storedReadings reads every raw reading back, for the reference computation.
func storedReadings(t *testing.T, conn *pgx.Conn) []reading {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT device_key, series_key, ts, value::text, factor FROM meter_readings`)
	require.NoError(t, err)
	var out []reading
	for rows.Next() {
		var r reading
		var v string
		require.NoError(t, rows.Scan(&r.dev, &r.ser, &r.ts, &v, &r.factor))
		r.value = decimal(v)
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// agg is one rollup bucket as the reference computes it; values are decimal strings
// (normalized), "" for NULL.
type agg struct {
	count                          int64
	min, max, sum, first, last     string
	firstTS, lastTS                time.Time
	consumption                    string
	minD, maxD, sumD, consumptionD apd.Decimal
	hasStat                        bool
}

var dctx = apd.BaseContext.WithPrecision(100)

func (a *agg) addStat(ts time.Time, v apd.Decimal) {
	if !a.hasStat || v.Cmp(&a.minD) < 0 {
		a.minD.Set(&v)
	}
	if !a.hasStat || v.Cmp(&a.maxD) > 0 {
		a.maxD.Set(&v)
	}
	_, _ = dctx.Add(&a.sumD, &a.sumD, &v)
	if !a.hasStat || ts.Before(a.firstTS) {
		a.firstTS, a.first = ts, norm(v)
	}
	if !a.hasStat || ts.After(a.lastTS) {
		a.lastTS, a.last = ts, norm(v)
	}
	a.hasStat = true
	a.count++
}

func norm(d apd.Decimal) string {
	var r apd.Decimal
	r.Reduce(&d)
	return r.Text('f')
}

func (a *agg) done() agg {
	out := *a
	if a.hasStat {
		out.min, out.max, out.sum = norm(a.minD), norm(a.maxD), norm(a.sumD)
	}
	out.consumption = norm(a.consumptionD)
	out.minD, out.maxD, out.sumD, out.consumptionD = apd.Decimal{}, apd.Decimal{}, apd.Decimal{}, apd.Decimal{}
	out.hasStat = false
	return out
}

type bucketKey struct {
	dev, ser int32
	at       string // the hour (RFC 3339, UTC) or the local day (2006-01-02)
}

// reference computes hourly and daily rollups from raw readings, the way docs/sql.md
// states them: statistics of the scaled values in [start, end), consumption the sum of
// non-negative raw steps times the later reading's factor, a step belonging to the
// bucket its later reading falls in, with the bucket's end inclusive.
func reference(rs []reading, zones map[int32]*time.Location) (hourly, daily map[bucketKey]agg) {
	sorted := append([]reading(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.dev != b.dev {
			return a.dev < b.dev
		}
		if a.ser != b.ser {
			return a.ser < b.ser
		}
		return a.ts.Before(b.ts)
	})
	h, d := map[bucketKey]*agg{}, map[bucketKey]*agg{}
	get := func(m map[bucketKey]*agg, k bucketKey) *agg {
		if m[k] == nil {
			m[k] = &agg{}
		}
		return m[k]
	}
	hour := func(ts time.Time) string { return ts.UTC().Truncate(time.Hour).Format(time.RFC3339) }
	for i, r := range sorted {
		zone := zones[r.dev]
		day := func(ts time.Time) string { return ts.In(zone).Format("2006-01-02") }
		var v apd.Decimal
		_, _ = dctx.Mul(&v, &r.value, apd.New(r.factor, 0))
		get(h, bucketKey{r.dev, r.ser, hour(r.ts)}).addStat(r.ts, v)
		get(d, bucketKey{r.dev, r.ser, day(r.ts)}).addStat(r.ts, v)
		if i == 0 || sorted[i-1].dev != r.dev || sorted[i-1].ser != r.ser {
			continue // the first reading of a device and series has no step
		}
		var step apd.Decimal
		_, _ = dctx.Sub(&step, &r.value, &sorted[i-1].value)
		if step.Sign() < 0 {
			step.SetInt64(0)
		}
		_, _ = dctx.Mul(&step, &step, apd.New(r.factor, 0))
		before := r.ts.Add(-time.Microsecond)
		hc := get(h, bucketKey{r.dev, r.ser, hour(before)})
		_, _ = dctx.Add(&hc.consumptionD, &hc.consumptionD, &step)
		dc := get(d, bucketKey{r.dev, r.ser, day(before)})
		_, _ = dctx.Add(&dc.consumptionD, &dc.consumptionD, &step)
	}
	hourly, daily = map[bucketKey]agg{}, map[bucketKey]agg{}
	for k, a := range h {
		hourly[k] = a.done()
	}
	for k, a := range d {
		daily[k] = a.done()
	}
	return hourly, daily
}

// stored reads rollup rows: query must return device_key, series_key, the bucket as text,
// count, min, max, sum, first_ts, first_value, last_ts, last_value, consumption.
func stored(t *testing.T, conn *pgx.Conn, query string, args ...any) map[bucketKey]agg {
	t.Helper()
	rows, err := conn.Query(testCtx(t), query, args...)
	require.NoError(t, err)
	out := map[bucketKey]agg{}
	for rows.Next() {
		var k bucketKey
		var a agg
		var mn, mx, sm, fv, lv, cons *string
		var fts, lts *time.Time
		require.NoError(t, rows.Scan(&k.dev, &k.ser, &k.at, &a.count, &mn, &mx, &sm, &fts, &fv, &lts, &lv, &cons))
		n := func(p *string) string {
			if p == nil {
				return ""
			}
			return norm(decimal(*p))
		}
		a.min, a.max, a.sum, a.first, a.last, a.consumption = n(mn), n(mx), n(sm), n(fv), n(lv), n(cons)
		if fts != nil {
			a.firstTS = fts.UTC()
		}
		if lts != nil {
			a.lastTS = lts.UTC()
		}
		require.NotContains(t, out, k, "one row a bucket")
		out[k] = a
	}
	require.NoError(t, rows.Err())
	return out
}

const hourlyCols = `device_key, series_key, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), count,
	min_value::text, max_value::text, sum_value::text, first_ts, first_value::text, last_ts, last_value::text, consumption::text`
const dailyCols = `device_key, series_key, day::text, count,
	min_value::text, max_value::text, sum_value::text, first_ts, first_value::text, last_ts, last_value::text, consumption::text`

// requireSame compares stored buckets with the reference's, keeping the reference
// buckets that keep says belong.
func requireSame(t *testing.T, what string, got, ref map[bucketKey]agg, keep func(bucketKey) bool) {
	t.Helper()
	want := map[bucketKey]agg{}
	for k, a := range ref {
		if keep(k) {
			a.firstTS, a.lastTS = a.firstTS.UTC(), a.lastTS.UTC()
			want[k] = a
		}
	}
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("missing %v: want %+v", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%v:\n  got  %+v\n  want %+v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %v: %+v", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	require.Empty(t, diffs, "%s: %d buckets stored, %d expected\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
}

func mustZone(name string) *time.Location {
	z, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return z
}

func TestRollupsMatchRawReadings(t *testing.T) { rollupsMatchRawReadings(t, -1) }

// TestRollupsMatchRawReadingsDense: the same, every batch of marks recomputed by re-aggregation.
func TestRollupsMatchRawReadingsDense(t *testing.T) { rollupsMatchRawReadings(t, 1) }

func rollupsMatchRawReadings(t *testing.T, dense int) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	st.SetDenseRecompute(dense)
	conn := connect(t, url)
	keys, ser := rollupFleet(t, url)
	zones := map[int32]*time.Location{keys["sthlm"]: mustZone("Europe/Stockholm"),
		keys["kolkata"]: mustZone("Asia/Kolkata"), keys["utc"]: time.UTC}
	factor := map[int32]int64{keys["sthlm"]: 5, keys["kolkata"]: 1, keys["utc"]: 1}

	// Quarter-hourly cumulative registers from 2026-10-23 to 2026-10-28 (Stockholm's DST
	// ends on the 25th: that day is 25 hours long), with a meter exchange (the register
	// starts again at 0) on the 24th at 10:00 and a gap; the UTC device reads every two
	// hours only, on the hour, so that some hours hold a step and no reading.
	var all []reading
	skip := map[string]bool{"2026-10-24T10:15:00Z": true, "2026-10-24T10:30:00Z": true}
	var late []reading
	for name, k := range keys {
		step := 15 * time.Minute
		if name == "utc" {
			step = 2 * time.Hour
		}
		reg := apd.New(1000, 0)
		for ts := time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC); ts.Before(time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)); ts = ts.Add(step) {
			inc := apd.New(int64(1+rand.IntN(40)), -1)
			_, _ = dctx.Add(reg, reg, inc)
			if name == "sthlm" && ts.Equal(time.Date(2026, 10, 24, 10, 0, 0, 0, time.UTC)) {
				reg.SetInt64(0) // meter exchange: a step down counts as no consumption
			}
			r := reading{dev: k, ser: ser, ts: ts, value: *new(apd.Decimal).Set(reg), factor: factor[k]}
			if name == "sthlm" && skip[ts.Format(time.RFC3339)] {
				late = append(late, r)
				continue
			}
			all = append(all, r)
		}
	}
	// Readings arrive in time order, a batch per quarter-hour of the fleet.
	sort.SliceStable(all, func(i, j int) bool { return all[i].ts.Before(all[j].ts) })
	for len(all) > 0 {
		n := min(len(all), 50)
		write(t, st, all[:n])
		all = all[n:]
	}
	check := func(stage string) { t.Helper(); checkRollups(t, st, conn, zones, stage) }

	t0 := time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)
	require.NoError(t, st.MoveRollupThreshold(ctx, t0))
	res, err := st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.Positive(t, res.Readings)
	require.Positive(t, res.Daily)
	state, err := st.RollupState(ctx)
	require.NoError(t, err)
	require.Equal(t, t0, state.Materialized.UTC())
	check("materialized to the 26th")

	// Days: Stockholm's 25 October has 25 hours.
	var hours float64
	require.NoError(t, conn.QueryRow(ctx, `SELECT extract(epoch FROM day_end - day_start) / 3600 FROM rollup_daily
		WHERE device_key = $1 AND day = '2026-10-25'`, keys["sthlm"]).Scan(&hours))
	require.Equal(t, 25.0, hours)

	// Late data below the threshold marks its buckets in the write's transaction; the
	// rollups are stale until the marks are recomputed.
	write(t, st, late)
	var id int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM meter_readings WHERE device_key = $1 AND ts = '2026-10-24T15:45:00Z'`, keys["kolkata"]).Scan(&id))
	require.NoError(t, st.DeleteReading(ctx, store.AllOrgs, id))
	state, err = st.RollupState(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), state.Marks, "a mark for the late batch and one for the deleted reading")
	res, err = st.RecomputeMarked(ctx, 1000)
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Recomputed)
	check("after late data and a delete")

	// A reading above the threshold marks nothing: live aggregation covers it.
	write(t, st, []reading{{dev: keys["utc"], ser: ser, ts: time.Date(2026, 10, 28, 1, 0, 0, 0, time.UTC), value: decimal("99999"), factor: 1}})
	state, err = st.RollupState(ctx)
	require.NoError(t, err)
	require.Zero(t, state.Marks)

	t1 := time.Date(2026, 10, 27, 5, 0, 0, 0, time.UTC)
	require.NoError(t, st.MoveRollupThreshold(ctx, t1))
	_, err = st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	check("materialized to the 27th, 05:00")

	// Deleting a device removes its buckets (through marks) and its share of the fleet's.
	var devID uuid.UUID
	require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM meter_devices WHERE key = $1`, keys["kolkata"]).Scan(&devID))
	require.NoError(t, st.DeleteMeterDevice(ctx, store.AllOrgs, devID))
	_, err = st.RecomputeMarked(ctx, 1000)
	require.NoError(t, err)
	delete(zones, keys["kolkata"])
	check("after deleting a device")
	var left int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM rollup_hourly WHERE device_key = $1) + (SELECT count(*) FROM rollup_daily WHERE device_key = $1)`, keys["kolkata"]).Scan(&left))
	require.Zero(t, left)
}

// checkRollups compares every materialized bucket (hourly, daily, and through the
// real-time views every bucket) with a reference computed in Go from the stored raw
// readings, and the series buckets with the sums of their devices'.
func checkRollups(t *testing.T, st *store.Store, conn *pgx.Conn, zones map[int32]*time.Location, stage string) {
	t.Helper()
	ctx := testCtx(t)
	state, err := st.RollupState(ctx)
	require.NoError(t, err)
	mat := state.Materialized
	hourly, daily := reference(storedReadings(t, conn), zones)
	materialized := func(k bucketKey) bool {
		h, err := time.Parse(time.RFC3339, k.at)
		require.NoError(t, err)
		return !h.Add(time.Hour).After(mat)
	}
	dayEnd := func(k bucketKey) time.Time {
		d, err := time.ParseInLocation("2006-01-02", k.at, zones[k.dev])
		require.NoError(t, err)
		return d.AddDate(0, 0, 1)
	}
	requireSame(t, stage+": rollup_hourly", stored(t, conn, `SELECT `+hourlyCols+` FROM rollup_hourly`), hourly, materialized)
	requireSame(t, stage+": rollup_daily", stored(t, conn, `SELECT `+dailyCols+` FROM rollup_daily`), daily,
		func(k bucketKey) bool { return !dayEnd(k).After(mat) })
	// The real-time views: materialized buckets and live ones, no gap, no overlap.
	requireSame(t, stage+": amrd_read.rollup_hourly_rt", stored(t, conn, `SELECT `+hourlyCols+` FROM amrd_read.rollup_hourly_rt`), hourly,
		func(bucketKey) bool { return true })
	requireSame(t, stage+": amrd_read.rollup_daily_rt", stored(t, conn, `SELECT `+dailyCols+` FROM amrd_read.rollup_daily_rt`), daily,
		func(bucketKey) bool { return true })
	// The fleet's series buckets are the sums of its devices'.
	var bad int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT series_key, bucket, count(*)::int AS devices, sum(count)::int AS count, min(min_value) AS mn, max(max_value) AS mx,
			sum(sum_value) AS sm, sum(consumption) AS cons FROM rollup_hourly GROUP BY 1, 2) h
		FULL JOIN rollup_series_hourly s USING (series_key, bucket)
		WHERE s.devices IS DISTINCT FROM h.devices OR s.count IS DISTINCT FROM h.count OR s.min_value IS DISTINCT FROM h.mn
			OR s.max_value IS DISTINCT FROM h.mx OR s.sum_value IS DISTINCT FROM h.sm OR s.consumption IS DISTINCT FROM h.cons`).Scan(&bad))
	require.Zero(t, bad, "%s: series buckets that are not the sums of their devices' buckets", stage)
}

// TestRollupsUnderConcurrentWrites moves the threshold and materializes while writers
// keep writing readings just below and above it: once the marks are recomputed, every
// bucket matches the raw readings (a reading is either seen by the materialization or
// marked, never neither).
func TestRollupsUnderConcurrentWrites(t *testing.T) { rollupsUnderConcurrentWrites(t, -1) }

// TestRollupsUnderConcurrentWritesDense: the same, every batch of marks recomputed by re-aggregation.
func TestRollupsUnderConcurrentWritesDense(t *testing.T) { rollupsUnderConcurrentWrites(t, 1) }

func rollupsUnderConcurrentWrites(t *testing.T, dense int) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	st.SetDenseRecompute(dense)
	conn := connect(t, url)
	keys, ser := rollupFleet(t, url)
	zones := map[int32]*time.Location{keys["sthlm"]: mustZone("Europe/Stockholm"),
		keys["kolkata"]: mustZone("Asia/Kolkata"), keys["utc"]: time.UTC}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const hours = 24
	var wg sync.WaitGroup
	for w, name := range []string{"sthlm", "kolkata", "utc"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer walks through the hours one minute at a time, a reading a
			// minute, so that its readings straddle the threshold as it moves.
			reg := int64(1000 * (w + 1))
			for m := 0; m < hours*60; m++ {
				reg += int64(rand.IntN(7))
				ts := start.Add(time.Duration(m) * time.Minute)
				rows := []store.ReadingRow{{DeviceKey: keys[name], SeriesKey: ser, Time: ts, Value: *apd.New(reg, -1), Factor: 1}}
				if _, err := st.WriteReadings(ctx, store.AnyCatalog, rows, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	th := start
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		// The job: the threshold follows the writers' progress at a distance.
		var newest time.Time
		require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(min(m), $1) FROM (SELECT max(ts) AS m FROM meter_readings GROUP BY device_key) x`, start).Scan(&newest))
		if target := newest.Truncate(time.Hour); target.After(th) {
			th = target
			require.NoError(t, st.MoveRollupThreshold(ctx, th))
		}
		_, err := st.MaterializeRollups(ctx, 6*time.Hour)
		require.NoError(t, err)
		_, err = st.RecomputeMarked(ctx, 1000)
		require.NoError(t, err)
	}
	require.NoError(t, st.MoveRollupThreshold(ctx, start.Add(hours*time.Hour)))
	_, err := st.MaterializeRollups(ctx, 6*time.Hour)
	require.NoError(t, err)
	_, err = st.RecomputeMarked(ctx, 100000)
	require.NoError(t, err)

	// Late readings between the stored ones, all below the materialized point, written
	// while the job recomputes their marks (in dense mode by re-aggregating whole hours,
	// which the writers keep writing into).
	late := 0
	if dense == 1 {
		late = 3 * 120
		var lw sync.WaitGroup
		for w, name := range []string{"sthlm", "kolkata", "utc"} {
			lw.Add(1)
			go func() {
				defer lw.Done()
				for i := range 120 {
					ts := start.Add(time.Duration((i*11+w*7)%(hours*60))*time.Minute + 30*time.Second)
					rows := []store.ReadingRow{{DeviceKey: keys[name], SeriesKey: ser, Time: ts, Value: *apd.New(int64(i), 0), Factor: 1}}
					if _, err := st.WriteReadings(ctx, store.AnyCatalog, rows, nil); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		ldone := make(chan struct{})
		go func() { lw.Wait(); close(ldone) }()
		for running := true; running; {
			select {
			case <-ldone:
				running = false
			default:
			}
			_, err := st.RecomputeMarked(ctx, 50)
			require.NoError(t, err)
		}
		_, err = st.RecomputeMarked(ctx, 100000)
		require.NoError(t, err)
		var left int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM rollup_marks`).Scan(&left))
		require.Zero(t, left)
	}

	rs := storedReadings(t, conn)
	require.Len(t, rs, 3*hours*60+late)
	hourly, _ := reference(rs, zones)
	end := start.Add(hours * time.Hour)
	requireSame(t, "rollup_hourly", stored(t, conn, `SELECT `+hourlyCols+` FROM rollup_hourly`), hourly, func(k bucketKey) bool {
		h, _ := time.Parse(time.RFC3339, k.at)
		return h.Before(end)
	})
}
