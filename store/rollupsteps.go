package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Late readings on the materialized point (schema 0009). A reading at exactly the
// materialized point M changes only the hour [M - 1 h, M) of what is materialized, and
// of that hour only its consumption: its step from the reading before it is the hour's
// last (its value belongs to the hour after M, not materialized yet). So when every
// pair's buckets of that hour were computed from one snapshot (rollup_state's
// boundary_snapshot), a mark at M is settled without re-aggregating the hour:
//   - its transaction is visible in that snapshot: the hour was computed with its
//     readings, and the mark needs nothing;
//   - otherwise, for an inserted reading whose device and series have no other mark,
//     its step is added to the hourly bucket, the series' bucket of that hour and, when M
//     is a local midnight of the device's zone, the day that ends at M (a row with count
//     0 where the hour or day had none: a step and no reading).
// Anything else (a deleted reading, other marks of the pair, a day written in another
// zone than the device's now) is left to the full recomputation. The step is the
// hourly aggregation's own expression (amrd_rollup_hourly_from_raw): the raw increase
// from the latest reading before M, times the reading's factor, and 0 for a step down;
// numeric sums are exact, so adding it to a stored sum gives what re-aggregating gives,
// to the scale.

// recomputeBoundary settles the marks on the materialized point that need at most their
// step (above), in one transaction. Steps counts the steps added, Marks the marks settled.
func (s *Store) recomputeBoundary(ctx context.Context) (RollupResult, error) {
	var r RollupResult
	err := s.inTx(ctx, "adding late steps to the rollups", func(tx pgx.Tx) error {
		r = RollupResult{}
		var mat, horizon pgtype.Timestamptz
		var snap *string
		if err := tx.QueryRow(ctx, `SELECT materialized, boundary_snapshot::text, raw_horizon FROM rollup_state`).Scan(&mat, &snap, &horizon); err != nil {
			return err
		}
		if snap == nil || !mat.Valid || mat.InfinityModifier != pgtype.Finite {
			return nil
		}
		m := mat.Time
		tag, err := tx.Exec(ctx, `DELETE FROM rollup_marks
			WHERE ts_min = $1 AND ts_max = $1 AND pg_visible_in_snapshot(xid, $2::pg_snapshot)`, m, *snap)
		if err != nil {
			return err
		}
		r.Marks = tag.RowsAffected()
		// The job asks every run, and again for each batch of other marks: a temporary
		// table (rows in the catalog) only when there is a mark to settle.
		var candidates bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM rollup_marks WHERE ts_min = $1 AND ts_max = $1 AND NOT deleted)`,
			m).Scan(&candidates); err != nil || !candidates {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE rollup_steps (device_key integer, series_key integer,
			step numeric) ON COMMIT DROP`); err != nil {
			return err
		}
		var marks, steps int64
		if b := s.boundaryAt(m, *snap); b != nil {
			if marks, steps, err = s.stepsFromMarks(ctx, tx, m, horizon, b); err != nil {
				return err
			}
		} else if err := tx.QueryRow(ctx, `WITH m AS (`+stepMarksSQL+` RETURNING m.device_key, m.series_key),
			ins AS (`+lookUpStepsSQL("m")+` RETURNING 1)
			SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM ins)`, m).Scan(&marks, &steps); err != nil {
			return err
		}
		r.Marks += marks
		if steps == 0 {
			return nil
		}
		r.Steps = steps
		if _, err := tx.Exec(ctx, `UPDATE rollup_state SET version = version + 1`); err != nil {
			return err
		}
		hour := m.Add(-time.Hour)
		// The hourly buckets that exist take the step, the others are new (count 0); the
		// series bucket counts the new ones among its devices. A series bucket is new only
		// when no device had one that hour: then every row is new.
		var updated, inserted, series int64
		if err := tx.QueryRow(ctx, `WITH u AS (
				UPDATE rollup_hourly h SET consumption = h.consumption + s.step FROM rollup_steps s
				WHERE h.device_key = s.device_key AND h.series_key = s.series_key AND h.bucket = $1
				RETURNING h.device_key, h.series_key),
			i AS (INSERT INTO rollup_hourly (device_key, series_key, bucket, count, consumption)
				SELECT s.device_key, s.series_key, $1::timestamptz, 0, s.step FROM rollup_steps s
				WHERE NOT EXISTS (SELECT FROM u WHERE u.device_key = s.device_key AND u.series_key = s.series_key)
				RETURNING series_key),
			n AS (SELECT series_key, count(*) AS fresh FROM i GROUP BY series_key),
			sr AS (INSERT INTO rollup_series_hourly AS h (series_key, bucket, devices, count, consumption)
				SELECT s.series_key, $1::timestamptz, coalesce(max(n.fresh), 0), 0, sum(s.step)
				FROM rollup_steps s LEFT JOIN n ON n.series_key = s.series_key GROUP BY s.series_key
				ON CONFLICT (series_key, bucket) DO UPDATE
				SET devices = h.devices + EXCLUDED.devices, consumption = h.consumption + EXCLUDED.consumption
				RETURNING 1)
			SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM i), (SELECT count(*) FROM sr)`, hour).Scan(&updated, &inserted, &series); err != nil {
			return err
		}
		r.Hourly, r.SeriesHourly = updated+inserted, series
		// The days that end at the point, if the point is a local midnight of any zone of
		// a config (or UTC, the zone of devices without one): 23 hours of 24 it is not, and
		// that asks only the few configs, not every device's zone.
		var midnight bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM (SELECT timezone FROM meter_device_configs UNION SELECT 'UTC') z
			WHERE public.amrd_day_start(public.amrd_local_day($1::timestamptz - interval '1 hour', z.timezone) + 1, z.timezone) = $1)`,
			m).Scan(&midnight); err != nil || !midnight {
			return err
		}
		// Those written, then those that had no row (no hour of the day had a bucket) in
		// zones whose day ends there.
		for _, q := range []string{
			`UPDATE rollup_daily d SET consumption = d.consumption + s.step FROM rollup_steps s
			WHERE d.device_key = s.device_key AND d.series_key = s.series_key AND d.day_end = $1`,
			`INSERT INTO rollup_daily (device_key, series_key, day, timezone, day_start, day_end, count, consumption)
			SELECT s.device_key, s.series_key, x.d, z.timezone, public.amrd_day_start(x.d, z.timezone), $1::timestamptz, 0, s.step
			FROM rollup_steps s
			JOIN amrd_read.device_zones z ON z.device_key = s.device_key AND z.hour_aligned
			CROSS JOIN LATERAL (SELECT public.amrd_local_day($1::timestamptz - interval '1 hour', z.timezone) AS d) x
			WHERE public.amrd_day_start(x.d + 1, z.timezone) = $1
				AND NOT EXISTS (SELECT FROM rollup_daily d WHERE d.device_key = s.device_key AND d.series_key = s.series_key
					AND d.day_end = $1)`,
		} {
			tag, err := tx.Exec(ctx, q, m)
			if err != nil {
				return err
			}
			r.Daily += tag.RowsAffected()
		}
		return nil
	})
	return r, mapErr("adding late steps to the rollups", err)
}

// stepMark is the condition under which the mark m on the point (an expression) takes
// its step: of an inserted reading, with no other mark of its device and series, and no
// day ending at the point written in another zone than the device's now.
func stepMark(point string) string {
	return `m.ts_min = ` + point + ` AND m.ts_max = ` + point + ` AND NOT m.deleted
	AND NOT EXISTS (SELECT FROM rollup_marks o WHERE o.device_key = m.device_key AND o.series_key = m.series_key
		AND (o.deleted OR o.ts_min <> ` + point + ` OR o.ts_max <> ` + point + `))
	AND NOT EXISTS (SELECT FROM rollup_daily d WHERE d.device_key = m.device_key AND d.series_key = m.series_key
		AND d.day_end = ` + point + ` AND d.timezone IS DISTINCT FROM
			(SELECT z.timezone FROM amrd_read.device_zones z WHERE z.device_key = m.device_key))`
}

// stepMarksSQL deletes the marks on the point $1 that take their step.
var stepMarksSQL = `DELETE FROM rollup_marks m WHERE ` + stepMark("$1")

// stepMarkCtidsSQL lists the marks that recomputeBoundary settles, for the full
// recomputation (recomputeMarked) to leave out: a batch of readings on the point that
// commits between the two would otherwise make the full way re-aggregate the whole hour
// for every device (the dense path) for what the next pass adds as steps. A list, not a
// condition on each mark: NOT EXISTS at the top of a WHERE is an anti-join, but under a
// NOT, a subquery run for every mark (80,000 marks: 3 s).
var stepMarkCtidsSQL = `SELECT m.ctid FROM rollup_marks m, rollup_state st WHERE st.boundary_snapshot IS NOT NULL AND ` +
	stepMark("st.materialized")

// lookUpStepsSQL inserts into rollup_steps the step of the reading on the point $1 of
// each device and series of the relation pairs, reading it and the one before it from
// meter_readings (none without both).
func lookUpStepsSQL(pairs string) string {
	return `INSERT INTO rollup_steps (device_key, series_key, step)
		SELECT q.device_key, q.series_key, CASE WHEN q.rv - q.pv > 0 THEN (q.rv - q.pv) * q.rf ELSE 0 END
		FROM (
			-- The reading on the point and the one before it: one backward descent
			-- of the key index. max of one value is that value, scale and all.
			SELECT p.device_key, p.series_key, max(x.value) FILTER (WHERE x.ts = $1) AS rv,
				max(x.factor) FILTER (WHERE x.ts = $1) AS rf, max(x.value) FILTER (WHERE x.ts < $1) AS pv
			FROM (SELECT DISTINCT device_key, series_key FROM ` + pairs + `) p
			CROSS JOIN LATERAL (SELECT x.ts, x.value, x.factor FROM meter_readings x
				WHERE x.device_key = p.device_key AND x.series_key = p.series_key AND x.ts <= $1
				ORDER BY x.ts DESC LIMIT 2) x
			GROUP BY p.device_key, p.series_key) q
		WHERE q.rv IS NOT NULL AND q.pv IS NOT NULL`
}

// boundaryCarry is what the slice that moved the materialized point to m read of each
// device's and series' latest reading before m, in the snapshot recorded with it
// (rollup_state.boundary_snapshot). While that snapshot is the boundary's, such a
// reading is still the latest before m for every device and series whose marks take
// their step: a reading before m written, or deleted, since would have marked it
// (stepMarksSQL leaves such a pair to the full way).
type boundaryCarry struct {
	m        time.Time
	snapshot string
	before   map[pairKey]pointReading
}

// boundaryAt is the carried readings before m if they were read in snapshot.
func (s *Store) boundaryAt(m time.Time, snapshot string) *boundaryCarry {
	s.carryMu.Lock()
	defer s.carryMu.Unlock()
	if b := s.boundary; b != nil && b.m.Equal(m) && b.snapshot == snapshot {
		return b
	}
	return nil
}

// stepsFromMarks settles the marks of stepMarksSQL with the values they carry (schema
// 0010) and the readings before m that b carries: the step is computed here as the hourly
// aggregation computes it, and copied into rollup_steps. Marks without a value, devices
// and series b has no reading for (none before m in the slice, or one below the raw
// retention horizon, which the look-up would not find), and a device and series marked
// twice on the point, take the look-up.
func (s *Store) stepsFromMarks(ctx context.Context, tx pgx.Tx, m time.Time, horizon pgtype.Timestamptz, b *boundaryCarry) (marks, steps int64, err error) {
	from := int64(math.MinInt64)
	if horizon.Valid && horizon.InfinityModifier == pgtype.Finite {
		from = pgMicros(horizon.Time)
	}
	rows, err := tx.Query(ctx, stepMarksSQL+` RETURNING m.device_key, m.series_key, m.value, m.factor`,
		pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode}, m)
	if err != nil {
		return 0, 0, err
	}
	computed := map[pairKey]dec{}
	seen := map[pairKey]bool{}
	var restDev, restSer []int32
	rest := func(k pairKey) { restDev, restSer = append(restDev, k.dev), append(restSer, k.ser) }
	for rows.Next() {
		marks++
		v := rows.RawValues()
		k := pairKey{int32(binary.BigEndian.Uint32(v[0])), int32(binary.BigEndian.Uint32(v[1]))}
		if seen[k] {
			// Marked again: the look-up, once (it takes each pair once).
			if _, ok := computed[k]; ok {
				delete(computed, k)
				rest(k)
			}
			continue
		}
		seen[k] = true
		p, ok := b.before[k]
		if v[2] == nil || v[3] == nil || !ok || p.ts < from {
			rest(k)
			continue
		}
		rv, err := decodeNumeric(v[2])
		if err != nil {
			rows.Close()
			return 0, 0, err
		}
		step := dec{}
		if d := rv.sub(p.value); d.sign() > 0 {
			step = d.mulInt(int64(binary.BigEndian.Uint64(v[3])))
		}
		computed[k] = step
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(computed) > 0 {
		// In key order: the update then goes through rollup_hourly's rows, and its key
		// index, in their order (in the map's random order it took three times as long).
		keys := slices.SortedFunc(maps.Keys(computed), func(a, b pairKey) int {
			return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.ser, b.ser))
		})
		src := make([][]any, len(keys))
		for i, k := range keys {
			src[i] = []any{k.dev, k.ser, numeric{computed[k].apd()}}
		}
		if steps, err = tx.CopyFrom(ctx, pgx.Identifier{"rollup_steps"}, []string{"device_key", "series_key", "step"}, pgx.CopyFromRows(src)); err != nil {
			return 0, 0, err
		}
		s.carriedSteps.Add(steps)
	}
	if len(restDev) > 0 {
		tag, err := tx.Exec(ctx, lookUpStepsSQL("unnest($2::int4[], $3::int4[]) AS u(device_key, series_key)"), m, restDev, restSer)
		if err != nil {
			return 0, 0, err
		}
		steps += tag.RowsAffected()
	}
	return marks, steps, nil
}
