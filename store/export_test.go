package store

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
)

// OpenStoredKey decrypts one stored key column of a security key row as the store does
// (tests only: no route returns the master key).
func (s *Store) OpenStoredKey(id uuid.UUID, column string, enc []byte) (*string, error) {
	v, _, err := openKey(s.keys, id, column, enc)
	return v, err
}

// SealBareKey seals a value as amrd did before key ids (nonce || ciphertext), under the
// key derived from secret: what rows written by earlier versions hold.
func SealBareKey(secret string, row uuid.UUID, column, v string) []byte {
	r, err := newKeyRing(secret, nil)
	if err != nil {
		panic(err)
	}
	a := r.current().aead
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, []byte(v), keyAAD(nil, row, column))
}

// AppendNumeric and RegisterNumeric expose the fast numeric encoding to the tests.
var (
	AppendNumeric   = appendNumeric
	RegisterNumeric = registerNumeric
)

// NumericArg wraps a decimal as the writes pass it to COPY.
func NumericArg(d *apd.Decimal) any { return numeric{d} }

// SeriesHasReadings is the check that refuses to delete a series with readings.
func (s *Store) SeriesHasReadings(ctx context.Context, series uuid.UUID) (bool, error) {
	err := refuseIfReadings(ctx, s.pool, series, "")
	var ce *ConflictError
	if errors.As(err, &ce) {
		return true, nil
	}
	return false, err
}

// SeriesHasReadingsProbeAll answers the same by probing every device in every chunk: the
// straightforward check, the reference of the tests and the benchmark.
func (s *Store) SeriesHasReadingsProbeAll(ctx context.Context, series uuid.UUID) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM meter_devices d CROSS JOIN LATERAL (
			SELECT 1 FROM meter_readings r
			WHERE r.device_key = d.key AND r.series_key = (SELECT key FROM meter_reading_series WHERE id = $1)
			LIMIT 1) r)`, series).Scan(&found)
	return found, err
}

// SetDenseRecompute makes RecomputeMarked re-aggregate every batch of marks it can
// (1), never (-1), or when cheaper (0, amrd's).
func (s *Store) SetDenseRecompute(mode int) { s.denseRecompute = mode }

// CarriedDays tells what the store keeps of the last slice's open days: where that slice
// ended, the zones whose open day it kept, and how many device and series sums.
func (s *Store) CarriedDays() (hi time.Time, zones []string, sums int) {
	s.carryMu.Lock()
	defer s.carryMu.Unlock()
	if s.carry == nil {
		return time.Time{}, nil, 0
	}
	for z := range s.carry.days {
		zones = append(zones, z)
	}
	slices.Sort(zones)
	return fromPGMicros(s.carry.hi), zones, len(s.carry.sums)
}

// CarriedSteps counts the late steps computed from the readings the last slice carried,
// without looking them up.
func (s *Store) CarriedSteps() int64 { return s.carriedSteps.Load() }

// RecomputeMarkedFully is RecomputeMarked without its first pass, the late steps on the
// materialized point: what it does with marks that arrive between the two.
func (s *Store) RecomputeMarkedFully(ctx context.Context, limit int) (RollupResult, error) {
	return s.recomputeMarked(ctx, limit)
}
