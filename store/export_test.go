package store

import "github.com/google/uuid"

// OpenStoredKey decrypts one stored key column of a security key row as the store does
// (tests only: no route returns the master key).
func (s *Store) OpenStoredKey(id uuid.UUID, column string, enc []byte) (*string, error) {
	return openKey(s.keys, id, column, enc)
}
