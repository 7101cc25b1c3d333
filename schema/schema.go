// Package schema holds amrd's numbered SQL migrations, embedded in the binary.
//
// Migrate is given a small interface instead of a pgx pool, so that this package imports
// only the standard library; store adapts its pool to it.
package schema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	out := make([]Migration, 0, len(names))
	seen := map[int]string{}
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Tx is what Migrate needs of a database transaction.
type Tx interface {
	Exec(ctx context.Context, sql string, args ...any) error
	// QueryInts runs a query whose rows are one integer each.
	QueryInts(ctx context.Context, sql string, args ...any) ([]int, error)
}

// DB is what Migrate needs of a database: run a function in one transaction.
type DB interface {
	InTx(ctx context.Context, fn func(Tx) error) error
}

// ErrNoTimescaleDB reports that the server lacks the timescaledb extension.
var ErrNoTimescaleDB = errors.New("the PostgreSQL server has no timescaledb extension available: " +
	"install TimescaleDB 2.x (with shared_preload_libraries = 'timescaledb') or unset DATABASE_URL " +
	"to let 'make run' provision a local one")

// lockID is the advisory lock key that serializes migrations across replicas
// ("amrd" in ASCII).
const lockID = 0x616d7264

// Migrate applies every migration not yet recorded in schema_migrations, each in its own
// transaction, under an advisory lock so that replicas starting together apply it once.
// It returns the versions it applied.
func Migrate(ctx context.Context, db DB) ([]int, error) {
	migs, err := Migrations()
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range migs {
		var did bool
		err := db.InTx(ctx, func(tx Tx) error {
			if err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockID)); err != nil {
				return fmt.Errorf("taking the migration lock: %w", err)
			}
			if err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version integer PRIMARY KEY,
				name text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return fmt.Errorf("creating schema_migrations: %w", err)
			}
			done, err := tx.QueryInts(ctx, "SELECT version FROM schema_migrations WHERE version = $1", m.Version)
			if err != nil {
				return fmt.Errorf("reading schema_migrations: %w", err)
			}
			if len(done) > 0 {
				return nil
			}
			if strings.Contains(m.SQL, "timescaledb") {
				n, err := tx.QueryInts(ctx, "SELECT count(*)::int FROM pg_available_extensions WHERE name = 'timescaledb'")
				if err != nil {
					return fmt.Errorf("checking for timescaledb: %w", err)
				}
				if n[0] == 0 {
					return ErrNoTimescaleDB
				}
			}
			if err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.Name, err)
			}
			if err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("recording migration %s: %w", m.Name, err)
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, err
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}
