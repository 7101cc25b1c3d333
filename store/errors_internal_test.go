package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestMapErr(t *testing.T) {
	t.Parallel()
	pg := func(code, msg string) error { return &pgconn.PgError{Code: code, Message: msg} }
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"no rows", pgx.ErrNoRows, ErrNotFound},
		{"deadlock", pg("40P01", "deadlock detected"), ErrUnavailable},
		{"serialization", pg("40001", "could not serialize access"), ErrUnavailable},
		{"a chunk dropped under the statement", fmt.Errorf("copying: %w", pg("XX000", "could not open relation with OID 18254")), ErrUnavailable},
		{"another internal error", pg("XX000", "cache lookup failed for type 1"), nil},
		{"check", pg("23514", "violates check constraint"), ErrInvalid},
		{"data exception", pg("22001", "value too long"), ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := mapErr("doing it", c.err)
			require.Error(t, got)
			if c.want != nil {
				require.ErrorIs(t, got, c.want)
			} else {
				for _, s := range []error{ErrUnavailable, ErrInvalid, ErrNotFound, ErrConflict} {
					require.NotErrorIs(t, got, s)
				}
			}
			require.Equal(t, got, mapErr("doing it again", got), "mapping twice changes nothing")
		})
	}
	require.ErrorIs(t, mapErr("x", context.Canceled), context.Canceled)
	var fe *FieldError
	require.True(t, errors.As(mapErr("x", &FieldError{Field: "f", Msg: "m"}), &fe))
}
