package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// WithJobLock runs fn while holding the PostgreSQL advisory lock named after the job, so
// that one replica at a time runs it; it reports false, without running fn, when another
// session holds the lock. The lock is a session lock on a connection of its own (from
// the job lock pool, see Store.locks): if amrd dies, PostgreSQL ends the session and
// frees it.
func (s *Store) WithJobLock(ctx context.Context, job string, fn func(context.Context) error) (bool, error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return false, mapErr("locking job "+job, err)
	}
	defer conn.Release()
	key := "amrd.job." + job
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&got); err != nil {
		return false, mapErr("locking job "+job, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		// The job's context may be over; the unlock must still happen, or the pooled
		// session keeps the lock. A failed unlock closes the session, which frees it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key); err != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()
	return true, fn(ctx)
}

// RunTarget is what an executor needs to reach and read a meter device.
type RunTarget struct {
	DeviceID   uuid.UUID
	DeviceName string
	Protocol   string
	// IECAddress is the device's iec62056_21_address ("" when unset).
	IECAddress string
	// InterfaceID is the device's network interface; nil when it has none.
	InterfaceID *uuid.UUID
	// Host is the FQDN, else the static IP address, else the SIM's IP address.
	Host     string
	Port     int
	CanBlock bool
	// TimeZone is the device config's zone; "" when the device has no config.
	TimeZone string
	// Series are the names of the series the device's config allows.
	Series []string
}

// TaskRunTarget returns the device a run reads, with its network interface and the
// series its config allows.
func (s *Store) TaskRunTarget(ctx context.Context, deviceID uuid.UUID) (RunTarget, error) {
	var t RunTarget
	err := s.pool.QueryRow(ctx, `
		SELECT d.id, d.name, d.protocol, coalesce(d.iec62056_21_address, ''), n.id,
			coalesce(nullif(n.fqdn, ''), nullif(n.static_ip_address, ''), nullif(sc.ip_address, ''), ''),
			coalesce(n.port, 0), coalesce(n.can_block, false), coalesce(c.timezone, ''),
			coalesce((SELECT array_agg(s.name ORDER BY s.name) FROM meter_device_config_series cs
				JOIN meter_reading_series s ON s.id = cs.series_id WHERE cs.config_id = c.id), '{}')
		FROM meter_devices d
		LEFT JOIN network_interfaces n ON n.id = d.network_interface_id
		LEFT JOIN sim_cards sc ON sc.id = n.sim_id
		LEFT JOIN meter_device_types ty ON ty.id = d.type_id
		LEFT JOIN meter_device_configs c ON c.id = ty.config_id
		WHERE d.id = $1`, deviceID).Scan(&t.DeviceID, &t.DeviceName, &t.Protocol, &t.IECAddress, &t.InterfaceID,
		&t.Host, &t.Port, &t.CanBlock, &t.TimeZone, &t.Series)
	return t, mapErr("reading a run's meter device", err)
}

// BlockInterface marks a network interface blocked from now on for a run, unless
// another run holds it with a block that began at or after staleBefore. It reports
// whether the block is now this caller's.
func (s *Store) BlockInterface(ctx context.Context, id uuid.UUID, now, staleBefore time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE network_interfaces SET is_blocked = true, block_time = $2
		WHERE id = $1 AND (NOT is_blocked OR block_time IS NULL OR block_time < $3)`, id, now, staleBefore)
	if err != nil {
		return false, mapErr("blocking a network interface", err)
	}
	return tag.RowsAffected() == 1, nil
}

// UnblockInterface ends the block that began at since (the caller's own block; a block
// taken over after it went stale is left alone).
func (s *Store) UnblockInterface(ctx context.Context, id uuid.UUID, since time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE network_interfaces SET is_blocked = false, block_time = NULL
		WHERE id = $1 AND is_blocked AND block_time = $2`, id, since)
	return mapErr("unblocking a network interface", err)
}

// ReleaseStaleBlocks ends every network interface block that began before the cutoff
// (its run's amrd died, or hung past every deadline) and returns how many.
func (s *Store) ReleaseStaleBlocks(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE network_interfaces SET is_blocked = false, block_time = NULL
		WHERE is_blocked AND (block_time IS NULL OR block_time < $1)`, before)
	if err != nil {
		return 0, mapErr("releasing stale network interface blocks", err)
	}
	return tag.RowsAffected(), nil
}

// Hypertables that retention expires.
const (
	TableReadings     = "meter_readings"
	TableSystemEvents = "meter_system_events"
	TableStaged       = "staged_meter_readings"

	TableRollupHourly       = "rollup_hourly"
	TableRollupSeriesHourly = "rollup_series_hourly"
	TableRollupDaily        = "rollup_daily"
)

// DropChunks drops the chunks of a hypertable whose whole time range is older than the
// cutoff (readings and system events by their time, staged readings by when they were
// received) and returns how many it dropped. Newer chunks, and the chunk the cutoff
// falls in, are kept whole.
func (s *Store) DropChunks(ctx context.Context, table string, olderThan time.Time) (int, error) {
	switch table {
	case TableReadings, TableSystemEvents, TableStaged:
	case TableRollupHourly, TableRollupSeriesHourly:
		return s.dropHourly(ctx, table, olderThan)
	case TableRollupDaily:
		// Its time column is the local day (a date).
		rows, err := s.pool.Query(ctx, "SELECT drop_chunks($1::regclass, older_than => $2::date)", table, olderThan)
		if err != nil {
			return 0, mapErr("dropping chunks of "+table, err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		return len(names), mapErr("dropping chunks of "+table, err)
	default:
		return 0, fmt.Errorf("dropping chunks of %q: %w", table, ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, "SELECT drop_chunks($1::regclass, older_than => $2::timestamptz)", table, olderThan)
	if err != nil {
		return 0, mapErr("dropping chunks of "+table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return len(names), mapErr("dropping chunks of "+table, err)
}

// dropHourly drops the chunks of an hourly rollup table (device or series) older than
// the cutoff and, in the same transaction, moves rollup_state.hourly_horizon to the end
// of the newest one dropped: below it the hourly rollups no longer say which series had
// readings, and the series deletion check (amrd_series_has_readings) probes the raw
// readings there instead.
func (s *Store) dropHourly(ctx context.Context, table string, olderThan time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, "dropping chunks of "+table, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT format('%I.%I', chunk_schema, chunk_name), range_end FROM timescaledb_information.chunks
			WHERE hypertable_schema = 'public' AND hypertable_name = $1`, table)
		if err != nil {
			return err
		}
		ends := map[string]time.Time{}
		for rows.Next() {
			var name string
			var end time.Time
			if err := rows.Scan(&name, &end); err != nil {
				rows.Close()
				return err
			}
			ends[name] = end
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, "SELECT drop_chunks($1::regclass, older_than => $2::timestamptz)", table, olderThan)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = len(names)
		if n == 0 {
			return nil
		}
		var horizon time.Time
		for _, name := range names {
			end, ok := ends[name]
			if !ok {
				// A chunk made since the list was read: the cutoff bounds what it held.
				end = olderThan
			}
			if end.After(horizon) {
				horizon = end
			}
		}
		_, err = tx.Exec(ctx, `UPDATE rollup_state SET hourly_horizon = greatest(hourly_horizon, $1), version = version + 1`, horizon)
		return err
	})
	return n, err
}

// PromoteAllStaged promotes the staged readings of every device name that exists now, one
// transaction a device. Creating or renaming a device promotes its own; this catches
// readings staged while the device was being created, in the instant before the name
// cache saw it. It returns the readings written and the staged rows cleared.
func (s *Store) PromoteAllStaged(ctx context.Context) (written, cleared int64, err error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT st.meter_device_name FROM staged_meter_readings st
		WHERE EXISTS (SELECT 1 FROM meter_devices d WHERE d.name = st.meter_device_name)`)
	if err != nil {
		return 0, 0, mapErr("finding staged readings to promote", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, mapErr("finding staged readings to promote", err)
	}
	for _, name := range names {
		w, c, err := s.PromoteStaged(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return written, cleared, err
		}
		written += w
		cleared += c
	}
	return written, cleared, nil
}
