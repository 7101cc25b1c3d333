package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The series and daily buckets of a slice, summed in Go from its hourly buckets as
// they are aggregated, exactly as the SQL the job used before does (kept for a slice with
// a non-finite value): rollup_series_hourly sums each hour's device buckets;
// amrd_rollup_daily_from_table sums the hourly buckets of each local day of a device
// whose zone's days begin on a UTC hour, with the day each hour's start lies in
// (PostgreSQL says which: amrd_local_day, so Go's zone data never decides), for the
// days that end in (lo, hi]. The hours of those days before lo are read back from
// rollup_hourly. Of equal minima or maxima the later in time is kept, as numeric's min
// and max keep the later argument on a tie.

// dayBucket is a series-hourly or daily bucket being summed.
type dayBucket struct {
	devices       int32 // hourly buckets summed (series buckets' devices)
	count         int64
	min, max, sum dec
	minAt, maxAt  int64 // the hours of min and max
	hasStat       bool
	first, last   dec
	firstTS       int64
	lastTS        int64
	consumption   dec
}

// addHour sums an hourly bucket into b.
func (b *dayBucket) addHour(h *hourBucket) {
	if b.devices == 0 {
		b.consumption = h.consumption
	} else {
		b.consumption = b.consumption.add(h.consumption)
	}
	b.devices++
	if h.count == 0 {
		return
	}
	b.count += int64(h.count)
	if !b.hasStat {
		b.min, b.max, b.sum, b.minAt, b.maxAt = h.min, h.max, h.sum, h.bucket, h.bucket
		b.first, b.firstTS, b.last, b.lastTS = h.first, h.firstTS, h.last, h.lastTS
		b.hasStat = true
		return
	}
	// Of equal values the later hour's (of one hour, the later given), whatever the
	// order the hours come in.
	if c := h.min.cmp(b.min); c < 0 || c == 0 && h.bucket >= b.minAt {
		b.min, b.minAt = h.min, h.bucket
	}
	if c := h.max.cmp(b.max); c > 0 || c == 0 && h.bucket >= b.maxAt {
		b.max, b.maxAt = h.max, h.bucket
	}
	b.sum = b.sum.add(h.sum)
	if h.firstTS < b.firstTS {
		b.first, b.firstTS = h.first, h.firstTS
	}
	if h.lastTS > b.lastTS {
		b.last, b.lastTS = h.last, h.lastTS
	}
}

// zoneDay is a local day of a zone that ends in (lo, hi], or, open, the one that goes on
// past hi.
type zoneDay struct {
	day        int32 // days since 2000-01-01
	start, end int64 // timestamptz, binary form
	open       bool
}

// dayKey is a device's and series' local day: the index of the day in its zone's days.
type dayKey struct {
	dev, ser int32
	day      int
}

type seriesKey struct {
	ser    int32
	bucket int64
}

// sliceRollups sums the series and daily buckets of the slice [lo, hi).
type sliceRollups struct {
	lo, hi int64
	series map[seriesKey]*dayBucket
	// Days: zones[zoneOf[dev]] is a device's zone, hourDays[z][(h - from) / 1 h] the index in
	// days[z] of the day that hour h is in (-1: a day that does not end in (lo, hi]).
	from     int64
	zoneOf   map[int32]int
	zones    []string
	days     [][]zoneDay
	hourDays [][]int
	daily    map[dayKey]*dayBucket
	// version is rollup_state's when the slice began. seeded[z] is the index of zone z's
	// day whose hours before lo came from the previous slice's open day (-1: none);
	// complete[z] says that zone z's open day has all its hours before hi summed.
	version  int64
	seeded   []int
	complete []bool
}

// Open days. A slice's last local day in a zone usually goes on past hi (a Stockholm day
// ends at 23:00 UTC, a slice at an hour of the threshold). Its hours so far are summed
// like the others' but not written, and once the slice has committed the store keeps
// those sums (dayCarry) for the next slice, which starts that day from them instead of
// reading its hours back from rollup_hourly. The next slice takes them only if it begins
// where that one ended, rollup_state.version is still the one that slice left (nothing
// wrote buckets since: no recomputation, no late step, no other replica's job), and every
// device is in the zone it was in; otherwise it reads back as before. A zone's open day
// is kept only when all its hours before hi were summed: it began in the slice, came from
// memory, or the read-back that the slice's closing days needed covered it (a slice of an
// hour does not read back a day's first 23 hours just to keep it).

// dayCarry is the sums of the open days at the end of a slice.
type dayCarry struct {
	hi      int64            // the slice's end
	version int64            // rollup_state.version after it
	zoneOf  map[int32]string // every device's zone (those whose days are sums of hours)
	days    map[string]int32 // each zone's open day that was kept
	sums    map[pairKey]*dayBucket
}

// fits says whether c continues where sr begins (see "Open days").
func (c *dayCarry) fits(sr *sliceRollups) bool {
	if c == nil || c.hi != sr.lo || c.version != sr.version || len(c.zoneOf) != len(sr.zoneOf) {
		return false
	}
	for dev, z := range sr.zoneOf {
		if c.zoneOf[dev] != sr.zones[z] {
			return false
		}
	}
	return true
}

// seed starts the day of each zone that c kept from c's sums.
func (sr *sliceRollups) seed(c *dayCarry) {
	for z, name := range sr.zones {
		if d, ok := c.days[name]; ok {
			sr.seeded[z] = slices.IndexFunc(sr.days[z], func(zd zoneDay) bool { return zd.day == d })
		}
	}
	for k, b := range c.sums {
		if i := sr.seeded[sr.zoneOf[k.dev]]; i >= 0 {
			sr.daily[dayKey{k.dev, k.ser, i}] = b
		}
	}
}

// carry is the sums of sr's open days that have all their hours, for the slice after
// it; version is rollup_state's after sr committed.
func (sr *sliceRollups) carry(version int64) *dayCarry {
	c := &dayCarry{hi: sr.hi, version: version, zoneOf: make(map[int32]string, len(sr.zoneOf)),
		days: map[string]int32{}, sums: map[pairKey]*dayBucket{}}
	for dev, z := range sr.zoneOf {
		c.zoneOf[dev] = sr.zones[z]
	}
	open := make([]int, len(sr.zones))
	for z, ds := range sr.days {
		open[z] = -1
		if n := len(ds); n > 0 && ds[n-1].open && sr.complete[z] {
			open[z] = n - 1
			c.days[sr.zones[z]] = ds[n-1].day
		}
	}
	for k, b := range sr.daily {
		if open[sr.zoneOf[k.dev]] == k.day {
			c.sums[pairKey{k.dev, k.ser}] = b
		}
	}
	return c
}

// dayFrom is how far before lo amrd_rollup_daily_from_table looks for a day's hours.
const dayFrom = 48 * time.Hour

// newSliceRollups reads the zones of the devices whose days are sums of hours, their
// local days in [lo - 2 days, hi), and the hours of rollup_hourly before lo of the days
// that end in (lo, hi], except those of a day that carry holds (see "Open days"; carry
// may be nil).
func newSliceRollups(ctx context.Context, q querier, lo, hi time.Time, carry *dayCarry) (*sliceRollups, error) {
	sr := &sliceRollups{lo: pgMicros(lo), hi: pgMicros(hi), series: map[seriesKey]*dayBucket{},
		from: pgMicros(lo.Add(-dayFrom)), zoneOf: map[int32]int{}, daily: map[dayKey]*dayBucket{}}
	if err := q.QueryRow(ctx, `SELECT version FROM rollup_state`).Scan(&sr.version); err != nil {
		return nil, err
	}
	zoneIdx := map[string]int{}
	rows, err := q.Query(ctx, `SELECT device_key, timezone FROM amrd_read.device_zones WHERE hour_aligned`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var dev int32
		var tz string
		if err := rows.Scan(&dev, &tz); err != nil {
			rows.Close()
			return nil, err
		}
		z, ok := zoneIdx[tz]
		if !ok {
			z = len(sr.zones)
			zoneIdx[tz] = z
			sr.zones = append(sr.zones, tz)
		}
		sr.zoneOf[dev] = z
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(sr.zones) == 0 {
		return sr, nil
	}
	hours := int((sr.hi - sr.from + hourMicros - 1) / hourMicros)
	sr.days, sr.hourDays = make([][]zoneDay, len(sr.zones)), make([][]int, len(sr.zones))
	for z := range sr.zones {
		sr.hourDays[z] = slices.Repeat([]int{-1}, hours)
	}
	// Each hour's local day in each zone, and that day's bounds.
	rows, err = q.Query(ctx, `SELECT z.i::int4, (extract(epoch FROM h - $2::timestamptz) / 3600)::int4,
			d - date '2000-01-01', public.amrd_day_start(d, z.tz), public.amrd_day_start(d + 1, z.tz)
		FROM unnest($1::text[]) WITH ORDINALITY AS z(tz, i),
			generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') h,
			LATERAL (SELECT public.amrd_local_day(h, z.tz) AS d) x
		ORDER BY 1, 2`, sr.zones, lo.Add(-dayFrom), hi)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var z, h, day int32
		var start, end time.Time
		if err := rows.Scan(&z, &h, &day, &start, &end); err != nil {
			rows.Close()
			return nil, err
		}
		zd := zoneDay{day: day, start: pgMicros(start), end: pgMicros(end)}
		if zd.end <= sr.lo {
			continue
		}
		zd.open = zd.end > sr.hi
		ds := sr.days[z-1]
		if len(ds) == 0 || ds[len(ds)-1].day != day {
			ds = append(ds, zd)
			sr.days[z-1] = ds
		}
		sr.hourDays[z-1][h] = len(ds) - 1
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sr.seeded = slices.Repeat([]int{-1}, len(sr.zones))
	if carry.fits(sr) {
		sr.seed(carry)
	}
	// The hours before lo of the days that end in (lo, hi] and do not come from memory,
	// from the first such hour of any zone: addDay keeps those of each device's days (a
	// scan of the hours by time; a join on the devices would probe the key index a
	// device).
	first := sr.lo
	for z := range sr.zones {
		if k := slices.IndexFunc(sr.hourDays[z], func(d int) bool {
			return d >= 0 && d != sr.seeded[z] && !sr.days[z][d].open
		}); k >= 0 {
			first = min(first, sr.from+int64(k)*hourMicros)
		}
	}
	sr.complete = make([]bool, len(sr.zones))
	for z, ds := range sr.days {
		if n := len(ds); n > 0 && ds[n-1].open {
			sr.complete[z] = n-1 == sr.seeded[z] || ds[n-1].start >= first
		}
	}
	if first >= sr.lo {
		return sr, nil
	}
	rows, err = q.Query(ctx, `SELECT device_key, series_key, bucket, count, min_value, max_value, sum_value,
			first_ts, first_value, last_ts, last_value, consumption
		FROM rollup_hourly WHERE bucket >= $1 AND bucket < $2`, hourlyResults, fromPGMicros(first), lo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h hourBucket
		if err := decodeHourly(rows.RawValues(), &h); err != nil {
			return nil, err
		}
		if z, ok := sr.zoneOf[h.dev]; ok && sr.hourDays[z][(h.bucket-sr.from)/hourMicros] == sr.seeded[z] {
			continue // a day that memory started
		}
		sr.addDay(&h)
	}
	return sr, rows.Err()
}

var hourlyResults = pgx.QueryResultFormats{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// add sums an hourly bucket of the slice into its series bucket and its day.
func (sr *sliceRollups) add(h *hourBucket) {
	if h.bucket >= sr.lo && h.bucket < sr.hi {
		k := seriesKey{h.ser, h.bucket}
		b := sr.series[k]
		if b == nil {
			b = &dayBucket{}
			sr.series[k] = b
		}
		b.addHour(h)
	}
	sr.addDay(h)
}

func (sr *sliceRollups) addDay(h *hourBucket) {
	z, ok := sr.zoneOf[h.dev]
	if !ok || h.bucket < sr.from || h.bucket >= sr.hi {
		return
	}
	d := sr.hourDays[z][(h.bucket-sr.from)/hourMicros]
	if d < 0 {
		return
	}
	k := dayKey{h.dev, h.ser, d}
	b := sr.daily[k]
	if b == nil {
		b = &dayBucket{}
		sr.daily[k] = b
	}
	b.addHour(h)
}

// decodeHourly reads a rollup_hourly row in binary format.
func decodeHourly(vals [][]byte, h *hourBucket) error {
	if len(vals) != 12 || len(vals[0]) != 4 || len(vals[1]) != 4 || len(vals[2]) != 8 || len(vals[3]) != 4 || vals[11] == nil {
		return fmt.Errorf("decoding an hourly rollup: unexpected row %v", vals)
	}
	h.dev = int32(binary.BigEndian.Uint32(vals[0]))
	h.ser = int32(binary.BigEndian.Uint32(vals[1]))
	h.bucket = int64(binary.BigEndian.Uint64(vals[2]))
	h.count = int32(binary.BigEndian.Uint32(vals[3]))
	var err error
	if h.consumption, err = decodeNumeric(vals[11]); err != nil {
		return err
	}
	if h.count == 0 {
		return nil
	}
	for i, p := range [...]*dec{4: &h.min, 5: &h.max, 6: &h.sum, 8: &h.first, 10: &h.last} {
		if p == nil {
			continue
		}
		if vals[i] == nil {
			return fmt.Errorf("decoding an hourly rollup: NULL column %d with a count", i)
		}
		if *p, err = decodeNumeric(vals[i]); err != nil {
			return err
		}
	}
	if len(vals[7]) != 8 || len(vals[9]) != 8 {
		return fmt.Errorf("decoding an hourly rollup: unexpected row %v", vals)
	}
	h.firstTS = int64(binary.BigEndian.Uint64(vals[7]))
	h.lastTS = int64(binary.BigEndian.Uint64(vals[9]))
	return nil
}

// copyRows is COPY's binary format, row by row, into one buffer: the series and daily
// buckets of a slice (a few rows a device and series), and each piece of the hourly
// ones (hourlyCopy).
type copyRows struct{ buf []byte }

// newCopyRows starts a COPY stream: its header, in a buffer of capacity bytes.
func newCopyRows(capacity int) copyRows {
	return copyRows{buf: append(make([]byte, 0, capacity), copyHeader...)}
}

// end appends the trailer.
func (c *copyRows) end() { c.buf = binary.BigEndian.AppendUint16(c.buf, 0xffff) }

func (c *copyRows) row(fields int) { c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(fields)) }
func (c *copyRows) int32(v int32)  { c.buf = appendInt32Field(c.buf, v) }
func (c *copyRows) int64(v int64)  { c.buf = appendInt64Field(c.buf, v) }
func (c *copyRows) text(s string) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(s)))
	c.buf = append(c.buf, s...)
}
func (c *copyRows) dec(d dec) (err error) {
	c.buf, err = appendDecField(c.buf, d)
	return err
}

func (c *copyRows) nulls(n int) {
	for range n {
		c.buf = append(c.buf, nullField...)
	}
}

func (c *copyRows) decs(ds ...dec) error {
	for _, d := range ds {
		if err := c.dec(d); err != nil {
			return err
		}
	}
	return nil
}

// firstLast appends the first and the last reading: time and value each.
func (c *copyRows) firstLast(firstTS int64, first dec, lastTS int64, last dec) error {
	c.int64(firstTS)
	if err := c.dec(first); err != nil {
		return err
	}
	c.int64(lastTS)
	return c.dec(last)
}

// stats appends count through the last value: count, min, max, sum and, for days, the
// first and last readings.
func (c *copyRows) stats(b *dayBucket, firstLast bool) error {
	if b.count > int64(^uint32(0)>>1) {
		return fmt.Errorf("rollups: %d readings in one bucket", b.count)
	}
	c.int32(int32(b.count))
	if !b.hasStat {
		if firstLast {
			c.nulls(7)
		} else {
			c.nulls(3)
		}
		return nil
	}
	if err := c.decs(b.min, b.max, b.sum); err != nil {
		return err
	}
	if firstLast {
		return c.firstLast(b.firstTS, b.first, b.lastTS, b.last)
	}
	return nil
}

// seriesCopy is rollup_series_hourly's rows in COPY's binary format (seriesCopySQL).
func (sr *sliceRollups) seriesCopy() ([]byte, int64, error) {
	c := newCopyRows(0)
	for k, b := range sr.series {
		c.row(8)
		c.int32(k.ser)
		c.int64(k.bucket)
		c.int32(b.devices)
		if err := c.stats(b, false); err != nil {
			return nil, 0, err
		}
		if err := c.dec(b.consumption); err != nil {
			return nil, 0, err
		}
	}
	c.end()
	return c.buf, int64(len(sr.series)), nil
}

const seriesCopySQL = `COPY rollup_series_hourly (series_key, bucket, devices, count, min_value, max_value, sum_value,
	consumption) FROM STDIN (FORMAT binary)`

// dailyCopy is rollup_daily's rows in COPY's binary format (dailyCopySQL).
func (sr *sliceRollups) dailyCopy() ([]byte, int64, error) {
	c := newCopyRows(0)
	var n int64
	for k, b := range sr.daily {
		z := sr.zoneOf[k.dev]
		d := sr.days[z][k.day]
		if d.open {
			continue // not over yet: the next slice's (carry)
		}
		n++
		c.row(15)
		c.int32(k.dev)
		c.int32(k.ser)
		c.int32(d.day)
		c.text(sr.zones[z])
		c.int64(d.start)
		c.int64(d.end)
		if err := c.stats(b, true); err != nil {
			return nil, 0, err
		}
		if err := c.dec(b.consumption); err != nil {
			return nil, 0, err
		}
	}
	c.end()
	return c.buf, n, nil
}

const dailyCopySQL = `COPY rollup_daily (device_key, series_key, day, timezone, day_start, day_end, count, min_value,
	max_value, sum_value, first_ts, first_value, last_ts, last_value, consumption) FROM STDIN (FORMAT binary)`
