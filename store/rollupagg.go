package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// The rollup job aggregates the raw readings into hourly buckets in Go, exactly as
// amrd_rollup_hourly_from_raw (schema 0004) does in SQL, which the real-time views keep
// using. PostgreSQL then only scans the readings in the order they lie on disk (time)
// and copies the buckets in; in SQL the window over (device, series, time) either read
// the key index, whose order hits the heap at random, or sorted every reading, and the
// numeric aggregates with their FILTERs cost more than the scan. See materializeHourly.
//
// The semantics, row by row of the function: a reading's statistics count in its hour
// when it lies in [lo, hi); its step (its raw value minus the value of the reading
// before it of the same device and series, times its own factor, or 0 when it is not
// positive) counts in the hour before it, hour(ts - 1 us), when it lies in (lo, hi] and
// has a reading before it. Sums keep the largest scale of their terms, min and max the
// scale of the value they are (of equal values, the later in time, as numeric_smaller
// and numeric_larger keep their second argument on a tie), first and last values their
// own, and consumption is 0 (scale 0) without a positive step.

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's timestamp origin, in Unix microseconds.
const pgEpochMicros = 946684800 * 1_000_000

const hourMicros = int64(time.Hour / time.Microsecond)

// pgMicros is t in timestamptz's binary form: microseconds since 2000-01-01 UTC.
func pgMicros(t time.Time) int64 { return t.UnixMicro() - pgEpochMicros }

// hourOf is the start of the UTC hour of ts (date_bin('1 hour', ts, '2000-01-01')).
func hourOf(ts int64) int64 {
	h := ts / hourMicros
	if ts%hourMicros < 0 {
		h--
	}
	return h * hourMicros
}

// rawReading is one raw reading as the job reads it. It holds no pointer, so that the
// garbage collector skips a batch of them: a value too large for an int64 lives in its
// batch's bigs.
type rawReading struct {
	dev, ser int32
	ts       int64 // timestamptz: microseconds since 2000-01-01 UTC
	factor   int64
	c        int64 // the raw value: c × 10^-s, or bigs[big - 1] of its batch
	s, big   int32
}

type pairKey struct{ dev, ser int32 }

// hourBucket is one bucket of rollup_hourly being aggregated.
type hourBucket struct {
	dev, ser               int32
	bucket                 int64
	count                  int32
	min, max, sum          dec
	firstTS, lastTS        int64
	first, last            dec
	consumption            dec
	hasConsumption, active bool
}

// hourlyAggregator aggregates batches of raw readings of [lo - 1 h, hi], a span of time
// at a time, into hourly buckets, and writes each bucket as it completes to a COPY
// stream. A batch covers [a, b] (b included: a reading on b closes the hour before b;
// the next batch, from b, reads it again for its own hour) and holds every reading of
// that span, sorted by device, series and time; spans follow each other. Per device
// and series it keeps only the raw value of the latest reading, so its memory is one
// batch and one value per device and series.
type hourlyAggregator struct {
	lo, hi int64
	prev   map[pairKey]dec // the raw value of the latest reading before the batch
	// before is each device's and series' latest reading before hi in the slice: what
	// a late reading on hi steps from (see rollupsteps.go).
	before map[pairKey]pointReading
	out    *hourlyCopy
	// days sums the series and daily buckets; until it is ready (setDays), the buckets
	// wait in pending.
	days    *sliceRollups
	pending []hourBucket
	// Readings counts the readings in [lo, hi) (those whose statistics count), Buckets
	// the buckets written.
	Readings, Buckets int64
}

func newHourlyAggregator(lo, hi time.Time, out *hourlyCopy) *hourlyAggregator {
	return &hourlyAggregator{lo: pgMicros(lo), hi: pgMicros(hi), prev: map[pairKey]dec{}, before: map[pairKey]pointReading{}, out: out}
}

// readingBatch is the readings of [a, b], sorted by device, series and time, and, for
// each device and series first seen in it whose first reading needs the one before it,
// the value of that one (found by a probe of the key index: the reading may be long
// before lo).
type readingBatch struct {
	a, b   int64
	rows   []rawReading
	bigs   []*apd.Decimal
	probed map[pairKey]dec
	pairs  []pairKey    // the devices and series in rows
	read   []rawReading // rows as read, before sorting (its memory reused by a later batch)
}

// value is a reading's raw value.
func (bt *readingBatch) value(r *rawReading) dec {
	if r.big > 0 {
		return bigDec(bt.bigs[r.big-1])
	}
	return dec{c: r.c, s: r.s}
}

// sortReadings orders a batch by device, series and time. The rows come in the order
// they lie on disk, which is nearly time order: each is moved once to its device's and
// series' place, keeping that order (one map look-up a row), and only a device's and
// series' run that is not in time order then is sorted (a comparison sort of the whole
// batch cost five times as much).
func sortReadings(rs, out []rawReading) ([]rawReading, []pairKey) {
	slot := make(map[uint64]int32, 1024) // a uint64 key hashes faster than a pairKey
	var pairs []pairKey
	var counts []int
	at := make([]int32, len(rs))
	for i := range rs {
		j, ok := slot[uint64(uint32(rs[i].dev))<<32|uint64(uint32(rs[i].ser))]
		if !ok {
			j = int32(len(pairs))
			slot[uint64(uint32(rs[i].dev))<<32|uint64(uint32(rs[i].ser))] = j
			pairs, counts = append(pairs, pairKey{rs[i].dev, rs[i].ser}), append(counts, 0)
		}
		counts[j]++
		at[i] = j
	}
	order := make([]int32, len(pairs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if c := cmp.Compare(pairs[x].dev, pairs[y].dev); c != 0 {
			return c
		}
		return cmp.Compare(pairs[x].ser, pairs[y].ser)
	})
	start := make([]int, len(pairs))
	n := 0
	for _, j := range order {
		start[j] = n
		n += counts[j]
	}
	out = slices.Grow(out[:0], len(rs))[:len(rs)]
	next := slices.Clone(start)
	for i := range rs {
		out[next[at[i]]] = rs[i]
		next[at[i]]++
	}
	byTime := func(x, y rawReading) int { return cmp.Compare(x.ts, y.ts) }
	for j := range pairs {
		run := out[start[j] : start[j]+counts[j]]
		if !slices.IsSortedFunc(run, byTime) {
			slices.SortFunc(run, byTime)
		}
	}
	return out, pairs
}

// stepFrom is the first instant of a batch whose readings' steps count (those after it).
func (g *hourlyAggregator) stepFrom(a int64) int64 { return max(a, g.lo) }

// needsProbe lists the devices and series of a sorted batch whose first reading has a
// step to count and no reading before it in the batches so far; seen says whether a
// device and series was in an earlier batch. It returns each one's first reading's time.
func needsProbe(rs []rawReading, stepFrom int64, seen func(pairKey) bool) (keys []pairKey, before []int64) {
	for i := 0; i < len(rs); {
		k := pairKey{rs[i].dev, rs[i].ser}
		if rs[i].ts > stepFrom && !seen(k) {
			keys, before = append(keys, k), append(before, rs[i].ts)
		}
		for i < len(rs) && rs[i].dev == k.dev && rs[i].ser == k.ser {
			i++
		}
	}
	return keys, before
}

// add aggregates a batch and writes the buckets it completes: every bucket of its hours.
func (g *hourlyAggregator) add(bt *readingBatch) error {
	rs := bt.rows
	from := g.stepFrom(bt.a)
	var cur hourBucket
	for i := 0; i < len(rs); {
		k := pairKey{rs[i].dev, rs[i].ser}
		prev, ok := g.prev[k]
		if !ok {
			prev, ok = bt.probed[k]
		}
		cur = hourBucket{dev: k.dev, ser: k.ser}
		last := -1 // the pair's latest reading before hi in the batch
		for ; i < len(rs) && rs[i].dev == k.dev && rs[i].ser == k.ser; i++ {
			r := &rs[i]
			if r.ts < g.hi {
				last = i
			}
			if r.ts > from && ok {
				step := dec{}
				if d := bt.value(r).sub(prev); d.sign() > 0 {
					step = d.mulInt(r.factor)
				}
				if err := g.into(&cur, hourOf(r.ts-1)); err != nil {
					return err
				}
				if cur.hasConsumption {
					cur.consumption = cur.consumption.add(step)
				} else {
					cur.consumption, cur.hasConsumption = step, true
				}
			}
			if r.ts >= g.lo && r.ts < g.hi && r.ts < bt.b {
				v := bt.value(r)
				if r.factor != 1 {
					v = v.mulInt(r.factor)
				}
				if err := g.into(&cur, hourOf(r.ts)); err != nil {
					return err
				}
				if cur.count == 0 {
					cur.min, cur.max, cur.sum, cur.first, cur.firstTS = v, v, v, v, r.ts
				} else {
					if v.cmp(cur.min) <= 0 {
						cur.min = v
					}
					if v.cmp(cur.max) >= 0 {
						cur.max = v
					}
					cur.sum = cur.sum.add(v)
				}
				cur.last, cur.lastTS = v, r.ts
				cur.count++
				g.Readings++
			}
			prev, ok = bt.value(r), true
		}
		if err := g.flush(&cur); err != nil {
			return err
		}
		g.prev[k] = prev
		if last >= 0 {
			g.before[k] = pointReading{ts: rs[last].ts, value: bt.value(&rs[last])}
		}
	}
	return nil
}

// pointReading is one reading's time (pgMicros) and raw value.
type pointReading struct {
	ts    int64
	value dec
}

// setDays hands the series and daily sums their buckets so far, and the next ones.
func (g *hourlyAggregator) setDays(d *sliceRollups) {
	g.days = d
	for i := range g.pending {
		d.add(&g.pending[i])
	}
	g.pending = nil
}

// into makes cur the bucket of hour h, writing the one it was (readings come in time
// order, so a device's and series' buckets are complete when the next one begins).
func (g *hourlyAggregator) into(cur *hourBucket, h int64) error {
	if cur.active && cur.bucket == h {
		return nil
	}
	if err := g.flush(cur); err != nil {
		return err
	}
	*cur = hourBucket{dev: cur.dev, ser: cur.ser, bucket: h, active: true}
	return nil
}

func (g *hourlyAggregator) flush(cur *hourBucket) error {
	if !cur.active {
		return nil
	}
	cur.active = false
	g.Buckets++
	if g.days != nil {
		g.days.add(cur)
	} else {
		g.pending = append(g.pending, *cur)
	}
	return g.out.write(cur)
}

// hourlyCopy writes rollup_hourly rows in COPY's binary format to w (the columns of
// hourlyCopySQL), in pieces of about copyChunk bytes.
type hourlyCopy struct {
	w io.Writer
	copyRows
}

// hourlyCopySQL copies into rollup_hourly in the order hourlyCopy writes the columns.
const hourlyCopySQL = `COPY rollup_hourly (device_key, series_key, bucket, count, min_value, max_value, sum_value,
	first_ts, first_value, last_ts, last_value, consumption) FROM STDIN (FORMAT binary)`

// copyChunk: 64 KiB a write, pgconn's own chunk for COPY data.
const copyChunk = 64 << 10

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func newHourlyCopy(w io.Writer) *hourlyCopy {
	return &hourlyCopy{w: w, copyRows: newCopyRows(copyChunk + 1024)}
}

func appendInt32Field(buf []byte, v int32) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 4)
	return binary.BigEndian.AppendUint32(buf, uint32(v))
}

func appendInt64Field(buf []byte, v int64) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(v))
}

func appendDecField(buf []byte, d dec) ([]byte, error) {
	at := len(buf)
	buf, err := appendDec(append(buf, 0, 0, 0, 0), d)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	return buf, nil
}

var nullField = []byte{0xff, 0xff, 0xff, 0xff}

func (c *hourlyCopy) write(b *hourBucket) error {
	c.row(12)
	c.int32(b.dev)
	c.int32(b.ser)
	c.int64(b.bucket)
	c.int32(b.count)
	if b.count == 0 {
		c.nulls(7)
	} else {
		if err := c.decs(b.min, b.max, b.sum); err != nil {
			return err
		}
		if err := c.firstLast(b.firstTS, b.first, b.lastTS, b.last); err != nil {
			return err
		}
	}
	if err := c.dec(b.consumption); err != nil {
		return err
	}
	if len(c.buf) >= copyChunk {
		return c.flush()
	}
	return nil
}

func (c *hourlyCopy) flush() error {
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// close writes the trailer and what is left.
func (c *hourlyCopy) close() error {
	c.end()
	return c.flush()
}

// decodeReading reads a row of readingsSQL in binary format into r, and a value too
// large for an int64 into bigs.
func decodeReading(vals [][]byte, r *rawReading, bigs *[]*apd.Decimal) error {
	if len(vals) != 5 || len(vals[0]) != 4 || len(vals[1]) != 4 || len(vals[2]) != 8 || len(vals[4]) != 8 {
		return fmt.Errorf("decoding a reading: unexpected row %v", vals)
	}
	r.dev = int32(binary.BigEndian.Uint32(vals[0]))
	r.ser = int32(binary.BigEndian.Uint32(vals[1]))
	r.ts = int64(binary.BigEndian.Uint64(vals[2]))
	r.factor = int64(binary.BigEndian.Uint64(vals[4]))
	v, err := decodeNumeric(vals[3])
	if err != nil {
		return err
	}
	r.c, r.s, r.big = v.c, v.s, 0
	if v.big != nil {
		*bigs = append(*bigs, v.big)
		r.big = int32(len(*bigs))
	}
	return nil
}

// batchReadings is about how many readings one batch of the job holds: 65,536 readings
// of 40 bytes, as read and sorted, are 5 MiB, and at most three batches are in memory
// at once (one being read, one queued, one being aggregated). A batch spans whole hours,
// so one hour denser than this is read whole: memory follows the densest hour, not the
// slice (10 M readings of 1,000 meters in 26 day slices: a peak RSS of 69 MiB, bench r5).
const batchReadings = 1 << 16

// batchPool keeps batches' memory from one to the next (a few megabytes each, which
// otherwise would be allocated and cleared anew every batch).
var batchPool = sync.Pool{New: func() any { return new(readingBatch) }}

// readingsSQL reads the raw readings of [a, b] in the order they lie on disk (time).
const readingsSQL = `SELECT device_key, series_key, ts, value, factor FROM meter_readings WHERE ts >= $1 AND ts <= $2`

// probeSQL finds the reading before each given one of a device and series (the key
// index backwards, newest chunk first, as amrd_read.prev_value does).
const probeSQL = `SELECT u.i::int4, (SELECT m.value FROM meter_readings m
		WHERE m.device_key = u.d AND m.series_key = u.s AND m.ts < u.t ORDER BY m.ts DESC LIMIT 1)
	FROM unnest($1::int4[], $2::int4[], $3::timestamptz[]) WITH ORDINALITY AS u(d, s, t, i)`

var binaryResults = pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode,
	pgx.BinaryFormatCode, pgx.BinaryFormatCode}

// fromPGMicros is the instant of a timestamptz in binary form.
func fromPGMicros(us int64) time.Time { return time.UnixMicro(us + pgEpochMicros).UTC() }

// materializeHourly writes the hourly buckets of [lo, hi) (and the steps into them of
// the readings in (lo, hi]): it deletes those already there, then copies in, in the same
// transaction, the buckets that hourlyAggregator computes from the raw readings. One
// connection reads the readings a batch of hours at a time, in one snapshot (a
// repeatable read transaction), while the buckets of the previous batch are copied in;
// another reads what the series and daily sums need. It returns how many readings and
// buckets it aggregated, those sums and the snapshot it read. carry, if not nil, is the
// previous slice's open days (see "Open days" in rollupdays.go). A NaN or infinite value
// anywhere in the slice makes it write nothing and return errNonFinite.
//
// One copy, not one a range of devices: the copy that first writes into a new chunk of
// rollup_hourly holds the chunk's lock until it commits, and it commits only when the
// aggregator has written every bucket, which would wait for the other copy, waiting for
// the lock.
func (s *Store) materializeHourly(ctx context.Context, lo, hi time.Time, carry *dayCarry) (hourlyResult, error) {
	g, gctx := errgroup.WithContext(ctx)
	pr, pw := io.Pipe()
	out := newHourlyCopy(pw)
	g.Go(func() error {
		err := s.inTx(gctx, "copying the hourly rollups", func(tx pgx.Tx) error {
			if _, err := tx.Exec(gctx, `DELETE FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2`, lo, hi); err != nil {
				return err
			}
			_, err := tx.Conn().PgConn().CopyFrom(gctx, pr, hourlyCopySQL)
			return err
		})
		// A COPY that failed reads no more: unblock the aggregator's writes.
		pr.CloseWithError(fmt.Errorf("copying the hourly rollups: %w", err))
		return err
	})
	batches := make(chan *readingBatch, 1)
	agg := newHourlyAggregator(lo, hi, out)
	// The series and daily sums need the zones and the hours before lo: read on
	// another connection while the readings are read and aggregated.
	ready := make(chan *sliceRollups, 1)
	g.Go(func() error {
		d, err := newSliceRollups(gctx, s.pool, lo, hi, carry)
		if err != nil {
			return err
		}
		ready <- d
		return nil
	})
	var snapshot string
	g.Go(func() error {
		err := s.readBatches(gctx, agg, lo, hi, batches, &snapshot)
		close(batches)
		return err
	})
	g.Go(func() error {
		var err error
		for bt := range batches {
			select {
			case d := <-ready:
				agg.setDays(d)
			default:
			}
			if err == nil {
				err = agg.add(bt)
			}
			batchPool.Put(bt)
		}
		if err == nil && agg.days == nil {
			select {
			case d := <-ready:
				agg.setDays(d)
			case <-gctx.Done():
				err = gctx.Err()
			}
		}
		if err == nil {
			err = out.close()
		}
		pw.CloseWithError(err) // nil: the end of the COPY data
		return err
	})
	if err := g.Wait(); err != nil {
		return hourlyResult{}, err
	}
	return hourlyResult{readings: agg.Readings, buckets: agg.Buckets, days: agg.days, snapshot: snapshot, before: agg.before}, nil
}

// hourlyResult is what materializeHourly did.
type hourlyResult struct {
	readings, buckets int64
	days              *sliceRollups
	// snapshot is the one the readings were read in (pg_snapshot's text form).
	snapshot string
	// before: each device's and series' latest reading before hi, as read.
	before map[pairKey]pointReading
}

// readBatches reads the raw readings of [lo - 1 h, hi] a batch of whole hours at a time
// (the readings of the hour before lo only give the first steps their predecessors),
// sorts each and sends it, with the probes it needs, on out. Each batch spans as many
// hours as make about batchReadings readings at the rate of the previous one. It sets
// snapshot to the transaction's snapshot, taken by its first statement.
//
// Each batch reads its hours through the readings' BRIN index on ts, summarized first
// (summarizeReadings): the planner has no statistics for a chunk written since the
// last ANALYZE (what the job reads behind ingestion), so it scanned the whole chunk,
// with a parallel worker, for every batch of a few hours (a day-slice read its day
// about 18 times over); a BRIN range not summarized yet matches every query too.
func (s *Store) readBatches(ctx context.Context, agg *hourlyAggregator, lo, hi time.Time, out chan<- *readingBatch, snapshot *string) error {
	s.summarizeReadings(ctx, lo.Add(-time.Hour), hi)
	return s.inTxWith(ctx, "reading the raw readings", pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(snapshot); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
			return err
		}
		seen := map[pairKey]bool{}
		a := lo.Add(-time.Hour)
		// A first batch of two hours, so that the copy begins early.
		span := time.Hour
		for {
			b := lo.Truncate(time.Hour).Add(span)
			if a.After(lo) {
				b = a.Add(span)
			}
			if b.After(hi) {
				b = hi
			}
			bt := batchPool.Get().(*readingBatch)
			*bt = readingBatch{a: pgMicros(a), b: pgMicros(b), rows: bt.rows[:0], read: bt.read[:0]}
			rows, err := tx.Query(ctx, readingsSQL, binaryResults, a, b)
			if err != nil {
				return err
			}
			for rows.Next() {
				bt.read = append(bt.read, rawReading{})
				if err := decodeReading(rows.RawValues(), &bt.read[len(bt.read)-1], &bt.bigs); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			bt.rows, bt.pairs = sortReadings(bt.read, bt.rows)
			keys, before := needsProbe(bt.rows, agg.stepFrom(bt.a), func(k pairKey) bool { return seen[k] })
			if len(keys) > 0 {
				if bt.probed, err = probe(ctx, tx, keys, before); err != nil {
					return err
				}
			}
			for _, k := range bt.pairs {
				seen[k] = true
			}
			// The next span: batchReadings at this batch's rate, 1 to 24 hours.
			hours := max(1, int64(b.Sub(a)/time.Hour))
			perHour := max(1, int64(len(bt.rows))/hours)
			span = time.Duration(min(24, max(1, batchReadings/perHour))) * time.Hour
			select {
			case out <- bt:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !b.Before(hi) {
				return nil
			}
			a = b
		}
	})
}

// summarizeReadings summarizes the BRIN ranges on ts not summarized yet of the readings'
// chunks that overlap [lo, hi] (autovacuum does it a while after they fill up), so that
// the batches' range queries read their own pages only. It is an optimization: a role
// without the right to (not the tables' owner) or a lock held by maintenance (it waits
// a second at most) only leaves the ranges as they are.
func (s *Store) summarizeReadings(ctx context.Context, lo, hi time.Time) {
	err := s.inTx(ctx, "summarizing the readings' BRIN ranges", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT brin_summarize_new_values(i.indexrelid)
			FROM timescaledb_information.chunks c
			JOIN pg_class t ON t.relname = c.chunk_name AND t.relnamespace = c.chunk_schema::regnamespace
			JOIN pg_index i ON i.indrelid = t.oid
			JOIN pg_class x ON x.oid = i.indexrelid
			JOIN pg_am a ON a.oid = x.relam AND a.amname = 'brin'
			JOIN pg_attribute k ON k.attrelid = t.oid AND k.attnum = i.indkey[0] AND k.attname = 'ts'
			WHERE c.hypertable_schema = 'public' AND c.hypertable_name = 'meter_readings'
				AND c.range_end > $1 AND c.range_start <= $2`, lo, hi)
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Debug("the readings' BRIN ranges were not summarized", "component", "rollups", "err", err)
	}
}

// probe returns the raw value of the reading before[i] of each device and series keys[i]
// that has one.
func probe(ctx context.Context, q querier, keys []pairKey, before []int64) (map[pairKey]dec, error) {
	d, sk, t := make([]int32, len(keys)), make([]int32, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		d[i], sk[i], t[i] = k.dev, k.ser, fromPGMicros(before[i])
	}
	rows, err := q.Query(ctx, probeSQL, pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode}, d, sk, t)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[pairKey]dec{}
	for rows.Next() {
		vals := rows.RawValues()
		if len(vals) != 2 || len(vals[0]) != 4 {
			return nil, fmt.Errorf("probing readings: unexpected row %v", vals)
		}
		if vals[1] == nil {
			continue
		}
		v, err := decodeNumeric(vals[1])
		if err != nil {
			return nil, err
		}
		found[keys[binary.BigEndian.Uint32(vals[0])-1]] = v
	}
	return found, rows.Err()
}
