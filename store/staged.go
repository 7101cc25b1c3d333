package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// StagedReading is a reading kept for a device name that did not exist when it arrived.
type StagedReading struct {
	ID         int64     `json:"id"`
	DeviceName string    `json:"meter_device_name"`
	SeriesName string    `json:"series_name"`
	Time       time.Time `json:"timestamp"`
	Value      Decimal   `json:"value"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// StagedFilter selects staged readings; zero fields select everything.
type StagedFilter struct {
	DeviceName string
	Start, End time.Time // inclusive, on the reading's timestamp
}

const stagedCols = `id, meter_device_name, series_name, ts, value::text, created_at, updated_at`

func scanStaged(row pgx.CollectableRow) (StagedReading, error) {
	var v StagedReading
	err := row.Scan(&v.ID, &v.DeviceName, &v.SeriesName, &v.Time, &v.Value, &v.CreatedAt, &v.UpdatedAt)
	return v, err
}

// ListStaged returns one page of staged readings, oldest received first.
func (s *Store) ListStaged(ctx context.Context, f StagedFilter, p Page) ([]StagedReading, int, error) {
	conds := []string{"true"}
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.DeviceName != "" {
		add("meter_device_name = $%d", f.DeviceName)
	}
	if !f.Start.IsZero() {
		add("ts >= $%d", f.Start)
	}
	if !f.End.IsZero() {
		add("ts <= $%d", f.End)
	}
	where := " WHERE " + strings.Join(conds, " AND ")
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM staged_meter_readings"+where, args...).Scan(&n); err != nil {
		return nil, 0, mapErr("counting staged readings", err)
	}
	args = append(args, p.Limit, p.Offset)
	rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT %s FROM staged_meter_readings%s ORDER BY created_at, id LIMIT $%d OFFSET $%d",
		stagedCols, where, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, mapErr("listing staged readings", err)
	}
	list, err := pgx.CollectRows(rows, scanStaged)
	return list, n, mapErr("listing staged readings", err)
}

// GetStaged returns one staged reading.
func (s *Store) GetStaged(ctx context.Context, id int64) (StagedReading, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+stagedCols+` FROM staged_meter_readings WHERE id = $1`, id)
	v, err := pgx.CollectExactlyOneRow(rows, scanStaged)
	return v, mapErr("reading a staged reading", err)
}

// errStagedConflict answers a staged reading whose device name, series and timestamp are
// staged already with another value.
var errStagedConflict = &ConflictError{Msg: "A staged reading with this meter_device_name, series_name and timestamp " +
	"exists already, with another value; it was not overwritten."}

// CreateStaged stages a reading. A name of an existing device is refused: its readings go
// through the pipeline. A reading staged already (the same device name, series,
// timestamp and value) is not staged again: the staged row is returned, as a re-send of
// a stored reading answers the stored one; another value for it is a conflict.
func (s *Store) CreateStaged(ctx context.Context, in StagedReading) (StagedReading, error) {
	var out StagedReading
	err := s.inTx(ctx, "staging a reading", func(tx pgx.Tx) error {
		if err := refuseDeviceName(ctx, tx, in.DeviceName); err != nil {
			return err
		}
		var o int16
		var id int64
		if err := tx.QueryRow(ctx, `SELECT outcome, id FROM amrd_stage_readings(true, $1::text[], $2::text[], $3::timestamptz[],
			$4::timestamp[], $5::text[]::numeric[])`, []string{in.DeviceName}, []string{in.SeriesName}, []time.Time{in.Time},
			[]pgtype.Timestamp{{}}, []string{in.Value.String()}).Scan(&o, &id); err != nil {
			return err
		}
		if Outcome(o) == Conflict {
			return errStagedConflict
		}
		rows, _ := tx.Query(ctx, `SELECT `+stagedCols+` FROM staged_meter_readings WHERE id = $1`, id)
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, scanStaged)
		return err
	})
	return out, err
}

// UpdateStaged replaces a staged reading's fields. The device name, series and timestamp
// of another staged reading are refused (409): it would be staged twice.
func (s *Store) UpdateStaged(ctx context.Context, id int64, in StagedReading) (StagedReading, error) {
	var out StagedReading
	err := s.inTx(ctx, "updating a staged reading", func(tx pgx.Tx) error {
		if err := refuseDeviceName(ctx, tx, in.DeviceName); err != nil {
			return err
		}
		// Under the name's staging lock, so that no writer stages the new key meanwhile
		// (the next statement reads after the lock).
		if _, err := tx.Exec(ctx, `SELECT amrd_lock_staged($1::text[])`, []string{in.DeviceName}); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM staged_meter_readings o JOIN staged_meter_readings x ON x.id = $1
			WHERE o.meter_device_name = $2 AND o.series_name = $3 AND o.ts = $4 AND o.local_time IS NOT DISTINCT FROM x.local_time
			AND o.id <> $1)`, id, in.DeviceName, in.SeriesName, in.Time).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return &ConflictError{Msg: "Another staged reading has this meter_device_name, series_name and timestamp."}
		}
		rows, _ := tx.Query(ctx, `UPDATE staged_meter_readings SET meter_device_name = $2, series_name = $3, ts = $4,
			value = $5::numeric, updated_at = now() WHERE id = $1 RETURNING `+stagedCols,
			id, in.DeviceName, in.SeriesName, in.Time, in.Value.String())
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, scanStaged)
		return err
	})
	return out, err
}

// DeleteStaged removes a staged reading.
func (s *Store) DeleteStaged(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM staged_meter_readings WHERE id = $1`, id)
	if err != nil {
		return mapErr("deleting a staged reading", err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr("deleting a staged reading", pgx.ErrNoRows)
	}
	return nil
}

func refuseDeviceName(ctx context.Context, q querier, name string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meter_devices WHERE name = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return &FieldError{Field: "meter_device_name", Msg: "A meter device with this name exists: send its readings to new-meter-readings."}
	}
	return nil
}

// Promotion of staged readings, when a device with their name is created or renamed.
//
// It runs inside the transaction that creates or renames the device, so the device and
// its promoted readings appear together or not at all (a crash mid-way loses nothing).
// The staged rows are locked (FOR UPDATE), so two promotions of one name take turns and
// the second finds nothing left. Validation is the pipeline's: the series must be in the
// device's config (device -> type -> config -> series), the CT/VT factor is the device's
// now, and a reading sent without a UTC offset is read in the config's time zone (one the
// zone skips stays staged; one it repeats takes PostgreSQL's reading, the standard time). A reading that is already stored with the same value is absorbed; one that
// conflicts, or whose series is not allowed, stays staged until it expires.
var promoteSQL = `
WITH cand AS (
	SELECT st.id, d.key AS device_key, s.key AS series_key, st.value,
		-- a wall-clock time is read in the config's zone now that the device has one
		CASE WHEN st.local_time IS NULL THEN st.ts ELSE st.local_time AT TIME ZONE c.timezone END AS ts,
		(CASE WHEN s.affected_by_ct_ratio AND d.has_current_transformer THEN d.current_transformer_ratio ELSE 1 END)::bigint *
		(CASE WHEN s.affected_by_vt_ratio AND d.has_voltage_transformer THEN d.voltage_transformer_ratio ELSE 1 END)::bigint AS factor
	FROM staged_meter_readings st
	JOIN meter_devices d ON d.name = st.meter_device_name
	JOIN meter_device_types t ON t.id = d.type_id
	JOIN meter_device_configs c ON c.id = t.config_id
	JOIN meter_device_config_series cs ON cs.config_id = c.id
	JOIN meter_reading_series s ON s.id = cs.series_id AND s.name = st.series_name
	WHERE st.meter_device_name = $1
	-- a wall-clock time that the zone skips (DST) does not round-trip: it stays staged
	AND (st.local_time IS NULL OR (st.local_time AT TIME ZONE c.timezone) AT TIME ZONE c.timezone = st.local_time)
	FOR UPDATE OF st
), first AS (
	-- one row per key: the oldest staged one wins, later ones with another value conflict
	SELECT DISTINCT ON (device_key, series_key, ts) * FROM cand ORDER BY device_key, series_key, ts, id
), ins AS (
	INSERT INTO meter_readings (device_key, series_key, ts, value, factor)
	SELECT device_key, series_key, ts, value, factor FROM first
	ON CONFLICT (device_key, series_key, ts) DO NOTHING
	RETURNING device_key, series_key, ts, value, factor
), mk AS (` + markSQL("ins", false) + `
), gone AS (
	DELETE FROM staged_meter_readings st USING cand c
	WHERE st.id = c.id AND (
		EXISTS (SELECT 1 FROM ins i WHERE i.device_key = c.device_key AND i.series_key = c.series_key AND i.ts = c.ts AND i.value = c.value)
		OR EXISTS (SELECT 1 FROM meter_readings m WHERE m.device_key = c.device_key AND m.series_key = c.series_key AND m.ts = c.ts AND m.value = c.value))
	RETURNING st.id
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM gone)`

// promoteStaged moves the staged readings of a device name into the readings hypertable,
// inside the caller's transaction. It returns how many readings were written and how many
// staged rows left staging (written or absorbed as duplicates).
func promoteStaged(ctx context.Context, q querier, deviceName string) (written, cleared int64, err error) {
	err = q.QueryRow(ctx, promoteSQL, deviceName).Scan(&written, &cleared)
	return written, cleared, err
}

// PromoteStaged promotes the staged readings of a device name in a transaction of its own
// (for a retry or a job; device creation and renaming do it in theirs).
func (s *Store) PromoteStaged(ctx context.Context, deviceName string) (written, cleared int64, err error) {
	err = s.inTx(ctx, "promoting staged readings", func(tx pgx.Tx) error {
		written, cleared, err = promoteStaged(ctx, tx, deviceName)
		return err
	})
	return written, cleared, err
}
