package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

const eventsPath = "/v1/metering/meter-system-events"

func eventBody(org uuid.UUID, dev, ts string) map[string]any {
	return map[string]any{"organization": org, "meter_device": dev, "timestamp": ts, "title": "Power failure", "content": "Phase L2 lost"}
}

// eventID creates an event as staff and returns its id.
func (e *env) eventID(body map[string]any) string {
	e.t.Helper()
	r := e.do("POST", eventsPath, e.token(), body)
	require.Equal(e.t, 201, r.status, "body: %s", r.body)
	return fmt.Sprint(r.json(e.t)["id"])
}

func TestMeterSystemEvents(t *testing.T) {
	e := newEnv(t)
	devA := e.sqlDevice(&e.orgA.ID, "meter-a", nil)
	devA2 := e.sqlDevice(&e.orgA.ID, "meter-a2", nil)
	devB := e.sqlDevice(&e.orgB.ID, "meter-b", nil)
	devNone := e.sqlDevice(nil, "meter-none", nil)

	r := e.do("POST", eventsPath, e.token(), eventBody(e.orgA.ID, devA, "2026-03-01T12:00:00+02:00"))
	require.Equal(t, 201, r.status, "body: %s", r.body)
	ev := r.json(t)
	id := fmt.Sprint(ev["id"])
	require.IsType(t, float64(0), ev["id"], "event ids are integers")
	require.Equal(t, e.orgA.ID.String(), ev["organization"])
	require.Equal(t, devA, ev["meter_device"])
	require.Equal(t, "Power failure", ev["title"])
	require.Equal(t, "Phase L2 lost", ev["content"])

	t.Run("a timestamp with an offset is converted, one without is UTC", func(t *testing.T) {
		tests := []struct{ in, want string }{
			{"2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00Z"},
			{"2026-03-01T12:00:00", "2026-03-01T12:00:00Z"}, // no offset: UTC
			{"2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00.123456Z"},
			{"2026-03-01 12:00:00-05:00", "2026-03-01T17:00:00Z"},
		}
		for _, tc := range tests {
			t.Run(tc.in, func(t *testing.T) {
				r := e.do("POST", eventsPath, e.token(), eventBody(e.orgA.ID, devA2, tc.in))
				require.Equal(t, 201, r.status, "body: %s", r.body)
				got := e.do("GET", eventsPath+"/"+fmt.Sprint(r.json(t)["id"]), e.token(), nil)
				require.Equal(t, 200, got.status)
				require.Equal(t, tc.want, utc(t, got.json(t)["timestamp"]))
				require.Equal(t, 204, e.do("DELETE", eventsPath+"/"+fmt.Sprint(r.json(t)["id"]), e.token(), nil).status)
			})
		}
	})
	t.Run("field rules", func(t *testing.T) {
		with := func(f string, v any) map[string]any {
			b := eventBody(e.orgA.ID, devA, "2026-03-01T00:00:00Z")
			if v == nil {
				b[f] = nil
			} else if v == "<missing>" {
				delete(b, f)
			} else {
				b[f] = v
			}
			return b
		}
		e.refuses(t, eventsPath, []fieldCase{
			{"organization missing", with("organization", "<missing>"), "organization"},
			{"organization null", with("organization", nil), "organization"},
			{"organization not a UUID", with("organization", "a"), "organization"},
			{"organization unknown", with("organization", uuid.NewString()), "organization"},
			{"meter_device missing", with("meter_device", "<missing>"), "meter_device"},
			{"meter_device null", with("meter_device", nil), "meter_device"},
			{"meter_device not a UUID", with("meter_device", "meter-a"), "meter_device"},
			{"meter_device unknown", with("meter_device", uuid.NewString()), "meter_device"},
			{"meter_device of another organization", with("meter_device", devB), "meter_device"},
			{"meter_device without organization", with("meter_device", devNone), "meter_device"},
			{"timestamp missing", with("timestamp", "<missing>"), "timestamp"},
			{"timestamp null", with("timestamp", nil), "timestamp"},
			{"timestamp blank", with("timestamp", ""), "timestamp"},
			{"timestamp not a date-time", with("timestamp", "yesterday"), "timestamp"},
			{"timestamp impossible", with("timestamp", "2026-02-30T00:00:00Z"), "timestamp"},
			{"timestamp a number", with("timestamp", 1767225600), "timestamp"},
			{"title missing", with("title", "<missing>"), "title"},
			{"title blank", with("title", ""), "title"},
			{"title too long", with("title", strings.Repeat("t", 51)), "title"},
			{"content missing", with("content", "<missing>"), "content"},
			{"content null", with("content", nil), "content"},
			{"content blank", with("content", ""), "content"},
			{"content too long", with("content", strings.Repeat("c", 501)), "content"},
		}, nil)
		t.Run("longest title and content", func(t *testing.T) {
			b := with("title", strings.Repeat("é", 50))
			b["content"] = strings.Repeat("ü", 500)
			r := e.do("POST", eventsPath, e.token(), b)
			require.Equal(t, 201, r.status, "body: %s", r.body)
			require.Equal(t, 204, e.do("DELETE", eventsPath+"/"+fmt.Sprint(r.json(t)["id"]), e.token(), nil).status)
		})
	})
	t.Run("list order, filters and paging", func(t *testing.T) {
		// Created out of order; two at the same time (ordered by id).
		e3 := e.eventID(eventBody(e.orgA.ID, devA2, "2026-05-03T00:00:00Z"))
		e1 := e.eventID(eventBody(e.orgA.ID, devA2, "2026-05-01T00:00:00Z"))
		e2a := e.eventID(eventBody(e.orgA.ID, devA2, "2026-05-02T00:00:00Z"))
		e2b := e.eventID(eventBody(e.orgA.ID, devA2, "2026-05-02T00:00:00Z"))
		all := []string{e1, e2a, e2b, e3}
		tests := []struct {
			query string
			want  []string
		}{
			{"meter_device=" + devA2, all},
			{"meter_device=" + devA, []string{id}},
			{"meter_device=" + devB, []string{}},
			{"meter_device=" + devA2 + "&start_time=2026-05-02T00:00:00Z", []string{e2a, e2b, e3}},
			{"meter_device=" + devA2 + "&end_time=2026-05-02T00:00:00Z", []string{e1, e2a, e2b}},
			{"meter_device=" + devA2 + "&start_time=2026-05-02T00:00:00Z&end_time=2026-05-02T00:00:00Z", []string{e2a, e2b}},
			{"meter_device=" + devA2 + "&start_time=2026-05-02T02:00:00%2B02:00&end_time=2026-05-02", []string{e2a, e2b}},
			{"meter_device=" + devA2 + "&start_time=2026-05-01T00:00:00.000001Z", []string{e2a, e2b, e3}},
			{"start_time=2026-06-01T00:00:00Z", []string{}},
			{"end_time=2026-03-01T10:00:00Z", []string{id}},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := e.do("GET", eventsPath+"?"+tc.query, e.token(), nil)
				require.Equal(t, 200, r.status, "body: %s", r.body)
				require.Equal(t, tc.want, ids(t, r))
			})
		}
		var paged []string
		for off := 0; off < 5; off++ {
			r := e.do("GET", fmt.Sprintf("%s?meter_device=%s&limit=1&offset=%d", eventsPath, devA2, off), e.token(), nil)
			require.Equal(t, 200, r.status)
			require.Equal(t, float64(4), r.json(t)["count"])
			paged = append(paged, ids(t, r)...)
		}
		require.Equal(t, all, paged, "paging one by one neither skips nor repeats")
		for _, q := range []string{"meter_device=meter-a", "start_time=yesterday", "end_time=2026-13-01"} {
			r := e.do("GET", eventsPath+"?"+q, e.token(), nil)
			require.Equal(t, 400, r.status, "%s: %s", q, r.body)
			require.Contains(t, r.json(t), strings.SplitN(q, "=", 2)[0])
		}
	})
	t.Run("viewer reads but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", eventsPath+"/"+id, tok, nil).status)
		require.Contains(t, ids(t, e.do("GET", eventsPath, tok, nil)), id)
		require.Equal(t, 403, e.do("POST", eventsPath, tok, eventBody(e.orgA.ID, devA, "2026-03-01T00:00:00Z")).status)
		require.Equal(t, 403, e.do("DELETE", eventsPath+"/"+id, tok, nil).status)
	})
	t.Run("editor writes in its organization whatever the body says", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		r := e.do("POST", eventsPath, tok, eventBody(e.orgB.ID, devA, "2026-03-02T00:00:00Z"))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, e.orgA.ID.String(), r.json(t)["organization"])
		b := eventBody(e.orgA.ID, devA, "2026-03-02T00:00:00Z")
		delete(b, "organization")
		r2 := e.do("POST", eventsPath, tok, b)
		require.Equal(t, 201, r2.status, "body: %s", r2.body)
		r = e.do("POST", eventsPath, tok, eventBody(e.orgB.ID, devB, "2026-03-02T00:00:00Z"))
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Equal(t, map[string]any{"meter_device": []any{`Invalid pk "` + devB + `" - object does not exist.`}}, r.json(t))
		require.Equal(t, 204, e.do("DELETE", eventsPath+"/"+fmt.Sprint(r2.json(t)["id"]), tok, nil).status)
	})
	t.Run("another organization's event is 404", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		require.NotContains(t, ids(t, e.do("GET", eventsPath, tok, nil)), id)
		for _, m := range []string{"GET", "DELETE"} {
			require.Equal(t, 404, e.do(m, eventsPath+"/"+id, tok, nil).status, m)
		}
	})
	t.Run("no update", func(t *testing.T) {
		for _, m := range []string{"PUT", "PATCH"} {
			require.Equal(t, 405, e.do(m, eventsPath+"/"+id, e.token(), eventBody(e.orgA.ID, devA, "2026-03-01T00:00:00Z")).status, m)
		}
	})
	t.Run("ids that are not positive integers are 404", func(t *testing.T) {
		for _, bad := range []string{"abc", "0", "-1", "1.5", "1e3", "99999999999999999999", uuid.NewString(), "999999999"} {
			require.Equal(t, 404, e.do("GET", eventsPath+"/"+bad, e.token(), nil).status, bad)
			require.Equal(t, 404, e.do("DELETE", eventsPath+"/"+bad, e.token(), nil).status, bad)
		}
	})
	require.Equal(t, 204, e.do("DELETE", eventsPath+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", eventsPath+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("DELETE", eventsPath+"/"+id, e.token(), nil).status)
}

// utc renders a JSON date-time in UTC, so that tests compare instants, not offsets.
func utc(t *testing.T, v any) string {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "not a string: %v", v)
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return ts.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
}

func TestMeterSystemEventsConformToContract(t *testing.T) {
	e := newEnv(t)
	dev := e.sqlDevice(&e.orgA.ID, "meter-1", nil)
	const list, one = "/metering/meter-system-events", "/metering/meter-system-events/{id}"
	r := e.conformed(t, "POST", list, eventsPath, eventBody(e.orgA.ID, dev, "2026-03-01T12:00:00+01:00"), 201)
	id := fmt.Sprint(r.json(t)["id"])
	require.Equal(t, []string{id}, ids(t, e.conformed(t, "GET", list, eventsPath, nil, 200)))
	e.conformed(t, "GET", one, eventsPath+"/"+id, nil, 200)
	e.conformed(t, "DELETE", one, eventsPath+"/"+id, nil, 204)
}
