package api_test

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the expected local days are computed in Europe/Stockholm

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

const rollupsPath = "/v1/metering/meter-reading-rollups"

// rollupFleet are the ids rollupFixtures made.
type rollupFleet struct {
	dev, dev2, series, seriesB string
	readings                   []rawReading
}

// rawReading is a reading as posted: its time and raw value.
type rawReading struct {
	ts time.Time
	v  *apd.Decimal
}

// rollupFixtures creates, through the API, series "1.8.0" (CT, SI multiplier 1000) in
// organization A, a config in Europe/Stockholm and a type with it, devices "r-1" (CT 2)
// and "r-2" of that type, and series "1.8.0" in organization B. It posts a cumulative
// register to r-1 every 20 minutes from 2026-10-23T21:00Z (23:00 local) to
// 2026-10-27T00:00Z, across the end of DST on 2026-10-25, with a reset (a step down) and
// a gap (no reading in the hour 2026-10-26T06:00Z, and one exactly at its end), and other
// values to r-2, which must not show.
func rollupFixtures(t *testing.T, e *env) rollupFleet {
	t.Helper()
	a := e.orgA.ID.String()
	mk := func(path string, body map[string]any) string {
		r := e.do("POST", path, e.token(), body)
		require.Equal(t, 201, r.status, "%s: %s", path, r.body)
		return r.json(t)["id"].(string)
	}
	var f rollupFleet
	f.series = mk("/v1/metering/meter-reading-series", map[string]any{"organization": a, "name": "1.8.0", "unit": "kWh",
		"affected_by_ct_ratio": true, "si_multiplier": "1000"})
	f.seriesB = mk("/v1/metering/meter-reading-series", map[string]any{"organization": e.orgB.ID, "name": "1.8.0", "unit": "kWh"})
	cfg := mk("/v1/metering/meter-device-configs", map[string]any{"organization": a, "name": "c", "series": []string{f.series}, "timezone": "Europe/Stockholm"})
	ty := mk("/v1/metering/meter-device-types", map[string]any{"organization": a, "name": "t", "manufacturer": "m", "manufacturer_model": "mm", "config": cfg})
	f.dev = mk("/v1/metering/meter-devices", map[string]any{"organization": a, "name": "r-1", "protocol": "iec62056-21", "type": ty,
		"has_current_transformer": true, "current_transformer_ratio": 2})
	f.dev2 = mk("/v1/metering/meter-devices", map[string]any{"organization": a, "name": "r-2", "protocol": "iec62056-21", "type": ty})

	v := apd.New(1000, 0)
	var body []any
	start, end := time.Date(2026, 10, 23, 21, 0, 0, 0, time.UTC), time.Date(2026, 10, 27, 0, 0, 0, 0, time.UTC)
	gapFrom, gapTo := time.Date(2026, 10, 26, 5, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 7, 0, 0, 0, time.UTC)
	for i, ts := 0, start; !ts.After(end); i, ts = i+1, ts.Add(20*time.Minute) {
		if ts.After(gapFrom) && ts.Before(gapTo) {
			continue
		}
		// Increments of 0.5 to 1.25 in steps of 0.125; at 2026-10-25T03:00Z the meter is
		// exchanged and starts again from 3.5.
		inc := apd.New(int64(500+125*(i%7)), -3)
		next := new(apd.Decimal)
		_, err := apd.BaseContext.WithPrecision(40).Add(next, v, inc)
		require.NoError(t, err)
		if ts.Equal(time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC)) {
			next = apd.New(35, -1)
		}
		v = next
		f.readings = append(f.readings, rawReading{ts: ts, v: v})
		body = append(body, map[string]any{"meter": "r-1", "series": "1.8.0", "timestamp": ts.Format(time.RFC3339), "value": v.Text('f')})
		if i%9 == 0 {
			body = append(body, map[string]any{"meter": "r-2", "series": "1.8.0", "timestamp": ts.Format(time.RFC3339), "value": "999999"})
		}
	}
	r := e.do("POST", "/v1/metering/new-meter-readings", e.token(), body)
	require.Equal(t, 201, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"accepted":`+itoa(int64(len(body)))+`,"staged":0,"duplicates":0,"conflicts":0,"rejected":[]}`, string(r.body))
	return f
}

// bucketAgg is what the test expects of one bucket, computed from the posted readings.
type bucketAgg struct {
	start, end      time.Time
	count           int
	min, max, sum   *apd.Decimal
	first, last     *apd.Decimal
	firstTS, lastTS time.Time
	consumption     *apd.Decimal
}

var exact = apd.BaseContext.WithPrecision(60)

// expectRollups aggregates the readings (raw values, CT factor 2) into the buckets that
// bucketOf gives, as docs/decisions.md ("Rollups") defines them: statistics of the
// readings in [start, end), and consumption the sum of the non-negative steps whose later
// reading is in (start, end].
func expectRollups(t *testing.T, rs []rawReading, bucketOf func(time.Time) (time.Time, time.Time)) []*bucketAgg {
	t.Helper()
	byStart := map[time.Time]*bucketAgg{}
	get := func(ts time.Time) *bucketAgg {
		s, e := bucketOf(ts)
		b := byStart[s]
		if b == nil {
			b = &bucketAgg{start: s, end: e, consumption: apd.New(0, 0)}
			byStart[s] = b
		}
		return b
	}
	factor := apd.New(2, 0)
	for i, r := range rs {
		scaled := new(apd.Decimal)
		_, err := exact.Mul(scaled, r.v, factor)
		require.NoError(t, err)
		b := get(r.ts)
		if b.count == 0 {
			b.min, b.max, b.sum, b.first, b.firstTS = scaled, scaled, apd.New(0, 0), scaled, r.ts
		}
		b.count++
		if scaled.Cmp(b.min) < 0 {
			b.min = scaled
		}
		if scaled.Cmp(b.max) > 0 {
			b.max = scaled
		}
		sum := new(apd.Decimal)
		_, err = exact.Add(sum, b.sum, scaled)
		require.NoError(t, err)
		b.sum, b.last, b.lastTS = sum, scaled, r.ts
		if i == 0 {
			continue
		}
		step := new(apd.Decimal)
		_, err = exact.Sub(step, r.v, rs[i-1].v)
		require.NoError(t, err)
		if step.Sign() < 0 {
			step = apd.New(0, 0)
		}
		_, err = exact.Mul(step, step, factor)
		require.NoError(t, err)
		cb := get(r.ts.Add(-time.Nanosecond)) // a step belongs to the bucket (a, b] its reading is in
		_, err = exact.Add(cb.consumption, cb.consumption, step)
		require.NoError(t, err)
	}
	out := make([]*bucketAgg, 0, len(byStart))
	for _, b := range byStart {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// within keeps the buckets that start in [lo, hi).
func within(bs []*bucketAgg, lo, hi time.Time) []*bucketAgg {
	var out []*bucketAgg
	for _, b := range bs {
		if !b.start.Before(lo) && b.start.Before(hi) {
			out = append(out, b)
		}
	}
	return out
}

// rollupPage is a page of the route.
type rollupPage struct {
	Count    int              `json:"count"`
	Next     *string          `json:"next"`
	Previous *string          `json:"previous"`
	Results  []map[string]any `json:"results"`
}

func (e *env) rollups(t *testing.T, auth string, q url.Values) (resp, rollupPage) {
	t.Helper()
	r := e.do("GET", rollupsPath+"?"+q.Encode(), auth, nil)
	var p rollupPage
	if r.status == 200 {
		require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	}
	return r, p
}

// decEqual requires got (a JSON string) to be the number want times mul.
func decEqual(t *testing.T, want *apd.Decimal, mul int64, got any, what string) {
	t.Helper()
	s, ok := got.(string)
	require.True(t, ok, "%s: %v is not a JSON string", what, got)
	g, _, err := apd.NewFromString(s)
	require.NoError(t, err, what)
	w := new(apd.Decimal)
	_, err = exact.Mul(w, want, apd.New(mul, 0))
	require.NoError(t, err)
	require.Zero(t, g.Cmp(w), "%s: got %s, want %s", what, s, w.Text('f'))
}

// checkBuckets compares a page's results with the expected buckets; mul is the SI
// multiplier (1 without si).
func checkBuckets(t *testing.T, want []*bucketAgg, got []map[string]any, mul int64) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		what := w.start.Format(time.RFC3339)
		require.Equal(t, w.start.UTC().Format(time.RFC3339), g["bucket"], what)
		require.Equal(t, w.end.UTC().Format(time.RFC3339), g["bucket_end"], what)
		require.Equal(t, float64(w.count), g["count"], what)
		decEqual(t, w.consumption, mul, g["consumption"], what+" consumption")
		if w.count == 0 {
			for _, k := range []string{"min", "max", "avg", "sum", "first_timestamp", "first_value", "last_timestamp", "last_value"} {
				require.Nil(t, g[k], "%s %s", what, k)
				require.Contains(t, g, k, "%s %s: null, not left out", what, k)
			}
			continue
		}
		decEqual(t, w.min, mul, g["min"], what+" min")
		decEqual(t, w.max, mul, g["max"], what+" max")
		decEqual(t, w.sum, mul, g["sum"], what+" sum")
		decEqual(t, w.first, mul, g["first_value"], what+" first_value")
		decEqual(t, w.last, mul, g["last_value"], what+" last_value")
		require.Equal(t, w.firstTS.UTC().Format(time.RFC3339), g["first_timestamp"], what)
		require.Equal(t, w.lastTS.UTC().Format(time.RFC3339), g["last_timestamp"], what)
		// avg = sum / count, rounded by numeric division: compare to 12 decimal places.
		avg, _, err := apd.NewFromString(g["avg"].(string))
		require.NoError(t, err)
		quo, diff := new(apd.Decimal), new(apd.Decimal)
		_, err = exact.Mul(quo, w.sum, apd.New(mul, 0))
		require.NoError(t, err)
		_, err = exact.Quo(quo, quo, apd.New(int64(w.count), 0))
		require.NoError(t, err)
		_, err = exact.Sub(diff, avg, quo)
		require.NoError(t, err)
		require.Negative(t, diff.Abs(diff).Cmp(apd.New(1, -12)), "%s avg: got %s, want %s", what, avg.Text('f'), quo.Text('f'))
	}
}

func TestMeterReadingRollups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The clock says "now" for the default end_time; JWTs are issued and checked by it.
	e.clock.mu.Lock()
	e.clock.t = time.Date(2026, 10, 27, 12, 0, 0, 0, time.UTC)
	e.clock.mu.Unlock()
	f := rollupFixtures(t, e)
	doc := e.served()
	const template = rollupsPath + "/"

	// Before the rollup job ever ran, everything is aggregated live.
	stockholm, err := time.LoadLocation("Europe/Stockholm")
	require.NoError(t, err)
	dayOf := func(ts time.Time) (time.Time, time.Time) {
		l := ts.In(stockholm)
		s := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, stockholm)
		return s, s.AddDate(0, 0, 1)
	}
	live := url.Values{"meter_device": {f.dev}, "series": {f.series}, "bucket": {"day"},
		"start_time": {"2026-10-20T00:00:00Z"}, "end_time": {"2026-10-30T00:00:00Z"}}
	r, p := e.rollups(t, e.token(), live)
	require.Equal(t, 200, r.status, "body: %s", r.body)
	checkBuckets(t, expectRollups(t, f.readings, dayOf), p.Results, 1)
	hourOf := func(ts time.Time) (time.Time, time.Time) {
		s := ts.UTC().Truncate(time.Hour)
		return s, s.Add(time.Hour)
	}
	live.Set("bucket", "hour")
	live.Set("limit", "1000")
	r, p = e.rollups(t, e.token(), live)
	require.Equal(t, 200, r.status, "body: %s", r.body)
	checkBuckets(t, expectRollups(t, f.readings, hourOf), p.Results, 1)

	// Materialize up to the middle of the 25-hour local day 2026-10-25: the hours and
	// days before come from the rollup tables, the rest is aggregated live.
	ctx := context.Background()
	threshold := time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC)
	require.NoError(t, e.st.MoveRollupThreshold(ctx, threshold))
	_, err = e.st.MaterializeRollups(ctx, 24*time.Hour)
	require.NoError(t, err)
	var hours, days int
	storetest.QueryRow(t, e.db, `SELECT (SELECT count(*)::int FROM rollup_hourly), (SELECT count(*)::int FROM rollup_daily)`, &hours, &days)
	require.Positive(t, hours, "hours are materialized")
	require.Positive(t, days, "days are materialized")

	monthOf := func(ts time.Time) (time.Time, time.Time) {
		l := ts.In(stockholm)
		s := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, stockholm)
		return s, s.AddDate(0, 1, 0)
	}
	q := func(kv ...string) url.Values {
		v := url.Values{"meter_device": {f.dev}, "series": {f.series}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	staff := e.token()

	t.Run("hours", func(t *testing.T) {
		want := within(expectRollups(t, f.readings, hourOf), time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC))
		r, p := e.rollups(t, staff, q("start_time", "2026-10-23T00:00:00Z", "end_time", "2026-10-28T00:00:00Z", "limit", "1000"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conformServed(t, doc, "GET", template, r)
		require.Equal(t, len(want), p.Count)
		checkBuckets(t, want, p.Results, 1)
		// The gap: the hour 06:00 has no reading but the step to the one at 07:00.
		var gap map[string]any
		for _, g := range p.Results {
			if g["bucket"] == "2026-10-26T06:00:00Z" {
				gap = g
			}
		}
		require.NotNil(t, gap)
		require.Equal(t, float64(0), gap["count"])
		require.NotEqual(t, "0", gap["consumption"])
		require.NotContains(t, p.Results[0], "day", "hours have no local date")
		require.NotContains(t, p.Results[0], "timezone")
	})

	t.Run("local days, across the end of DST", func(t *testing.T) {
		lo, hi := time.Date(2026, 10, 23, 0, 0, 0, 0, stockholm), time.Date(2026, 10, 28, 0, 0, 0, 0, stockholm)
		want := within(expectRollups(t, f.readings, dayOf), lo, hi)
		require.Len(t, want, 5, "2026-10-23 to 2026-10-27")
		// The offset's '+' is sent encoded; end_time without it is UTC.
		r, p := e.rollups(t, staff, q("bucket", "day", "start_time", "2026-10-23T00:00:00+02:00", "end_time", "2026-10-27T23:00:00"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conformServed(t, doc, "GET", template, r)
		require.Equal(t, 5, p.Count)
		checkBuckets(t, want, p.Results, 1)
		var got []string
		for _, g := range p.Results {
			got = append(got, g["day"].(string))
			require.Equal(t, "Europe/Stockholm", g["timezone"])
		}
		require.Equal(t, []string{"2026-10-23", "2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27"}, got)
		dst := p.Results[2]
		require.Equal(t, "2026-10-24T22:00:00Z", dst["bucket"])
		require.Equal(t, "2026-10-25T23:00:00Z", dst["bucket_end"], "25 hours")
		require.Equal(t, float64(25*3), dst["count"], "a reading every 20 minutes for 25 hours")
		// A reading at local midnight closes the day before: the step to 2026-10-24T22:00Z
		// is the 24th's, and that reading is the 25th's first.
		require.Equal(t, "2026-10-24T22:00:00Z", dst["first_timestamp"])

		r, p = e.rollups(t, staff, q("bucket", "day", "start_time", "2026-10-23T00:00:01+02:00", "end_time", "2026-10-27T23:00:00Z"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, 4, p.Count, "a day is in the range when its start is")
	})

	t.Run("months", func(t *testing.T) {
		want := expectRollups(t, f.readings, monthOf)
		require.Len(t, want, 1)
		r, p := e.rollups(t, staff, q("bucket", "month", "start_time", "2026-10-01T00:00:00+02:00", "end_time", "2026-11-01T00:00:00+01:00"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conformServed(t, doc, "GET", template, r)
		checkBuckets(t, want, p.Results, 1)
		require.Equal(t, "2026-10-01", p.Results[0]["month"])
		require.Equal(t, "2026-09-30T22:00:00Z", p.Results[0]["bucket"])
		require.Equal(t, "2026-10-31T23:00:00Z", p.Results[0]["bucket_end"])
		require.Equal(t, "Europe/Stockholm", p.Results[0]["timezone"])
		require.NotContains(t, p.Results[0], "day")

		r, p = e.rollups(t, staff, q("bucket", "month", "start_time", "2026-10-01T00:00:00Z", "end_time", "2026-12-01T00:00:00Z"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Zero(t, p.Count, "October starts at 2026-09-30T22:00Z, before the range")
	})

	t.Run("si", func(t *testing.T) {
		lo, hi := time.Date(2026, 10, 23, 0, 0, 0, 0, stockholm), time.Date(2026, 10, 28, 0, 0, 0, 0, stockholm)
		want := within(expectRollups(t, f.readings, dayOf), lo, hi)
		r, p := e.rollups(t, staff, q("bucket", "day", "si", "true", "start_time", lo.Format(time.RFC3339), "end_time", hi.Format(time.RFC3339)))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		checkBuckets(t, want, p.Results, 1000)
		_, p = e.rollups(t, staff, q("bucket", "hour", "si", "true", "start_time", "2026-10-25T00:00:00Z", "end_time", "2026-10-26T00:00:00Z"))
		checkBuckets(t, within(expectRollups(t, f.readings, hourOf), time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)), p.Results, 1000)
	})

	t.Run("defaults", func(t *testing.T) {
		// end_time: now (2026-10-27T12:00Z); start_time: a week before for hours.
		all := expectRollups(t, f.readings, hourOf)
		r, p := e.rollups(t, staff, q("limit", "1000"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, len(within(all, time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 27, 12, 0, 0, 0, time.UTC))), p.Count)
		_, p = e.rollups(t, staff, q("end_time", "2026-10-25T00:00:00Z", "limit", "1000"))
		require.Equal(t, len(within(all, time.Date(2026, 10, 18, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC))), p.Count)
		_, p = e.rollups(t, staff, q("bucket", "day"))
		require.Equal(t, 5, p.Count, "92 days back from now")
		_, p = e.rollups(t, staff, q("bucket", "month"))
		require.Equal(t, 1, p.Count, "3 years back from now")
		require.Equal(t, 200, e.do("GET", rollupsPath+"/?"+q().Encode(), staff, nil).status, "with a trailing slash")
	})

	t.Run("pagination", func(t *testing.T) {
		want := within(expectRollups(t, f.readings, hourOf), time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC))
		require.Len(t, want, 48)
		base := q("start_time", "2026-10-24T00:00:00Z", "end_time", "2026-10-26T00:00:00Z", "limit", "20")
		var got []map[string]any
		next := rollupsPath + "?" + base.Encode()
		for pages := 0; next != ""; pages++ {
			require.Less(t, pages, 3)
			u, err := url.Parse(next)
			require.NoError(t, err)
			r := e.do("GET", u.RequestURI(), staff, nil)
			require.Equal(t, 200, r.status, "body: %s", r.body)
			conformServed(t, doc, "GET", template, r)
			var p rollupPage
			require.NoError(t, json.Unmarshal(r.body, &p))
			require.Equal(t, 48, p.Count)
			require.Equal(t, pages > 0, p.Previous != nil)
			got = append(got, p.Results...)
			next = ""
			if p.Next != nil {
				next = *p.Next
			}
		}
		checkBuckets(t, want, got, 1)
		_, p := e.rollups(t, staff, q("start_time", "2026-10-24T00:00:00Z", "end_time", "2026-10-26T00:00:00Z", "offset", "1000"))
		require.Equal(t, 48, p.Count, "past the end: still the count")
		require.Empty(t, p.Results)
	})

	t.Run("bad requests name the parameter", func(t *testing.T) {
		unknown := uuid.NewString()
		for _, tc := range []struct {
			name  string
			q     url.Values
			field string
			msg   string
		}{
			{"unknown bucket", q("bucket", "week"), "bucket", "hour, day, month"},
			{"start after end", q("start_time", "2026-10-25T00:00:01Z", "end_time", "2026-10-25T00:00:00Z"), "start_time", "end_time"},
			{"hours over 366 days", q("start_time", "2025-10-25T00:00:00Z", "end_time", "2026-10-26T00:00:01Z"), "end_time", "366 days for bucket=hour"},
			{"days over 3660 days", q("bucket", "day", "start_time", "2016-01-01T00:00:00Z", "end_time", "2026-01-09T00:00:00Z"), "end_time", "3660 days for bucket=day"},
			{"months over 100 years", q("bucket", "month", "start_time", "1926-01-01T00:00:00Z", "end_time", "2026-01-02T00:00:00Z"), "end_time", "36525 days for bucket=month"},
			{"a long default start for an early start", q("start_time", "2025-01-01T00:00:00Z"), "end_time", "366 days"},
			{"bad start_time", q("start_time", "yesterday"), "start_time", "ISO 8601"},
			{"no device", q("meter_device", ""), "meter_device", "required"},
			{"device not a uuid", q("meter_device", "r-1"), "meter_device", "UUID"},
			{"unknown device", q("meter_device", unknown), "meter_device", `Invalid pk "` + unknown + `" - object does not exist.`},
			{"no series", q("series", ""), "series", "required"},
			{"unknown series", q("series", unknown), "series", "does not exist"},
			{"series of another organization", q("series", f.seriesB), "series", "does not exist"},
			{"si not a boolean", q("si", "maybe"), "si", "true or false"},
			{"limit", q("limit", "0"), "limit", "greater than or equal to 1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, _ := e.rollups(t, staff, tc.q)
				require.Equal(t, 400, r.status, "body: %s", r.body)
				conformServed(t, doc, "GET", template, r)
				msgs, ok := r.json(t)[tc.field].([]any)
				require.True(t, ok, "body: %s", r.body)
				require.Contains(t, msgs[0], tc.msg)
			})
		}
		// The limits hold exactly at the limit.
		r, _ := e.rollups(t, staff, q("start_time", "2025-10-25T00:00:00Z", "end_time", "2026-10-26T00:00:00Z"))
		require.Equal(t, 200, r.status, "366 days of hours: body: %s", r.body)
		r, _ = e.rollups(t, staff, q("start_time", "2026-10-25T00:00:00Z", "end_time", "2026-10-25T00:00:00Z"))
		require.Equal(t, 200, r.status, "an empty range: body: %s", r.body)
	})

	t.Run("tenancy", func(t *testing.T) {
		range_ := q("start_time", "2026-10-24T00:00:00Z", "end_time", "2026-10-26T00:00:00Z")
		for name, auth := range map[string]string{
			"viewer JWT":         e.jwtFor(e.viewer, nil),
			"viewer Basic":       basic("viewer", testPassword),
			"editor JWT":         e.jwtFor(e.editor, nil),
			"both, JWT of A":     e.jwtFor(e.both, &e.orgA.ID),
			"both, Basic (A, B)": basic("both", testPassword),
		} {
			r, p := e.rollups(t, auth, range_)
			require.Equal(t, 200, r.status, "%s: %s", name, r.body)
			require.Equal(t, 48, p.Count, name)
		}
		for name, auth := range map[string]string{
			"JWT of B":     e.jwtFor(e.both, &e.orgB.ID),
			"loner, Basic": basic("loner", testPassword),
		} {
			r, _ := e.rollups(t, auth, range_)
			require.Equal(t, 400, r.status, "%s: %s", name, r.body)
			require.Contains(t, string(r.body), `"meter_device":["Invalid pk \"`+f.dev+`\" - object does not exist."]`, name)
		}
		r, _ := e.rollups(t, "", range_)
		require.Equal(t, 401, r.status)
		require.NotEmpty(t, r.header.Get("WWW-Authenticate"))
		conformServed(t, doc, "GET", template, r)
		r, _ = e.rollups(t, "Token nope", range_)
		require.Equal(t, 401, r.status)
	})

	t.Run("the other device's readings do not show", func(t *testing.T) {
		r, p := e.rollups(t, staff, q("meter_device", f.dev2, "bucket", "day", "start_time", "2026-10-20T00:00:00Z", "end_time", "2026-10-28T00:00:00Z"))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.NotEmpty(t, p.Results)
		for _, g := range p.Results {
			decEqual(t, apd.New(999999, 0), 1, g["max"], "r-2 max")
			decEqual(t, apd.New(0, 0), 1, g["consumption"], "r-2 consumption")
		}
	})
}

// TestMeterReadingRollupsDocumented checks that the served document lists the route, its
// parameters and its result schema, as an amrd extension.
func TestMeterReadingRollupsDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := e.served()
	item := doc.Paths.Value(rollupsPath + "/")
	require.NotNil(t, item)
	op := item.Get
	require.NotNil(t, op)
	require.Equal(t, []string{"Meter Reading Rollups"}, op.Tags) // the tag is named as displayed
	names := map[string]bool{}
	for _, p := range op.Parameters {
		names[p.Value.Name] = p.Value.Required
	}
	require.Equal(t, map[string]bool{"meter_device": true, "series": true, "bucket": false, "start_time": false,
		"end_time": false, "si": false, "limit": false, "offset": false}, names)
	for _, code := range []string{"200", "400", "401"} {
		require.NotNil(t, op.Responses.Value(code), code)
	}
	s := doc.Components.Schemas["MeterReadingRollup"]
	require.NotNil(t, s)
	for _, f := range []string{"bucket", "bucket_end", "day", "month", "timezone", "count", "min", "max", "avg", "sum",
		"first_timestamp", "first_value", "last_timestamp", "last_value", "consumption"} {
		require.Contains(t, s.Value.Properties, f)
	}
	require.Contains(t, doc.Info.Description, "meter-reading-rollups")
	var tag string
	for _, tg := range doc.Tags {
		if tg.Name == "Meter Reading Rollups" {
			tag = tg.Description
		}
	}
	require.True(t, strings.Contains(tag, "amrd extension"), "the tag says it is an amrd extension")
}
