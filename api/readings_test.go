package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// meterFleet creates, through the API, series 1.8.0 (CT) and 2.8.0 in organization A, a
// config allowing both in Europe/Stockholm and a type with it; and, with SQL until the
// device routes exist, device "m-a1" of that type with CT 50.
func meterFleet(t *testing.T, e *env) {
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
	storetest.Exec(t, e.db, `INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio)
		VALUES ($1, 'm-a1', 'iec62056-21', $2, true, 50)`, e.orgA.ID, mustUUID(t, ty))
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
