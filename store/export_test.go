package store

import (
	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
)

// OpenStoredKey decrypts one stored key column of a security key row as the store does
// (tests only: no route returns the master key).
func (s *Store) OpenStoredKey(id uuid.UUID, column string, enc []byte) (*string, error) {
	return openKey(s.keys, id, column, enc)
}

// AppendNumeric and RegisterNumeric expose the fast numeric encoding to the tests.
var (
	AppendNumeric   = appendNumeric
	RegisterNumeric = registerNumeric
)

// NumericArg wraps a decimal as the writes pass it to COPY.
func NumericArg(d *apd.Decimal) any { return numeric{d} }
