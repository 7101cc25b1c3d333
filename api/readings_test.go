package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// fleetIDs are the ids meterFleet made.
type fleetIDs struct{ s1, s2, typ, dev string }

// meterFleet creates, through the API, series 1.8.0 (CT) and 2.8.0 in organization A, a
// config allowing both in Europe/Stockholm, a type with it, and device "m-a1" of that
// type with CT 50.
func meterFleet(t *testing.T, e *env) fleetIDs {
	t.Helper()
	a := e.orgA.ID.String()
	mk := func(path string, body map[string]any) string {
		r := e.do("POST", path, e.token(), body)
		require.Equal(t, 201, r.status, "%s: %s", path, r.body)
		return r.json(t)["id"].(string)
	}
	s1 := mk("/v1/metering/meter-reading-series", map[string]any{"organization": a, "name": "1.8.0", "unit": "kWh", "affected_by_ct_ratio": true})
	s2 := mk("/v1/metering/meter-reading-series", map[string]any{"organization": a, "name": "2.8.0", "unit": "kWh"})
	cfg := mk("/v1/metering/meter-device-configs", map[string]any{"organization": a, "name": "c", "series": []string{s1, s2}, "timezone": "Europe/Stockholm"})
	ty := mk("/v1/metering/meter-device-types", map[string]any{"organization": a, "name": "t", "manufacturer": "m", "manufacturer_model": "mm", "config": cfg})
	dev := mk("/v1/metering/meter-devices", map[string]any{"organization": a, "name": "m-a1", "protocol": "iec62056-21", "type": ty,
		"has_current_transformer": true, "current_transformer_ratio": 50})
	return fleetIDs{s1: s1, s2: s2, typ: ty, dev: dev}
}

func TestNewMeterReadings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	meterFleet(t, e)
	post := func(auth string, body any) resp {
		return e.do("POST", "/v1/metering/new-meter-readings", auth, body)
	}
	t.Run("one object", func(t *testing.T) {
		r := post(e.token(), map[string]any{"meter_device_name": "m-a1", "series_name": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "12.345"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.JSONEq(t, `{"accepted":1,"staged":0,"duplicates":0,"conflicts":0,"rejected":[]}`, string(r.body))
		conformServed(t, e.served(), "POST", "/v1/metering/new-meter-readings", r)
	})
	t.Run("array with every outcome", func(t *testing.T) {
		r := post(e.token(), []any{
			map[string]any{"meter": "m-a1", "series": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": 12.345},   // duplicate
			map[string]any{"meter": "m-a1", "series": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "13"},     // conflict
			map[string]any{"meter": "m-a1", "series": "2.8.0", "timestamp": "2026-11-26T11:00:00", "value": "1"},       // accepted, Stockholm time
			map[string]any{"meter": "m-unknown", "series": "2.8.0", "timestamp": "2026-11-26T11:00:00Z", "value": "1"}, // staged
			map[string]any{"meter": "m-a1", "series": "9.9.9", "timestamp": "2026-11-26T11:00:00Z", "value": "1"},      // not allowed
			map[string]any{"meter": "m-a1", "series": "2.8.0", "timestamp": "2026-11-26T11:00:00Z", "value": "NaN"},    // bad value
		})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		m := r.json(t)
		require.Equal(t, float64(1), m["accepted"])
		require.Equal(t, float64(1), m["staged"])
		require.Equal(t, float64(1), m["duplicates"])
		require.Equal(t, float64(1), m["conflicts"])
		rej := m["rejected"].([]any)
		require.Len(t, rej, 3)
		var idx []float64
		for _, x := range rej {
			idx = append(idx, x.(map[string]any)["index"].(float64))
		}
		require.Equal(t, []float64{1, 4, 5}, idx, "rejections in request order")
		require.Contains(t, string(r.body), `is not allowed for meter device`)
		conformServed(t, e.served(), "POST", "/v1/metering/new-meter-readings", r)
	})
	t.Run("nothing taken is 400 with the report", func(t *testing.T) {
		r := post(e.token(), []any{map[string]any{"meter": "m-a1", "series": "9.9.9", "timestamp": "2026-11-26T11:00:00Z", "value": "1"}})
		require.Equal(t, 400, r.status)
		require.Equal(t, float64(0), r.json(t)["accepted"])
	})
	t.Run("whole-request errors", func(t *testing.T) {
		for name, body := range map[string]string{"not JSON": `{"meter":`, "a number": `5`, "empty array": `[]`} {
			r := post(e.token(), body)
			require.Equal(t, 400, r.status, name)
			require.NotEmpty(t, r.json(t)["detail"], name)
		}
		r := post(e.token(), "["+strings.Repeat(`{},`, 10_000)+`{}]`)
		require.Contains(t, []int{400, 413}, r.status)
	})
	t.Run("tenancy", func(t *testing.T) {
		one := map[string]any{"meter": "m-a1", "series": "2.8.0", "timestamp": "2026-11-27T00:00:00Z", "value": "1"}
		require.Equal(t, 403, post(e.jwtFor(e.viewer, nil), one).status, "viewers do not write")
		r := post(e.jwtFor(e.both, &e.orgB.ID), one)
		require.Equal(t, 400, r.status, "an editor of B cannot write A's device")
		require.Contains(t, string(r.body), `Unknown meter device \"m-a1\"`)
		r = post(e.jwtFor(e.editor, nil), one)
		require.Equal(t, 201, r.status, "body: %s", r.body)
		r = post(e.jwtFor(e.editor, nil), map[string]any{"meter": "m-new", "series": "2.8.0", "timestamp": "2026-11-27T00:00:00Z", "value": "1"})
		require.Equal(t, 400, r.status, "only staff stage readings")
	})
	var n int
	count := func(q string) int {
		storetest.QueryRow(t, e.db, q, &n)
		return n
	}
	require.Equal(t, 3, count(`SELECT count(*)::int FROM meter_readings`))
	require.Equal(t, 1, count(`SELECT count(*)::int FROM staged_meter_readings`))
	require.Equal(t, 50, count(`SELECT factor::int FROM meter_readings r JOIN meter_reading_series s ON s.key = r.series_key WHERE s.name = '1.8.0'`))
	// 1.8.0 sent at 10:00Z, and 2.8.0 sent at 11:00 without offset: Stockholm time, 10:00Z.
	require.Equal(t, 2, count(fmt.Sprintf(`SELECT count(*)::int FROM meter_readings WHERE ts = '%s'`, "2026-11-26T10:00:00Z")))
}

func TestMeterReadingsByID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := meterFleet(t, e)
	const path = "/v1/metering/meter-readings"
	body := func(ts, v string) map[string]any {
		return map[string]any{"organization": e.orgA.ID, "meter_device": f.dev, "series": f.s1, "timestamp": ts, "value": v}
	}
	r := e.do("POST", path, e.token(), body("2026-11-26T10:00:00Z", "1.25"))
	require.Equal(t, 201, r.status, "body: %s", r.body)
	conform(t, "POST", "/metering/meter-readings", r)
	m := r.json(t)
	id := itoa(int64(m["id"].(float64)))
	require.Equal(t, "1.25", m["value"])
	require.Equal(t, f.dev, m["meter_device"])

	t.Run("a re-send answers the stored reading", func(t *testing.T) {
		r := e.do("POST", path, e.token(), body("2026-11-26T11:00:00+01:00", "1.250"))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, m["id"], r.json(t)["id"])
	})
	t.Run("another value for a stored key is a conflict", func(t *testing.T) {
		require.Equal(t, 409, e.do("POST", path, e.token(), body("2026-11-26T10:00:00Z", "2")).status)
	})
	t.Run("field rules", func(t *testing.T) {
		for name, tc := range map[string]struct {
			b     map[string]any
			field string
		}{
			"no offset":         {body("2026-11-26T10:00:00", "1"), "timestamp"},
			"NaN":               {body("2026-11-26T10:00:00Z", "NaN"), "value"},
			"unknown device":    {with(body("2026-11-26T10:00:00Z", "1"), map[string]any{"meter_device": "6f1c2a0e-0000-4000-8000-000000000000"}), "meter_device"},
			"series not a uuid": {with(body("2026-11-26T10:00:00Z", "1"), map[string]any{"series": "x"}), "series"},
		} {
			r := e.do("POST", path, e.token(), tc.b)
			require.Equal(t, 400, r.status, "%s: %s", name, r.body)
			require.Contains(t, r.json(t), tc.field, name)
		}
	})
	require.Equal(t, 201, e.do("POST", path, e.token(), body("2026-11-26T10:15:00Z", "3")).status)

	t.Run("list, filters and scaling", func(t *testing.T) {
		r := e.do("GET", path+"?meter_device="+f.dev+"&series="+f.s1, e.token(), nil)
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conform(t, "GET", "/metering/meter-readings", r)
		require.JSONEq(t, `[{"timestamp":"2026-11-26T10:00:00Z","value":"1.25"},{"timestamp":"2026-11-26T10:15:00Z","value":"3"}]`,
			mustJSON(t, r.json(t)["results"]))
		r = e.do("GET", path+"?meter_device="+f.dev+"&scaled=true&start_time=2026-11-26T10:15:00Z", e.token(), nil)
		require.JSONEq(t, `[{"timestamp":"2026-11-26T10:15:00Z","value":"150"}]`, mustJSON(t, r.json(t)["results"]), "CT 50 applied; start inclusive")
		r = e.do("GET", path+"?end_time=2026-11-26T10:00:00Z&si=true", e.token(), nil)
		require.JSONEq(t, `[{"timestamp":"2026-11-26T10:00:00Z","value":"62.50"}]`, mustJSON(t, r.json(t)["results"]), "end inclusive; si multiplier 1")
		require.Equal(t, 400, e.do("GET", path+"?scaled=maybe", e.token(), nil).status)
		require.Equal(t, 400, e.do("GET", path+"?meter_device=nope", e.token(), nil).status)
		require.Equal(t, float64(0), e.do("GET", path, e.jwtFor(e.both, &e.orgB.ID), nil).json(t)["count"], "another organization sees none")
	})
	t.Run("get and delete by id", func(t *testing.T) {
		r := e.do("GET", path+"/"+id, e.token(), nil)
		require.Equal(t, 200, r.status)
		conform(t, "GET", "/metering/meter-readings/{id}", r)
		require.Equal(t, 404, e.do("GET", path+"/"+id, e.jwtFor(e.both, &e.orgB.ID), nil).status)
		require.Equal(t, 403, e.do("DELETE", path+"/"+id, e.jwtFor(e.viewer, nil), nil).status)
		require.Equal(t, 404, e.do("GET", path+"/abc", e.token(), nil).status)
		r = e.do("DELETE", path+"/"+id, e.token(), nil)
		require.Equal(t, 204, r.status)
		conform(t, "DELETE", "/metering/meter-readings/{id}", r)
		require.Equal(t, 404, e.do("GET", path+"/"+id, e.token(), nil).status)
	})
}

func TestStagedReadingsAndPromotion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := meterFleet(t, e)
	const path = "/v1/metering/staged-meter-readings"
	r := e.do("POST", path, e.token(), map[string]any{"meter_device_name": "m-later", "series_name": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "7.5"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	conform(t, "POST", "/metering/staged-meter-readings", r)
	id := itoa(int64(r.json(t)["id"].(float64)))

	// The pipeline stages readings for unknown names too.
	r = e.do("POST", "/v1/metering/new-meter-readings", e.token(), []any{
		map[string]any{"meter": "m-later", "series": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "2"},
		map[string]any{"meter": "m-later", "series": "9.9.9", "timestamp": "2026-11-26T10:00:00Z", "value": "3"},
	})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	require.Equal(t, float64(2), r.json(t)["staged"])

	t.Run("routes", func(t *testing.T) {
		r := e.do("GET", path+"?meter_device_name=m-later&start_time=2026-11-26T10:00:00Z&end_time=2026-11-26T10:00:00Z", e.token(), nil)
		require.Equal(t, 200, r.status)
		conform(t, "GET", "/metering/staged-meter-readings", r)
		require.Equal(t, float64(3), r.json(t)["count"])
		conform(t, "GET", "/metering/staged-meter-readings/{id}", e.do("GET", path+"/"+id, e.token(), nil))
		r = e.do("PATCH", path+"/"+id, e.token(), map[string]any{"value": "7.50"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conform(t, "PATCH", "/metering/staged-meter-readings/{id}", r)
		r = e.do("PUT", path+"/"+id, e.token(), map[string]any{"meter_device_name": "m-later", "series_name": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "7.5"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		conform(t, "PUT", "/metering/staged-meter-readings/{id}", r)
		require.Equal(t, 400, e.do("PUT", path+"/"+id, e.token(), map[string]any{"value": "1"}).status, "PUT needs every field")
		require.Equal(t, 403, e.do("GET", path, e.jwtFor(e.editor, nil), nil).status, "staff only")
		r = e.do("POST", path, e.token(), map[string]any{"meter_device_name": "m-a1", "series_name": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "1"})
		require.Equal(t, 400, r.status)
		require.Contains(t, r.json(t), "meter_device_name", "an existing device's readings are not staged")
	})
	t.Run("a re-sent staged reading is staged once", func(t *testing.T) {
		r := e.do("POST", path, e.token(), map[string]any{"meter_device_name": "m-later", "series_name": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "7.50"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, id, itoa(int64(r.json(t)["id"].(float64))), "the staged row answers")
		r = e.do("POST", path, e.token(), map[string]any{"meter_device_name": "m-later", "series_name": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "8"})
		require.Equal(t, 409, r.status, "another value: body: %s", r.body)
		r = e.do("POST", "/v1/metering/new-meter-readings", e.token(), []any{
			map[string]any{"meter": "m-later", "series": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "2.0"},
			map[string]any{"meter": "m-later", "series": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "5"},
		})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		rep := r.json(t)
		require.Equal(t, []any{float64(0), float64(0), float64(1), float64(1)}, []any{rep["accepted"], rep["staged"], rep["duplicates"], rep["conflicts"]}, "body: %s", r.body)
		require.Equal(t, float64(1), rep["rejected"].([]any)[0].(map[string]any)["index"])
		require.Equal(t, float64(3), e.do("GET", path, e.token(), nil).json(t)["count"])
	})
	t.Run("creating the device promotes what its config allows", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/meter-devices", e.token(), map[string]any{"organization": e.orgA.ID, "name": "m-later", "protocol": "mbus", "type": f.typ})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		dev := r.json(t)["id"].(string)
		list := e.do("GET", "/v1/metering/meter-readings?meter_device="+dev, e.token(), nil).json(t)
		require.Equal(t, float64(2), list["count"], "1.8.0 and 2.8.0 promoted")
		left := e.do("GET", path, e.token(), nil).json(t)
		require.Equal(t, float64(1), left["count"], "the series the config does not allow stays staged")
	})
	r = e.do("DELETE", path+"/"+id, e.token(), nil)
	require.Equal(t, 404, r.status, "promoted, so no longer staged")
}

// TestMeterReadingsByIDRules pins what the by-id route says when the ids do not make a
// reading that may be written: each answer's exact field and message, for staff and for
// JWT users of one organization.
func TestMeterReadingsByIDRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := meterFleet(t, e)
	const path = "/v1/metering/meter-readings"
	mk := func(path string, body map[string]any) string {
		r := e.do("POST", path, e.token(), body)
		require.Equal(t, 201, r.status, "%s: %s", path, r.body)
		return r.json(t)["id"].(string)
	}
	a, b := e.orgA.ID.String(), e.orgB.ID.String()
	other := mk("/v1/metering/meter-reading-series", map[string]any{"organization": a, "name": "9.9.9", "unit": "kWh"})
	seriesB := mk("/v1/metering/meter-reading-series", map[string]any{"organization": b, "name": "1.8.0", "unit": "kWh"})
	bareType := mk("/v1/metering/meter-device-types", map[string]any{"organization": a, "name": "bare", "manufacturer": "m", "manufacturer_model": "mm"})
	bare := mk("/v1/metering/meter-devices", map[string]any{"organization": a, "name": "m-bare", "protocol": "mbus", "type": bareType})
	reading := func(dev, series, ts string) map[string]any {
		return map[string]any{"meter_device": dev, "series": series, "timestamp": ts, "value": "2"}
	}
	for name, tc := range map[string]struct {
		auth   string
		body   map[string]any
		status int
		want   string // the JSON answer, when not 201
	}{
		"series of another organization": {e.token(), reading(f.dev, seriesB, "2026-11-26T10:00:00Z"), 400,
			`{"series":["Invalid pk \"` + seriesB + `\" - object does not exist."]}`},
		"series not in the device's config": {e.token(), reading(f.dev, other, "2026-11-26T10:00:00Z"), 400,
			`{"series":["Series \"9.9.9\" is not allowed for meter device \"m-a1\": its config allows \"1.8.0\", \"2.8.0\"."]}`},
		"device without config": {e.token(), reading(bare, f.s1, "2026-11-26T10:00:00Z"), 400,
			`{"meter_device":["Meter device \"m-bare\" has no config (device type with a config): its allowed series are unknown, so its readings cannot be validated."]}`},
		"unknown series": {e.token(), reading(f.dev, "6f1c2a0e-0000-4000-8000-000000000000", "2026-11-26T10:00:00Z"), 400,
			`{"series":["Invalid pk \"6f1c2a0e-0000-4000-8000-000000000000\" - object does not exist."]}`},
		"another organization's device, for its editor": {e.jwtFor(e.both, &e.orgB.ID), reading(f.dev, f.s1, "2026-11-26T10:00:00Z"), 400,
			`{"meter_device":["Invalid pk \"` + f.dev + `\" - object does not exist."]}`},
		"a viewer":                           {e.jwtFor(e.viewer, nil), reading(f.dev, f.s1, "2026-11-26T10:00:00Z"), 403, ""},
		"the device's organization's editor": {e.jwtFor(e.editor, nil), reading(f.dev, f.s2, "2026-11-26T10:00:00Z"), 201, ""},
		"staff, a CT series":                 {e.token(), reading(f.dev, f.s1, "2026-11-26T10:00:00Z"), 201, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do("POST", path, tc.auth, tc.body)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			if tc.want != "" {
				require.JSONEq(t, tc.want, string(r.body))
			}
		})
	}
	var factors string
	storetest.QueryRow(t, e.db, `SELECT string_agg(s.name || '=' || r.factor, ',' ORDER BY s.name) FROM meter_readings r
		JOIN meter_reading_series s ON s.key = r.series_key`, &factors)
	require.Equal(t, "1.8.0=50,2.8.0=1", factors, "the CT ratio applies to the series affected by it, only")
	var staged int
	storetest.QueryRow(t, e.db, `SELECT count(*)::int FROM staged_meter_readings`, &staged)
	require.Zero(t, staged, "the by-id route never stages")
}
