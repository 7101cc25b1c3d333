// Package store is amrd's only user of pgx: queries, COPY, transactions and the mapping of
// database errors to the sentinels the rest of amrd switches on.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amrd/amrd/schema"
)

// Store is a handle on amrd's database.
type Store struct {
	pool *pgxpool.Pool
	// locks holds the sessions of job locks (WithJobLock), apart from pool: a job holds
	// its lock's session while its work takes connections of pool, so with both in one
	// pool as many jobs as connections would each hold one and wait for another forever.
	locks *pgxpool.Pool
	log   *slog.Logger
	// keys seals meter security keys; nil without Config.Secret.
	keys *keyRing
	// denseRecompute: 0 recomputes a batch of marks by re-aggregation when that is the
	// cheaper (recomputeDense), 1 always when it can (whatever the span), -1 never
	// (tests set it).
	denseRecompute int
	// rollupWorkers is how many transactions materialize hourly rollups at once in SQL.
	rollupWorkers int
	// carry is the open days' sums of the last slice materialized (see "Open days" in
	// rollupdays.go), nil if none; a slice takes it.
	carryMu sync.Mutex
	carry   *dayCarry
	// boundary is the readings before the materialized point as the slice that moved it
	// there read them (see rollupsteps.go), nil if none; under carryMu.
	boundary *boundaryCarry
	// carriedSteps counts the late steps computed from boundary (tests read it).
	carriedSteps atomic.Int64
}

// Config is how Open connects. DefaultConfig holds the defaults; Open gives a field left
// at zero its default.
type Config struct {
	URL string
	// MaxConns caps the pool (AMRD_DB_MAX_CONNS). Default 20.
	MaxConns int32
	// Secret is SECRET_KEY: the key that encrypts meter security keys is derived from it.
	// Without it, the methods that read or write security keys return ErrNoSecret.
	Secret string
	// SecretFallbacks are SECRET_KEY_FALLBACKS: earlier secrets, whose keys still
	// decrypt what they encrypted (Secret is tried first). Only Secret encrypts.
	SecretFallbacks []string
	// RollupWorkers is how many transactions materialize hourly rollups at once, each for
	// a range of devices, when a slice is left to the SQL functions (a NaN or an infinity
	// in it, or a pool of one connection; the job aggregates in Go otherwise). Default 2:
	// that aggregation is CPU-bound in PostgreSQL, one transaction a core.
	RollupWorkers int
}

// DefaultConfig is the pool's configuration as documented on each field (no URL, no
// secret), and amrd serve's unless the environment says otherwise.
func DefaultConfig() Config {
	return Config{MaxConns: 20, RollupWorkers: 2}
}

// Open connects to the database and checks that it answers.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The parse error can quote the URL, password included: never pass it on.
		return nil, errors.New("opening the database: DATABASE_URL is not a valid PostgreSQL URL")
	}
	var keys *keyRing
	if cfg.Secret != "" {
		if keys, err = newKeyRing(cfg.Secret, cfg.SecretFallbacks); err != nil {
			return nil, fmt.Errorf("opening the database: %w", err)
		}
	}
	def := DefaultConfig()
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = def.MaxConns
	}
	if cfg.RollupWorkers <= 0 {
		cfg.RollupWorkers = def.RollupWorkers
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pc.ConnConfig.RuntimeParams["application_name"] = "amrd"
	// JIT compilation costs amrd's short queries far more than it saves: the real-time
	// views' live part inflates estimated costs past the JIT thresholds, so queries of a
	// millisecond would be compiled for hundreds.
	pc.ConnConfig.RuntimeParams["jit"] = "off"
	pc.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerNumeric(c)
		return nil
	}
	lc := pc.Copy()
	lc.MaxConns = jobLockConns
	lc.ConnConfig.RuntimeParams["application_name"] = "amrd-job-locks"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	// Connects lazily: a process that runs no job (AMRD_JOBS=false, the CLI) opens none.
	locks, err := pgxpool.NewWithConfig(ctx, lc)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		locks.Close()
		return nil, fmt.Errorf("connecting to the database at %s:%d (%s): %w", pc.ConnConfig.Host, pc.ConnConfig.Port, connReason(err), ErrUnavailable)
	}
	return &Store{pool: pool, locks: locks, log: log, keys: keys, rollupWorkers: cfg.RollupWorkers}, nil
}

// jobLockConns caps the job lock sessions: one for each job of jobs.Run that takes a lock
// (six; dispatch claims its runs row by row instead) and one to spare. gocron runs each
// job one at a time, so they never wait for one another here.
const jobLockConns = 7

// Close closes every connection.
func (s *Store) Close() {
	s.pool.Close()
	s.locks.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging the database: %w", ErrUnavailable)
	}
	return nil
}

// Migrate applies the schema's pending migrations and returns their versions.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	return schema.Migrate(ctx, migrator{s.pool})
}

// PendingMigrations returns the versions of the embedded migrations that the database
// has not applied yet (all of them on an empty database).
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	migs, err := schema.Migrations()
	if err != nil {
		return nil, err
	}
	var done []int
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, mapErr("reading the schema version", err)
	}
	if exists {
		rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return nil, mapErr("reading the schema version", err)
		}
		if done, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
			return nil, mapErr("reading the schema version", err)
		}
	}
	applied := map[int]bool{}
	for _, v := range done {
		applied[v] = true
	}
	var pending []int
	for _, m := range migs {
		if !applied[m.Version] {
			pending = append(pending, m.Version)
		}
	}
	return pending, nil
}

// connReason says why a connection failed, without the URL or password: the server's
// error (a wrong password, an unknown database) or the network's (refused, timed out).
func connReason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code + " " + pe.Message
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within 10 s"
	}
	return "no connection"
}

type migrator struct{ pool *pgxpool.Pool }

func (m migrator) InTx(ctx context.Context, fn func(schema.Tx) error) error {
	return pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error { return fn(migTx{tx}) })
}

type migTx struct{ tx pgx.Tx }

func (t migTx) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := t.tx.Exec(ctx, sql, args...)
	return err
}

func (t migTx) QueryInts(ctx context.Context, sql string, args ...any) ([]int, error) {
	rows, err := t.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}
