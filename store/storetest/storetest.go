// Package storetest gives tests a fresh, migrated TimescaleDB database of their own.
//
// The server comes from AMRD_TEST_DATABASE_URL, which `make test` sets after starting a
// throw-away cluster. Without it a database test fails (it never skips): a skipped
// database test is not a passed one.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amrd/amrd/store"
)

// EnvURL names the variable that holds the test server's superuser URL.
const EnvURL = "AMRD_TEST_DATABASE_URL"

// AdminURL returns the test server's URL, failing the test when it is not set.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: run the tests with 'make test', which starts a throw-away TimescaleDB", EnvURL)
	}
	return u
}

// NewDatabase creates an empty database (no migrations) and returns its URL; it is
// dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to the test server: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "amrd_t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("connecting to drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Secret is the SECRET_KEY of the stores New opens (security keys are encrypted with it).
const Secret = "storetest-secret-key-0123456789abcdef"

// New returns a Store on a fresh, migrated database, and the database's URL. The store
// is closed and the database dropped when the test ends.
func New(t testing.TB) (*store.Store, string) {
	t.Helper()
	dbURL := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: dbURL, MaxConns: 8, Secret: Secret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("opening the test database: %v", err)
	}
	t.Cleanup(st.Close) // registered after the drop, so it runs before it
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrating the test database: %v", err)
	}
	return st, dbURL
}

// Query runs one SQL statement on the database at dbURL (a test's own, from New) and
// scans its first row into dest; with no dest it only runs the statement. Tests use it to
// make rows whose API is not under test and to look at what is stored.
func Query(t testing.TB, dbURL, sql string, args []any, dest ...any) {
	t.Helper()
	ctx, conn, done := connect(t, dbURL)
	defer done()
	var err error
	if len(dest) == 0 {
		_, err = conn.Exec(ctx, sql, args...)
	} else {
		err = conn.QueryRow(ctx, sql, args...).Scan(dest...)
	}
	if err != nil {
		t.Fatalf("running %q: %v", sql, err)
	}
}

// connect opens a connection to the test database for one statement, with a 30 s
// deadline; done closes it.
func connect(t testing.TB, dbURL string) (ctx context.Context, conn *pgx.Conn, done func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		cancel()
		t.Fatalf("connecting to the test database: %v", err)
	}
	return ctx, conn, func() { conn.Close(ctx); cancel() }
}

// Rows runs a query and returns all its rows, each as its column values.
func Rows(t testing.TB, dbURL, sql string, args ...any) [][]any {
	t.Helper()
	ctx, conn, done := connect(t, dbURL)
	defer done()
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("running %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatalf("reading %q: %v", sql, err)
	}
	return out
}

// Exec runs one statement (Query without a result).
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	Query(t, dbURL, sql, args)
}

// ExecCounted runs one statement that writes readings, whose rows must show in the cumulative
// statistics (pg_stat_all_tables) by the time it returns: PostgreSQL reports a session's
// counts lazily, up to seconds later or when the session ends (after the client has
// closed it), and pg_stat_force_next_flush makes the session report them when the
// statement ends, before it answers.
func ExecCounted(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, conn, done := connect(t, dbURL)
	defer done()
	if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatalf("forcing the statistics flush: %v", err)
	}
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("running %q: %v", sql, err)
	}
	// The report can still trail the answer: wait (bounded) until the readings' chunks
	// count every stored reading.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM meter_readings) = (SELECT coalesce(sum(s.n_tup_ins - s.n_tup_del), 0)
			FROM timescaledb_information.chunks c JOIN pg_stat_all_tables s ON s.relid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass
			WHERE c.hypertable_name = 'meter_readings')`).Scan(&ok); err != nil {
			t.Fatalf("reading the statistics: %v", err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the statistics did not count %q's rows within 20 s", sql)
		}
	}
}

// QueryRow runs a query without arguments and scans its first row into dest.
func QueryRow(t testing.TB, dbURL, sql string, dest ...any) {
	t.Helper()
	Query(t, dbURL, sql, nil, dest...)
}

// FreePort returns a loopback TCP port that nothing listened on a moment ago: for a
// server the test starts there, or a database URL that nothing answers.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	return port
}
