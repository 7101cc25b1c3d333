package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// clock is a settable time source for JWT expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is amrd's API served over real HTTP on loopback, on a fresh TimescaleDB database,
// with fixtures: a staff user with a token, organizations A and B, and users who are
// members of them.
type env struct {
	t     *testing.T
	base  string
	st    *store.Store
	dbURL string // the test database, for fixtures written with SQL
	clock *clock

	staffToken string
	orgA, orgB store.Organization
	viewer     store.User // viewer of A
	editor     store.User // editor of A
	both       store.User // viewer of A (first) and editor of B
	loner      store.User // member of nothing
}

const testPassword = "correct-horse-battery"

var testKey = []byte("test-signing-key-test-signing-key-0123")

func newEnv(t *testing.T, mod ...func(*api.Config)) *env {
	t.Helper()
	st, dbURL := storetest.New(t)
	e := &env{t: t, st: st, dbURL: dbURL, clock: &clock{t: time.Now()}}
	cfg := api.Config{JWTKey: testKey, AllowTokenAuth: true, Now: e.clock.now, BodyLimit: 64 << 10}
	for _, m := range mod {
		m(&cfg)
	}
	reg := prometheus.NewRegistry()
	cfg.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv, err := api.New(cfg, st, slog.New(slog.NewJSONHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e.base = "http://" + ln.Addr().String()

	ctx := context.Background()
	hash, err := api.HashPassword(testPassword)
	require.NoError(t, err)
	mk := func(name string, staff bool) store.User {
		u, err := st.CreateUser(ctx, store.UserInput{Username: name, PasswordHash: hash, IsStaff: staff, IsActive: true})
		require.NoError(t, err)
		return u
	}
	staff := mk("staff", true)
	e.staffToken, err = st.CreateToken(ctx, staff.ID)
	require.NoError(t, err)
	e.orgA, err = st.CreateOrganization(ctx, store.OrganizationInput{Name: "Org A", IsActive: true})
	require.NoError(t, err)
	e.orgB, err = st.CreateOrganization(ctx, store.OrganizationInput{Name: "Org B", IsActive: true})
	require.NoError(t, err)
	e.viewer, e.editor, e.both, e.loner = mk("viewer", false), mk("editor", false), mk("both", false), mk("loner", false)
	join := func(u store.User, o store.Organization, role string) {
		_, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: o.ID, UserID: u.ID, Role: role})
		require.NoError(t, err)
	}
	join(e.viewer, e.orgA, "viewer")
	join(e.editor, e.orgA, "editor")
	join(e.both, e.orgA, "viewer")
	join(e.both, e.orgB, "editor")
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request; body may be nil, a string (sent as is) or a value (sent as JSON).
func (e *env) do(method, path, auth string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

func (e *env) token() string { return "Token " + e.staffToken }

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// jwtFor logs in over the API and returns the "JWT <token>" header value.
func (e *env) jwtFor(u store.User, org *uuid.UUID) string {
	e.t.Helper()
	body := map[string]any{"username": u.Username, "password": testPassword}
	if org != nil {
		body["organization"] = org.String()
	}
	r := e.do("POST", "/v1/auth/jwt/token/", "", body)
	require.Equal(e.t, 201, r.status, "body: %s", r.body)
	tok, _ := r.json(e.t)["token"].(string)
	require.NotEmpty(e.t, tok)
	return "JWT " + tok
}

// ids returns the "id" of each result of a list response.
func ids(t *testing.T, r resp) []string {
	t.Helper()
	var page struct {
		Count   int              `json:"count"`
		Results []map[string]any `json:"results"`
	}
	require.NoError(t, json.Unmarshal(r.body, &page), "body: %s", r.body)
	out := make([]string, 0, len(page.Results))
	for _, x := range page.Results {
		switch v := x["id"].(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatInt(int64(v), 10))
		}
	}
	return out
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	u, err := uuid.Parse(s)
	require.NoError(t, err)
	return u
}
