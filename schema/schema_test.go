package schema

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeDB is a schema.DB that keeps schema_migrations in memory. Each InTx works on a copy
// of the committed state and keeps it only when fn returns nil, as a real transaction
// would.
type fakeDB struct {
	timescale bool         // what pg_available_extensions reports
	recorded  map[int]bool // committed rows of schema_migrations
	applied   []string     // committed migration bodies, in order
	txs       int          // transactions begun
}

func newFakeDB(timescale bool, recorded ...int) *fakeDB {
	db := &fakeDB{timescale: timescale, recorded: map[int]bool{}}
	for _, v := range recorded {
		db.recorded[v] = true
	}
	return db
}

func (db *fakeDB) InTx(ctx context.Context, fn func(Tx) error) error {
	db.txs++
	tx := &fakeTx{db: db, recorded: map[int]bool{}}
	if err := fn(tx); err != nil {
		return err // rolled back: nothing of tx is kept
	}
	for v := range tx.recorded {
		db.recorded[v] = true
	}
	db.applied = append(db.applied, tx.applied...)
	return nil
}

type fakeTx struct {
	db       *fakeDB
	recorded map[int]bool
	applied  []string
}

func (tx *fakeTx) Exec(ctx context.Context, sql string, args ...any) error {
	switch {
	case strings.HasPrefix(sql, "SELECT pg_advisory_xact_lock"),
		strings.HasPrefix(sql, "CREATE TABLE IF NOT EXISTS schema_migrations"):
		return nil
	case strings.HasPrefix(sql, "INSERT INTO schema_migrations"):
		if len(args) != 2 {
			return errors.New("fake: INSERT INTO schema_migrations wants version and name")
		}
		v, ok := args[0].(int)
		if !ok {
			return errors.New("fake: version is not an int")
		}
		tx.recorded[v] = true
		return nil
	default:
		tx.applied = append(tx.applied, sql)
		return nil
	}
}

func (tx *fakeTx) QueryInts(ctx context.Context, sql string, args ...any) ([]int, error) {
	switch {
	case strings.Contains(sql, "FROM schema_migrations"):
		v, ok := args[0].(int)
		if !ok {
			return nil, errors.New("fake: version is not an int")
		}
		if tx.db.recorded[v] || tx.recorded[v] {
			return []int{v}, nil
		}
		return nil, nil
	case strings.Contains(sql, "pg_available_extensions"):
		if tx.db.timescale {
			return []int{1}, nil
		}
		return []int{0}, nil
	}
	return nil, errors.New("fake: unexpected query " + sql)
}

func TestMigrations(t *testing.T) {
	migs, err := Migrations()
	require.NoError(t, err)
	require.NotEmpty(t, migs)
	require.Equal(t, 1, migs[0].Version, "the first migration is version 1")
	require.Equal(t, "0001_init.sql", migs[0].Name)
	for i, m := range migs {
		t.Run(m.Name, func(t *testing.T) {
			require.NotEmpty(t, strings.TrimSpace(m.SQL))
			require.True(t, strings.HasSuffix(m.Name, ".sql"))
			if i > 0 {
				require.Greater(t, m.Version, migs[i-1].Version, "versions ascend")
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	migs, err := Migrations()
	require.NoError(t, err)
	all := make([]int, len(migs))
	for i, m := range migs {
		all[i] = m.Version
	}

	tests := []struct {
		name        string
		timescale   bool
		recorded    []int
		wantErr     error
		wantApplied []int
		wantSQL     int // migration bodies executed
	}{
		{name: "fresh database", timescale: true, wantApplied: all, wantSQL: len(migs)},
		{name: "no timescaledb", timescale: false, wantErr: ErrNoTimescaleDB, wantApplied: nil, wantSQL: 0},
		{name: "all recorded already", timescale: true, recorded: all, wantApplied: nil, wantSQL: 0},
		// A recorded version is skipped before the extension is checked for.
		{name: "all recorded, no timescaledb", timescale: false, recorded: all, wantApplied: nil, wantSQL: 0},
		{name: "version 1 recorded", timescale: true, recorded: []int{1}, wantApplied: all[1:], wantSQL: len(migs) - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newFakeDB(tc.timescale, tc.recorded...)
			got, err := Migrate(context.Background(), db)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			if len(tc.wantApplied) == 0 {
				require.Empty(t, got)
			} else {
				require.Equal(t, tc.wantApplied, got)
			}
			require.Len(t, db.applied, tc.wantSQL)

			want := map[int]bool{}
			for _, v := range tc.recorded {
				want[v] = true
			}
			for _, v := range tc.wantApplied {
				want[v] = true
			}
			require.Equal(t, want, db.recorded, "schema_migrations holds what was recorded before and what was applied")
		})
	}
}

func TestMigrateAppliesInVersionOrder(t *testing.T) {
	migs, err := Migrations()
	require.NoError(t, err)
	db := newFakeDB(true)
	_, err = Migrate(context.Background(), db)
	require.NoError(t, err)
	require.Len(t, db.applied, len(migs))
	for i, m := range migs {
		require.Equal(t, m.SQL, db.applied[i], "migration %s ran in position %d", m.Name, i)
	}
	require.Equal(t, len(migs), db.txs, "one transaction per migration")

	// A second run finds every version recorded and applies nothing.
	again, err := Migrate(context.Background(), db)
	require.NoError(t, err)
	require.Empty(t, again)
	require.Len(t, db.applied, len(migs))
}

func TestMigrateStopsOnDatabaseError(t *testing.T) {
	boom := errors.New("boom")
	db := errDB{err: boom}
	got, err := Migrate(context.Background(), db)
	require.ErrorIs(t, err, boom)
	require.Empty(t, got)
}

// errDB fails every transaction with err.
type errDB struct{ err error }

func (db errDB) InTx(ctx context.Context, fn func(Tx) error) error { return db.err }
