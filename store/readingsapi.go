package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterReading is one stored reading, as the meter-readings routes show it.
type MeterReading struct {
	ID             int64      `json:"id"`
	OrganizationID *uuid.UUID `json:"organization"`
	DeviceID       uuid.UUID  `json:"meter_device"`
	SeriesID       uuid.UUID  `json:"series"`
	Time           time.Time  `json:"timestamp"`
	Value          Decimal    `json:"value"`
	CreatedAt      time.Time  `json:"created_at"`
}

// ReadingPoint is a reading in a list: its time and value.
type ReadingPoint struct {
	Time  time.Time `json:"timestamp"`
	Value Decimal   `json:"value"`
}

// ReadingFilter selects readings; zero fields select everything.
type ReadingFilter struct {
	Device, Series uuid.UUID
	Start, End     time.Time // inclusive
	// Scaled applies the CT/VT factor stored with each reading; SI also multiplies by
	// the series' si_multiplier.
	Scaled, SI bool
}

const readingJoin = ` FROM meter_readings r
	JOIN meter_devices d ON d.key = r.device_key
	JOIN meter_reading_series s ON s.key = r.series_key`

// ListReadings returns one page of readings in scope, oldest first (then by device and
// series), and how many match. Device and series filters are resolved to their compact
// keys first, so that the hypertable's (device, series, time) index serves the query.
func (s *Store) ListReadings(ctx context.Context, sc Scope, f ReadingFilter, p Page) ([]ReadingPoint, int, error) {
	all, orgs := sc.args()
	conds := []string{"($1 OR d.organization_id = ANY($2))"}
	args := []any{all, orgs}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Device != uuid.Nil {
		add("r.device_key = (SELECT key FROM meter_devices WHERE id = $%d)", f.Device)
	}
	if f.Series != uuid.Nil {
		add("r.series_key = (SELECT key FROM meter_reading_series WHERE id = $%d)", f.Series)
	}
	if !f.Start.IsZero() {
		add("r.ts >= $%d", f.Start)
	}
	if !f.End.IsZero() {
		add("r.ts <= $%d", f.End)
	}
	where := " WHERE " + strings.Join(conds, " AND ")
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*)"+readingJoin+where, args...).Scan(&n); err != nil {
		return nil, 0, mapErr("counting readings", err)
	}
	value := "r.value"
	if f.Scaled || f.SI {
		value += " * r.factor"
	}
	if f.SI {
		value += " * s.si_multiplier"
	}
	args = append(args, p.Limit, p.Offset)
	rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT r.ts, (%s)::text%s%s ORDER BY r.ts, r.device_key, r.series_key LIMIT $%d OFFSET $%d",
		value, readingJoin, where, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, mapErr("listing readings", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReadingPoint, error) {
		var pt ReadingPoint
		err := row.Scan(&pt.Time, &pt.Value)
		return pt, err
	})
	return list, n, mapErr("listing readings", err)
}

const readingCols1 = `SELECT r.id, d.organization_id, d.id, s.id, r.ts, r.value::text, r.created_at`

func scanReading(row pgx.CollectableRow) (MeterReading, error) {
	var m MeterReading
	err := row.Scan(&m.ID, &m.OrganizationID, &m.DeviceID, &m.SeriesID, &m.Time, &m.Value, &m.CreatedAt)
	return m, err
}

// GetReading returns one reading in scope by id.
func (s *Store) GetReading(ctx context.Context, sc Scope, id int64) (MeterReading, error) {
	all, orgs := sc.args()
	rows, _ := s.pool.Query(ctx, readingCols1+readingJoin+` WHERE r.id = $1 AND ($2 OR d.organization_id = ANY($3))`, id, all, orgs)
	m, err := pgx.CollectExactlyOneRow(rows, scanReading)
	return m, mapErr("reading a meter reading", err)
}

// ReadingAt returns the reading of a device and series at an instant.
func (s *Store) ReadingAt(ctx context.Context, device, series uuid.UUID, ts time.Time) (MeterReading, error) {
	rows, _ := s.pool.Query(ctx, readingCols1+readingJoin+` WHERE d.id = $1 AND s.id = $2 AND r.ts = $3`, device, series, ts)
	m, err := pgx.CollectExactlyOneRow(rows, scanReading)
	return m, mapErr("reading a meter reading", err)
}

// DeleteReading removes one reading in scope.
func (s *Store) DeleteReading(ctx context.Context, sc Scope, id int64) error {
	all, orgs := sc.args()
	// The reading's rollup buckets are marked in the same statement (late data's way).
	var n int
	err := s.pool.QueryRow(ctx, `WITH del AS (
			DELETE FROM meter_readings r USING meter_devices d
			WHERE r.id = $1 AND d.key = r.device_key AND ($2 OR d.organization_id = ANY($3))
			RETURNING r.device_key, r.series_key, r.ts),
		mk AS (`+markSQL("del", true)+`)
		SELECT count(*) FROM del`, id, all, orgs).Scan(&n)
	if err != nil {
		return mapErr("deleting a meter reading", err)
	}
	if n == 0 {
		return mapErr("deleting a meter reading", pgx.ErrNoRows)
	}
	return nil
}
