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
	"golang.org/x/crypto/bcrypt"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/ingest"
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
	t      *testing.T
	base   string
	client *http.Client // this env's own connections, closed before the server shuts down
	st     *store.Store
	db     string // the database's URL, for fixtures no route makes (storetest.Exec)
	clock  *clock
	logs   *lockedBuffer // the server's warnings and errors, as JSON lines

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
	e := startEnv(t, mod...)
	e.t = t
	return e
}

// startEnv is newEnv for a fuzz target (or any testing.TB): its env has no t, so
// e.do and the helpers built on it are not for it.
func startEnv(t testing.TB, mod ...func(*api.Config)) *env {
	t.Helper()
	st, db := storetest.New(t)
	e := &env{st: st, db: db, clock: &clock{t: time.Now()}, logs: &lockedBuffer{}}
	cfg := api.Config{JWTKey: testKey, AllowTokenAuth: true, Now: e.clock.now, BodyLimit: 64 << 10}
	for _, m := range mod {
		m(&cfg)
	}
	reg := prometheus.NewRegistry()
	cfg.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pipe, err := ingest.New(ingest.Config{FlushEvery: time.Millisecond}, st, log, reg)
	require.NoError(t, err)
	pctx, stopPipe := context.WithCancel(context.Background())
	pipeDone := make(chan struct{})
	go func() { _ = pipe.Run(pctx); close(pipeDone) }()
	srv, err := api.New(cfg, st, api.StoreTables(st), pipe, log, reg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	// Each env has a client of its own: a shared one (http.DefaultClient) keeps idle
	// keep-alive connections, and their read and write loops, open after the env is gone,
	// which the package's goroutine-leak check then reports at random.
	e.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(func() {
		e.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutting the API server down: %v", err)
		}
		select {
		case err := <-serveDone:
			if err != nil {
				t.Errorf("serving the API: %v", err)
			}
		case <-ctx.Done():
			t.Errorf("serving the API: still serving after shutdown")
		}
		stopPipe()
		<-pipeDone
	})
	e.base = "http://" + ln.Addr().String()

	ctx := context.Background()
	// The lowest bcrypt cost keeps the many logins of these tests cheap (the race
	// detector makes bcrypt slow); the server checks hashes of any cost.
	hashed, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	hash := string(hashed)
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

// lockedBuffer is a log destination that handlers write to from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
		if headers[i] == "Host" {
			req.Host = headers[i+1] // net/http sends req.Host, not a Host header
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
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
