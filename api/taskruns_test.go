package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

const (
	invokePath = "/v1/metering/amr-tasks/invoke"
	runsPath   = "/v1/metering/amr-task-runs/"
	claimPath  = "/v1/metering/amr-task-runs/claim"
)

// runsEnv is an env with meterFleet's device m-a1 (iec62056-21, config allowing 1.8.0
// and 2.8.0) and a lis-200 device m-a2 in organization A, and a lis-200 device m-b1 in
// organization B.
type runsEnv struct {
	*env
	doc            *openapi3.T
	fleet          fleetIDs
	devA2, devB1   string
	staff, viewerA string // Authorization values
	editorA        string // JWT of A's editor
	editorB        string // JWT of "both": viewer of A, editor of B, with B's token
	bothA          string // JWT of "both" with A's token: a viewer there
}

func newRunsEnv(t *testing.T) *runsEnv {
	t.Helper()
	e := newEnv(t)
	// The database keeps microseconds: a clock on a whole microsecond compares exactly.
	e.clock.add(-time.Duration(e.clock.now().Nanosecond() % 1000))
	r := &runsEnv{env: e, doc: e.served(), fleet: meterFleet(t, e), staff: e.token()}
	r.devA2 = e.mustCreate("/v1/metering/meter-devices", r.staff, map[string]any{"organization": e.orgA.ID, "name": "m-a2", "protocol": "lis-200"})
	r.devB1 = e.mustCreate("/v1/metering/meter-devices", r.staff, map[string]any{"organization": e.orgB.ID, "name": "m-b1", "protocol": "lis-200"})
	r.viewerA = e.jwtFor(e.viewer, &e.orgA.ID)
	r.editorA = e.jwtFor(e.editor, &e.orgA.ID)
	r.editorB = e.jwtFor(e.both, &e.orgB.ID)
	r.bothA = e.jwtFor(e.both, &e.orgA.ID)
	return r
}

// check sends a request, requires the status and checks the answer against the served
// document; it returns the answer.
func (r *runsEnv) check(t *testing.T, method, template, path, auth string, body any, want int) resp {
	t.Helper()
	got := r.do(method, path, auth, body)
	require.Equal(t, want, got.status, "%s %s: body: %s", method, path, got.body)
	conformServed(t, r.doc, method, template, got)
	return got
}

// invoke queues a run and returns it.
func (r *runsEnv) invoke(t *testing.T, auth string, body map[string]any) map[string]any {
	t.Helper()
	return r.check(t, "POST", invokePath, invokePath, auth, body, 201).json(t)
}

func runID(t *testing.T, run map[string]any) string {
	t.Helper()
	id, ok := run["id"].(float64)
	require.True(t, ok, "run: %v", run)
	return fmt.Sprint(int64(id))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// at parses a time of an answer.
func at(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "not a time: %v", v)
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return tm
}

func TestInvokeAndListRuns(t *testing.T) {
	t.Parallel()
	r := newRunsEnv(t)
	now := r.clock.now()

	t.Run("execution type from the device's protocol, due now", func(t *testing.T) {
		run := r.invoke(t, r.staff, map[string]any{"meter_device": r.fleet.dev, "task_call": "read_registers",
			"task_kwargs": map[string]any{"registers": []string{"1.8.0"}}})
		require.Equal(t, "generic_iec6205621", run["meter_execution_type"])
		require.Equal(t, "invoke", run["trigger"])
		require.Equal(t, "pending", run["status"])
		require.Nil(t, run["task"])
		require.Nil(t, run["slot"])
		require.Equal(t, "m-a1", run["meter_device_name"])
		require.Equal(t, r.orgA.ID.String(), run["organization"])
		require.Equal(t, float64(3), run["max_attempts"], "RunMaxAttempts defaults to 3")
		require.Equal(t, float64(0), run["attempts"])
		require.Equal(t, map[string]any{"registers": []any{"1.8.0"}}, run["task_kwargs"])
		require.True(t, now.Equal(at(t, run["run_at"])), "run_at %v, now %v", run["run_at"], now)
		r2 := r.invoke(t, r.staff, map[string]any{"meter_device": r.devA2, "task_call": "read"})
		require.Equal(t, "generic_lis200", r2["meter_execution_type"])
	})
	var later map[string]any
	t.Run("offsets", func(t *testing.T) {
		later = r.invoke(t, r.editorA, map[string]any{"meter_device": r.devA2, "task_call": "later", "run_offset_seconds": 3600})
		require.True(t, now.Add(time.Hour).Equal(at(t, later["run_at"])))
		run := r.invoke(t, r.editorA, map[string]any{"meter_device": r.devA2, "task_call": "past", "run_offset_seconds": -3600})
		require.True(t, now.Equal(at(t, run["run_at"])), "a negative offset runs at once, never before its time")
		run = r.invoke(t, r.editorA, map[string]any{"meter_device": r.fleet.dev, "task_call": "explicit", "meter_execution_type": "generic_corus_meter"})
		require.Equal(t, "generic_corus_meter", run["meter_execution_type"])
	})
	t.Run("refusals", func(t *testing.T) {
		mbus := r.mustCreate("/v1/metering/meter-devices", r.staff, map[string]any{"organization": r.orgA.ID, "name": "m-mbus", "protocol": "mbus"})
		for _, tc := range []struct {
			name, auth string
			body       map[string]any
			status     int
			field      string
		}{
			{"no default for mbus", r.staff, map[string]any{"meter_device": mbus, "task_call": "read"}, 400, "meter_execution_type"},
			{"another organization's device", r.editorB, map[string]any{"meter_device": r.fleet.dev, "task_call": "read"}, 400, "meter_device"},
			{"another organization's device, type given", r.editorB, map[string]any{"meter_device": r.fleet.dev, "task_call": "read", "meter_execution_type": "generic_lis200"}, 400, "meter_device"},
			{"unknown device", r.staff, map[string]any{"meter_device": "6f1c2a0e-0000-4000-8000-000000000000", "task_call": "read"}, 400, "meter_device"},
			{"viewer", r.viewerA, map[string]any{"meter_device": r.devA2, "task_call": "read"}, 403, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := r.check(t, "POST", invokePath, invokePath, tc.auth, tc.body, tc.status)
				if tc.field != "" {
					require.Contains(t, got.json(t), tc.field, "body: %s", got.body)
				}
			})
		}
		got := r.do("POST", invokePath, r.staff, map[string]any{"meter_device": mbus, "task_call": "read"})
		require.JSONEq(t, `{"meter_execution_type":["This field is required."]}`, string(got.body))
		got = r.do("POST", invokePath, r.editorB, map[string]any{"meter_device": r.fleet.dev, "task_call": "read"})
		require.JSONEq(t, `{"meter_device":["Invalid pk \"`+r.fleet.dev+`\" - object does not exist."]}`, string(got.body),
			"the same answer as for a device that does not exist: ids do not leak")
	})

	b1 := r.invoke(t, r.editorB, map[string]any{"meter_device": r.devB1, "task_call": "read_b"})
	list := func(t *testing.T, auth, query string) []string {
		t.Helper()
		got := r.check(t, "GET", runsPath, runsPath+query, auth, nil, 200)
		return ids(t, got)
	}
	t.Run("list and filters", func(t *testing.T) {
		all := list(t, r.staff, "")
		require.Len(t, all, 6)
		require.Equal(t, runID(t, later), all[0], "newest first: by run_at")
		require.Equal(t, runID(t, b1), all[1], "then by id")
		require.Len(t, list(t, r.viewerA, ""), 5, "A's viewer sees A's runs")
		require.Equal(t, []string{runID(t, b1)}, list(t, r.editorB, ""), "B's editor sees B's runs only")
		require.Len(t, list(t, r.staff, "?meter_device="+r.devA2), 3)
		require.Len(t, list(t, r.staff, "?meter_execution_type=generic_lis200"), 4)
		require.Len(t, list(t, r.staff, "?status=pending&trigger=invoke"), 6)
		require.Empty(t, list(t, r.staff, "?status=running"))
		require.Empty(t, list(t, r.staff, "?trigger=schedule"))
		require.Empty(t, list(t, r.staff, "?task=6f1c2a0e-0000-4000-8000-000000000000"))
		q := url.Values{"start_time": {stamp(now.Add(time.Minute))}}
		require.Len(t, list(t, r.staff, "?"+q.Encode()), 1, "only the run due in an hour")
		q = url.Values{"end_time": {stamp(now)}}
		require.Len(t, list(t, r.staff, "?"+q.Encode()), 5, "end_time is inclusive")
		require.Len(t, list(t, r.staff, "?limit=2&offset=1"), 2)
	})
	t.Run("bad filters", func(t *testing.T) {
		for _, q := range []string{"status=done", "trigger=manual", "meter_execution_type=dlms", "task=x", "meter_device=1", "start_time=yesterday", "limit=0"} {
			got := r.check(t, "GET", runsPath, runsPath+"?"+q, r.staff, nil, 400)
			name, _, _ := strings.Cut(q, "=")
			require.Contains(t, got.json(t), name, "body: %s", got.body)
		}
	})
	t.Run("read one", func(t *testing.T) {
		const one = "/v1/metering/amr-task-runs/{id}"
		got := r.check(t, "GET", one, runsPath+runID(t, b1), r.editorB, nil, 200)
		require.Equal(t, b1, got.json(t))
		r.check(t, "GET", one, runsPath+runID(t, b1), r.editorA, nil, 404)
		r.check(t, "GET", one, runsPath+"999999", r.staff, nil, 404)
		r.check(t, "GET", one, runsPath+"x", r.staff, nil, 404)
	})
}

// claim posts a claim and returns the answer.
func (r *runsEnv) claim(t *testing.T, auth, typ string, want int) resp {
	t.Helper()
	return r.check(t, "POST", claimPath, claimPath, auth, map[string]any{"meter_execution_type": typ, "worker": "w-" + typ}, want)
}

func TestWorkerProtocol(t *testing.T) {
	t.Parallel()
	r := newRunsEnv(t)
	now := r.clock.now()
	const heartbeat, result = "/v1/metering/amr-task-runs/{id}/heartbeat", "/v1/metering/amr-task-runs/{id}/result"

	// A lis-200 run on A's metered device (its config allows 1.8.0 and 2.8.0), one not due
	// yet, and one on B's device.
	run := r.invoke(t, r.staff, map[string]any{"meter_device": r.fleet.dev, "task_call": "read", "meter_execution_type": "generic_lis200"})
	r.invoke(t, r.staff, map[string]any{"meter_device": r.devA2, "task_call": "read", "run_offset_seconds": 60})
	runB := r.invoke(t, r.staff, map[string]any{"meter_device": r.devB1, "task_call": "read"})

	t.Run("viewers cannot claim", func(t *testing.T) {
		r.claim(t, r.viewerA, "generic_lis200", 403)
		r.claim(t, r.bothA, "generic_lis200", 403)
	})
	t.Run("B's editor claims B's run only", func(t *testing.T) {
		got := r.claim(t, r.editorB, "generic_lis200", 200)
		require.Equal(t, runID(t, runB), runID(t, got.json(t)))
		r.claim(t, r.editorB, "generic_lis200", 204)
	})

	var token string
	path := runsPath + runID(t, run)
	t.Run("claim", func(t *testing.T) {
		got := r.check(t, "POST", claimPath, claimPath, r.editorA, map[string]any{"meter_execution_type": "generic_lis200", "worker": "lis200-worker-1", "lease_seconds": 120}, 200)
		m := got.json(t)
		require.Equal(t, runID(t, run), runID(t, m), "the oldest due run first")
		require.Equal(t, "running", m["status"])
		require.Equal(t, "lis200-worker-1", m["worker"])
		require.Equal(t, float64(1), m["attempts"])
		require.True(t, now.Add(2*time.Minute).Equal(at(t, m["lease_until"])))
		token, _ = m["claim_token"].(string)
		require.NotEmpty(t, token)
		require.NotContains(t, string(r.do("GET", path, r.staff, nil).body), token, "the token is answered to the claimer only")
		r.claim(t, r.editorA, "generic_lis200", 204) // the other lis-200 run is not due yet
	})
	t.Run("scope", func(t *testing.T) {
		r.check(t, "POST", heartbeat, path+"/heartbeat", r.editorB, map[string]any{"claim_token": token}, 404)
		r.check(t, "POST", result, path+"/result", r.editorB, map[string]any{"claim_token": token, "status": "succeeded"}, 404)
		r.check(t, "POST", heartbeat, path+"/heartbeat", r.viewerA, map[string]any{"claim_token": token}, 403)
		r.check(t, "POST", result, path+"/result", r.bothA, map[string]any{"claim_token": token, "status": "succeeded"}, 403)
	})
	t.Run("heartbeat extends the lease", func(t *testing.T) {
		r.clock.add(time.Minute)
		got := r.check(t, "POST", heartbeat, path+"/heartbeat", r.editorA, map[string]any{"claim_token": token, "lease_seconds": 600}, 200)
		require.True(t, now.Add(11*time.Minute).Equal(at(t, got.json(t)["lease_until"])), "lease_until %v", got.json(t)["lease_until"])
		got = r.check(t, "POST", heartbeat, path+"/heartbeat", r.editorA, map[string]any{"claim_token": token}, 200)
		require.True(t, now.Add(6*time.Minute).Equal(at(t, got.json(t)["lease_until"])), "default lease 300 s")
		got = r.check(t, "POST", heartbeat, path+"/heartbeat", r.editorA, map[string]any{"claim_token": "6f1c2a0e-0000-4000-8000-000000000000"}, 409)
		require.Contains(t, got.json(t)["detail"], "not running under this claim")
	})
	t.Run("bad results store nothing", func(t *testing.T) {
		reading := map[string]any{"series_name": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "1"}
		for _, tc := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"failed without error", map[string]any{"claim_token": token, "status": "failed", "readings": []any{reading}}, "error"},
			{"readings not a list", map[string]any{"claim_token": token, "status": "succeeded", "readings": reading}, "readings"},
			{"reserved result key", map[string]any{"claim_token": token, "status": "succeeded", "result": map[string]any{"readings": 1}, "readings": []any{reading}}, "result"},
			{"no token", map[string]any{"status": "succeeded", "readings": []any{reading}}, "claim_token"},
		} {
			got := r.check(t, "POST", result, path+"/result", r.editorA, tc.body, 400)
			require.Contains(t, got.json(t), tc.field, "%s: %s", tc.name, got.body)
		}
		var n int
		storetest.QueryRow(t, r.db, `SELECT count(*)::int FROM meter_readings`, &n)
		require.Zero(t, n)
	})
	t.Run("result with readings", func(t *testing.T) {
		got := r.check(t, "POST", result, path+"/result", r.editorA, map[string]any{
			"claim_token": token, "status": "succeeded", "result": map[string]any{"registers": 2},
			"readings": []any{
				map[string]any{"series_name": "1.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "12.5"},
				map[string]any{"meter_device_name": "m-a1", "series": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": 7},
				map[string]any{"meter": "m-a2", "series": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": 7},
				map[string]any{"series": "9.9.9", "timestamp": "2026-11-26T10:00:00Z", "value": 7},
				map[string]any{"series": "2.8.0", "timestamp": "2026-11-26T10:00:00Z", "value": "NaN"},
			},
		}, 200)
		m := got.json(t)
		require.Equal(t, "succeeded", m["status"])
		require.NotNil(t, m["finished_at"])
		require.Nil(t, m["lease_until"])
		res := m["result"].(map[string]any)
		require.Equal(t, float64(2), res["registers"])
		rep := res["readings"].(map[string]any)
		require.Equal(t, float64(2), rep["accepted"], "report: %v", rep)
		var idx []float64
		for _, x := range rep["rejected"].([]any) {
			idx = append(idx, x.(map[string]any)["index"].(float64))
		}
		require.Equal(t, []float64{2, 3, 4}, idx)
		require.Contains(t, string(got.body), `this run reads \"m-a1\"`)

		list := r.do("GET", "/v1/metering/meter-readings/?meter_device="+r.fleet.dev+"&series="+r.fleet.s1+"&scaled=true", r.staff, nil)
		require.Equal(t, 200, list.status, "body: %s", list.body)
		require.Contains(t, string(list.body), `"value":"625.0"`, "stored with the device's CT factor 50: %s", list.body)
		list = r.do("GET", "/v1/metering/meter-readings/?meter_device="+r.fleet.dev+"&series="+r.fleet.s2, r.staff, nil)
		require.Contains(t, string(list.body), `"value":"7"`, "body: %s", list.body)

		got = r.check(t, "POST", result, path+"/result", r.editorA, map[string]any{"claim_token": token, "status": "succeeded"}, 409)
		require.Contains(t, got.json(t)["detail"], "reported already")
		r.check(t, "POST", heartbeat, path+"/heartbeat", r.editorA, map[string]any{"claim_token": token}, 409)
		listed := r.check(t, "GET", runsPath, runsPath+"?status=succeeded", r.viewerA, nil, 200)
		require.Equal(t, []string{runID(t, run)}, ids(t, listed))
	})
	t.Run("failed result", func(t *testing.T) {
		r.clock.add(time.Minute) // the other lis-200 run is due now
		got := r.claim(t, r.staff, "generic_lis200", 200).json(t)
		p := runsPath + runID(t, got) + "/result"
		done := r.check(t, "POST", result, p, r.staff, map[string]any{"claim_token": got["claim_token"], "status": "failed", "error": "no answer from the meter", "readings": nil}, 200).json(t)
		require.Equal(t, "failed", done["status"])
		require.Equal(t, "no answer from the meter", done["error"])
		require.Equal(t, map[string]any{"readings": map[string]any{"accepted": float64(0), "staged": float64(0), "duplicates": float64(0), "conflicts": float64(0), "rejected": []any{}}}, done["result"])
	})
}

// TestConcurrentClaims has 20 workers claim 10 due runs at once: each run goes to
// exactly one of them, and the others are told that none is due.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	r := newRunsEnv(t)
	for i := range 10 {
		r.invoke(t, r.staff, map[string]any{"meter_device": r.devA2, "task_call": fmt.Sprint("read-", i), "meter_execution_type": "generic_corus_meter"})
	}
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body, _ := json.Marshal(map[string]any{"meter_execution_type": "generic_corus_meter", "worker": fmt.Sprint("corus-", i)})
			req, err := http.NewRequest("POST", r.base+claimPath, bytes.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Authorization", r.editorA)
			req.Header.Set("Content-Type", "application/json")
			res, err := r.client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer res.Body.Close()
			answers[i].status = res.StatusCode
			answers[i].body, answers[i].err = io.ReadAll(res.Body)
		}()
	}
	close(start)
	wg.Wait()
	var claimed []string
	tokens := map[string]bool{}
	for _, a := range answers {
		require.NoError(t, a.err)
		switch a.status {
		case 200:
			var m map[string]any
			require.NoError(t, json.Unmarshal(a.body, &m))
			claimed = append(claimed, runID(t, m))
			tokens[m["claim_token"].(string)] = true
		case 204:
		default:
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	sort.Strings(claimed)
	all := ids(t, r.do("GET", runsPath+"?meter_execution_type=generic_corus_meter", r.staff, nil))
	sort.Strings(all)
	require.Equal(t, all, claimed, "every run claimed exactly once")
	require.Len(t, tokens, 10)
	require.Len(t, ids(t, r.do("GET", runsPath+"?status=running", r.staff, nil)), 10)
}
