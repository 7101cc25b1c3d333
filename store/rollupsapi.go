package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Rollup is one bucket of one device's series, as the meter-reading-rollups route shows
// it. Values are scaled (raw value x the CT/VT factor of each reading), and also SI
// (x the series' si_multiplier) when asked for. A bucket without readings of its own
// can still have consumption: the step to a reading exactly at its end belongs to it
// (schema 0004); its count is 0 and its statistics are null.
type Rollup struct {
	Bucket    time.Time `json:"bucket"`
	BucketEnd time.Time `json:"bucket_end"`
	// Day (day buckets) and Month (month buckets, its first day) are local dates in
	// Timezone, the zone of the device's config when the bucket was aggregated.
	Day            string     `json:"day,omitempty"`
	Month          string     `json:"month,omitempty"`
	Timezone       string     `json:"timezone,omitempty"`
	Count          int64      `json:"count"`
	Min            *Decimal   `json:"min"`
	Max            *Decimal   `json:"max"`
	Avg            *Decimal   `json:"avg"`
	Sum            *Decimal   `json:"sum"`
	FirstTimestamp *time.Time `json:"first_timestamp"`
	FirstValue     *Decimal   `json:"first_value"`
	LastTimestamp  *time.Time `json:"last_timestamp"`
	LastValue      *Decimal   `json:"last_value"`
	Consumption    Decimal    `json:"consumption"`
}

// Rollup bucket sizes.
const (
	BucketHour  = "hour"
	BucketDay   = "day"
	BucketMonth = "month"
)

// RollupFilter selects the buckets of one device and series whose start lies in
// [Start, End).
type RollupFilter struct {
	Device, Series uuid.UUID
	Bucket         string // BucketHour, BucketDay or BucketMonth
	Start, End     time.Time
	// SI multiplies every value by the series' si_multiplier.
	SI bool
}

// The rollups of one device are its real-time rollups (amrd_read.rollup_hourly_rt and
// rollup_daily_rt, schema 0004): the rollup tables below the materialized point and the
// raw readings aggregated live above it. The device and series keys go down into both
// parts (the live part's functions are inlined), so only that pair's rows are read.
//
// Parameters of every query: $1 device key, $2 series key, $3 start, $4 end.

// rollupHourlySQL selects the hours of [$3, $4).
const rollupHourlySQL = `
	SELECT h.bucket, h.bucket + interval '1 hour' AS bucket_end, NULL::date AS day, NULL::date AS month,
		NULL::text AS timezone, h.count::bigint AS count, h.min_value, h.max_value, h.sum_value,
		h.first_ts, h.first_value, h.last_ts, h.last_value, h.consumption
	FROM amrd_read.rollup_hourly_rt h
	WHERE h.device_key = $1 AND h.series_key = $2 AND h.bucket >= $3 AND h.bucket < $4`

// rollupDailySQL selects the local days that start in [lo, hi) (SQL expressions of the
// parameters).
func rollupDailySQL(lo, hi string) string {
	return `
	SELECT r.day_start AS bucket, r.day_end AS bucket_end, r.day, NULL::date AS month, r.timezone,
		r.count::bigint AS count, r.min_value, r.max_value, r.sum_value, r.first_ts, r.first_value,
		r.last_ts, r.last_value, r.consumption
	FROM amrd_read.rollup_daily_rt r
	-- The UTC dates of the bounds, two days wider (no zone is 48 hours from UTC), bound the
	-- table's key and chunks; the instants decide.
	WHERE r.device_key = $1 AND r.series_key = $2
		AND r.day >= ((` + lo + `) AT TIME ZONE 'UTC')::date - 2 AND r.day <= ((` + hi + `) AT TIME ZONE 'UTC')::date + 2
		AND r.day_start >= ` + lo + ` AND r.day_start < ` + hi
}

// rollupMonthlySQL sums the local days into local months that start in [$3, $4). Their
// days start in [$3, $4 + 32 days): none before the month's start, and the last month
// that starts before $4 ends at most 31 days and a DST hour later.
var rollupMonthlySQL = `
	SELECT amrd_day_start(m.month, m.timezone) AS bucket,
		amrd_day_start((m.month + interval '1 month')::date, m.timezone) AS bucket_end, NULL::date AS day,
		m.month, m.timezone, m.count, m.min_value, m.max_value, m.sum_value, m.first_ts, m.first_value,
		m.last_ts, m.last_value, m.consumption
	FROM (
		SELECT date_trunc('month', d.day::timestamp)::date AS month, d.timezone, sum(d.count)::bigint AS count,
			min(d.min_value) AS min_value, max(d.max_value) AS max_value, sum(d.sum_value) AS sum_value,
			min(d.first_ts) AS first_ts, first(d.first_value, d.first_ts) FILTER (WHERE d.count > 0) AS first_value,
			max(d.last_ts) AS last_ts, last(d.last_value, d.last_ts) FILTER (WHERE d.count > 0) AS last_value,
			sum(d.consumption) AS consumption
		FROM (` + rollupDailySQL("$3::timestamptz", "($4::timestamptz + interval '32 days')") + `) d
		GROUP BY 1, 2
	) m
	WHERE amrd_day_start(m.month, m.timezone) >= $3 AND amrd_day_start(m.month, m.timezone) < $4`

// rollupInner returns the query of a bucket size's rows.
func rollupInner(bucket string) (string, bool) {
	switch bucket {
	case BucketHour:
		return rollupHourlySQL, true
	case BucketDay:
		return rollupDailySQL("$3::timestamptz", "$4::timestamptz"), true
	case BucketMonth:
		return rollupMonthlySQL, true
	}
	return "", false
}

// ListRollups returns one page of the buckets of a device and series in scope, oldest
// first, and how many there are in the range. A device out of scope (or none) is a
// FieldError on meter_device; a series that is not of the device's organization (or
// none), one on series.
func (s *Store) ListRollups(ctx context.Context, sc Scope, f RollupFilter, p Page) ([]Rollup, int, error) {
	inner, ok := rollupInner(f.Bucket)
	if !ok {
		return nil, 0, &FieldError{Field: "bucket", Msg: fmt.Sprintf("Select a valid choice. %q is not one of the available choices.", f.Bucket)}
	}
	all, orgs := sc.args()
	var dkey, skey *int32
	var si *string
	// One row for a device in scope; the series' columns are null unless the series is
	// of the device's organization.
	err := s.pool.QueryRow(ctx, `SELECT d.key, s.key, s.si_multiplier::text FROM meter_devices d
		LEFT JOIN meter_reading_series s ON s.id = $2 AND s.organization_id = d.organization_id
		WHERE d.id = $1 AND ($3 OR d.organization_id = ANY($4))`, f.Device, f.Series, all, orgs).Scan(&dkey, &skey, &si)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, &FieldError{Field: "meter_device", Msg: fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", f.Device)}
	}
	if err != nil {
		return nil, 0, mapErr("resolving a meter device", err)
	}
	if skey == nil {
		return nil, 0, &FieldError{Field: "series", Msg: fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", f.Series)}
	}

	args := []any{*dkey, *skey, f.Start, f.End, p.Limit, p.Offset}
	val := func(col string) string { return col }
	if f.SI {
		args = append(args, *si)
		n := strconv.Itoa(len(args))
		val = func(col string) string { return col + " * $" + n + "::text::numeric" }
	}
	text := func(col string) string { return "(" + val(col) + ")::text" }
	// The average divides once, after the SI multiplication, so that it is rounded once.
	q := `SELECT x.bucket, x.bucket_end, to_char(x.day::timestamp, 'YYYY-MM-DD'), to_char(x.month::timestamp, 'YYYY-MM-DD'),
		x.timezone, x.count, ` + text("x.min_value") + `, ` + text("x.max_value") + `,
		(` + val("x.sum_value") + ` / nullif(x.count, 0))::text, ` + text("x.sum_value") + `,
		x.first_ts, ` + text("x.first_value") + `, x.last_ts, ` + text("x.last_value") + `, ` + text("x.consumption") + `,
		count(*) OVER ()
	FROM (` + inner + `) x
	ORDER BY x.bucket, x.timezone LIMIT $5 OFFSET $6`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, mapErr("listing rollups", err)
	}
	n := 0
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rollup, error) {
		var r Rollup
		var day, month, tz *string
		var total int64
		err := row.Scan(&r.Bucket, &r.BucketEnd, &day, &month, &tz, &r.Count, &r.Min, &r.Max, &r.Avg, &r.Sum,
			&r.FirstTimestamp, &r.FirstValue, &r.LastTimestamp, &r.LastValue, &r.Consumption, &total)
		r.Bucket, r.BucketEnd = r.Bucket.UTC(), r.BucketEnd.UTC()
		for _, t := range []*time.Time{r.FirstTimestamp, r.LastTimestamp} {
			if t != nil {
				*t = t.UTC()
			}
		}
		r.Day, r.Month, r.Timezone = derefString(day), derefString(month), derefString(tz)
		n = int(total)
		return r, err
	})
	if err != nil {
		return nil, 0, mapErr("listing rollups", err)
	}
	if len(list) == 0 && p.Offset > 0 {
		// Paged past the end: no row carried the count.
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (`+inner+`) x`, args[:4]...).Scan(&n)
		if err != nil {
			return nil, 0, mapErr("counting rollups", err)
		}
	}
	return list, n, nil
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
