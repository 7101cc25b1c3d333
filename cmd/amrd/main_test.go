package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/amrd/amrd/schema"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// TestMain fails the package if a command leaves goroutines running (an import's
// submitters and pipeline, serve's server). fasthttp's two background goroutines are
// not leaks (see api/main_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// testSecret is a SECRET_KEY long enough for serve (32 characters or more).
const testSecret = "test-secret-key-0123456789abcdefghij"

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// amrd runs one command and returns its standard output and error.
func amrd(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(testCtx(t), args, strings.NewReader(stdin), &out, &errOut, envFunc(env))
	return out.String(), errOut.String(), err
}

// migratedEnv returns the environment of a fresh, migrated database.
func migratedEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{"DATABASE_URL": storetest.NewDatabase(t)}
	_, _, err := amrd(t, env, "", "migrate")
	require.NoError(t, err)
	return env
}

// openStore opens the database a command worked on, to check what it wrote.
func openStore(t *testing.T, env map[string]string) *store.Store {
	t.Helper()
	st, err := store.Open(testCtx(t), store.Config{URL: env["DATABASE_URL"]}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

var tokenRe = regexp.MustCompile(`\b[0-9a-f]{40}\b`)

func TestHelpAndUnknownCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{name: "no arguments", args: nil, wantOut: "Commands:"},
		{name: "help", args: []string{"help"}, wantOut: "amrd migrate"},
		{name: "-h", args: []string{"-h"}, wantOut: "amrd serve"},
		{name: "unknown", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{name: "user without create", args: []string{"user", "delete"}, wantErr: "usage: amrd user create"},
		{name: "token without create", args: []string{"token"}, wantErr: "usage: amrd token create"},
		{name: "user create without username", args: []string{"user", "create"}, wantErr: "-username is required"},
		{name: "token create without username", args: []string{"token", "create"}, wantErr: "-username is required"},
		{name: "migrate without DATABASE_URL", args: []string{"migrate"}, wantErr: "DATABASE_URL is not set"},
		{name: "bootstrap without DATABASE_URL", args: []string{"bootstrap"}, wantErr: "DATABASE_URL is not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := amrd(t, map[string]string{}, "", tc.args...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Contains(t, out, tc.wantOut)
		})
	}
}

func TestBadSettingsStopEveryCommand(t *testing.T) {
	t.Parallel()
	_, _, err := amrd(t, map[string]string{"JWT_EXPIRATION_TIME_SECONDS": "soon"}, "", "migrate")
	require.ErrorContains(t, err, "reading settings")
	require.ErrorContains(t, err, "JWT_EXPIRATION_TIME_SECONDS")
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": storetest.NewDatabase(t)}

	out, _, err := amrd(t, env, "", "migrate")
	require.NoError(t, err)
	require.Contains(t, out, "migrate: applied [1")

	out, _, err = amrd(t, env, "", "migrate")
	require.NoError(t, err)
	require.Contains(t, out, "up to date")
}

func TestDatabaseErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	const password = "Sup3rS3cretPassw0rd"
	port := storetest.FreePort(t)

	tests := []struct {
		name string
		url  string
	}{
		{"closed port", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:%d/amrd?sslmode=disable&connect_timeout=2", password, port)},
		{"unparsable", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:x/amrd", password)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := amrd(t, map[string]string{"DATABASE_URL": tc.url}, "", "migrate")
			require.Error(t, err)
			require.NotContains(t, err.Error(), password)
			require.NotContains(t, out, password)
			require.NotContains(t, errOut, password)
		})
	}
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)

	out, errOut, err := amrd(t, env, "", "bootstrap")
	require.NoError(t, err)
	token := tokenRe.FindString(out)
	require.NotEmpty(t, token, "bootstrap prints a token of 40 hex digits: %q", out)
	m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	require.Len(t, m, 2, "bootstrap prints the password: %q", out)
	require.NotContains(t, errOut, token, "the token is not logged")
	require.NotContains(t, errOut, m[1], "the password is not logged")

	st := openStore(t, env)
	ctx := testCtx(t)
	u, err := st.UserByToken(ctx, token)
	require.NoError(t, err)
	require.Equal(t, "admin", u.Username)
	require.True(t, u.IsStaff)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(m[1])), "the printed password is the user's")

	out, _, err = amrd(t, env, "", "bootstrap")
	require.NoError(t, err)
	require.Contains(t, out, "nothing to do")
	require.Empty(t, tokenRe.FindString(out))
	n, err := st.CountUsers(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestUserCreate(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	st := openStore(t, env)
	ctx := testCtx(t)

	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantErr   string
		wantOut   []string
		user      string
		staff     bool
		password  string // when set, the stored hash must match it
		generated bool   // a password is printed
	}{
		{name: "password from stdin", args: []string{"-username", "u1", "-password-stdin"}, stdin: "secretpass1\n",
			wantOut: []string{"created user u1", "staff false"}, user: "u1", password: "secretpass1"},
		{name: "stdin without newline", args: []string{"-username", "u2", "-password-stdin"}, stdin: "another-pass",
			wantOut: []string{"created user u2"}, user: "u2", password: "another-pass"},
		{name: "stdin with CRLF", args: []string{"-username", "u3", "-password-stdin"}, stdin: "windows-pass\r\n",
			wantOut: []string{"created user u3"}, user: "u3", password: "windows-pass"},
		{name: "staff with email, generated password", args: []string{"-username", "boss", "-staff", "-email", "b@example.com"},
			wantOut: []string{"created user boss", "staff true", "password (shown once): "}, user: "boss", staff: true, generated: true},
		{name: "short password", args: []string{"-username", "u4", "-password-stdin"}, stdin: "short\n",
			wantErr: "at least 8 characters"},
		{name: "empty stdin", args: []string{"-username", "u5", "-password-stdin"}, stdin: "",
			wantErr: "at least 8 characters"},
		{name: "duplicate", args: []string{"-username", "u1", "-password-stdin"}, stdin: "secretpass2\n",
			wantErr: "already exists"},
		{name: "unknown flag", args: []string{"-username", "u6", "-admin"}, wantErr: "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := amrd(t, env, tc.stdin, append([]string{"user", "create"}, tc.args...)...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			for _, w := range tc.wantOut {
				require.Contains(t, out, w)
			}
			if tc.password != "" {
				require.NotContains(t, out, tc.password, "a password given on stdin is not echoed")
			}
			u, err := st.GetUserByUsername(ctx, tc.user)
			require.NoError(t, err)
			require.Equal(t, tc.staff, u.IsStaff)
			require.True(t, u.IsActive)
			password := tc.password
			if tc.generated {
				m := regexp.MustCompile(`password \(shown once\): (\S+)`).FindStringSubmatch(out)
				require.Len(t, m, 2)
				password = m[1]
				require.Equal(t, "b@example.com", u.Email)
			}
			require.NoError(t, bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)))
		})
	}
	n, err := st.CountUsers(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n, "the refused creates wrote nothing")
}

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	_, _, err := amrd(t, env, "password1\n", "user", "create", "-username", "plain", "-password-stdin")
	require.NoError(t, err)
	_, _, err = amrd(t, env, "password2\n", "user", "create", "-username", "chief", "-staff", "-password-stdin")
	require.NoError(t, err)
	st := openStore(t, env)

	tests := []struct {
		name    string
		user    string
		wantErr string
	}{
		{name: "not staff", user: "plain", wantErr: "not staff"},
		{name: "no such user", user: "ghost", wantErr: `no user named "ghost"`},
		{name: "staff", user: "chief"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := amrd(t, env, "", "token", "create", "-username", tc.user)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Empty(t, tokenRe.FindString(out))
				return
			}
			require.NoError(t, err)
			token := tokenRe.FindString(out)
			require.NotEmpty(t, token, "token create prints 40 hex digits: %q", out)
			u, err := st.UserByToken(testCtx(t), token)
			require.NoError(t, err)
			require.Equal(t, tc.user, u.Username)
		})
	}
}

func TestLoadSettings(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		s, err := loadSettings(envFunc(nil))
		require.NoError(t, err)
		require.Equal(t, 1200*time.Second, s.API.JWTTTL)
		require.True(t, s.API.AllowTokenAuth)
		require.Equal(t, 30*24*time.Hour, s.Jobs.StagedRetention)
		require.Zero(t, s.Jobs.DataRetention, "readings are kept forever by default")
		require.Equal(t, "UTC", s.DefaultMeterTZ)
		require.Equal(t, time.UTC, s.Ingest.DefaultTimeZone)
		require.Equal(t, "127.0.0.1:8000", s.Listen)
		require.Equal(t, "info", s.LogLevel)
		require.Equal(t, 10<<20, s.API.BodyLimit)
		require.Equal(t, 30*time.Second, s.API.RequestTimeout)
		require.Equal(t, int32(20), s.Store.MaxConns)
		require.False(t, s.API.CORSAllowAll)
		require.Empty(t, s.API.CORSWhitelist)
		require.Empty(t, s.API.AllowedHosts, "any well-formed host")
		require.False(t, s.API.UseXForwardedHost)
		require.Zero(t, s.Ingest.FlushEvery, "group commit without a window")
		require.Equal(t, 4_000, s.Ingest.ParallelReadings)
		require.Equal(t, 100_000, s.Ingest.WarmDevices)
		require.Equal(t, 3, s.Jobs.MaxAttempts)
		require.Equal(t, 3, s.API.RunMaxAttempts, "invoked runs get the attempts of scheduled ones")
		require.True(t, s.RunJobs)
		require.False(t, s.Jobs.NoRollups)
		require.Equal(t, 400, s.GCPercent)
		require.Equal(t, int64(192<<20), s.MemoryLimit)
	})

	t.Run("values", func(t *testing.T) {
		s, err := loadSettings(envFunc(map[string]string{
			"DATABASE_URL":                  "postgres://x@y/z",
			"SECRET_KEY":                    testSecret,
			"JWT_EXPIRATION_TIME_SECONDS":   " 60 ",
			"ALLOW_TOKEN_AUTH":              "false",
			"DATA_RETENTION_DAYS":           "365",
			"STAGED_DATA_RETENTION_DAYS":    "7",
			"DEFAULT_METER_TIMEZONE":        "Europe/Zurich",
			"CORS_WHITELIST":                " https://a.example , ,https://b.example",
			"CORS_ALLOW_ALL":                "1",
			"ALLOWED_HOSTS":                 " api.example.org, .Example.NET ,*,[::1], ",
			"USE_X_FORWARDED_HOST":          "true",
			"AMRD_LISTEN":                   "0.0.0.0:9000",
			"AMRD_LOG_LEVEL":                "debug",
			"AMRD_DB_MAX_CONNS":             "5",
			"AMRD_INGEST_FLUSH_MS":          "2",
			"AMRD_INGEST_PARALLEL_READINGS": "500",
			"AMRD_INGEST_WARM_DEVICES":      "0",
			"AMRD_AMR_RUN_MAX_ATTEMPTS":     "5",
			"AMRD_ROLLUPS":                  "false",
			"AMRD_ROLLUP_DELAY_MINUTES":     "30",
			"GOGC":                          "100",
			"GOMEMLIMIT":                    "1GiB",
		}))
		require.NoError(t, err)
		require.Equal(t, 60*time.Second, s.API.JWTTTL)
		require.False(t, s.API.AllowTokenAuth)
		require.Equal(t, 365*24*time.Hour, s.Jobs.DataRetention)
		require.Equal(t, 7*24*time.Hour, s.Jobs.StagedRetention)
		require.Equal(t, "Europe/Zurich", s.DefaultMeterTZ)
		require.Equal(t, "Europe/Zurich", s.Ingest.DefaultTimeZone.String())
		require.Equal(t, []string{"https://a.example", "https://b.example"}, s.API.CORSWhitelist)
		require.True(t, s.API.CORSAllowAll)
		require.Equal(t, []string{"api.example.org", ".example.net", "*", "[::1]"}, s.API.AllowedHosts)
		require.True(t, s.API.UseXForwardedHost)
		require.Equal(t, "0.0.0.0:9000", s.Listen)
		require.Equal(t, "debug", s.LogLevel)
		require.Equal(t, int32(5), s.Store.MaxConns)
		require.Equal(t, 2*time.Millisecond, s.Ingest.FlushEvery)
		require.Equal(t, 500, s.Ingest.ParallelReadings)
		require.Zero(t, s.Ingest.WarmDevices, "0 turns the warm-up off")
		require.Equal(t, 5, s.Jobs.MaxAttempts)
		require.Equal(t, 5, s.API.RunMaxAttempts)
		require.True(t, s.Jobs.NoRollups)
		require.Equal(t, 30*time.Minute, s.Jobs.RollupDelay)
		require.Zero(t, s.GCPercent, "GOGC is the Go runtime's to apply")
		require.Zero(t, s.MemoryLimit)
		require.Equal(t, []byte(testSecret), s.jwtKey())
	})

	tests := []struct {
		name  string
		key   string
		value string
	}{
		{"JWT expiry not a number", "JWT_EXPIRATION_TIME_SECONDS", "20m"},
		{"JWT expiry zero", "JWT_EXPIRATION_TIME_SECONDS", "0"},
		{"JWT expiry negative", "JWT_EXPIRATION_TIME_SECONDS", "-5"},
		{"token auth not a bool", "ALLOW_TOKEN_AUTH", "yes"},
		{"CORS allow all not a bool", "CORS_ALLOW_ALL", "always"},
		{"allowed host with a port", "ALLOWED_HOSTS", "example.org:8000"},
		{"allowed host with a scheme", "ALLOWED_HOSTS", "https://example.org"},
		{"X-Forwarded-Host not a bool", "USE_X_FORWARDED_HOST", "proxy"},
		{"retention not a number", "DATA_RETENTION_DAYS", "a year"},
		{"staged retention zero", "STAGED_DATA_RETENTION_DAYS", "0"},
		{"body limit too small", "AMRD_BODY_LIMIT_BYTES", "100"},
		{"request timeout not a number", "AMRD_REQUEST_TIMEOUT_SECONDS", "1.5"},
		{"one connection", "AMRD_DB_MAX_CONNS", "1"},
		{"rollups not a bool", "AMRD_ROLLUPS", "sometimes"},
		{"negative warm-up", "AMRD_INGEST_WARM_DEVICES", "-1"},
		{"unknown time zone", "DEFAULT_METER_TIMEZONE", "Mars/Olympus_Mons"},
		{"unknown log level", "AMRD_LOG_LEVEL", "verbose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSettings(envFunc(map[string]string{tc.key: tc.value}))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.key, "the error names the variable")
			require.Contains(t, err.Error(), tc.value, "the error quotes the value")
		})
	}

	t.Run("every bad variable is reported at once", func(t *testing.T) {
		_, err := loadSettings(envFunc(map[string]string{
			"ALLOW_TOKEN_AUTH":       "maybe",
			"DEFAULT_METER_TIMEZONE": "Nowhere/Land",
		}))
		require.ErrorContains(t, err, "ALLOW_TOKEN_AUTH")
		require.ErrorContains(t, err, "DEFAULT_METER_TIMEZONE")
	})
}

func TestServeNeedsSecrets(t *testing.T) {
	t.Parallel()
	dbURL := "postgres://amrd@127.0.0.1:1/amrd"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{"no SECRET_KEY", map[string]string{"DATABASE_URL": dbURL}, []string{"SECRET_KEY"}},
		{"short SECRET_KEY", map[string]string{"DATABASE_URL": dbURL, "SECRET_KEY": "short"}, []string{"SECRET_KEY", "32"}},
		{"short JWT_SIGNING_KEY", map[string]string{"DATABASE_URL": dbURL, "SECRET_KEY": testSecret, "JWT_SIGNING_KEY": "short"}, []string{"JWT_SIGNING_KEY"}},
		{"nothing set", map[string]string{}, []string{"SECRET_KEY", "DATABASE_URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := amrd(t, tc.env, "", "serve")
			require.Error(t, err)
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestServeRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": storetest.NewDatabase(t), "SECRET_KEY": testSecret, "AMRD_LISTEN": "127.0.0.1:0"}
	_, _, err := amrd(t, env, "", "serve")
	migs, merr := schema.Migrations()
	require.NoError(t, merr)
	versions := make([]int, len(migs))
	for i, m := range migs {
		versions[i] = m.Version
	}
	require.ErrorContains(t, err, fmt.Sprintf("pending migrations %v", versions))
	require.ErrorContains(t, err, "amrd migrate")
}

// syncBuffer is a bytes.Buffer that a server may write while the test reads it; each
// write is signalled on written.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServe(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	env["SECRET_KEY"] = testSecret
	env["AMRD_LISTEN"] = "127.0.0.1:0"
	dbURL, err := url.Parse(env["DATABASE_URL"])
	require.NoError(t, err)
	dbPassword, _ := dbURL.User.Password()

	srv := startServe(t, env)
	addr, stdout, stderr := srv.addr, srv.stdout, srv.stderr

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	for _, path := range []string{"/_health/", "/_health"} {
		t.Run("GET "+path, func(t *testing.T) {
			resp, err := client.Get("http://" + addr + path)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
			require.Contains(t, string(body), `"ok"`)
		})
	}
	client.CloseIdleConnections()

	require.NoError(t, srv.stop(), "a cancelled serve shuts down cleanly")

	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the listener is closed after shutdown")

	logs := stderr.String()
	require.NotContains(t, logs, testSecret, "SECRET_KEY is never logged")
	if dbPassword != "" {
		require.NotContains(t, logs, dbPassword, "the database password is never logged")
		require.NotContains(t, stdout.String(), dbPassword)
	}
}

// served is an in-process `amrd serve`.
type served struct {
	addr           string
	stdout, stderr *syncBuffer
	stop           func() error
}

// startServe runs `amrd serve` in this process with env until stop (or the test's end),
// once it listens.
func startServe(t *testing.T, env map[string]string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	s := &served{stdout: newSyncBuffer(), stderr: newSyncBuffer()}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, strings.NewReader(""), s.stdout, s.stderr, envFunc(env)) }()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(40 * time.Second):
				stopErr = errors.New("serve did not return after its context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stopping serve: %v", err)
		}
	})
	listening := regexp.MustCompile(`amrd listening on http://(\S+)\n`)
	deadline := time.After(30 * time.Second)
	for s.addr == "" {
		select {
		case <-s.stdout.written:
			if m := listening.FindStringSubmatch(s.stdout.String()); m != nil {
				s.addr = m[1]
			}
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\nstderr: %s", err, s.stderr.String())
		case <-deadline:
			t.Fatalf("serve did not print its address; stdout: %q", s.stdout.String())
		}
	}
	return s
}
