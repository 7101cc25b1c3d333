package api

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
)

// fakeStore answers every call with its err (or empty results): handler tests that need
// no database use it.
type fakeStore struct {
	Store // methods not defined below are not called by these tests
	err   error
}

func (f fakeStore) Ping(context.Context) error { return f.err }
func (f fakeStore) UserByToken(context.Context, string) (store.User, error) {
	return store.User{ID: uuid.New(), Username: "staff", IsStaff: true, IsActive: true}, f.err
}
func (f fakeStore) GetUser(context.Context, uuid.UUID) (store.User, error) {
	return store.User{}, store.ErrNotFound
}
func (f fakeStore) GetUserByUsername(context.Context, string) (store.User, error) {
	return store.User{}, store.ErrNotFound
}
func (f fakeStore) TouchLogin(context.Context, uuid.UUID) error { return f.err }
func (f fakeStore) LoginFailures(_ context.Context, keys [][]byte, _ time.Time, _ int) ([][]time.Time, error) {
	return make([][]time.Time, len(keys)), f.err
}
func (f fakeStore) AddLoginFailure(context.Context, [][]byte, time.Time, time.Time) error {
	return f.err
}
func (f fakeStore) ClearLoginFailures(context.Context, []byte) error { return f.err }
func (f fakeStore) UserMemberships(context.Context, uuid.UUID) ([]store.Membership, error) {
	return nil, f.err
}
func (f fakeStore) CreateSecurityKeys(context.Context, store.Scope, store.SecurityKeysInput) (store.SecurityKeys, error) {
	return store.SecurityKeys{}, f.err
}

// fakeTable answers every call on a resource's rows with its err: row for a get, what
// was sent for a create or an update, nothing for a list.
type fakeTable[T any, ID rowID] struct {
	row T
	err error
}

func (f fakeTable[T, ID]) List(context.Context, store.Scope, store.Filter, store.Page) ([]T, int, error) {
	return nil, 0, f.err
}
func (f fakeTable[T, ID]) Get(context.Context, store.Scope, ID) (T, error) { return f.row, f.err }
func (f fakeTable[T, ID]) Create(_ context.Context, in T) (T, error)       { return in, f.err }
func (f fakeTable[T, ID]) Update(_ context.Context, _ store.Scope, _ ID, in T) (T, error) {
	return in, f.err
}
func (f fakeTable[T, ID]) Delete(context.Context, store.Scope, ID) error { return f.err }

// fakeTables are the resources' fakeTables, each answering err. A stored series and
// device config have what a stored one always has, so that their updates decode.
func fakeTables(err error) Tables {
	return Tables{
		Organizations:      fakeTable[store.Organization, uuid.UUID]{err: err},
		Memberships:        fakeTable[store.Membership, int64]{err: err},
		Users:              fakeTable[store.User, uuid.UUID]{err: err},
		SimCards:           fakeTable[store.SimCard, uuid.UUID]{err: err},
		NetworkInterfaces:  fakeTable[store.NetworkInterface, uuid.UUID]{err: err},
		MeterReadingSeries: fakeTable[store.MeterReadingSeries, uuid.UUID]{row: store.MeterReadingSeries{SIMultiplier: store.DecimalOf(1)}, err: err},
		MeterDeviceConfigs: fakeTable[store.MeterDeviceConfig, uuid.UUID]{row: store.MeterDeviceConfig{Series: []uuid.UUID{}, Timezone: "UTC"}, err: err},
		MeterDeviceTypes:   fakeTable[store.MeterDeviceType, uuid.UUID]{err: err},
		MeterSystemEvents:  fakeTable[store.MeterSystemEvent, int64]{err: err},
		SecurityKeys:       fakeTable[store.SecurityKeys, uuid.UUID]{err: err},
		AmrTaskGroups:      fakeTable[store.AmrTaskGroup, uuid.UUID]{err: err},
		AmrTasks:           fakeTable[store.AmrTask, uuid.UUID]{err: err},
		MeterDevices:       fakeTable[store.MeterDevice, uuid.UUID]{row: store.MeterDevice{Protocol: "lis-200"}, err: err},
		StagedReadings:     fakeTable[store.StagedReading, int64]{err: err},
	}
}

// newFakeServer serves st, and fakeTables answering st's err.
func newFakeServer(t testing.TB, st fakeStore) *Server {
	t.Helper()
	s, err := New(Config{JWTKey: []byte("k"), AllowTokenAuth: true}, st, fakeTables(st.err), nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	return s
}

// TestDatabaseDown checks that a database outage answers 503 with Retry-After, never 500,
// and that internal error text never reaches the client.
func TestDatabaseDown(t *testing.T) {
	s := newFakeServer(t, fakeStore{err: store.ErrUnavailable})
	cases := []struct{ method, path, body string }{
		{"GET", "/_health/", ""},
		{"GET", "/v1/organizations/", ""},
		{"POST", "/v1/organizations/", `{"name":"x"}`},
		{"GET", "/v1/metering/meter-security-keys/", ""},
		{"POST", "/v1/metering/meter-security-keys/", `{"meter":"00000000-0000-4000-8000-000000000000","dlms_master_key":null}`},
		{"GET", "/v1/metering/meter-system-events/7", ""},
		{"POST", "/v1/metering/meter-system-events/", `{"organization":"00000000-0000-4000-8000-000000000000",` +
			`"meter_device":"00000000-0000-4000-8000-000000000001","timestamp":"2026-01-01T00:00:00","title":"t","content":"c"}`},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Token abc")
			req.Header.Set("Content-Type", "application/json")
			res, err := s.App().Test(req, -1)
			require.NoError(t, err)
			require.Equal(t, 503, res.StatusCode)
			if tc.path != "/_health/" {
				require.Equal(t, "5", res.Header.Get("Retry-After"))
			}
		})
	}
}

// TestInternalErrorIsGeneric checks that an unexpected error is a 500 with a generic text.
func TestInternalErrorIsGeneric(t *testing.T) {
	s := newFakeServer(t, fakeStore{err: io.ErrUnexpectedEOF})
	req := httptest.NewRequest("GET", "/v1/organizations/", nil)
	req.Header.Set("Authorization", "Token abc")
	res, err := s.App().Test(req, -1)
	require.NoError(t, err)
	require.Equal(t, 500, res.StatusCode)
	b, _ := io.ReadAll(res.Body)
	require.JSONEq(t, `{"detail":"Internal server error."}`, string(b))
}

// FuzzRequest throws arbitrary Authorization headers, query strings and bodies at the
// decoders (auth header, pagination, JSON bodies, path ids). Whatever comes in, the
// server must not panic and must not answer 500.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ auth, path, body string }{
		{"Token abc", "/v1/organizations/?limit=5&offset=2", ""},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "/v1/organizations/", `{"name":"x"}`},
		{"JWT eyJhbGciOiJub25lIn0.e30.", "/v1/organizations/memberships/1", `{"role":"editor"}`},
		{"Token abc", "/v1/organizations/memberships/", `{"organization":"00000000-0000-0000-0000-000000000000","user":null}`},
		{"Token abc", "/v1/users/", `{"username":"\u0000","password":[1]}`},
		{"Token abc", "/v1/auth/jwt/token/", `{"username":"a","password":"b","organization":5}`},
		{"", "/v1/organizations/?limit=-1&offset=abc", `[]`},
		{"Token abc", "/v1/metering/meter-security-keys/?meter=x&meter_name=%00", `{"meter":"00000000-0000-4000-8000-000000000000","dlms_master_key":"0g"}`},
		{"Token abc", "/v1/metering/meter-system-events/?start_time=2026-01-01+02:00&end_time=x", `{"timestamp":"2026-02-30T25:00:00+99:00","title":1}`},
		{"Token abc", "/v1/metering/meter-system-events/99999999999999999999", `{}`},
		{"Token abc", "/v1/metering/amr-tasks/invoke", `{"meter_device":"00000000-0000-4000-8000-000000000000","task_call":"read","run_offset_seconds":-5,"task_kwargs":{"a":[1]}}`},
		{"Token abc", "/v1/metering/amr-task-runs/?status=pending&trigger=x&start_time=2026-01-01", `{"meter_execution_type":"generic_lis200","worker":"w","lease_seconds":10}`},
		{"Token abc", "/v1/metering/amr-task-runs/7/result", `{"claim_token":"00000000-0000-4000-8000-000000000000","status":"failed","error":"e","result":{},"readings":[{"series":"1.8.0","timestamp":"2026-01-01T00:00:00Z","value":"1"},{"meter":"m-2"},5]}`},
		{"Token abc", "/v1/metering/amr-task-runs/7/heartbeat", `{"claim_token":"00000000-0000-4000-8000-000000000000","lease_seconds":1e9}`},
	}
	for _, s := range seeds {
		f.Add(s.auth, s.path, s.body)
	}
	srv, err := New(Config{JWTKey: []byte("k"), AllowTokenAuth: true}, fakeStore{}, fakeTables(nil), fakeIngester{},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, auth, path, body string) {
		if _, err := url.ParseRequestURI(path); err != nil || !fakedPath(path) || strings.ContainsAny(path, " \r\n\t#") {
			path = "/v1/organizations/" + base64.RawURLEncoding.EncodeToString([]byte(path))
		}
		for _, m := range []string{"GET", "POST", "PATCH"} {
			req := httptest.NewRequest(m, "http://x"+path, strings.NewReader(body))
			if !strings.ContainsAny(auth, "\r\n\x00") {
				req.Header.Set("Authorization", auth)
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := srv.App().Test(req, -1)
			if err != nil {
				return // the client library refused the request
			}
			if res.StatusCode >= 500 {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("%s %q auth %q body %q: status %d: %s", m, path, auth, body, res.StatusCode, b)
			}
		}
	})
}

// fakedPaths are the route prefixes whose store calls fakeStore answers; the fuzzer's
// other paths are moved under /v1/organizations/, since an unfaked call would panic in the
// fake (the embedded nil Store), not in amrd.
var fakedPaths = []string{"/_health", "/v1/organizations", "/v1/users", "/v1/auth", "/v1/schema", "/v1/docs",
	"/v1/metering/meter-security-keys", "/v1/metering/meter-system-events", "/v1/metering/network-interfaces",
	"/v1/metering/meter-reading-series", "/v1/metering/meter-device-configs", "/v1/metering/meter-device-types",
	"/v1/metering/amr-tasks/invoke", "/v1/metering/amr-task-runs"}

func fakedPath(p string) bool {
	for _, f := range fakedPaths {
		if strings.HasPrefix(p, f) {
			return true
		}
	}
	return false
}
