package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
)

// fakeRuns answers the AMR task run routes without a database and records what the
// handlers asked of it. Users are faked too: a viewer and an editor of runOrg.
type fakeRuns struct {
	fakeStore
	run     store.TaskRun // what GetTaskRun answers, with getErr
	getErr  error
	device  store.MeterDevice // what GetMeterDevice answers, with devErr
	devErr  error
	claimed []store.TaskRun // what ClaimTaskRuns answers
	opErr   error           // what InvokeRun, ClaimTaskRuns, ExtendTaskRun and FinishTaskRun answer
	calls   *runCalls
}

type runCalls struct {
	invoked  []store.RunInput
	claims   []store.Claim
	scopes   []store.Scope
	extended []time.Duration
	finished []store.RunOutcome
}

var (
	runOrg    = uuid.MustParse("6f1c2a0e-0000-4000-8000-00000000000a")
	viewerID  = uuid.MustParse("6f1c2a0e-0000-4000-8000-0000000000b1")
	editorID  = uuid.MustParse("6f1c2a0e-0000-4000-8000-0000000000b2")
	fakeToken = "6f1c2a0e-0000-4000-8000-0000000000cc"
)

func (f fakeRuns) GetUser(_ context.Context, id uuid.UUID) (store.User, error) {
	return store.User{ID: id, Username: id.String(), IsActive: true}, nil
}
func (f fakeRuns) UserMemberships(_ context.Context, id uuid.UUID) ([]store.Membership, error) {
	role := "viewer"
	if id == editorID {
		role = "editor"
	}
	return []store.Membership{{OrganizationID: runOrg, UserID: id, Role: role}}, nil
}
func (f fakeRuns) GetMeterDevice(context.Context, store.Scope, uuid.UUID) (store.MeterDevice, error) {
	return f.device, f.devErr
}
func (f fakeRuns) InvokeRun(_ context.Context, sc store.Scope, in store.RunInput) (store.TaskRun, error) {
	f.calls.invoked = append(f.calls.invoked, in)
	f.calls.scopes = append(f.calls.scopes, sc)
	return store.TaskRun{MeterDeviceID: in.MeterDeviceID, RunAt: in.RunAt, MeterExecutionType: in.MeterExecutionType,
		TaskCall: in.TaskCall, TaskKwargs: in.TaskKwargs, MaxAttempts: in.MaxAttempts, Status: store.RunPending}, f.opErr
}
func (f fakeRuns) ListTaskRuns(context.Context, store.Scope, store.Filter, store.Page) ([]store.TaskRun, int, error) {
	return nil, 0, f.opErr
}
func (f fakeRuns) GetTaskRun(context.Context, store.Scope, int64) (store.TaskRun, error) {
	return f.run, f.getErr
}
func (f fakeRuns) ClaimTaskRuns(_ context.Context, sc store.Scope, c store.Claim) ([]store.TaskRun, error) {
	f.calls.claims = append(f.calls.claims, c)
	f.calls.scopes = append(f.calls.scopes, sc)
	return f.claimed, f.opErr
}
func (f fakeRuns) ExtendTaskRun(_ context.Context, _ store.Scope, _ int64, _ uuid.UUID, _ time.Time, lease time.Duration) (store.TaskRun, error) {
	f.calls.extended = append(f.calls.extended, lease)
	return f.run, f.opErr
}
func (f fakeRuns) FinishTaskRun(_ context.Context, _ store.Scope, _ int64, _ uuid.UUID, o store.RunOutcome) (store.TaskRun, error) {
	f.calls.finished = append(f.calls.finished, o)
	r := f.run
	r.Status, r.Result = o.Status, o.Result
	return r, f.opErr
}

// fakeIngester answers every Submit with err, or accepts every reading; it records the
// readings when subs is set.
type fakeIngester struct {
	err  error
	subs *[][]ingest.Reading
}

func (f fakeIngester) Submit(_ context.Context, _ store.Scope, req *ingest.Request) (ingest.Report, error) {
	rs := req.Readings()
	if f.subs != nil {
		*f.subs = append(*f.subs, rs)
	}
	if f.err != nil {
		return ingest.Report{}, f.err
	}
	return ingest.Report{Accepted: len(rs), Rejected: req.Merge(nil)}, nil
}

// runCase is one request to a run route and what it must answer.
type runCase struct {
	name   string
	auth   string // "staff" (default), "viewer" or "editor"
	method string // default POST
	path   string
	body   string
	st     func(*fakeRuns)
	ing    error // what the ingester answers
	status int
	field  string // a 400 must name it
	header string // a header the answer must carry
	check  func(t *testing.T, calls *runCalls, subs [][]ingest.Reading, body []byte)
}

func runningRun() store.TaskRun {
	org := runOrg
	return store.TaskRun{ID: 7, MeterDeviceID: uuid.New(), MeterDeviceName: "m-1", OrganizationID: &org,
		Trigger: store.TriggerInvoke, MeterExecutionType: "generic_lis200", TaskCall: "read", Status: store.RunRunning}
}

func (tc runCase) run(t *testing.T) {
	t.Helper()
	calls := &runCalls{}
	st := fakeRuns{run: runningRun(), device: store.MeterDevice{Protocol: "lis-200"}, calls: calls}
	if tc.st != nil {
		tc.st(&st)
	}
	var subs [][]ingest.Reading
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	s, err := New(Config{JWTKey: []byte("k"), AllowTokenAuth: true, MaxReadingsPerRequest: 5, Now: func() time.Time { return now }},
		st, fakeTables(nil), fakeIngester{err: tc.ing, subs: &subs}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	method := tc.method
	if method == "" {
		method = "POST"
	}
	req := httptest.NewRequest(method, tc.path, strings.NewReader(tc.body))
	req.Header.Set("Content-Type", "application/json")
	switch tc.auth {
	case "", "staff":
		req.Header.Set("Authorization", "Token abc")
	default:
		id := viewerID
		if tc.auth == "editor" {
			id = editorID
		}
		tok, err := s.issueJWT(store.User{ID: id, Username: tc.auth}, runOrg, now)
		require.NoError(t, err)
		req.Header.Set("Authorization", "JWT "+tok)
	}
	res, err := s.App().Test(req, -1)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, tc.status, res.StatusCode, "body: %s", body)
	if tc.header != "" {
		require.NotEmpty(t, res.Header.Get(tc.header), "header %s", tc.header)
	}
	if tc.field != "" {
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
		require.Contains(t, m, tc.field, "body: %s", body)
	}
	if tc.check != nil {
		tc.check(t, calls, subs, body)
	}
}

func TestInvokeBodies(t *testing.T) {
	const path = "/v1/metering/amr-tasks/invoke/"
	dev := `"meter_device":"6f1c2a0e-0000-4000-8000-000000000001"`
	valid := func(extra string) string { return `{` + dev + `,"task_call":"read"` + extra + `}` }
	invoked := func(t *testing.T, calls *runCalls) store.RunInput {
		t.Helper()
		require.Len(t, calls.invoked, 1)
		return calls.invoked[0]
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, tc := range []runCase{
		{name: "defaults", body: valid(""), status: 201, check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
			in := invoked(t, c)
			require.Equal(t, "generic_lis200", in.MeterExecutionType, "from the device's protocol")
			require.Equal(t, now, in.RunAt)
			require.Equal(t, 3, in.MaxAttempts)
			require.Nil(t, in.TaskKwargs)
		}},
		{name: "offset", body: valid(`,"run_offset_seconds":90,"task_kwargs":{"a":1}`), status: 201, check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
			in := invoked(t, c)
			require.Equal(t, now.Add(90*time.Second), in.RunAt)
			require.JSONEq(t, `{"a":1}`, string(in.TaskKwargs))
		}},
		{name: "negative offset runs now", body: valid(`,"run_offset_seconds":-2147483648`), status: 201, check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
			require.Equal(t, now, invoked(t, c).RunAt)
		}},
		{name: "iec protocol", body: valid(""), st: func(f *fakeRuns) { f.device.Protocol = "iec62056-21" }, status: 201,
			check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
				require.Equal(t, "generic_iec6205621", invoked(t, c).MeterExecutionType)
			}},
		{name: "type given: the device is not read", body: valid(`,"meter_execution_type":"generic_corus_meter"`),
			st: func(f *fakeRuns) { f.devErr = store.ErrUnavailable }, status: 201},
		{name: "editor writes in its organization", auth: "editor", body: valid(""), status: 201,
			check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
				require.Equal(t, store.OrgScope(runOrg), c.scopes[0])
			}},
		{name: "viewer", auth: "viewer", body: valid(""), status: 403},
		{name: "protocol without a default", body: valid(""), st: func(f *fakeRuns) { f.device.Protocol = "mbus" }, status: 400, field: "meter_execution_type"},
		{name: "device out of scope, type left out", body: valid(""), st: func(f *fakeRuns) { f.devErr = store.ErrNotFound }, status: 400, field: "meter_device"},
		{name: "device out of scope, type given", body: valid(`,"meter_execution_type":"generic_lis200"`),
			st: func(f *fakeRuns) { f.opErr = &store.FieldError{Field: "meter_device", Msg: "Invalid pk"} }, status: 400, field: "meter_device"},
		{name: "database down", body: valid(""), st: func(f *fakeRuns) { f.devErr = store.ErrUnavailable }, status: 503},
		{name: "meter_device missing", body: `{"task_call":"read"}`, status: 400, field: "meter_device"},
		{name: "meter_device null", body: `{"meter_device":null,"task_call":"read"}`, status: 400, field: "meter_device"},
		{name: "meter_device not a UUID", body: `{"meter_device":"m-1","task_call":"read"}`, status: 400, field: "meter_device"},
		{name: "task_call missing", body: `{` + dev + `}`, status: 400, field: "task_call"},
		{name: "task_call blank", body: valid(`,"task_call":""`), status: 400, field: "task_call"},
		{name: "task_call too long", body: valid(`,"task_call":"` + strings.Repeat("c", 51) + `"`), status: 400, field: "task_call"},
		{name: "task_kwargs a list", body: valid(`,"task_kwargs":[1]`), status: 400, field: "task_kwargs"},
		{name: "offset above int32", body: valid(`,"run_offset_seconds":2147483648`), status: 400, field: "run_offset_seconds"},
		{name: "offset a fraction", body: valid(`,"run_offset_seconds":1.5`), status: 400, field: "run_offset_seconds"},
		{name: "offset null", body: valid(`,"run_offset_seconds":null`), status: 400, field: "run_offset_seconds"},
		{name: "execution type unknown", body: valid(`,"meter_execution_type":"generic_dlms"`), status: 400, field: "meter_execution_type"},
		{name: "execution type null", body: valid(`,"meter_execution_type":null`), status: 400, field: "meter_execution_type"},
		{name: "not an object", body: `[]`, status: 400, field: "non_field_errors"},
		{name: "malformed JSON", body: `{"meter_device":`, status: 400, field: "detail"},
	} {
		tc.path = path
		t.Run(tc.name, tc.run)
	}
}

func TestListRunsFilters(t *testing.T) {
	for _, tc := range []runCase{
		{name: "every filter", path: "/v1/metering/amr-task-runs/?task=6f1c2a0e-0000-4000-8000-000000000001&meter_device=6f1c2a0e-0000-4000-8000-000000000002" +
			"&status=cancelled&trigger=schedule&meter_execution_type=generic_corus_meter&start_time=2026-01-01&end_time=2026-01-02T00:00:00%2B01:00", status: 200},
		{name: "viewers read", auth: "viewer", path: "/v1/metering/amr-task-runs/", status: 200},
		{name: "status unknown", path: "/v1/metering/amr-task-runs/?status=done", status: 400, field: "status"},
		{name: "status wrong case", path: "/v1/metering/amr-task-runs/?status=Pending", status: 400, field: "status"},
		{name: "trigger unknown", path: "/v1/metering/amr-task-runs/?trigger=manual", status: 400, field: "trigger"},
		{name: "execution type unknown", path: "/v1/metering/amr-task-runs/?meter_execution_type=x", status: 400, field: "meter_execution_type"},
		{name: "task not a UUID", path: "/v1/metering/amr-task-runs/?task=1", status: 400, field: "task"},
		{name: "bad time", path: "/v1/metering/amr-task-runs/?end_time=soon", status: 400, field: "end_time"},
		{name: "one run", path: "/v1/metering/amr-task-runs/7", status: 200},
		{name: "one run out of scope", path: "/v1/metering/amr-task-runs/7", st: func(f *fakeRuns) { f.getErr = store.ErrNotFound }, status: 404},
		{name: "id not a number", path: "/v1/metering/amr-task-runs/abc", status: 404},
	} {
		tc.method = "GET"
		t.Run(tc.name, tc.run)
	}
}

func TestClaimBodies(t *testing.T) {
	const path = "/v1/metering/amr-task-runs/claim/"
	valid := func(extra string) string {
		return `{"meter_execution_type":"generic_lis200","worker":"w-1"` + extra + `}`
	}
	claimed := func(f *fakeRuns) {
		r := runningRun()
		tok := uuid.MustParse(fakeToken)
		r.ClaimToken = &tok
		f.claimed = []store.TaskRun{r}
	}
	for _, tc := range []runCase{
		{name: "claimed", body: valid(""), st: claimed, status: 200, check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, body []byte) {
			require.Equal(t, []store.Claim{{Types: []string{"generic_lis200"}, Worker: "w-1", Limit: 1, Lease: 300 * time.Second,
				Now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}}, c.claims)
			require.Equal(t, store.AllOrgs, c.scopes[0])
			var m map[string]any
			require.NoError(t, json.Unmarshal(body, &m))
			require.Equal(t, fakeToken, m["claim_token"])
			require.Equal(t, float64(7), m["id"])
			require.Equal(t, "running", m["status"])
		}},
		{name: "none due", body: valid(`,"lease_seconds":10`), status: 204, check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, body []byte) {
			require.Empty(t, body)
			require.Equal(t, 10*time.Second, c.claims[0].Lease)
		}},
		{name: "editor claims in its organization", auth: "editor", body: valid(`,"lease_seconds":86400`), status: 204,
			check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
				require.Equal(t, store.OrgScope(runOrg), c.scopes[0])
				require.Equal(t, 24*time.Hour, c.claims[0].Lease)
			}},
		{name: "viewer", auth: "viewer", body: valid(""), status: 403},
		{name: "database down", body: valid(""), st: func(f *fakeRuns) { f.opErr = store.ErrUnavailable }, status: 503},
		{name: "type missing", body: `{"worker":"w"}`, status: 400, field: "meter_execution_type"},
		{name: "type unknown", body: `{"worker":"w","meter_execution_type":"lis200"}`, status: 400, field: "meter_execution_type"},
		{name: "worker missing", body: `{"meter_execution_type":"generic_lis200"}`, status: 400, field: "worker"},
		{name: "worker blank", body: valid(`,"worker":""`), status: 400, field: "worker"},
		{name: "worker too long", body: valid(`,"worker":"` + strings.Repeat("w", 101) + `"`), status: 400, field: "worker"},
		{name: "lease too short", body: valid(`,"lease_seconds":9`), status: 400, field: "lease_seconds"},
		{name: "lease too long", body: valid(`,"lease_seconds":86401`), status: 400, field: "lease_seconds"},
		{name: "lease not a number", body: valid(`,"lease_seconds":"long"`), status: 400, field: "lease_seconds"},
		{name: "not JSON", body: `worker=w`, status: 400, field: "detail"},
	} {
		tc.path = path
		t.Run(tc.name, tc.run)
	}
}

func TestHeartbeatBodies(t *testing.T) {
	const path = "/v1/metering/amr-task-runs/7/heartbeat"
	for _, tc := range []runCase{
		{name: "extended", body: `{"claim_token":"` + fakeToken + `","lease_seconds":60}`, status: 200,
			check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
				require.Equal(t, []time.Duration{time.Minute}, c.extended)
			}},
		{name: "default lease", body: `{"claim_token":"` + fakeToken + `"}`, status: 200,
			check: func(t *testing.T, c *runCalls, _ [][]ingest.Reading, _ []byte) {
				require.Equal(t, []time.Duration{5 * time.Minute}, c.extended)
			}},
		{name: "editor", auth: "editor", body: `{"claim_token":"` + fakeToken + `"}`, status: 200},
		{name: "viewer", auth: "viewer", body: `{"claim_token":"` + fakeToken + `"}`, status: 403},
		{name: "lost claim", body: `{"claim_token":"` + fakeToken + `"}`, st: func(f *fakeRuns) { f.opErr = &store.ConflictError{Msg: "lost"} }, status: 409},
		{name: "out of scope", body: `{"claim_token":"` + fakeToken + `"}`, st: func(f *fakeRuns) { f.getErr = store.ErrNotFound }, status: 404},
		{name: "token missing", body: `{}`, status: 400, field: "claim_token"},
		{name: "token not a UUID", body: `{"claim_token":"abc"}`, status: 400, field: "claim_token"},
		{name: "lease out of range", body: `{"claim_token":"` + fakeToken + `","lease_seconds":0}`, status: 400, field: "lease_seconds"},
	} {
		tc.path = path
		t.Run(tc.name, tc.run)
	}
	t.Run("id not a number", runCase{path: "/v1/metering/amr-task-runs/x/heartbeat", body: `{}`, status: 404}.run)
}

func TestResultBodies(t *testing.T) {
	const path = "/v1/metering/amr-task-runs/7/result"
	tok := `"claim_token":"` + fakeToken + `"`
	reading := func(extra string) string {
		return `{"series_name":"1.8.0","timestamp":"2026-11-26T10:00:00Z","value":"1"` + extra + `}`
	}
	finished := func(t *testing.T, c *runCalls) store.RunOutcome {
		t.Helper()
		require.Len(t, c.finished, 1)
		return c.finished[0]
	}
	notFinished := func(t *testing.T, c *runCalls, subs [][]ingest.Reading, _ []byte) {
		require.Empty(t, c.finished, "the run must not be finished")
	}
	nothingStored := func(t *testing.T, c *runCalls, subs [][]ingest.Reading, _ []byte) {
		require.Empty(t, subs, "no reading may be submitted")
		require.Empty(t, c.finished, "the run must not be finished")
	}
	for _, tc := range []runCase{
		{name: "succeeded with readings", body: `{` + tok + `,"status":"succeeded","result":{"n":2},"readings":[` +
			reading("") + `,` + reading(`,"meter_device_name":"m-1"`) + `,` + reading(`,"meter":"m-2"`) + `,` + reading(`,"value":"NaN"`) + `,` +
			reading(`,"meter_device_name":null,"meter":null`) + `]}`, status: 200,
			check: func(t *testing.T, c *runCalls, subs [][]ingest.Reading, _ []byte) {
				require.Len(t, subs, 1)
				require.Len(t, subs[0], 3, "the readings of the run's device, valid ones")
				for _, r := range subs[0] {
					require.Equal(t, "m-1", r.Device)
				}
				o := finished(t, c)
				require.Equal(t, store.RunSucceeded, o.Status)
				require.Empty(t, o.Error)
				var res struct {
					N        int           `json:"n"`
					Readings ingest.Report `json:"readings"`
				}
				require.NoError(t, json.Unmarshal(o.Result, &res))
				require.Equal(t, 2, res.N)
				require.Equal(t, 3, res.Readings.Accepted)
				require.Len(t, res.Readings.Rejected, 2)
				require.Equal(t, 2, res.Readings.Rejected[0].Index)
				require.Contains(t, res.Readings.Rejected[0].Errors["meter_device_name"][0], `"m-2"`)
				require.Equal(t, 3, res.Readings.Rejected[1].Index)
				require.Contains(t, res.Readings.Rejected[1].Errors, "value")
			}},
		{name: "failed without readings", body: `{` + tok + `,"status":"failed","error":" no answer "}`, status: 200,
			check: func(t *testing.T, c *runCalls, subs [][]ingest.Reading, _ []byte) {
				require.Empty(t, subs)
				o := finished(t, c)
				require.Equal(t, store.RunFailed, o.Status)
				require.Equal(t, "no answer", o.Error)
				require.JSONEq(t, `{"readings":{"accepted":0,"staged":0,"duplicates":0,"conflicts":0,"rejected":[]}}`, string(o.Result))
			}},
		{name: "empty readings", body: `{` + tok + `,"status":"succeeded","readings":[],"error":null,"result":null}`, status: 200},
		{name: "editor", auth: "editor", body: `{` + tok + `,"status":"succeeded"}`, status: 200},
		{name: "viewer", auth: "viewer", body: `{` + tok + `,"status":"succeeded"}`, status: 403, check: nothingStored},
		{name: "out of scope", body: `{` + tok + `,"status":"succeeded","readings":[` + reading("") + `]}`,
			st: func(f *fakeRuns) { f.getErr = store.ErrNotFound }, status: 404, check: nothingStored},
		{name: "run no longer running", body: `{` + tok + `,"status":"succeeded","readings":[` + reading("") + `]}`,
			st: func(f *fakeRuns) { f.run.Status = store.RunPending }, status: 409, check: nothingStored},
		{name: "claim lost when finishing", body: `{` + tok + `,"status":"succeeded"}`,
			st: func(f *fakeRuns) { f.opErr = &store.ConflictError{Msg: "lost"} }, status: 409},
		{name: "pipeline busy", header: "Retry-After", body: `{` + tok + `,"status":"succeeded","readings":[` + reading("") + `]}`, ing: ingest.ErrOverloaded, status: 503,
			check: func(t *testing.T, c *runCalls, subs [][]ingest.Reading, _ []byte) {
				require.Len(t, subs, 1)
				notFinished(t, c, subs, nil)
			}},
		{name: "pipeline closed", header: "Retry-After", body: `{` + tok + `,"status":"succeeded","readings":[` + reading("") + `]}`, ing: ingest.ErrClosed, status: 503, check: notFinished},
		{name: "database down while ingesting", header: "Retry-After", body: `{` + tok + `,"status":"succeeded","readings":[` + reading("") + `]}`, ing: store.ErrUnavailable, status: 503, check: notFinished},
		{name: "token missing", body: `{"status":"succeeded","readings":[` + reading("") + `]}`, status: 400, field: "claim_token", check: nothingStored},
		{name: "token not a UUID", body: `{"claim_token":1,"status":"succeeded"}`, status: 400, field: "claim_token", check: nothingStored},
		{name: "status missing", body: `{` + tok + `}`, status: 400, field: "status", check: nothingStored},
		{name: "status not final", body: `{` + tok + `,"status":"running"}`, status: 400, field: "status", check: nothingStored},
		{name: "failed without error", body: `{` + tok + `,"status":"failed","readings":[` + reading("") + `]}`, status: 400, field: "error", check: nothingStored},
		{name: "failed with blank error", body: `{` + tok + `,"status":"failed","error":"  "}`, status: 400, field: "error", check: nothingStored},
		{name: "succeeded with error", body: `{` + tok + `,"status":"succeeded","error":"x"}`, status: 400, field: "error", check: nothingStored},
		{name: "error too long", body: `{` + tok + `,"status":"failed","error":"` + strings.Repeat("e", 2001) + `"}`, status: 400, field: "error", check: nothingStored},
		{name: "error not a string", body: `{` + tok + `,"status":"failed","error":5}`, status: 400, field: "error", check: nothingStored},
		{name: "result not an object", body: `{` + tok + `,"status":"succeeded","result":[1]}`, status: 400, field: "result", check: nothingStored},
		{name: "result with the reserved key", body: `{` + tok + `,"status":"succeeded","result":{"readings":[]}}`, status: 400, field: "result", check: nothingStored},
		{name: "readings not a list", body: `{` + tok + `,"status":"succeeded","readings":` + reading("") + `}`, status: 400, field: "readings", check: nothingStored},
		{name: "too many readings", body: `{` + tok + `,"status":"succeeded","readings":[{},{},{},{},{},{}]}`, status: 400, field: "readings", check: nothingStored},
		{name: "not JSON", body: `{` + tok, status: 400, field: "detail", check: nothingStored},
	} {
		tc.path = path
		t.Run(tc.name, tc.run)
	}
}
