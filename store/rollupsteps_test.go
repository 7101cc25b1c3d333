package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// stepFleet is the rollup fleet (rollupFleet) of the tests below, with the job's calls
// they make.
type stepFleet struct {
	t                   *testing.T
	st                  *store.Store
	conn                *pgx.Conn
	sthlm, kolkata, utc int32
	ser                 int32
	url                 string
	zones               map[int32]*time.Location
	factor              map[int32]int64
}

func newStepFleet(t *testing.T) *stepFleet {
	st, url := storetest.New(t)
	st.SetDenseRecompute(-1)
	keys, ser := rollupFleet(t, url)
	f := &stepFleet{t: t, st: st, conn: connect(t, url), sthlm: keys["sthlm"], kolkata: keys["kolkata"], utc: keys["utc"], ser: ser, url: url}
	f.zones = map[int32]*time.Location{f.sthlm: mustZone("Europe/Stockholm"), f.kolkata: mustZone("Asia/Kolkata"), f.utc: time.UTC}
	f.factor = map[int32]int64{f.sthlm: 5, f.kolkata: 1, f.utc: 1}
	return f
}

// materialize moves the threshold to and materializes up to it, a slice at a time.
func (f *stepFleet) materialize(to time.Time, slice time.Duration) {
	f.t.Helper()
	ctx := testCtx(f.t)
	require.NoError(f.t, f.st.MoveRollupThreshold(ctx, to))
	_, err := f.st.MaterializeRollups(ctx, slice)
	require.NoError(f.t, err)
}

func (f *stepFleet) recompute(limit int) store.RollupResult {
	f.t.Helper()
	res, err := f.st.RecomputeMarked(testCtx(f.t), limit)
	require.NoError(f.t, err)
	return res
}

// registers writes quarter-hourly registers of the three devices in [from, to), each
// growing by inc(ts).
func (f *stepFleet) registers(from, to time.Time, inc func(time.Time) *apd.Decimal) {
	f.t.Helper()
	var all []reading
	for dev, v := range map[int32]int64{f.sthlm: 100, f.kolkata: 200, f.utc: 300} {
		reg := apd.New(v, 0)
		for ts := from; ts.Before(to); ts = ts.Add(15 * time.Minute) {
			_, err := dctx.Add(reg, reg, inc(ts))
			require.NoError(f.t, err)
			all = append(all, reading{dev: dev, ser: f.ser, ts: ts, value: *new(apd.Decimal).Set(reg), factor: f.factor[dev]})
		}
	}
	write(f.t, f.st, all)
}

// TestLateReadingsOnTheMaterializedPoint: readings on the materialized point that arrive
// after the materialization add their step to the stored buckets (the hour before the
// point, its series bucket, and the day that ends there), and every bucket still equals
// what re-aggregating the raw readings gives, to the scale. Marks the materialization
// saw need nothing; a deleted reading, other marks of the pair, or an hour rewritten
// for some pairs since take the full way.
func TestLateReadingsOnTheMaterializedPoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	f := newStepFleet(t)
	st, conn, ser := f.st, f.conn, f.ser
	sthlm, kolkata, utc := f.sthlm, f.kolkata, f.utc
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return ts
	}
	// Registers that grow by a varying amount (values of scale 1 to 4) every quarter-hour,
	// the UTC device every two hours only and not at all on 26 October.
	reg := map[int32]*apd.Decimal{sthlm: apd.New(1000, 0), kolkata: apd.New(500, 0), utc: apd.New(20, 0)}
	inc := 0
	next := func(dev int32, ts time.Time) reading {
		inc++
		_, err := dctx.Add(reg[dev], reg[dev], apd.New(int64(7+inc%13), -int32(1+inc%4)))
		require.NoError(t, err)
		return reading{dev: dev, ser: ser, ts: ts, value: *new(apd.Decimal).Set(reg[dev]), factor: f.factor[dev]}
	}
	readings := func(from, to time.Time, devs ...int32) []reading {
		var rs []reading
		for ts := from; ts.Before(to); ts = ts.Add(15 * time.Minute) {
			for _, d := range devs {
				if d == utc && (ts.Minute() != 0 || ts.Hour()%2 != 0 || ts.Day() == 26) {
					continue
				}
				rs = append(rs, next(d, ts))
			}
		}
		return rs
	}
	materialize := func(to time.Time) { t.Helper(); f.materialize(to, 24*time.Hour) }
	recompute := f.recompute
	check := func(stage string) {
		t.Helper()
		checkRollups(t, st, conn, f.zones, stage)
		requireExactSums(t, conn, stage)
	}

	// B1: a Stockholm midnight (23:00 UTC in winter time).
	b1 := at("2026-10-26T23:00:00Z")
	write(t, st, readings(at("2026-10-25T00:00:00Z"), b1, sthlm, kolkata, utc))
	materialize(b1)
	check("materialized to B1")

	// Late on B1: a step up for Stockholm (the hour before B1 and the local day that ends
	// at B1 take it) and a step down for Kolkata (a counter reset: a step of 0).
	late := []reading{next(sthlm, b1), next(kolkata, b1)}
	late[1].value = *apd.New(3, 0)
	write(t, st, late)
	res := recompute(1000)
	require.Equal(t, int64(2), res.Steps, "both readings on B1 add their step")
	require.Zero(t, res.Recomputed)
	require.Equal(t, int64(2), res.Marks)
	check("late readings on B1")

	// B2: midnight UTC. Readings up to it arrive on time; Stockholm's reading on B2 comes
	// after the threshold moved but before the materialization (which sees it: its mark
	// needs nothing); the UTC device's and Kolkata's after the materialization. The UTC
	// device's reading before B2 is a day older, so the hour and the UTC day before B2
	// get rows with a step and no reading.
	b2 := at("2026-10-27T00:00:00Z")
	reg[kolkata] = apd.New(3, 0)
	write(t, st, readings(b1.Add(15*time.Minute), b2, sthlm, kolkata))
	require.NoError(t, st.MoveRollupThreshold(ctx, b2))
	write(t, st, []reading{next(sthlm, b2)})
	materialize(b2)
	write(t, st, []reading{next(utc, b2), next(kolkata, b2)})
	res = recompute(1000)
	require.Equal(t, int64(3), res.Marks)
	require.Equal(t, int64(2), res.Steps, "the UTC device's and Kolkata's readings on B2")
	require.Zero(t, res.Recomputed)
	var count int32
	require.NoError(t, conn.QueryRow(ctx, `SELECT count FROM rollup_hourly WHERE device_key = $1 AND bucket = $2`,
		utc, b1).Scan(&count))
	require.Zero(t, count, "an hour with a step and no reading")
	check("late readings on B2")

	// A reading on B2 deleted and written again with another value: the full way.
	var id int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM meter_readings WHERE device_key = $1 AND ts = $2`, sthlm, b2).Scan(&id))
	require.NoError(t, st.DeleteReading(ctx, store.AllOrgs, id))
	again := next(sthlm, b2)
	write(t, st, []reading{again})
	res = recompute(1000)
	require.Zero(t, res.Steps)
	require.Equal(t, int64(1), res.Recomputed)
	check("a reading on B2 deleted and written again")

	// B3: a reading inside the last hour and one on B3, both late; the first mark alone is
	// recomputed from the raw readings (which hold the second's reading already), so the
	// second's step must not be added on top: that recomputation took the hour off the
	// snapshot, and the second mark goes the full way too.
	b3 := at("2026-10-27T01:00:00Z")
	write(t, st, readings(b2.Add(15*time.Minute), b3, sthlm, kolkata))
	materialize(b3)
	write(t, st, []reading{next(sthlm, at("2026-10-27T00:52:00Z"))})
	write(t, st, []reading{next(sthlm, b3)})
	res = recompute(1)
	require.Zero(t, res.Steps)
	require.Equal(t, int64(1), res.Recomputed)
	check("one of two marks of a pair recomputed")
	res = recompute(1)
	require.Zero(t, res.Steps)
	require.Equal(t, int64(1), res.Recomputed)
	check("the other")

	// A re-aggregation of every pair up to the point puts the hour back on one snapshot:
	// late readings on B3 after it add their steps again.
	st.SetDenseRecompute(1)
	write(t, st, []reading{next(kolkata, at("2026-10-27T00:53:00Z"))})
	res = recompute(1000)
	require.Zero(t, res.Steps)
	require.Equal(t, int64(1), res.Recomputed)
	write(t, st, []reading{next(kolkata, b3), next(utc, b3)})
	res = recompute(1000)
	require.Equal(t, int64(2), res.Steps)
	require.Zero(t, res.Recomputed)
	check("late readings on B3 after a re-aggregation")
}

// TestLateStepsCarriedFromTheSlice: the job computes a late reading's step from the value
// its mark carries and the reading before the point that the slice which materialized up
// to it kept, without looking either up, to the same sums; marks written by a large batch
// (the COPY path) and by a small one (one statement) carry their value; a store that did
// not materialize up to the point (another replica, a restart) looks them up.
func TestLateStepsCarriedFromTheSlice(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	f := newStepFleet(t)
	st, conn := f.st, f.conn
	inc := func(ts time.Time) *apd.Decimal { return apd.New(int64(ts.Minute()+7), -int32(1+ts.Hour()%3)) }
	check := func(stage string) {
		t.Helper()
		checkRollups(t, st, conn, f.zones, stage)
		requireExactSums(t, conn, stage)
	}
	valued := func() (n int) {
		t.Helper()
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM rollup_marks WHERE value IS NOT NULL AND factor IS NOT NULL`).Scan(&n))
		return n
	}
	// Late values of other scales and forms: a step up with a factor of 5 (Stockholm), a
	// reset (Kolkata: a step of 0), and an exponent (UTC: 1.2E+5 is 120000).
	late := func(at time.Time) []reading {
		var rs []reading
		for dev, v := range map[int32]string{f.sthlm: "100000.125", f.kolkata: "3", f.utc: "1.2E+5"} {
			rs = append(rs, reading{dev: dev, ser: f.ser, ts: at, value: decimal(v), factor: f.factor[dev]})
		}
		return rs
	}

	// M1, a Stockholm midnight; the late readings come in one batch of 1,200 with
	// readings after M1 (not marked).
	m1 := time.Date(2026, 10, 26, 23, 0, 0, 0, time.UTC)
	f.registers(time.Date(2026, 10, 26, 12, 0, 0, 0, time.UTC), m1, inc)
	f.materialize(m1, 24*time.Hour)
	batch := late(m1)
	for i := 1; len(batch) < 1200; i++ {
		batch = append(batch, reading{dev: f.kolkata, ser: f.ser, ts: m1.Add(time.Duration(i) * 500 * time.Millisecond),
			value: decimal("200000.5"), factor: f.factor[f.kolkata]})
	}
	write(t, st, batch)
	require.Equal(t, 3, valued(), "the marks of a large batch carry their readings' values")
	carried := st.CarriedSteps()
	res := f.recompute(1000)
	require.Equal(t, int64(3), res.Steps)
	require.Zero(t, res.Recomputed)
	require.Equal(t, carried+3, st.CarriedSteps(), "computed from the marks and the slice, not looked up")
	check("late readings on M1, carried")

	// M2: materialized by this store, settled by another one, which looks them up.
	m2 := m1.Add(time.Hour)
	f.registers(m1.Add(15*time.Minute), m2, inc)
	f.materialize(m2, 24*time.Hour)
	write(t, st, late(m2))
	require.Equal(t, 3, valued(), "the marks of a small batch carry their readings' values")
	other, err := store.Open(ctx, store.Config{URL: f.url, MaxConns: 4, Secret: storetest.Secret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer other.Close()
	other.SetDenseRecompute(-1)
	res, err = other.RecomputeMarked(ctx, 1000)
	require.NoError(t, err)
	require.Equal(t, int64(3), res.Steps)
	require.Zero(t, res.Recomputed)
	require.Zero(t, other.CarriedSteps(), "a store that did not materialize up to the point looks the readings up")
	check("late readings on M2, looked up")

	// Marks on the point that commit after the steps' pass of a run are left by the full
	// recomputation that follows it, even one that re-aggregates whole hours, for the
	// next steps' pass; a mark on the point that takes no step is not.
	st.SetDenseRecompute(1)
	m3 := m2.Add(time.Hour)
	f.registers(m2.Add(15*time.Minute), m3, inc)
	f.materialize(m3, 24*time.Hour)
	write(t, st, late(m3))
	res, err = st.RecomputeMarkedFully(ctx, 1000)
	require.NoError(t, err)
	require.Equal(t, store.RollupResult{}, res, "the full way leaves the marks that take a step")
	var id int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM meter_readings WHERE device_key = $1 AND ts = $2`, f.utc, m3).Scan(&id))
	require.NoError(t, st.DeleteReading(ctx, store.AllOrgs, id))
	res, err = st.RecomputeMarkedFully(ctx, 1000)
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Marks, "the UTC device's marks (the reading and its deletion) go the full way")
	require.Equal(t, int64(1), res.Recomputed)
	// That re-aggregated the hour for every device, in a snapshot that saw the other
	// readings on the point: their marks need nothing now.
	res = f.recompute(1000)
	require.Equal(t, int64(2), res.Marks)
	require.Zero(t, res.Steps)
	require.Zero(t, res.Recomputed)
	check("late readings on M3 after a full pass")
}

// requireExactSums checks the sums that late steps change, with their scale (the text of
// each numeric): every hourly bucket against amrd_rollup_hourly_from_raw over the
// materialized range, the series buckets' devices, counts and consumption against their
// devices' buckets, and each day of a zone whose days begin on a UTC hour against its
// hours' consumption.
func requireExactSums(t *testing.T, conn *pgx.Conn, stage string) {
	t.Helper()
	ctx := context.Background()
	var bad int
	require.NoError(t, conn.QueryRow(ctx, `WITH st AS (SELECT (SELECT min(bucket) FROM rollup_hourly) AS lo, materialized AS hi FROM rollup_state),
		a AS (SELECT device_key, series_key, bucket, count, min_value::text, max_value::text, sum_value::text, first_ts, first_value::text,
				last_ts, last_value::text, consumption::text FROM rollup_hourly),
		b AS (SELECT f.device_key, f.series_key, f.bucket, f.count, f.min_value::text, f.max_value::text, f.sum_value::text, f.first_ts,
				f.first_value::text, f.last_ts, f.last_value::text, f.consumption::text
			FROM st, amrd_rollup_hourly_from_raw(st.lo, st.hi) f)
		SELECT count(*) FROM ((TABLE a EXCEPT TABLE b) UNION ALL (TABLE b EXCEPT TABLE a)) x`).Scan(&bad))
	require.Zero(t, bad, "%s: hourly buckets that are not what re-aggregating the raw readings gives", stage)
	require.NoError(t, conn.QueryRow(ctx, `WITH a AS (SELECT series_key, bucket, devices, count, consumption::text FROM rollup_series_hourly),
		b AS (SELECT series_key, bucket, count(*)::int, sum(count)::int, sum(consumption)::text FROM rollup_hourly GROUP BY 1, 2)
		SELECT count(*) FROM ((TABLE a EXCEPT TABLE b) UNION ALL (TABLE b EXCEPT TABLE a)) x`).Scan(&bad))
	require.Zero(t, bad, "%s: series buckets that are not the sums of their devices'", stage)
	require.NoError(t, conn.QueryRow(ctx, `WITH a AS (SELECT d.device_key, d.series_key, d.day, d.consumption::text FROM rollup_daily d
			JOIN amrd_read.device_zones z ON z.device_key = d.device_key AND z.hour_aligned),
		b AS (SELECT d.device_key, d.series_key, d.day, sum(h.consumption)::text FROM rollup_daily d
			JOIN amrd_read.device_zones z ON z.device_key = d.device_key AND z.hour_aligned
			JOIN rollup_hourly h ON h.device_key = d.device_key AND h.series_key = d.series_key
				AND h.bucket >= d.day_start AND h.bucket < d.day_end
			GROUP BY 1, 2, 3)
		SELECT count(*) FROM ((TABLE a EXCEPT TABLE b) UNION ALL (TABLE b EXCEPT TABLE a)) x`).Scan(&bad))
	require.Zero(t, bad, "%s: days that are not the sums of their hours", stage)
}

// TestOpenDaysCarriedToTheNextSlice: a slice keeps the sums of the local days that go on
// past its end, and the next slice starts those days from them instead of reading their
// hours back; only while nothing wrote buckets in between. (An hour's consumption is
// changed behind the store's back to tell which of the two a day was summed from.)
func TestOpenDaysCarriedToTheNextSlice(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	f := newStepFleet(t)
	st, conn, zones, sthlm := f.st, f.conn, f.zones, f.sthlm
	f.registers(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 28, 6, 0, 0, 0, time.UTC),
		func(ts time.Time) *apd.Decimal { return apd.New(int64(1+ts.Minute()), -2) })
	materialize := func(to time.Time) { t.Helper(); f.materialize(to, 24*time.Hour) }
	tamper := func(bucket string, by int) {
		t.Helper()
		_, err := conn.Exec(ctx, `UPDATE rollup_hourly SET consumption = consumption + $3 WHERE device_key = $1 AND bucket = $2`, sthlm, bucket, by)
		require.NoError(t, err)
	}
	dayCons := func(day string) (stored, hours string) {
		t.Helper()
		require.NoError(t, conn.QueryRow(ctx, `SELECT d.consumption::text, (SELECT sum(h.consumption)::text FROM rollup_hourly h
			WHERE h.device_key = d.device_key AND h.series_key = d.series_key AND h.bucket >= d.day_start AND h.bucket < d.day_end)
			FROM rollup_daily d WHERE d.device_key = $1 AND d.day = $2`, sthlm, day).Scan(&stored, &hours))
		return stored, hours
	}

	t1 := time.Date(2026, 10, 26, 12, 0, 0, 0, time.UTC)
	materialize(t1)
	hi, kept, sums := st.CarriedDays()
	require.Equal(t, t1, hi)
	require.Equal(t, []string{"Europe/Stockholm", "UTC"}, kept, "the zones whose days are sums of hours")
	require.Equal(t, 2, sums, "one open day for each of those devices")
	checkRollups(t, st, conn, zones, "materialized to the 26th, 12:00")

	// Stockholm's 26 October (23:00 UTC on the 25th to 23:00 UTC on the 26th, winter time)
	// is open at t1: its hours before t1 come from memory.
	tamper("2026-10-26T05:00:00Z", 1000)
	t2 := time.Date(2026, 10, 27, 12, 0, 0, 0, time.UTC)
	materialize(t2)
	stored, hours := dayCons("2026-10-26")
	require.NotEqual(t, stored, hours, "the day was summed from memory, not from the changed hour")
	tamper("2026-10-26T05:00:00Z", -1000)
	checkRollups(t, st, conn, zones, "materialized to the 27th, 12:00")
	hi, _, _ = st.CarriedDays()
	require.Equal(t, t2, hi)

	// A recomputation between two slices writes buckets: the next slice reads back.
	write(t, st, []reading{{dev: f.utc, ser: f.ser, ts: time.Date(2026, 10, 27, 3, 7, 0, 0, time.UTC), value: *apd.New(301, 0), factor: 1}})
	f.recompute(1000)
	tamper("2026-10-27T05:00:00Z", 1000)
	materialize(time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC))
	stored, hours = dayCons("2026-10-27")
	require.Equal(t, hours, stored, "the day was summed from its hours in rollup_hourly")
	tamper("2026-10-27T05:00:00Z", -1000)
}

// TestOpenDaysAfterAnInterruption: after something else wrote buckets (here a
// recomputation), a one-hour slice that begins on a Stockholm midnight keeps that new
// day (all its hours are in the slice) but not the UTC day (its earlier hours were not
// read); the next slice reads the UTC day's hours back and must skip the Stockholm hours
// that memory holds already.
func TestOpenDaysAfterAnInterruption(t *testing.T) {
	t.Parallel()
	f := newStepFleet(t)
	f.registers(time.Date(2026, 10, 21, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC),
		func(ts time.Time) *apd.Decimal { return apd.New(int64(3+ts.Hour()), -1) })
	// Up to a Stockholm midnight in summer time (22:00 UTC), then a late reading and its
	// recomputation.
	f.materialize(time.Date(2026, 10, 22, 22, 0, 0, 0, time.UTC), 24*time.Hour)
	write(t, f.st, []reading{{dev: f.utc, ser: f.ser, ts: time.Date(2026, 10, 22, 3, 7, 0, 0, time.UTC), value: *apd.New(1, 0), factor: 1}})
	f.recompute(1000)
	f.materialize(time.Date(2026, 10, 22, 23, 0, 0, 0, time.UTC), time.Hour)
	_, kept, _ := f.st.CarriedDays()
	require.Equal(t, []string{"Europe/Stockholm"}, kept)
	// UTC's 22 October closes at midnight: read back, without Stockholm's 22:00 hour.
	f.materialize(time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), 24*time.Hour)
	checkRollups(t, f.st, f.conn, f.zones, "after an interruption")
	requireExactSums(t, f.conn, "after an interruption")
}
