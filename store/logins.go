package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Failed logins live in the database, so that every replica counts the same ones: with
// counters per process, N replicas would allow N times the guesses. Keys are the
// caller's digests (the API hashes username and address), so that no username, which is
// sometimes a password typed into the wrong field, is stored in clear.

// LoginFailures returns, for each key, the times of its failures after since, newest
// first, at most limit of them.
func (s *Store) LoginFailures(ctx context.Context, keys [][]byte, since time.Time, limit int) ([][]time.Time, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT k.i, f.at FROM unnest($1::bytea[]) WITH ORDINALITY AS k (key, i)
		CROSS JOIN LATERAL (SELECT f.at FROM login_failures f WHERE f.key = k.key AND f.at > $2
			ORDER BY f.at DESC LIMIT $3) f
		ORDER BY k.i, f.at DESC`, keys, since, limit)
	if err != nil {
		return nil, mapErr("reading failed logins", err)
	}
	out := make([][]time.Time, len(keys))
	var i int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&i, &at}, func() error {
		out[i-1] = append(out[i-1], at)
		return nil
	})
	return out, mapErr("reading failed logins", err)
}

// loginFailureSweep is how many expired failures each new failure deletes: a failure
// adds a row a key (two), so the table shrinks back to the failures inside the window
// however many keys were tried once and never again, and no job has to clean it.
const loginFailureSweep = 100

// AddLoginFailure records a failure at the time at under every key, and deletes up to a
// hundred failures from before expired (nothing counts them any more).
func (s *Store) AddLoginFailure(ctx context.Context, keys [][]byte, at, expired time.Time) error {
	_, err := s.pool.Exec(ctx, `
		WITH gone AS (
			DELETE FROM login_failures WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM login_failures WHERE at <= $3 LIMIT $4)))
		INSERT INTO login_failures (key, at) SELECT k, $2 FROM unnest($1::bytea[]) k`,
		keys, at, expired, loginFailureSweep)
	return mapErr("recording a failed login", err)
}

// ClearLoginFailures forgets the failures of a key (a correct password was given).
func (s *Store) ClearLoginFailures(ctx context.Context, key []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key)
	return mapErr("clearing failed logins", err)
}
