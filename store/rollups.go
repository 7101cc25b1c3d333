package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"
)

// Rollups are amrd's own continuous aggregates (schema 0004): hourly buckets in UTC and
// daily buckets in each device's local days, kept up to a watermark by the rollup job.
//
// Two instants in rollup_state drive them. threshold: every reading written at or below
// it marks its device, series and time in rollup_marks, in the transaction that writes it.
// materialized: every bucket that ends at or before it is in the rollup tables, except the
// marked ones. The job first moves the threshold (a transaction that takes the rollup
// lock in exclusive mode, which writers hold in shared mode while they write: see
// amrd_rollup_threshold), then materializes up to it from the raw readings, then
// recomputes what is marked. So a rollup is never silently stale: a reading is either
// seen by the materialization or marked for recomputation.

// RollupState is where the rollups stand; a zero time is "nothing yet".
type RollupState struct {
	Threshold    time.Time
	Materialized time.Time
	// RawHorizon: retention dropped the raw readings below it.
	RawHorizon time.Time
	// Marks is how many marks wait for recomputation; OldestMark the earliest time they
	// cover (zero without marks).
	Marks      int64
	OldestMark time.Time
}

// RollupResult counts what one materialization or recomputation wrote.
type RollupResult struct {
	Readings       int64 // raw readings aggregated (materialization only)
	Hourly, Daily  int64 // device buckets written
	SeriesHourly   int64 // series buckets written
	Recomputed     int64 // (device, series) ranges recomputed from marks
	MarksDiscarded int64 // marks below the raw horizon, whose buckets are frozen
	Marks          int64 // marks taken (recomputation only)
	// Steps counts the late readings on the materialized point whose step was added to
	// the stored buckets instead of recomputing them (recomputeBoundary).
	Steps int64
}

// Add adds o's counts to r's.
func (r *RollupResult) Add(o RollupResult) {
	r.Readings += o.Readings
	r.Hourly += o.Hourly
	r.Daily += o.Daily
	r.SeriesHourly += o.SeriesHourly
	r.Recomputed += o.Recomputed
	r.MarksDiscarded += o.MarksDiscarded
	r.Marks += o.Marks
	r.Steps += o.Steps
}

// rollupLock is the advisory lock key of amrd_rollup_threshold (schema 0004).
const rollupLock int64 = 7236982715031363584

// markSQL inserts the marks of the rows of relation rel (device_key, series_key, ts; and
// value and factor for rows inserted) that lie at or below the rollup threshold: rows
// inserted, or with deleted rows deleted. The threshold is read once (an init plan),
// after the rollup lock is taken in shared mode for the rest of the transaction.
func markSQL(rel string, deleted bool) string {
	cols, vals := "deleted", "true"
	if !deleted {
		// A mark of one inserted reading carries its value and factor (schema 0010).
		cols, vals = "value, factor", "CASE WHEN count(*) = 1 THEN min(value) END, CASE WHEN count(*) = 1 THEN min(factor) END"
	}
	return `INSERT INTO rollup_marks (device_key, series_key, ts_min, ts_max, ` + cols + `)
		SELECT device_key, series_key, min(ts), max(ts), ` + vals + ` FROM ` + rel + `
		WHERE ts <= (SELECT amrd_rollup_threshold()) GROUP BY device_key, series_key`
}

func tsOrZero(t pgtype.Timestamptz) time.Time {
	if !t.Valid || t.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return t.Time
}

// RollupState reads rollup_state and counts the pending marks.
func (s *Store) RollupState(ctx context.Context) (RollupState, error) {
	var th, mat, hor, oldest pgtype.Timestamptz
	var st RollupState
	err := s.pool.QueryRow(ctx, `SELECT threshold, materialized, raw_horizon,
		(SELECT count(*) FROM rollup_marks), (SELECT min(ts_min) FROM rollup_marks) FROM rollup_state`).
		Scan(&th, &mat, &hor, &st.Marks, &oldest)
	if err != nil {
		return st, mapErr("reading the rollup state", err)
	}
	st.Threshold, st.Materialized, st.RawHorizon, st.OldestMark = tsOrZero(th), tsOrZero(mat), tsOrZero(hor), tsOrZero(oldest)
	return st, nil
}

// ErrRollupBusy says that writers held the rollup lock for longer than the job waits.
var ErrRollupBusy = errors.New("readings were being written throughout: the rollup threshold did not move")

// MoveRollupThreshold moves the threshold forward to, in a transaction that does nothing
// else. It waits for the writers that hold the rollup lock (each for one batch of
// readings) and, while it holds the lock, new writers wait for it: a few milliseconds.
// It first tries for up to a second without queueing, so that under a steady stream of
// batches it slips in between them instead of making them queue behind it.
//
// A threshold already at or past to is left alone without the lock: the threshold only
// moves forward, and the job asks for the same hour every run until the next one.
func (s *Store) MoveRollupThreshold(ctx context.Context, to time.Time) error {
	var moves bool
	if err := s.pool.QueryRow(ctx, `SELECT threshold < $1 FROM rollup_state`, to).Scan(&moves); err != nil {
		return mapErr("moving the rollup threshold", err)
	}
	if !moves {
		return nil
	}
	return s.inTx(ctx, "moving the rollup threshold", func(tx pgx.Tx) error {
		got := false
		for i := 0; i < 100 && !got; i++ {
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, rollupLock).Scan(&got); err != nil {
				return err
			}
			if !got {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if !got {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, rollupLock); err != nil {
				return fmt.Errorf("%w: %w", ErrRollupBusy, err)
			}
		}
		_, err := tx.Exec(ctx, `UPDATE rollup_state SET threshold = $1, updated_at = now() WHERE threshold < $1`, to)
		return err
	})
}

// rollupStart is where a first materialization begins: the hour of the oldest chunk of
// readings (the chunk's start, read from the catalog rather than from the rows).
func rollupStart(ctx context.Context, q querier) (time.Time, bool, error) {
	var start pgtype.Timestamptz
	err := q.QueryRow(ctx, `SELECT min(range_start) FROM timescaledb_information.chunks
		WHERE hypertable_schema = 'public' AND hypertable_name = 'meter_readings'`).Scan(&start)
	if err != nil || !start.Valid {
		return time.Time{}, false, err
	}
	return start.Time.UTC().Truncate(time.Hour), true, nil
}

// MaterializeRollups materializes every bucket that ends at or before the threshold and
// is not materialized yet, a slice at a time: each slice (hourly, series and daily
// buckets, and the new materialized point) is one transaction, so a crash leaves no
// bucket half-written and the next run goes on from the last slice. It returns what it
// wrote.
func (s *Store) MaterializeRollups(ctx context.Context, slice time.Duration) (RollupResult, error) {
	var total RollupResult
	st, err := s.RollupState(ctx)
	if err != nil {
		return total, err
	}
	if st.Threshold.IsZero() {
		return total, nil
	}
	lo := st.Materialized
	if lo.IsZero() {
		start, ok, err := rollupStart(ctx, s.pool)
		if err != nil {
			return total, mapErr("materializing rollups", err)
		}
		if !ok || start.After(st.Threshold) {
			// No readings below the threshold: nothing to aggregate up to it.
			start = st.Threshold
		}
		lo = start
	}
	for lo.Before(st.Threshold) || st.Materialized.IsZero() {
		hi := lo.Add(slice)
		if hi.After(st.Threshold) {
			hi = st.Threshold
		}
		r, err := s.materializeSlice(ctx, lo, hi, true)
		if err != nil {
			return total, mapErr("materializing rollups", err)
		}
		total.Add(r)
		st.Materialized = hi
		lo = hi
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
	return total, nil
}

// materializeSlice writes the buckets of [lo, hi) (days: those ending in (lo, hi]) and,
// with move, moves the materialized point to hi (without, it rewrites buckets below the
// point: recomputeDense). The hourly buckets, nearly all the work (every raw
// reading), are aggregated in Go and copied in (materializeHourly), which sums the
// series and daily buckets on the way; those and the new materialized point follow in
// one transaction. Until that one commits, the new hourly rows lie above the
// materialized point, where nothing reads them, and a crash in between is redone by the
// next run (each step deletes its range first).
func (s *Store) materializeSlice(ctx context.Context, lo, hi time.Time, move bool) (RollupResult, error) {
	var r RollupResult
	var h hourlyResult
	var err error
	var carry *dayCarry
	if move {
		carry = s.takeCarry()
	}
	if s.pool.Config().MaxConns >= 2 { // with one connection, a copy would hold it from the readings
		h, err = s.materializeHourly(ctx, lo, hi, carry)
	}
	if h.days == nil && (err == nil || errors.Is(err, errNonFinite)) {
		// Only SQL knows how NaN and infinities aggregate: leave the slice to it (in
		// several transactions: no one snapshot).
		h = hourlyResult{}
		h.buckets, err = s.materializeHourlySQL(ctx, lo, hi)
	}
	if err != nil {
		return r, fmt.Errorf("hourly rollups: %w", err)
	}
	days := h.days // nil: the SQL functions make the series and daily buckets
	r.Readings, r.Hourly = h.readings, h.buckets
	var version int64
	// The snapshot every pair's buckets of the slice's last hour were computed from, for
	// the late steps on the materialized point (recomputeBoundary).
	var snapshot *string
	if h.snapshot != "" {
		snapshot = &h.snapshot
	}
	err = s.inTx(ctx, "materializing rollups", func(tx pgx.Tx) error {
		if days == nil {
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(count), 0) FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2`, lo, hi).Scan(&r.Readings); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_series_hourly WHERE bucket >= $1 AND bucket < $2`, lo, hi); err != nil {
			return err
		}
		var err error
		if days != nil {
			if r.SeriesHourly, err = copyIn(ctx, tx, days.seriesCopy, seriesCopySQL); err != nil {
				return fmt.Errorf("series rollups: %w", err)
			}
		} else {
			tag, err := tx.Exec(ctx, `INSERT INTO rollup_series_hourly
				SELECT series_key, bucket, count(*), sum(count), min(min_value), max(max_value), sum(sum_value), sum(consumption)
				FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2 GROUP BY series_key, bucket`, lo, hi)
			if err != nil {
				return fmt.Errorf("series rollups: %w", err)
			}
			r.SeriesHourly = tag.RowsAffected()
		}
		// The version counts the writes of buckets (see "Open days" in rollupdays.go).
		if move {
			if err := tx.QueryRow(ctx, `UPDATE rollup_state SET materialized = $1, boundary_snapshot = $2::pg_snapshot,
				version = version + 1, updated_at = now() RETURNING version`, hi, snapshot).Scan(&version); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `UPDATE rollup_state SET version = version + 1,
			boundary_snapshot = CASE WHEN materialized = $1 THEN $2::pg_snapshot ELSE boundary_snapshot END`,
			hi, snapshot); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_daily WHERE day_end > $1 AND day_end <= $2`, lo, hi); err != nil {
			return err
		}
		if days != nil {
			if r.Daily, err = copyIn(ctx, tx, days.dailyCopy, dailyCopySQL); err != nil {
				return fmt.Errorf("daily rollups: %w", err)
			}
		} else {
			tag, err := tx.Exec(ctx, `INSERT INTO rollup_daily
				SELECT * FROM amrd_rollup_daily_from_table($1::timestamptz - interval '2 days', $2) f
				WHERE f.day_end > $1 AND f.day_end <= $2`, lo, hi)
			if err != nil {
				return fmt.Errorf("daily rollups: %w", err)
			}
			r.Daily = tag.RowsAffected()
		}
		keys, err := unalignedDevices(ctx, tx)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			tag, err := tx.Exec(ctx, `INSERT INTO rollup_daily
				SELECT * FROM amrd_rollup_daily_from_raw($1::timestamptz - interval '2 days', $2) f
				WHERE f.day_end > $1 AND f.day_end <= $2 AND f.device_key = ANY($3)`, lo, hi, keys)
			if err != nil {
				return fmt.Errorf("daily rollups: %w", err)
			}
			r.Daily += tag.RowsAffected()
		}
		return nil
	})
	if err == nil && move && days != nil {
		s.setCarry(days.carry(version))
	}
	if err == nil && move {
		var b *boundaryCarry
		if h.before != nil && snapshot != nil {
			b = &boundaryCarry{m: hi, snapshot: *snapshot, before: h.before}
		}
		s.carryMu.Lock()
		s.boundary = b
		s.carryMu.Unlock()
	}
	return r, err
}

// takeCarry returns the open days of the last slice and forgets them (nil if none).
func (s *Store) takeCarry() *dayCarry {
	s.carryMu.Lock()
	defer s.carryMu.Unlock()
	c := s.carry
	s.carry = nil
	return c
}

func (s *Store) setCarry(c *dayCarry) {
	s.carryMu.Lock()
	s.carry = c
	s.carryMu.Unlock()
}

// copyIn copies the rows that rows encodes in COPY's binary format with the statement
// copySQL, and returns how many.
func copyIn(ctx context.Context, tx pgx.Tx, rows func() ([]byte, int64, error), copySQL string) (int64, error) {
	data, n, err := rows()
	if err != nil {
		return 0, err
	}
	_, err = tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), copySQL)
	return n, err
}

// materializeHourlySQL writes the hourly buckets of [lo, hi) with
// amrd_rollup_hourly_from_raw, rollupWorkers transactions at once, each for a range of
// devices (the aggregation is CPU-bound in PostgreSQL, one transaction a core). It
// returns how many buckets it wrote.
func (s *Store) materializeHourlySQL(ctx context.Context, lo, hi time.Time) (int64, error) {
	parts, err := s.devicePartitions(ctx, s.rollupWorkers)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var n int64
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error {
			return s.inTx(gctx, "materializing hourly rollups", func(tx pgx.Tx) error {
				if _, err := tx.Exec(gctx, `DELETE FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2
					AND device_key BETWEEN $3 AND $4`, lo, hi, p[0], p[1]); err != nil {
					return err
				}
				tag, err := tx.Exec(gctx, `INSERT INTO rollup_hourly SELECT * FROM amrd_rollup_hourly_from_raw($1, $2)
					WHERE device_key BETWEEN $3 AND $4`, lo, hi, p[0], p[1])
				if err != nil {
					return err
				}
				mu.Lock()
				n += tag.RowsAffected()
				mu.Unlock()
				return nil
			})
		})
	}
	return n, g.Wait()
}

// devicePartitions splits the device keys into n ranges of about as many devices each
// (the first and last open-ended, so that every key is in one).
func (s *Store) devicePartitions(ctx context.Context, n int) ([][2]int32, error) {
	if n <= 1 {
		return [][2]int32{{math.MinInt32, math.MaxInt32}}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT max(key) FROM (SELECT key, ntile($1) OVER (ORDER BY key) AS part FROM meter_devices) x
		GROUP BY part ORDER BY part`, n)
	if err != nil {
		return nil, err
	}
	ends, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	parts := make([][2]int32, 0, len(ends))
	from := int32(math.MinInt32)
	for i, end := range ends {
		if i == len(ends)-1 {
			end = math.MaxInt32
		}
		parts = append(parts, [2]int32{from, end})
		from = end + 1
	}
	if len(parts) == 0 {
		parts = append(parts, [2]int32{math.MinInt32, math.MaxInt32})
	}
	return parts, nil
}

// unalignedDevices are the devices whose local days do not begin on a UTC hour (zones with
// a half- or quarter-hour offset): their days are aggregated from the raw readings.
func unalignedDevices(ctx context.Context, q querier) ([]int32, error) {
	rows, err := q.Query(ctx, `SELECT device_key FROM amrd_read.device_zones WHERE NOT hour_aligned`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}

// RecomputeMarked takes up to limit marks and recomputes, in one transaction, the buckets
// they touch that are materialized: for each device and series, from the hour before its
// earliest marked time (a reading on an hour's start closes the hour before) to the hour
// of the first reading after its latest (whose step now starts elsewhere), and the local
// days around them. Marks above the materialized point need nothing (materialization will
// read those readings); marks whose buckets need readings that retention dropped are
// discarded, their buckets frozen as they are. Marks on the materialized point that need
// at most their step are settled first, whatever limit says (recomputeBoundary). It
// returns what it did; Recomputed is 0 when there were no other marks.
func (s *Store) RecomputeMarked(ctx context.Context, limit int) (RollupResult, error) {
	b, err := s.recomputeBoundary(ctx)
	if err != nil {
		return b, err
	}
	r, err := s.recomputeMarked(ctx, limit)
	r.Add(b)
	return r, err
}

func (s *Store) recomputeMarked(ctx context.Context, limit int) (RollupResult, error) {
	if r, done, err := s.recomputeDense(ctx, limit); done || err != nil {
		return r, err
	}
	var r RollupResult
	err := s.inTx(ctx, "recomputing marked rollups", func(tx pgx.Tx) error {
		r = RollupResult{}
		var mat, hor pgtype.Timestamptz
		if err := tx.QueryRow(ctx, `SELECT materialized, raw_horizon FROM rollup_state`).Scan(&mat, &hor); err != nil {
			return err
		}
		// Deleted in this transaction's snapshot only: a mark committed meanwhile stays
		// for the next run, together with its reading.
		rows, err := tx.Query(ctx, `WITH m AS (
				DELETE FROM rollup_marks WHERE ctid = ANY (ARRAY(SELECT m.ctid FROM rollup_marks m
					WHERE m.ctid NOT IN (`+stepMarkCtidsSQL+`) LIMIT $1))
				RETURNING device_key, series_key, ts_min, ts_max)
			SELECT device_key, series_key, min(ts_min), max(ts_max), count(*) FROM m GROUP BY device_key, series_key`, limit)
		if err != nil {
			return err
		}
		var d, sk []int32
		var lo, hi []time.Time
		for rows.Next() {
			var a, b int32
			var x, y time.Time
			var n int64
			if err := rows.Scan(&a, &b, &x, &y, &n); err != nil {
				rows.Close()
				return err
			}
			d, sk, lo, hi = append(d, a), append(sk, b), append(lo, x), append(hi, y)
			r.Marks += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(d) == 0 || !mat.Valid || mat.InfinityModifier != pgtype.Finite {
			return nil
		}
		// A bucket can be recomputed only while the readings before it are there: the
		// first step of a day needs the last reading of the day before.
		frozen := tsOrZero(hor)
		if !frozen.IsZero() {
			frozen = frozen.Add(2 * 24 * time.Hour)
		}
		var kd, ks []int32
		var klo, khi []time.Time
		for i := range d {
			if hi[i].Before(frozen) {
				r.MarksDiscarded++
				continue
			}
			if !lo[i].Before(mat.Time) && !lo[i].Equal(mat.Time) {
				continue // above the materialized point: the next materialization reads it
			}
			if lo[i].Before(frozen) {
				lo[i] = frozen
			}
			kd, ks, klo, khi = append(kd, d[i]), append(ks, sk[i]), append(klo, lo[i]), append(khi, hi[i])
		}
		if len(kd) == 0 {
			return nil
		}
		r.Recomputed = int64(len(kd))
		// The hourly range [a, b) of each mark, clipped to the materialized point.
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE rollup_redo ON COMMIT DROP AS
			SELECT u.d AS device_key, u.s AS series_key, u.a, least($5::timestamptz, u.b) AS b
			FROM (`+markRanges(`SELECT * FROM unnest($1::int4[], $2::int4[], $3::timestamptz[], $4::timestamptz[]) AS x(d, s, lo, hi)`)+`) u`,
			kd, ks, klo, khi, mat.Time); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_hourly h USING rollup_redo x
			WHERE h.device_key = x.device_key AND h.series_key = x.series_key AND h.bucket >= x.a AND h.bucket < x.b`); err != nil {
			return err
		}
		// The hour that ends at the materialized point, rewritten for some pairs, was no
		// longer computed from one snapshot: late steps on the point go the full way.
		if _, err := tx.Exec(ctx, `UPDATE rollup_state SET version = version + 1,
			boundary_snapshot = CASE WHEN EXISTS (SELECT FROM rollup_redo WHERE b = $1) THEN NULL ELSE boundary_snapshot END`,
			mat.Time); err != nil {
			return err
		}
		// The keys must be restrictions inside the lateral subquery (OFFSET 0 keeps it one)
		// to reach the readings' scan; as a join condition they would be applied only
		// after every device's range was aggregated.
		tag, err := tx.Exec(ctx, `INSERT INTO rollup_hourly SELECT f.* FROM rollup_redo x
			CROSS JOIN LATERAL (SELECT * FROM amrd_rollup_hourly_from_raw(x.a, x.b) h
				WHERE h.device_key = x.device_key AND h.series_key = x.series_key OFFSET 0) f`)
		if err != nil {
			return fmt.Errorf("hourly rollups: %w", err)
		}
		r.Hourly = tag.RowsAffected()
		// Series buckets of every hour in the ranges (a bucket whose device rows all went
		// away is deleted: it is in the range, and no row is inserted for it).
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_series_hourly s USING rollup_redo x
			WHERE s.series_key = x.series_key AND s.bucket >= x.a AND s.bucket < x.b`); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `INSERT INTO rollup_series_hourly
			SELECT h.series_key, h.bucket, count(*), sum(h.count), min(h.min_value), max(h.max_value), sum(h.sum_value), sum(h.consumption)
			FROM rollup_hourly h
			WHERE (h.series_key, h.bucket) IN (SELECT x.series_key, g FROM rollup_redo x,
				generate_series(x.a, x.b - interval '1 hour', interval '1 hour') g)
			GROUP BY h.series_key, h.bucket`)
		if err != nil {
			return fmt.Errorf("series rollups: %w", err)
		}
		r.SeriesHourly = tag.RowsAffected()
		// The local days around each range: from the day of a to the day of b - 1 us,
		// those that end at or before the materialized point.
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_daily dd USING rollup_redo x
			WHERE dd.device_key = x.device_key AND dd.series_key = x.series_key
			AND dd.day_end > x.a AND dd.day_start < x.b`); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `INSERT INTO rollup_daily SELECT f.* FROM rollup_redo x
			CROSS JOIN LATERAL (SELECT * FROM amrd_rollup_daily_from_table(x.a - interval '2 days', x.b + interval '2 days') d
				WHERE d.device_key = x.device_key AND d.series_key = x.series_key OFFSET 0) f
			WHERE f.day_end > x.a AND f.day_start < x.b AND f.day_end <= $1`, mat.Time)
		if err != nil {
			return fmt.Errorf("daily rollups: %w", err)
		}
		r.Daily = tag.RowsAffected()
		keys, err := unalignedDevices(ctx, tx)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO rollup_daily SELECT f.* FROM rollup_redo x
				CROSS JOIN LATERAL (SELECT * FROM amrd_rollup_daily_from_raw(x.a - interval '2 days', x.b + interval '2 days') d
					WHERE d.device_key = x.device_key AND d.series_key = x.series_key OFFSET 0) f
				WHERE x.device_key = ANY($2) AND f.day_end > x.a AND f.day_start < x.b AND f.day_end <= $1`, mat.Time, keys)
			if err != nil {
				return fmt.Errorf("daily rollups: %w", err)
			}
			r.Daily += tag.RowsAffected()
		}
		return nil
	})
	return r, mapErr("recomputing marked rollups", err)
}

// ReadingsRetentionCutoff returns the cutoff retention may drop raw reading chunks below,
// at most want: raw readings stay while a bucket that needs them is not materialized or
// is marked (two days of margin, for the longest local day and the step into it). It
// records the cutoff as the raw horizon, below which buckets are frozen.
func (s *Store) ReadingsRetentionCutoff(ctx context.Context, want time.Time) (time.Time, error) {
	var cut pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `UPDATE rollup_state SET raw_horizon = greatest(raw_horizon, c.cut) FROM (
			SELECT least($1::timestamptz, materialized - interval '2 days',
				(SELECT min(ts_min) FROM rollup_marks) - interval '2 days') AS cut FROM rollup_state) c
		RETURNING c.cut`, want).Scan(&cut)
	if err != nil {
		return time.Time{}, mapErr("reading the rollup state", err)
	}
	return tsOrZero(cut), nil
}

// markRanges selects, for each marked (device d, series s, first and last marked time
// lo and hi) that pairs selects, the hourly range [a, b) whose buckets the marks change:
// from the hour of lo's step (a reading on an hour's start closes the hour before) to
// the hour of the step of the first reading after hi, whose predecessor changed. The
// columns are d, s, lo, hi, a and b; the caller clips b to the materialized point.
func markRanges(pairs string) string {
	return `SELECT p.d, p.s, p.lo, p.hi, time_bucket('1 hour', p.lo - interval '1 microsecond') AS a,
		time_bucket('1 hour', greatest(p.hi, coalesce(n.ts, p.hi) - interval '1 microsecond')) + interval '1 hour' AS b
		FROM (` + pairs + `) p LEFT JOIN LATERAL (SELECT x.ts FROM meter_readings x
			WHERE x.device_key = p.d AND x.series_key = p.s AND x.ts > p.hi ORDER BY x.ts LIMIT 1) n ON true`
}

// Dense marks. Recomputing a mark in SQL costs a few hundred microseconds of PostgreSQL
// (the windows of amrd_rollup_hourly_from_raw for its device and series); when a whole
// fleet's quarter-hour arrives late at once (a collector catching up), that is most of a
// core for a while. Re-aggregating every pair of the hours and days the marks touch in
// Go, as materialization does, costs about 1.5 us a reading instead (r5). So a batch of
// marks is recomputed that way when the readings of those hours are fewer than
// denseReadingsPerMark a marked pair: the same work at a third of the cost or less.
const denseReadingsPerMark = 90

// denseBatches: a dense recomputation takes the marks of this many batches at once. Its
// cost follows the hours it re-aggregates, not the marks, so a fleet's late quarter-hour
// (80,000 marks at 10,000 meters x 8 series) is one re-aggregation, not eight.
const denseBatches = 100

// denseSpan bounds the time a dense recomputation re-aggregates (marks spread wider are
// recomputed pair by pair).
const denseSpan = 3 * 24 * time.Hour

// recomputeDense recomputes a batch of up to limit marks by re-aggregating, for every
// device and series, the hours from the earliest marked one to the latest (as the SQL
// path computes each mark's range: from the hour before its first reading to the hour of
// the first reading after its last) and the local days around them that end at or
// before the materialized point, without moving that point; then it deletes those marks
// (by their row, read in one snapshot with the readings they stand for: a mark committed
// later stays for the next run). It reports false when the batch is not dense enough,
// spans too long, touches frozen buckets or holds nothing to recompute: the SQL path
// takes it then.
func (s *Store) recomputeDense(ctx context.Context, limit int) (RollupResult, bool, error) {
	var r RollupResult
	if s.denseRecompute < 0 {
		return r, false, nil
	}
	var ctids []pgtype.TID
	var pairs int64
	var a, b, minLo, mat, hor pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `WITH st AS (SELECT materialized, raw_horizon FROM rollup_state),
		m AS (SELECT m.ctid, m.device_key, m.series_key, m.ts_min, m.ts_max FROM rollup_marks m
			WHERE m.ctid NOT IN (`+stepMarkCtidsSQL+`) LIMIT $1),
		p AS (SELECT device_key AS d, series_key AS s, min(ts_min) AS lo, max(ts_max) AS hi FROM m GROUP BY device_key, series_key),
		r AS (`+markRanges(`SELECT * FROM p`)+`)
		SELECT (SELECT array_agg(ctid) FROM m), (SELECT count(*) FROM p), (SELECT min(a) FROM r), (SELECT max(b) FROM r),
			(SELECT min(lo) FROM r), st.materialized, st.raw_horizon FROM st`, limit*denseBatches).Scan(&ctids, &pairs, &a, &b, &minLo, &mat, &hor)
	if err != nil {
		return r, false, mapErr("recomputing marked rollups", err)
	}
	if pairs == 0 || !a.Valid || mat.InfinityModifier != pgtype.Finite || !mat.Valid {
		return r, false, nil
	}
	if h := tsOrZero(hor); !h.IsZero() && minLo.Time.Before(h.Add(2*24*time.Hour)) {
		return r, false, nil // frozen buckets: the SQL path discards those marks
	}
	lo, hi := a.Time, b.Time
	if hi.After(mat.Time) {
		hi = mat.Time
	}
	if !hi.After(lo) || hi.Sub(lo) > denseSpan && s.denseRecompute == 0 {
		return r, false, nil
	}
	// The local days around the hours end at most a day (of 25 hours) after them.
	end := hi.Add(25 * time.Hour)
	if end.After(mat.Time) {
		end = mat.Time
	}
	if s.denseRecompute == 0 {
		var readings int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(count), 0) FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2`,
			lo, end).Scan(&readings); err != nil {
			return r, false, mapErr("recomputing marked rollups", err)
		}
		if readings > pairs*denseReadingsPerMark {
			return r, false, nil
		}
	}
	r, err = s.materializeSlice(ctx, lo, end, false)
	if err != nil {
		return r, true, mapErr("recomputing marked rollups", err)
	}
	r.Readings = 0 // not new readings: the materialization counter counts those
	if _, err := s.pool.Exec(ctx, `DELETE FROM rollup_marks WHERE ctid = ANY ($1::tid[])`, ctids); err != nil {
		return r, true, mapErr("recomputing marked rollups", err)
	}
	r.Marks, r.Recomputed = int64(len(ctids)), pairs
	return r, true, nil
}
